"""Smoke run of `python -m pipeline bench` on the shared embedded broker: tiny sizes, every phase, every figure
reported and positive, and the JSON output. No timing is asserted: the figures depend on the machine.
"""

from __future__ import annotations

import asyncio
import itertools
import numbers
import os
import re
import signal
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from pipeline.__main__ import main
from pipeline.contract import events as ev
from pipeline.core.settings import Settings, load_settings
from pipeline.runtime.broker import ensure_topics, free_port
from pipeline.tools.bench import achieved_per_message, center, events_of, preload
from pipeline.tools.replay import _get
from pipeline.tools.run import worker_process

EXPECTED = [
    "contact processor alone",
    "agent processor alone",
    "FCR forwarding and processor, per contact message alone",
    "raw aiokafka consumer",
    "empty Faust agent",
    "full KPI pipeline, 1 event/message",
    "ratio full pipeline / empty Faust agent",
    "ratio full pipeline / raw floor",
    "ratio empty Faust agent / raw floor",
    "full KPI pipeline, up to 10 events/message",
    "ratio batched / 1 event per message",
    "worker peak resident memory, throughput runs",
    "latency to /metrics p50",
    "latency to /metrics p99",
    "latency to /metrics max",
    "latency to KPI topic p50",
    "latency to KPI topic p99",
    "latency to KPI topic max",
    "/metrics?name[]=cc_queue_offered_total scrape, median, latency run",
    "worker resident memory, first minute of the latency run",
    "worker resident memory, last minute of the latency run",
    "worker resident memory at the end of each third",
    "state held at the end of each third",
    "worker peak resident memory, 20 agents, 12 queues",
    "worker peak resident memory before the five full /metrics scrapes",
    "/metrics scrape with 12 queues",
    "replay of a simulated 10-agent day",
    "ingest asterisk-queue-log into JSONL",
    "ingest cdr into JSONL",
    "webhook receiver, requests per CPU-second",
    "wall rate, client and broker on the same machine",
    "share of requests answered 200",
    "contact partition checkpoint written",
    "contact partition checkpoint restored",
]


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_bench_reports_every_figure(broker, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIPELINE_BROKER_URL", broker.bootstrap)
    monkeypatch.setenv("PIPELINE_SESSION_TIMEOUT_SECONDS", "3")  # quicker group joins for the many workers
    out = tmp_path / "bench.json"

    status = main(
        [
            "bench",
            "--events",
            "1500",
            "--events-per-message",
            "10",
            "--rounds",
            "2",
            "--latency-rate",
            "100",
            "--latency-seconds",
            "3",
            "--latency-days",
            "2",
            "--agents",
            "20",
            "--queues",
            "12",
            "--memory-hours",
            "0.5",
            "--replay-agents",
            "10",
            "--ingest-agents",
            "12",
            "--ingest-rounds",
            "1",
            "--webhook-requests",
            "300",
            "--json",
            str(out),
            "--log-dir",
            str(tmp_path / "logs"),
        ]
    )

    assert status == 0
    results = orjson.loads(out.read_bytes())
    rows = results["figures"]
    names = [r["figure"] for r in rows]
    for expected in EXPECTED:
        assert sum(name.strip().startswith(expected) for name in names) == 1, (expected, names)
    assert len(rows) == len(EXPECTED)
    for r in rows:
        assert isinstance(r["value"], numbers.Real) and r["value"] > 0, r
    assert len(results["throughput"]["ratios_1"]) == 2
    assert results["latency"]["simulated_days"] == 2 and len(results["latency"]["rss_mb_thirds"]) == 3
    assert {"contact_legs", "open_intervals", "agents", "fcr_contacts"} <= set(results["latency"]["state_thirds"][-1])
    assert results["latency"]["metrics"]["missing"] == 0
    assert results["latency"]["kpi_topic"]["missing"] == 0
    assert results["memory"]["queues"] == 12 and results["memory"]["series"] > 0
    assert 0 < results["memory"]["peak_rss_mb_before_scrapes"] <= results["memory"]["peak_rss_mb"]
    assert results["webhook"]["share_answered_200"] == 1
    assert results["machine"]["cpus"] >= 1 and results["command"].startswith("python -m pipeline bench")
    table = capsys.readouterr().out  # the same figures, as one table
    for expected in EXPECTED:
        assert expected in table


@pytest.mark.parametrize("hours", [0.5, 6, 24])
@pytest.mark.parametrize("hour_of_day", range(24))
def test_the_benchmarked_center_closes_before_the_workers_clock(hours, hour_of_day):
    # The benches close a run with a heartbeat a day (and the lateness) past the last event; a heartbeat ahead
    # of the worker's clock is rejected and the run never ends (it did at 00:40 UTC with a one-day margin).
    now = datetime(2026, 12, 3, hour_of_day, 40, tzinfo=UTC)
    config = center(20, hours, now=now)
    settings = Settings()
    # arrivals stop at the end; contacts still open then drain within the contact timeout
    end = config.start + timedelta(hours=config.duration_hours, seconds=settings.contact_timeout_seconds)
    closing = end + timedelta(seconds=2 * settings.interval_seconds + settings.allowed_lateness_seconds + 86400)
    assert closing <= now


async def _read_back(settings: Settings, expected_events: int) -> dict[str, dict[str, int]]:
    """Events and messages on each event topic, read from the broker."""
    names = {settings.topic(name): name for name in ("contact-events", "agent-events")}
    consumer = AIOKafkaConsumer(*names, bootstrap_servers=settings.broker_url, auto_offset_reset="earliest")
    await consumer.start()
    got = {name: {"events": 0, "messages": 0} for name in names.values()}
    try:
        while batches := await consumer.getmany(timeout_ms=3000):
            for tp, msgs in batches.items():
                for m in msgs:
                    value = orjson.loads(m.value)
                    got[names[tp.topic]]["events"] += len(value) if isinstance(value, list) else 1
                    got[names[tp.topic]]["messages"] += 1
    finally:
        await consumer.stop()
    assert sum(g["events"] for g in got.values()) == expected_events
    return got


@pytest.mark.integration
@pytest.mark.parametrize("per_message", [1, 10])
def test_events_per_message_are_counted_on_the_topic_each_event_went_to(broker, per_message):
    # Surveys, IVR sessions and forecasts are not contact events, yet go to the contact topic: the bench counted
    # them on neither side and reported 1.16 contact events per message at one event per message.
    events = list(itertools.islice(events_of(50, 24, 1), 3000))
    kinds = {type(e) for e in events}
    assert {ev.SurveyCompleted, ev.IvrSessionEnded, ev.ForecastPublished, ev.AgentStateChanged} <= kinds
    settings = load_settings(broker_url=broker.bootstrap, topic_prefix=f"split-{uuid.uuid4().hex[:6]}")
    asyncio.run(ensure_topics(settings))

    written = asyncio.run(preload(settings, events, per_message))

    assert written == asyncio.run(_read_back(settings, len(events)))
    achieved = achieved_per_message(written)
    if per_message == 1:
        assert achieved == {"contact-events": 1.0, "agent-events": 1.0, "all": 1.0}
    else:
        assert all(1.0 <= a <= per_message for a in achieved.values()), achieved


@pytest.mark.integration
@pytest.mark.timeout(400)
@pytest.mark.parametrize("asked", [(), ("--log-dir",), ("--log-dir", "--keep")])
def test_a_run_leaves_nothing_behind_but_what_was_asked_for(broker, tmp_path, monkeypatch, asked):
    # A default run left ~190 MB in the temporary folder (the replayed day, its KPI records, the ingest files).
    tmp, logs = tmp_path / "tmp", tmp_path / "logs"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again, as a new process would
    monkeypatch.setenv("PIPELINE_BROKER_URL", broker.bootstrap)
    args = ["bench", "--phases", "replay,ingest", "--replay-agents", "5", "--ingest-agents", "5"]
    args += ["--ingest-rounds", "1", "--events-per-message", "10"]
    for option in asked:
        args += [option, str(logs)] if option == "--log-dir" else [option]

    assert main(args) == 0

    assert list(tmp.iterdir()) == []
    if not asked:
        assert not logs.exists()
        return
    kept = {p.relative_to(logs).as_posix() for p in logs.rglob("*") if p.is_file()}
    assert "replay/worker.log" in kept  # the replay phase's logs are the run's, not a folder of their own
    data = {f for f in kept if not f.endswith(".log")}
    if "--keep" in asked:
        assert {"data/replay-day.jsonl", "data/replay-kpis.jsonl", "data/ingest/queue_log"} <= data
    else:
        assert data == set()


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_a_stopped_worker_counts_what_it_had_not_checkpointed_instead_of_listing_it(broker, tmp_path):
    # Stopped with messages taken since its last checkpoint, Faust listed each of them (8,224 in one 0.9 MB line
    # in a benchmark) and every agent's stack.
    run = uuid.uuid4().hex[:6]
    overrides = {"app_id": f"stop-{run}", "topic_prefix": f"stop-{run}", "web_port": free_port("127.0.0.1")}
    settings = load_settings(broker_url=broker.bootstrap, web_host="127.0.0.1", **overrides)
    asyncio.run(ensure_topics(settings))
    events = list(itertools.islice(events_of(50, 24, 1), 2000))
    written = asyncio.run(preload(settings, events, 1))
    messages = sum(w["messages"] for w in written.values())
    log = tmp_path / "worker.log"
    # checkpoints far apart: what it takes stays unacknowledged until the stop
    with worker_process(settings, log, web_host="127.0.0.1", checkpoint_seconds="300", **overrides) as worker:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                progress = orjson.loads(_get(f"http://127.0.0.1:{overrides['web_port']}/progress"))
            except OSError:
                progress = {"source_messages": 0}
            if progress["source_messages"] >= messages:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the worker did not consume {messages} messages; see {log}")
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)  # Faust waits for the acks; the worker ends the wait 20 s after the signal

    text = log.read_text()
    stopping = re.findall(r"stopping: Faust waits for the acks of (\d+) messages taken", text)
    # every source message taken, and the FCR topic's the worker forwarded itself
    assert stopping and all(int(n) >= messages for n in stopping), text[-3000:]
    assert "Waiting for tasks" not in text and "TRACEBACK OF ALL RUNNING AGENT ACTORS" not in text
    assert "_HeldMessage" not in text and "ConsumerMessage" not in text
