"""Smoke run of `python -m pipeline bench` on the shared embedded broker: tiny sizes, every phase, every figure
reported and positive, and the JSON output. No timing is asserted: the figures depend on the machine.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import numbers
import os
import signal
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

import offsets
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from pipeline.__main__ import main
from pipeline.contract import events as ev
from pipeline.core.settings import Settings, load_settings
from pipeline.runtime.broker import ensure_topics, free_port
from pipeline.tools.bench import achieved_per_message, center, events_of, megabytes, preload, proc_status_kb, run_rate
from pipeline.tools.bench_growth import Fit, fit, scraped, sizes
from pipeline.tools.bench_peer import not_available
from pipeline.tools.bench_scale import cpu_seconds, formed, machine_busy_seconds, projection, worker_counts
from pipeline.tools.replay import _get
from pipeline.tools.run import worker_process


def _peer_python() -> str | None:
    """A Python with Quix Streams: this one when it has it, else CC_BENCH_PEER_PYTHON (a virtual environment kept
    apart, since Quix Streams pins pydantic below the project's), else None."""
    if importlib.util.find_spec("quixstreams"):
        return sys.executable
    return os.environ.get("CC_BENCH_PEER_PYTHON")


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
    "scale-out: 2 worker(s), one consumer group, 4 partitions",
    "CPU per event, the workers together",
    "CPU per event, the whole machine",
    "scale-out projected: 4 cores, a worker each, the broker elsewhere",
    "scale-out projected: 4 cores, a worker each, the broker on them",
    "scale-out projected: 8 cores, a worker each, the broker elsewhere",
    "scale-out projected: 8 cores, a worker each, the broker on them",
    "scale-out projected: 16 cores, a worker each, the broker elsewhere",
    "scale-out projected: 16 cores, a worker each, the broker on them",
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
PEER_ROWS = [
    "Quix Streams, per-key 15-minute windowed counts (RocksDB state, changelog), 1 event/message",
    "ratio full pipeline / Quix Streams, 1 event/message",
    "Quix Streams, per-key 15-minute windowed counts (RocksDB state, changelog), up to 10 events/message",
    "ratio full pipeline / Quix Streams, up to 10 events/message",
    *(
        f"{what}, {framing}"
        for framing in ("1 event/message", "up to 10 events/message")
        for what in (
            "CPU per event, full pipeline",
            "CPU per event, Quix Streams",
            "ratio Quix Streams' CPU per event / the pipeline's",
        )
    ),
]
PEER_NOT_RUN = "Quix Streams, per-key 15-minute windowed counts (RocksDB state, changelog): not run"


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
            "--scale-workers",
            "2",
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
    # The peer runs when this Python has Quix Streams (not part of the test install); else one row says why.
    peer = PEER_ROWS if importlib.util.find_spec("quixstreams") else [PEER_NOT_RUN]
    for expected in EXPECTED + peer:
        assert sum(name.strip().startswith(expected) for name in names) == 1, (expected, names)
    assert len(rows) == len(EXPECTED) + len(peer)
    for r in rows:
        if r["figure"] == PEER_NOT_RUN:
            assert "pip install '.[bench]'" in r["value"], r
            continue
        assert isinstance(r["value"], numbers.Real) and r["value"] > 0, r
    assert len(results["throughput"]["ratios_1"]) == 2
    for per_message in (1, 10):  # the worker's CPU from its first batch to its last, per event
        assert 0 < results["throughput"][f"pipeline_{per_message}"]["cpu_us_per_event"] < 10_000
    batched = results["throughput"]["pipeline_10"]  # in rounds too: the round of the median rate
    assert len(batched["rounds_events_per_second"]) == 2
    assert batched["events_per_second"] in batched["rounds_events_per_second"]
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
def test_a_stopped_worker_checkpoints_and_commits_what_it_applied_and_stops_at_once(broker, tmp_path):
    # Before messages were taken a fetch at a time, a stopped worker waited for the acks of every message taken
    # since its last checkpoint (listing each: 8,224 in one 0.9 MB line in a benchmark) until its 20 s grace ran out.
    run = uuid.uuid4().hex[:6]
    overrides = {"app_id": f"stop-{run}", "topic_prefix": f"stop-{run}", "web_port": free_port("127.0.0.1")}
    settings = load_settings(broker_url=broker.bootstrap, web_host="127.0.0.1", **overrides)
    asyncio.run(ensure_topics(settings))
    events = list(itertools.islice(events_of(50, 24, 1), 2000))
    written = asyncio.run(preload(settings, events, 1))
    messages = sum(w["messages"] for w in written.values())
    log = tmp_path / "worker.log"
    # checkpoints far apart: nothing it applies is checkpointed or committed before the stop
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
        applied = {int(p): s["offset"] for p, s in progress["partitions"].items()}
        signalled = time.monotonic()
        os.killpg(worker.pid, signal.SIGTERM)
        assert worker.wait(30) == 0
        stopped = time.monotonic() - signalled

    assert stopped < 10, f"{stopped:.1f} s from SIGTERM to exit"  # the grace period is 20 s
    committed = asyncio.run(offsets.committed(settings, settings.topic("contact-events")))
    assert applied and committed == {p: o + 1 for p, o in applied.items() if o >= 0}, log.read_text()[-3000:]
    text = log.read_text()
    assert "Waiting for tasks" not in text and "TRACEBACK OF ALL RUNNING AGENT ACTORS" not in text


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_the_peer_counts_every_event_and_the_ratios_are_the_pipelines_over_the_peers(broker, tmp_path, monkeypatch):
    python = _peer_python()
    if python is None:
        pytest.skip(
            "Quix Streams is not installed (pip install '.[bench]', or CC_BENCH_PEER_PYTHON=<a python with it>)"
        )
    monkeypatch.setenv("PIPELINE_BROKER_URL", broker.bootstrap)
    monkeypatch.setenv("PIPELINE_SESSION_TIMEOUT_SECONDS", "3")
    out = tmp_path / "bench.json"
    args = ["bench", "--phases", "throughput", "--events", "1500", "--events-per-message", "10", "--rounds", "1"]

    assert main([*args, "--peer-python", python, "--json", str(out), "--log-dir", str(tmp_path / "logs")]) == 0

    t = orjson.loads(out.read_bytes())["throughput"]
    assert "not_run" not in t["peer"] and t["peer"]["python"] == python and t["peer"]["version"] >= "3.28"
    for per_message in (1, 10):
        quix, ours = t[f"quix_{per_message}"], t[f"pipeline_{per_message}"]
        # the peer expanded every batched message: it saw each event written, no more
        assert quix["events_seen"] == quix["events"] == ours["events"] == 1500
        assert quix["messages"] == ours["messages"] and quix["events_per_second"] > 0
    assert t["quix_ratios_1"] == [t["pipeline_1"]["events_per_second"] / t["quix_1"]["events_per_second"]]
    assert t["quix_ratios_10"] == [t["pipeline_10"]["events_per_second"] / t["quix_10"]["events_per_second"]]
    assert t["pipeline_10"]["rounds_events_per_second"] == [t["pipeline_10"]["events_per_second"]]
    for per_message in (1, 10):  # CPU per event of each, from the same round
        quix, ours = t[f"quix_{per_message}"], t[f"pipeline_{per_message}"]
        assert t[f"cpu_quix_{per_message}"] == [
            {"pipeline": ours["cpu_us_per_event"], "quix": quix["cpu_us_per_event"]}
        ]
        assert 0 < ours["cpu_us_per_event"] < 10_000 and 0 < quix["cpu_us_per_event"] < 10_000
    rows = {r["figure"].strip(): r for r in orjson.loads(out.read_bytes())["figures"]}
    batched = rows["ratio full pipeline / Quix Streams, up to 10 events/message"]
    assert batched["value"] == t["pipeline_10"]["events_per_second"] / t["quix_10"]["events_per_second"]
    assert batched["ok"] == (batched["value"] >= 1.5)


def test_cpu_per_event_counts_the_events_the_rate_counts():
    # 1,000 messages of 2 events; the first batch began with 100 already consumed (its fetch is not counted)
    r = {"idle": 0.0, "first": [10.0, 100], "end": 12.0, "cpu": [3.0, 3.9]}
    rate = run_rate(2000, 1000, r)
    assert rate["events_per_second"] == pytest.approx(900 * 2 / 2.0)
    assert rate["cpu_us_per_event"] == pytest.approx(1e6 * 0.9 / (900 * 2))
    assert "cpu_us_per_event" not in run_rate(2000, 1000, {**r, "cpu": [None, 3.9]})  # no batch began: no figure


def test_the_peer_says_how_to_install_it_when_its_python_lacks_it(tmp_path):
    lacking = tmp_path / "python"
    lacking.write_text("#!/bin/sh\nexit 1\n")  # an interpreter on which `import quixstreams` fails
    lacking.chmod(0o755)

    assert not_available(str(lacking)) == f"Quix Streams is not installed for {lacking}: " + (
        "pip install '.[bench]' (or --peer-python PYTHON of a virtual environment that has it)"
    )
    assert "No such file" in (not_available(str(tmp_path / "missing")) or "")


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_scale_out_shares_the_partitions_and_consumes_each_message_once(broker, tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_BROKER_URL", broker.bootstrap)
    monkeypatch.setenv("PIPELINE_SESSION_TIMEOUT_SECONDS", "3")
    out = tmp_path / "bench.json"
    args = ["bench", "--phases", "scale", "--events", "2000", "--scale-workers", "1,2,4"]

    assert main([*args, "--json", str(out), "--log-dir", str(tmp_path / "logs")]) == 0

    results = orjson.loads(out.read_bytes())
    scale = results["scale"]
    assert scale["partitions"] == 4 and scale["cores"] == os.cpu_count()
    assert [r["workers"] for r in scale["runs"]] == [1, 2, 4]
    for r in scale["runs"]:
        assert r["messages"] == r["events"] == 2000  # one event per message
        assert sorted(p for share in r["assignment"] for p in share) == [0, 1, 2, 3]
        assert len(r["consumed_per_worker"]) == r["workers"] and min(r["consumed_per_worker"]) > 0
        if not r["reassigned"]:  # a partition moved mid-run is read again by its new owner
            assert sum(r["consumed_per_worker"]) == r["messages"]
        # the writer returns once the broker acknowledged the last message, which the workers may apply before it
        assert r["write_seconds"] > 0 and r["seconds"] > 0
        # the machine's busy time holds the workers' (and the broker's and the writer's); the kernel samples the two
        # accounts apart, a tick (10 ms) at a time, so a short run's may differ by a few ticks per process
        assert 0 < r["worker_cpu_seconds"] <= r["machine_busy_seconds"] + 0.05 * (r["workers"] + 1)
        assert r["worker_cpu_us_per_event"] == pytest.approx(1e6 * r["worker_cpu_seconds"] / r["events"])
        assert r["machine_cpu_us_per_event"] == pytest.approx(1e6 * r["machine_busy_seconds"] / r["events"])
    assert scale["projection"] == projection(scale["runs"])
    one, two = (r["events_per_second"] for r in scale["runs"][:2])
    assert scale["ratio_2_to_1"] == two / one
    names = [r["figure"] for r in results["figures"]]
    assert [n for n in names if n.startswith("scale-out: ")] == [
        f"scale-out: {n} worker(s), one consumer group, 4 partitions, 1 event(s)/message, {os.cpu_count()} cores "
        "shared with the broker and the writer" + ("; partitions moved during the run" if r["reassigned"] else "")
        for n, r in zip((1, 2, 4), scale["runs"], strict=True)
    ]


def test_the_projection_takes_the_costliest_run_per_event():
    runs = [
        {"worker_cpu_us_per_event": 40.0, "machine_cpu_us_per_event": 80.0},
        {"worker_cpu_us_per_event": 50.0, "machine_cpu_us_per_event": 70.0},
    ]
    p = projection(runs, cores=(4, 8))
    assert p["worker_cpu_us_per_event"] == pytest.approx(50) and p["machine_cpu_us_per_event"] == pytest.approx(80)
    assert p["cores"] == [
        {"cores": 4, "workers_alone": pytest.approx(4 / 50e-6), "with_the_broker": pytest.approx(4 / 80e-6)},
        {"cores": 8, "workers_alone": pytest.approx(8 / 50e-6), "with_the_broker": pytest.approx(8 / 80e-6)},
    ]


def test_cpu_seconds_are_the_kernels_account_of_a_process():
    t0, busy0 = cpu_seconds(os.getpid()), machine_busy_seconds()
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:  # spin: 0.3 s of CPU
        pass
    used = cpu_seconds(os.getpid()) - t0
    assert 0.25 <= used <= 0.5
    assert machine_busy_seconds() - busy0 >= used - 0.05  # the machine was busy at least while this process was
    times = os.times()
    assert cpu_seconds(os.getpid()) == pytest.approx(times.user + times.system, abs=0.05)


def test_memory_figures_are_megabytes_of_a_million_bytes():
    # /proc counts kB of 1,024 bytes; the bench's MB, and the 1 GB target, are 10^6 and 10^9 bytes
    assert megabytes(976_562.5) == pytest.approx(1000)
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    rss = proc_status_kb(os.getpid(), "VmRSS")
    assert rss is not None
    assert megabytes(rss) == pytest.approx(resident_pages * os.sysconf("SC_PAGE_SIZE") / 1e6, rel=0.05)


def test_a_group_is_formed_when_every_partition_has_one_owner():
    assert formed((frozenset({0, 1}), frozenset({2, 3})), 4)
    assert not formed((frozenset({0, 1, 2, 3}), frozenset()), 4)  # the second worker has nothing yet
    assert not formed((frozenset({0, 1, 2}), frozenset({2, 3})), 4)  # a revoked partition still reported
    assert not formed((frozenset({0, 1}), frozenset({2})), 4)
    assert not formed(None, 4)
    assert formed((frozenset({0}), frozenset({1}), frozenset()), 2)  # more workers than partitions
    assert worker_counts("1,2,4,2") == (1, 2, 4)


@pytest.mark.parametrize("text", ["0,2", "a", ""])
def test_worker_counts_are_refused_with_an_example(text):
    with pytest.raises(Exception, match="e.g. 1,2,4|at least 1"):
        worker_counts(text)


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_growth_fits_memory_and_checkpoints_over_the_sizes_it_measured(broker, tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_BROKER_URL", broker.bootstrap)
    monkeypatch.setenv("PIPELINE_SESSION_TIMEOUT_SECONDS", "3")
    out = tmp_path / "bench.json"
    args = ["bench", "--phases", "growth", "--growth-sizes", "20x3,40x3,40x9", "--growth-hours", "0.5"]

    assert main([*args, "--json", str(out), "--log-dir", str(tmp_path / "logs")]) == 0

    results = orjson.loads(out.read_bytes())
    g = results["growth"]
    (small, more_agents, more_queues) = g["runs"]
    assert [(r["agents"], r["queues"]) for r in g["runs"]] == [(20, 3), (40, 3), (40, 9)]
    for r in g["runs"]:
        assert r["hours"] == 0.5 and r["events"] > 0 and r["peak_rss_mb"] > 0
        assert r["checkpoints"] > 0 and r["checkpoint_bytes"] > 0  # counted once the last checkpoint was written
    assert more_agents["events"] > small["events"]
    # Three sizes, three unknowns: the fit goes through each point, so its slopes are the differences.
    rss = g["peak_rss_mb_fit"]
    assert rss["per_1000_agents"] == pytest.approx((more_agents["peak_rss_mb"] - small["peak_rss_mb"]) / 0.02)
    assert rss["per_100_queues"] == pytest.approx((more_queues["peak_rss_mb"] - more_agents["peak_rss_mb"]) / 0.06)
    assert rss["largest_residual"] == pytest.approx(0, abs=1e-6)
    written = g["checkpoint_mb_fit"]
    mb = [r["checkpoint_bytes"] / 1e6 for r in g["runs"]]
    assert written["per_1000_agents"] == pytest.approx((mb[1] - mb[0]) / 0.02)
    names = [r["figure"] for r in results["figures"]]
    assert sum(n.startswith("growth: worker peak resident memory, ") for n in names) == 3
    assert sum(n.startswith("growth: checkpoint bytes written, ") for n in names) == 3
    assert sum("per 1,000 agents (least squares over 3 sizes" in n for n in names) == 2


def test_the_growth_fit_recovers_a_linear_cost_and_refuses_what_it_cannot_tell_apart():
    def cost(agents: int, queues: int) -> float:
        return 70 + 12 * agents / 1000 + 3 * queues / 100

    measured = [(a, q, cost(a, q)) for a, q in sizes("1000x50,5000x200,20000x1000,5000x50,5000x1000")]
    assert fit(measured) == Fit(
        intercept=pytest.approx(70),
        per_1000_agents=pytest.approx(12),
        per_100_queues=pytest.approx(3),
        largest_residual=pytest.approx(0, abs=1e-9),
        sizes=5,
    )
    # noise on one size: least squares, not a line through the points
    noisy = [*measured[:-1], (5000, 1000, cost(5000, 1000) + 5)]
    f = fit(noisy)
    assert f is not None and 0 < f.largest_residual < 5
    # agents and queues in one proportion at every size: nothing tells them apart
    assert fit([(1000, 50, 80.0), (2000, 100, 90.0), (4000, 200, 110.0)]) is None
    # one variable only: the other has no slope
    only_agents = fit([(a, 200, cost(a, 200)) for a in (1000, 5000, 20000)])
    assert only_agents is not None and only_agents.per_100_queues is None
    assert only_agents.per_1000_agents == pytest.approx(12)
    assert fit([(1000, 50, 80.0)]) is not None and fit([(1000, 50, 80.0), (2000, 60, 1.0)]) is None


@pytest.mark.parametrize("text", ["1000", "1000x", "0x5", "x"])
def test_growth_sizes_are_refused_with_an_example(text):
    with pytest.raises(Exception, match="AGENTSxQUEUES, e.g. 5000x200"):
        sizes(text)


def test_a_failed_end_of_run_scrape_is_a_figure_not_a_crash():
    """A 20,000-agent day's /metrics page outlived the 5 s a scrape had: the run's other figures were lost."""
    assert scraped({"scrape_seconds": 1.25, "scrapes": 5, "scrapes_failed": 0}) == 1.25
    assert scraped({"scrape_seconds": 1.25, "scrapes": 5, "scrapes_failed": 2}) == "1.25 (2 of 5 failed)"
    assert scraped({"scrape_seconds": None, "scrapes": 5, "scrapes_failed": 5}) == "every scrape failed (5)"


def test_the_scrape_phase_times_the_whole_exposition_and_each_collector(tmp_path):
    out = tmp_path / "scrape.json"
    argv = ["bench", "--phases", "scrape", "--agents", "60", "--queues", "12", "--scrape-hours", "1"]
    assert main([*argv, "--scrape-repeats", "2", "--json", str(out)]) == 0
    s = orjson.loads(out.read_bytes())["scrape"]
    assert s["events"] > 1000 and s["seconds"]["min"] > 0
    # the collectors timed alone add up to the whole page: each is on it once
    assert sum(c["series"] for c in s["by_collector"].values()) == s["series"]
    assert s["by_collector"]["agents"]["series"] >= 60 * 4  # time by state of every agent
    assert s["by_collector"]["kpi queue_metrics"]["series"] >= 12  # every queue
