"""The live staffing gap with any number of workers: each worker exports the capacity of its agents per queue,
the queue's owner exports required agents, and a recording rule subtracts the sums (docs/staffing.md)."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from agentlog import AgentEvents
from batch_agents import staffed_now
from eventlog import BASE, keyed_messages
from prometheus_client.parser import text_string_to_metric_families

from pipeline.contract import events as ev
from pipeline.core.settings import QueueConfig, QueueSettings, load_settings
from pipeline.exposition.metrics import build_registry, exposition
from pipeline.kpis.staffing import required_agents
from pipeline.kpis.staffing.live import agents_needed, observed_traffic, prediction
from pipeline.monitoring.alerting import recording_groups
from pipeline.processing.processor import AgentProcessor, ContactProcessor, PipelineStats
from pipeline.state.agents import AgentState

QUEUES = ("sales", "support", "billing", "sales-chat", "support-chat")
STATES = ("available", "on_contact", "acw", "not_ready")


def random_day(seed: int, agents: int = 80) -> list[ev.Event]:
    """Agents logging in to 1-3 queues, changing state, some logging out, some logging in again, in time order."""
    rng = random.Random(seed)
    b = AgentEvents(f"s{seed}-")
    out: list[tuple[float, int, ev.Event]] = []
    n = 0
    for a in range(agents):
        agent = f"ag{a}"
        t = rng.uniform(0, 600)
        for _session in range(rng.randint(1, 2)):
            out.append((t, n, b.login(t, agent, rng.sample(QUEUES, rng.randint(1, 3)))))
            n += 1
            for _ in range(rng.randint(0, 8)):
                t += rng.uniform(1, 300)
                state = rng.choice(STATES)
                out.append((t, n, b.state(t, state, agent, reason="break" if state == "not_ready" else None)))
                n += 1
            if rng.random() < 0.3:
                t += rng.uniform(1, 300)
                out.append((t, n, b.logout(t, agent)))
                n += 1
            t += rng.uniform(1, 300)
    out.sort(key=lambda x: (x[0], x[1]))
    return [e for _, _, e in out]


def scrape(registry) -> list:
    return list(text_string_to_metric_families(exposition(registry).decode()))


def staffed_samples(families) -> dict[str, float]:
    return {s.labels["queue"]: s.value for f in families if f.name == "cc_queue_agents_staffed" for s in f.samples}


def test_capacity_rule_shares_a_multi_skilled_agent_and_leaves_out_not_ready():
    b = AgentEvents()
    state = AgentState(900, 60)
    for e in (
        b.login(0, "A", ("Q1", "Q2", "Q2")),  # a queue named twice is one queue
        b.state(1, "available", "A"),
        b.login(0, "B", ("Q1",)),
        b.state(2, "on_contact", "B"),
        b.login(0, "C", ("Q1", "Q3")),  # logged in: not ready until a state event
        b.login(0, "D", ("Q3",)),
        b.state(3, "acw", "D"),
        b.logout(4, "D"),
    ):
        assert state.apply(e) is None
    cap = state.capacity_by_queue()
    assert (cap["Q1"].staffed, cap["Q1"].ready, cap["Q1"].not_ready) == (1.5, 2, 1)
    assert (cap["Q2"].staffed, cap["Q2"].ready, cap["Q2"].not_ready) == (0.5, 1, 0)
    assert (cap["Q3"].staffed, cap["Q3"].ready, cap["Q3"].not_ready) == (0.0, 0, 1)  # D logged out
    # each agent able to take contacts counts once over all queues
    assert sum(c.staffed for c in cap.values()) == pytest.approx(2)


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("seed", [1, 2])
def test_staffed_summed_over_workers_equals_the_batch_computation(workers, seed):
    """Agent partitions split over 1, 2 or 3 workers (each its own processor and /metrics): the sums over workers
    of staffed and of not ready equal the batch computation over the whole log, however the partitions fall."""
    settings = load_settings(broker_url="x:1", partitions="6")
    events = random_day(seed)
    messages = keyed_messages("a", events, settings.partitions)
    owners = [AgentProcessor(settings, PipelineStats()) for _ in range(workers)]
    for w, proc in enumerate(owners):
        proc.process([m for m in messages if m.partition % workers == w])
    staffed: dict[str, float] = {}
    not_ready: dict[str, float] = {}
    for proc in owners:
        stats = PipelineStats()
        families = scrape(build_registry(ContactProcessor(settings, QueueConfig(), stats), stats, proc))
        for q, v in staffed_samples(families).items():
            staffed[q] = staffed.get(q, 0.0) + v
        for f in families:
            for s in f.samples:
                if f.name == "cc_queue_agents" and s.labels["state"] == "not_ready":
                    not_ready[s.labels["queue"]] = not_ready.get(s.labels["queue"], 0) + s.value
    batch = staffed_now(events)
    assert set(batch) <= set(staffed)
    for q in QUEUES:
        want = batch.get(q, {"staffed": 0.0, "not_ready": 0})
        assert staffed.get(q, 0.0) == pytest.approx(want["staffed"], abs=1e-5), q
        assert not_ready.get(q, 0) == want["not_ready"], q
    # multi-skilled agents: the shared count is below the count-in-each, which is what the old gauge summed
    assert 0 < sum(staffed.values()) < sum(r["ready"] for r in batch.values())


def test_the_gap_rule_subtracts_the_sum_over_workers_from_the_owners_required():
    """The recording rules are generated from the definitions and name the exported metrics."""
    groups = {g["name"]: g["rules"] for g in recording_groups(QueueConfig())}
    rules = {r["record"]: r["expr"] for r in groups["cc-queue-staffing"]}
    assert rules["queue:cc_queue_agents_staffed:sum"] == "sum by (queue) (cc_queue_agents_staffed)"
    gap = rules["queue_channel:cc_queue_agents_gap:sum"]
    assert gap.startswith("queue_channel:cc_queue_agents_required:max\n- on (queue) group_left ()")
    # (promtool evaluates it on three workers' series: deploy/prometheus/tests/queue-alerts.test.yml)


T0 = BASE + timedelta(hours=9)


def contact_stream(queue: str, channel: str) -> list[ev.Event]:
    """Two quarter hours: 30 contacts each, answered after 10 s, 200 s talk, 40 s wrap-up."""
    out: list[ev.Event] = []
    for i in range(60):
        t = T0 + timedelta(seconds=30 * i)
        ids = dict(contact_id=f"c{i}", queue_id=queue, channel=channel)
        out += [
            ev.ContactOffered(event_id=f"{i}o", time=t, **ids),
            ev.ContactAnswered(event_id=f"{i}a", time=t + timedelta(seconds=10), agent_id="a1", **ids),
            ev.ContactEnded(event_id=f"{i}e", time=t + timedelta(seconds=210), agent_id="a1", **ids),
            ev.AcwEnded(event_id=f"{i}w", time=t + timedelta(seconds=250), agent_id="a1", disposition="x", **ids),
        ]
    out.sort(key=lambda e: e.time)
    return out + [ev.SourceHeartbeat(event_id="hb", time=T0 + timedelta(minutes=20))]


@pytest.mark.parametrize("concurrency", [1, 2, 3])
def test_chat_required_agents_divide_the_erlang_servers_by_the_queues_concurrency(concurrency):
    settings = load_settings(broker_url="x:1")
    rules = QueueSettings(chat_concurrency=concurrency, service_level_threshold_seconds=60)
    config = QueueConfig(queues={"web": rules})
    stats = PipelineStats()
    contacts = ContactProcessor(settings, config, stats)
    contacts.process(keyed_messages("c", contact_stream("web", "chat"), settings.partitions), lambda p: None)
    agents = AgentProcessor(settings, stats)
    b = AgentEvents()
    logins = [b.login(0, f"ag{n}", ("web",)) for n in range(3)] + [b.state(1, "available", f"ag{n}") for n in range(3)]
    heartbeat = ev.SourceHeartbeat(event_id="hb", time=BASE)  # every agent partition, so this worker owns them all
    agents.process(keyed_messages("a", [*logins, heartbeat], settings.partitions))
    families = scrape(build_registry(contacts, stats, agents))
    values = {(f.name, s.labels.get("queue")): s.value for f in families for s in f.samples}
    ((_, _, recent, span),) = [r for state in contacts.partitions.values() for r in state.recent()]
    servers = required_agents(recent.offered / span, 250.0, 60, 0.8).agents  # independent: plain Erlang C
    assert values[("cc_queue_agents_required", "web")] == -(-servers // concurrency)
    assert values[("cc_queue_agents_staffed", "web")] == 3
    traffic = observed_traffic(recent, span)
    assert traffic is not None and agents_needed(servers, rules) == -(-servers // concurrency)
    p = prediction(traffic, rules, 3)  # 3 agents x concurrency servers
    assert p is not None
    assert values[("cc_queue_predicted_service_level", "web")] == pytest.approx(p.service_level)


def test_next_hour_needed_by_the_forecast_and_scheduled_over_two_workers():
    """The owner exports the agents each forecast interval of the next hour needs; the agent workers export the
    agents scheduled for them (shared 1/k); the recording rules subtract (promtool: queue-alerts.test.yml)."""
    from pipeline.kpis.staffing.plan import Demand, required_for

    settings = load_settings(broker_url="x:1", partitions="4")
    stats = PipelineStats()
    contacts = ContactProcessor(settings, QueueConfig(), stats)
    nine_45, ten = T0 + timedelta(minutes=45), T0 + timedelta(minutes=60)
    forecasts = [
        ev.ForecastPublished(
            event_id=f"f{n}", time=T0, queue_id="sales", channel="voice", interval_start=start, offered=o,
            aht_seconds=240, source="pipeline",
        )
        for n, (start, o) in enumerate([(nine_45, 60.0), (ten, 90.0), (T0, 10.0)])
    ]  # fmt: skip
    contacts.process(
        keyed_messages("c", forecasts + contact_stream("sales", "voice"), settings.partitions), lambda p: None
    )
    b = AgentEvents()
    at = 30 * 60 + 9 * 3600  # 09:30, seconds after BASE
    agent_events = [
        b.login(at, "a0", ("sales", "support")),
        b.login(at, "a1", ("sales",)),
        b.plan(at + 900, at + 2700, "contact_handling", "a0", published=at),  # 09:45-10:15
        b.plan(at + 900, at + 1800, "contact_handling", "a1", published=at),  # 09:45-10:00
        b.plan(at + 1800, at + 2700, "break", "a1", published=at),
    ]
    messages = keyed_messages("a", agent_events, settings.partitions)
    assert (
        len({m.partition for m in messages if m.key == b"a0"} | {m.partition for m in messages if m.key == b"a1"}) == 2
    )
    needed: dict[tuple[str, str], float] = {}
    scheduled: dict[tuple[str, str], float] = {}
    for w in range(2):
        proc = AgentProcessor(settings, PipelineStats())
        proc.process([m for m in messages if m.key == (b"a0", b"a1")[w]])
        families = scrape(
            build_registry(contacts if w == 0 else ContactProcessor(settings, QueueConfig(), stats), stats, proc)
        )
        for f in families:
            for s in f.samples:
                if f.name == "cc_queue_agents_scheduled_ahead":
                    key = (s.labels["queue"], s.labels["ahead"])
                    scheduled[key] = scheduled.get(key, 0.0) + s.value
                elif f.name == "cc_queue_agents_needed_ahead":
                    needed[(s.labels["queue"], s.labels["ahead"])] = s.value
    rules = QueueSettings()
    # the queue's clock is its newest event, 09:33:40: the current interval is 09:30, so 09:45 is one ahead
    for ahead, offered in (("1", 60.0), ("2", 90.0)):
        want = required_for(Demand("sales", "voice", 0, offered, 240.0), rules, 900)[1]
        assert needed[("sales", ahead)] == want
    assert set(needed) == {("sales", "1"), ("sales", "2")}  # 09:00 is past; nothing forecast after 10:00
    assert scheduled == pytest.approx(
        {("sales", "1"): 1.5, ("sales", "2"): 0.5, ("support", "1"): 0.5, ("support", "2"): 0.5}
    )
