"""End to end on the embedded broker: simulator (fixed seed) → Kafka → the real worker process → the KPI topic
and /metrics, compared exactly with the independent batch computation of the same events.
"""

from __future__ import annotations

import asyncio
import signal
import time
import urllib.error
import urllib.request
from datetime import time as dtime

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from batch_kpis import business_wait, compute
from prometheus_client.parser import text_string_to_metric_families

from pipeline.contract.events import ContactOffered
from pipeline.core.settings import load_settings
from pipeline.kpis.catalogue import COUNTS
from pipeline.kpis.definitions import AGENT_OFFERS, SEGMENT_COUNTS
from pipeline.kpis.definitions import DISPOSITIONS as DISPOSITION_COUNT
from pipeline.kpis.record import decode_record
from pipeline.runtime.broker import ensure_topics, free_port
from pipeline.runtime.transport import STOP_GRACE_SECONDS
from pipeline.tools.replay import replay
from pipeline.tools.run import worker_process
from pipeline.tools.simulate import CenterConfig, simulate, with_all_channels, write_jsonl

pytestmark = pytest.mark.integration

THRESHOLDS = {"sales": 30.0, "support-chat": 60.0}  # the rest take the file's default of 20 s


def threshold_of(queue: str) -> float:
    return THRESHOLDS.get(queue, 20.0)


# Email: 5 s of business hours, the queues open 08:00-09:30 UTC (the simulated morning runs 09:00-10:30 and on).
EMAIL_THRESHOLD = 5.0
SEGMENTS = ("gold", "silver")  # the simulator's `basic` is counted as `other`
DISPOSITIONS = ("resolved", "sale", "transferred")


@pytest.fixture
def queues_file(tmp_path):
    path = tmp_path / "queues.toml"
    path.write_text(
        "[defaults]\nservice_level_threshold_seconds = 20\nopens = 08:00:00\ncloses = 09:30:00\n"
        f"segments = {list(SEGMENTS)}\ndispositions = {list(DISPOSITIONS)}\n"
        f"[defaults.channels.email]\nservice_level_threshold_seconds = {EMAIL_THRESHOLD}\n"
        'service_level_clock = "business_hours"\n'
        + "".join(f"[queues.{q}]\nservice_level_threshold_seconds = {t}\n" for q, t in THRESHOLDS.items())
    )
    return path


def business(start: int, end: int) -> int:
    """Business time of the test's queue file (Monday to Friday 08:00-09:30 UTC), counted minute by minute."""
    return business_wait(start, end, "UTC", range(5), dtime(8), dtime(9, 30))


def metric_values(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def assert_every_metric_can_be_scraped_alone(url: str) -> None:
    """`/metrics?name[]=X` gives exactly the series named X of a full scrape. Names are sample names, as in
    Prometheus: `_total` of a counter, `_bucket` etc. of a histogram. The worker is live (the FCR agent, for
    one, may still be catching up), so a series may appear between scrapes: the restricted scrape must hold
    every series of the full scrape before it and only series of the full scrape after it."""

    def scrape(query: str = "") -> dict:
        with urllib.request.urlopen(url + query, timeout=5) as resp:
            return {f.name: f for f in text_string_to_metric_families(resp.read().decode())}

    def series(family) -> set:
        return {(x.name, tuple(sorted(x.labels.items()))) for x in family.samples} if family else set()

    families = scrape()
    assert len(families) > 40
    for name, family in families.items():
        names = sorted({x.name for x in family.samples}) or [name + ("_total" if family.type == "counter" else "")]
        before = scrape()
        alone = scrape("?" + "&".join(f"name[]={n}" for n in names))
        after = scrape()
        assert set(alone) <= {name}, name
        if series(before.get(name)):  # an empty family is left out of a restricted scrape
            assert set(alone) == {name}, name
        assert series(before.get(name)) <= series(alone.get(name)) <= series(after.get(name)), name
    two = scrape("?name[]=cc_queue_offered_total&name[]=cc_pipeline_rejected_events_total")
    assert sorted(two) == ["cc_pipeline_rejected_events", "cc_queue_offered"]


@pytest.mark.parametrize("events_per_message", [1, 50])
def test_replay_matches_the_independent_batch_computation(
    broker, tmp_path, monkeypatch, queues_file, events_per_message
):
    monkeypatch.setenv("PIPELINE_BROKER_URL", broker.bootstrap)
    monkeypatch.setenv("PIPELINE_QUEUES_FILE", str(queues_file))
    # every channel: email and tasks (business hours), messaging; segments, wrap-up codes, chat concurrency
    events = list(simulate(with_all_channels(CenterConfig(duration_hours=1.5)).with_load_of(CenterConfig()), seed=7))
    events_file = tmp_path / "events.jsonl"
    write_jsonl(events, events_file)

    summary = replay(events_file, tmp_path / "kpis.jsonl", events_per_message=events_per_message, timeout=240)

    emails = {e.queue_id for e in events if isinstance(e, ContactOffered) and e.channel == "email"}
    per_agent: dict = {}  # (agent, interval start ms) -> counts, all queues
    expected_intervals, expected_totals = compute(
        events,
        900,
        threshold_of,
        agents=per_agent,
        channel_thresholds={(q, "email"): EMAIL_THRESHOLD for q in emails},
        business={(q, "email"): business for q in emails},
        segments_of=lambda q: SEGMENTS,
        dispositions_of=lambda q: DISPOSITIONS,
    )
    lines = (tmp_path / "kpis.jsonl").read_bytes().splitlines()
    queue_records = [decode_record(line) for line in lines if orjson.loads(line)["kind"] == "queue"]
    records = [r for r in queue_records if r.window == "interval"]
    # every kind and window is written, final: the closing heartbeat passes the FCR window and the local day
    assert {orjson.loads(line)["kind"] for line in lines} == {"queue", "agent", "fcr"}
    assert {r.window for r in queue_records} == {"interval", "hour", "day"}
    assert summary.rejected == summary.duplicates == summary.late == 0
    assert all(r.final for r in queue_records)
    # the demo queues' time zone is UTC here: each hour record is the sum of its four quarter hours
    for hour in (r for r in queue_records if r.window == "hour"):
        quarters = [
            r
            for r in records
            if (r.queue_id, r.channel) == (hour.queue_id, hour.channel)
            and hour.interval_start <= r.interval_start < hour.interval_end
        ]
        assert hour.offered == sum(r.offered for r in quarters) and hour.handled == sum(r.handled for r in quarters)
    got = {(r.queue_id, r.channel, int(r.interval_start.timestamp()) * 1000): r for r in records}
    assert set(got) == set(expected_intervals)
    assert {r.channel for r in records} == {"voice", "chat", "email", "task", "messaging"}
    assert {s.segment for r in records for s in r.segments} == {*SEGMENTS, "other"}
    email_sl = [r for r in records if r.channel == "email" and r.answered]
    assert email_sl and all(r.service_level_clock == "business_hours" for r in email_sl)
    # the business clock counts: emails answered after 09:30 waited more than 5 s but no business time
    elapsed, _ = compute(events, 900, threshold_of, channel_thresholds={(q, "email"): EMAIL_THRESHOLD for q in emails})
    within = sum(r.answered_within_threshold for r in email_sl)
    assert within > sum(c.answered_within_threshold for (q, ch, _), c in elapsed.items() if ch == "email")
    for key, c in expected_intervals.items():
        r = got[key]
        email = r.channel == "email"
        assert r.service_level_threshold_seconds == (EMAIL_THRESHOLD if email else threshold_of(r.queue_id))
        assert {s.segment for s in r.segments} == {k.rpartition(":")[0] for k in c.segments or {}}, key
        for s in r.segments:
            for n in SEGMENT_COUNTS:
                want = (c.segments or {}).get(f"{s.segment}:{n.field}", 0) * n.scale
                assert getattr(s, n.record_field.removeprefix("segments[].")) == pytest.approx(want), (key, n.field)
        assert {d.disposition: d.contacts for d in r.dispositions} == (c.dispositions or {}), key
        for count in COUNTS:
            assert getattr(r, count.record_field) == pytest.approx(getattr(c, count.field) * count.scale, abs=1e-9), (
                key,
                count.field,
            )
        answered_or_abandoned = c.answered + c.abandoned
        assert r.service_level == (
            c.answered_within_threshold / answered_or_abandoned if answered_or_abandoned else None
        )
        assert r.asa_seconds == (pytest.approx(c.answer_wait_ms / 1000 / c.answered) if c.answered else None)
        assert r.aht_seconds == (pytest.approx(c.handle_ms / 1000 / c.handled) if c.handled else None)
        assert r.talk_seconds_sum == pytest.approx((c.handle_ms - c.hold_ms - c.acw_ms) / 1000)

    # agent offers: the day has missed (RONA) and rejected offers before the accepts; per agent and interval
    # (`agents[]`, summed over the agent's queues) and per agent on /metrics, as the batch computation counts them
    assert all(sum(getattr(r, n) for r in records) > 0 for n in ("agent_offers_missed", "agent_offers_rejected"))
    offer_fields = [c.field for c in AGENT_OFFERS]
    got_agents: dict = {}
    for r in records:
        for a in r.agents:
            row = got_agents.setdefault(
                (a.agent_id, int(r.interval_start.timestamp()) * 1000), dict.fromkeys(offer_fields, 0)
            )
            for c in AGENT_OFFERS:
                row[c.field] += getattr(a, c.record_field.removeprefix("agents[].")) / c.scale
    want_agents = {k: {f: getattr(c, f) for f in offer_fields} for k, c in per_agent.items() if c.agent_offers}
    assert {k for k, v in got_agents.items() if v["agent_offers"]} == set(want_agents)
    for key, row in want_agents.items():
        assert got_agents[key] == pytest.approx(row), key

    metrics = metric_values(summary.metrics)
    by_agent: dict[str, dict[str, float]] = {}
    for (agent, _), row in want_agents.items():
        for f, n in row.items():
            by_agent.setdefault(agent, dict.fromkeys(offer_fields, 0))[f] += n
    for agent, row in by_agent.items():
        for c in AGENT_OFFERS:
            assert metrics[(c.metric, (("agent", agent),))] == pytest.approx(row[c.field] * c.scale), (agent, c.metric)
    for (queue, channel), c in expected_totals.items():
        labels = (("channel", channel), ("queue", queue))
        for count in COUNTS:
            assert metrics[(count.metric, labels)] == pytest.approx(getattr(c, count.field) * count.scale, abs=1e-6), (
                queue,
                count.metric,
            )
        assert metrics[("cc_queue_contacts_waiting", labels)] == 0
        for segment, sc in c.by_segment().items():
            for count in SEGMENT_COUNTS:
                value = metrics[(count.metric, (*labels, ("segment", segment)))]
                assert value == pytest.approx(getattr(sc, count.field) * count.scale, abs=1e-6), (queue, segment)
        for code, n in (c.dispositions or {}).items():
            disposition = (("channel", channel), ("disposition", code), ("queue", queue))
            assert metrics[(DISPOSITION_COUNT.metric, disposition)] == n
        threshold = EMAIL_THRESHOLD if channel == "email" else threshold_of(queue)
        assert metrics[("cc_queue_service_level_threshold_seconds", labels)] == threshold


def test_bad_messages_are_dead_lettered_counted_and_the_worker_carries_on(broker, tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_BROKER_URL", broker.bootstrap)
    port = free_port()
    overrides = {"app_id": "dlq-test", "topic_prefix": "dlq-test", "web_port": port}
    settings = load_settings(**overrides)
    asyncio.run(ensure_topics(settings))
    good = orjson.dumps(
        {
            "type": "contact.offered",
            "event_id": "ok-1",
            "time": "2026-01-05T09:00:00Z",
            "contact_id": "c1",
            "queue_id": "sales",
            "channel": "voice",
        }
    )
    bad = {
        b"[" * 10_000 + b"]" * 10_000: "too_deep",  # first: a poison pill must not stop what comes behind it
        b"not json at all": "not_json",
        # queue "billing" maps to another partition than "sales" (the key it was sent with)
        orjson.dumps(
            {
                "type": "contact.offered",
                "event_id": "stray",
                "time": "2026-01-05T09:00:00Z",
                "contact_id": "c9",
                "queue_id": "billing",
                "channel": "voice",
            }
        ): "wrong_partition",
        orjson.dumps(
            {
                "type": "contact.offered",
                "event_id": "nul",
                "time": "2026-01-05T09:00:00Z",
                "contact_id": "c8",
                "queue_id": "sales\u0000",
                "channel": "voice",
            }
        ): "invalid_field",
        orjson.dumps(
            {"type": "contact.teleported", "event_id": "x", "time": "2026-01-05T09:00:00Z"}
        ): "unknown_event_type",
        orjson.dumps(
            {
                "type": "contact.answered",
                "event_id": "x2",
                "time": "2026-01-05T09:00:10Z",
                "contact_id": "c1",
                "queue_id": "sales",
                "channel": "voice",
            }
        ): "missing_field",
        orjson.dumps(
            {
                "type": "contact.offered",
                "event_id": "ok-2",
                "time": "2026-01-05T09:00:00Z",
                "contact_id": "c1",
                "queue_id": "sales",
                "channel": "voice",
            }
        ): "impossible_sequence",
    }

    async def produce():
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await p.start()
        try:
            values = list(bad)
            for value in [values[0], good, *values[1:]]:
                await p.send_and_wait(settings.topic("contact-events"), value, key=b"sales")
        finally:
            await p.stop()

    asyncio.run(produce())
    with worker_process(settings, tmp_path / "worker.log", **overrides) as proc:
        deadline = time.monotonic() + 90
        rejected = {}
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                    metrics = metric_values(resp.read().decode())
            except OSError:
                time.sleep(0.5)
                continue
            rejected = {
                dict(labels)["reason"]: v
                for (name, labels), v in metrics.items()
                if name == "cc_pipeline_rejected_events_total"
            }
            if sum(rejected.values()) >= len(bad):
                break
            time.sleep(0.5)
        assert rejected == {reason: 1 for reason in bad.values()}
        # A scrape renders a family at a time, giving the loop a turn between them, so the queue families of the
        # scrape above may come from before the batch whose rejections it ends with; one begun now cannot.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            metrics = metric_values(resp.read().decode())
        assert metrics[("cc_queue_offered_total", (("channel", "voice"), ("queue", "sales")))] == 1
        # the applied events are covered by a checkpoint within PIPELINE_CHECKPOINT_SECONDS (2 s)
        topic = (("topic", settings.topic("contact-events")),)
        for _ in range(40):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                metrics = metric_values(resp.read().decode())
            if metrics.get(("cc_pipeline_checkpoints_total", topic), 0) >= 1:
                break
            time.sleep(0.25)
        assert metrics[("cc_pipeline_checkpoints_total", topic)] >= 1
        assert metrics[("cc_pipeline_checkpoint_bytes_total", topic)] > 0
        assert 0 < metrics[("cc_pipeline_checkpoint_seconds_total", topic)] < 10
        assert_every_metric_can_be_scraped_alone(f"http://127.0.0.1:{port}/metrics")
        for check in ("live", "ready"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/{check}", timeout=2) as resp:
                assert resp.status == 200 and orjson.loads(resp.read())["crashed"] is False
        for faust_view in ("/router/", "/table/"):  # only the pipeline's own pages are served
            with pytest.raises(urllib.error.HTTPError) as missing:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{faust_view}", timeout=2)
            assert missing.value.code == 404
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:  # the wallboard, not Faust's /
            assert b"<title>Wallboard" in resp.read()
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(STOP_GRACE_SECONDS + 5)
        assert time.monotonic() - stopping < STOP_GRACE_SECONDS + 5

    async def read_dead_letters():
        c = AIOKafkaConsumer(
            settings.topic("dead-letters"),
            bootstrap_servers=broker.bootstrap,
            auto_offset_reset="earliest",
            group_id=None,
        )
        await c.start()
        try:
            out = []
            while len(out) < len(bad):
                batch = await asyncio.wait_for(c.getmany(timeout_ms=1000), 30)
                for msgs in batch.values():
                    out += msgs
            return out
        finally:
            await c.stop()

    letters = asyncio.run(read_dead_letters())
    by_value = {m.value: dict(m.headers) for m in letters}
    assert set(by_value) == set(bad)
    for i, (value, reason) in enumerate(bad.items()):
        h = by_value[value]
        assert h["dlq.reason"].decode() == reason
        assert h["dlq.topic"].decode() == settings.topic("contact-events")
        assert int(h["dlq.partition"]) >= 0 and int(h["dlq.offset"]) == (0 if i == 0 else i + 1)  # `good` is 1
