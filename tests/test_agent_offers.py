"""Agent offers (ringing, then accepted, rejected or rung out: RONA): contradictions, the give-up of an outcome whose
ringing never came, and the Prometheus series and records per queue and per agent against the batch computation.

The random logs (in order, shuffled, duplicated, restored) are in test_kpi_properties.py."""

from __future__ import annotations

import batch_kpis
import msgspec
from eventlog import BASE_MS, Events
from prometheus_client.parser import text_string_to_metric_families

from pipeline.contract import events as ev
from pipeline.core.settings import QueueConfig, QueueSettings, load_settings
from pipeline.exposition.metrics import build_registry, exposition
from pipeline.kpis.counts import HandlingCounts
from pipeline.kpis.definitions import RATIO
from pipeline.processing.processor import ContactProcessor, Message, PipelineStats
from pipeline.state.queues import DUPLICATE, IMPOSSIBLE, QueueState

INTERVAL = 60
TIMEOUT = 600


def new_state() -> QueueState:
    return QueueState(INTERVAL, 120, TIMEOUT, lambda q: QueueSettings())


def test_contradictions_are_impossible_and_copies_duplicates():
    E = Events()
    s = new_state()
    rang = E.offer(10, "ringing", "o1", "a1")
    assert s.apply(rang) is None
    assert s.apply(msgspec.json.decode(ev.encode(rang), type=ev.ContactTopicEvent)) == DUPLICATE
    assert s.apply(E.offer(11, "ringing", "o1", "a1")) == IMPOSSIBLE  # rang twice
    assert s.apply(E.offer(12, "missed", "o1", "a2")) == IMPOSSIBLE  # one offer rings at one agent
    assert s.apply(E.offer(9, "accepted", "o1", "a1")) == IMPOSSIBLE  # accepted before it rang
    assert s.apply(E.offer(15, "missed", "o1", "a1")) is None
    assert s.apply(E.offer(16, "accepted", "o1", "a1")) == IMPOSSIBLE  # a second outcome
    assert s.totals[("Q1", "voice")].agent_offers_missed == 1


def test_an_outcome_whose_ringing_never_comes_is_given_up_uncounted():
    E = Events()
    s = new_state()
    assert s.apply(E.offer(10, "accepted", "o1", "a1")) is None
    assert s.totals == {}  # nothing counted: it waits for its ringing
    s.observe_time(BASE_MS + 10_000 + TIMEOUT * 1000)
    s.advance()
    assert s.offers == {}
    assert s.expired == {("Q1", "voice", "offer_no_ringing"): 1}


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (x.name, tuple(sorted(x.labels.items()))): x.value
        for fam in text_string_to_metric_families(text)
        for x in fam.samples
    }


def test_series_and_records_per_queue_and_per_agent_equal_the_batch():
    E = Events()
    events: list[ev.Event] = []
    # sales c1: a1 lets it ring out, a2 declines, a3 accepts after 4 s; billing c2: a1 accepts after 2.5 s
    for args in (
        (0, "offered", None, None, "sales", "c1"),
        (1, "ringing", "o1", "a1", "sales", "c1"),
        (11, "missed", "o1", "a1", "sales", "c1"),
        (12, "ringing", "o2", "a2", "sales", "c1"),
        (13, "rejected", "o2", "a2", "sales", "c1"),
        (14, "ringing", "o3", "a3", "sales", "c1"),
        (18, "accepted", "o3", "a3", "sales", "c1"),
        (2, "offered", None, None, "billing", "c2"),
        (3, "ringing", "o1", "a1", "billing", "c2"),
        (5.5, "accepted", "o1", "a1", "billing", "c2"),
    ):
        at, kind, offer, agent, queue, contact = args
        if kind == "offered":
            events.append(E.offered(at, queue, contact))
        else:
            events.append(E.offer(at, kind, offer, agent, queue, contact))
            if kind == "accepted":
                events.append(E.answered(at, queue, contact, agent=agent))
    events.sort(key=lambda e: e.time)
    events.append(E.heartbeat(900 + 120))  # the interval final: its record lists the agents
    stats = PipelineStats()
    p = ContactProcessor(load_settings(broker_url="x:1", partitions=1), QueueConfig(), stats)
    out = p.process(
        [Message("cc.contact-events", 0, i, b"k", ev.encode(e)) for i, e in enumerate(events)],
        lambda part: None,
    )
    per_agent: dict = {}
    intervals, totals = batch_kpis.compute(events, 900, lambda q: 20.0, agents=per_agent)
    m = samples(exposition(build_registry(p, stats)).decode())
    for (queue, channel), c in totals.items():
        labels = (("channel", channel), ("queue", queue))
        assert m[("cc_queue_offers_total", labels)] == c.agent_offers
        assert m[("cc_queue_offers_missed_total", labels)] == c.agent_offers_missed
        assert m[("cc_queue_offer_ring_seconds_total", labels)] == c.agent_offer_ring_ms / 1000
    by_agent: dict[str, HandlingCounts] = {}
    for (agent, _), c in per_agent.items():
        by_agent.setdefault(agent, HandlingCounts()).add(c)
    assert set(by_agent) == {"a1", "a2", "a3"}
    for agent, c in by_agent.items():  # a1 is counted on both queues: one series, summed
        assert m[("cc_agent_offers_total", (("agent", agent),))] == c.agent_offers
        assert m[("cc_agent_offers_missed_total", (("agent", agent),))] == c.agent_offers_missed
        assert m[("cc_agent_offers_rejected_total", (("agent", agent),))] == c.agent_offers_rejected
        assert m[("cc_agent_offer_ring_seconds_total", (("agent", agent),))] == c.agent_offer_ring_ms / 1000
    sales = next(r for r in out.records if r.queue_id == "sales" and r.window == "interval" and r.final)
    expected = intervals[("sales", "voice", sales.interval_start.timestamp() * 1000)]
    assert (sales.agent_offers, sales.agent_offers_missed, sales.agent_offers_rejected) == (3, 1, 1)
    assert sales.offers_per_answer == RATIO["offers_per_answer"].value(expected) == 3
    assert sales.ring_time_avg_seconds == RATIO["ring_time"].value(expected) == 4
    assert sales.missed_offer_rate == RATIO["missed_offer_rate"].value(expected)
    assert {a.agent_id: a.agent_offers_missed for a in sales.agents} == {"a1": 1, "a2": 0, "a3": 0}
