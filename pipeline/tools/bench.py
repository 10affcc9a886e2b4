"""`python -m pipeline bench`: how fast, how late and how big the real worker is, with references to compare.

All phases run on the embedded broker (or on `PIPELINE_BROKER_URL`, under fresh, uniquely-prefixed topics), with
the simulator's events, and every worker is a real child process (`pipeline.tools.run.worker_process`):

- processors: the contact, agent and FCR processors alone, without Kafka or Faust (microseconds per message):
  the pipeline's own share of the per-message cost, quick to compare before and after a change;
- throughput: N events are pre-loaded once with one event per Kafka message and once with K per message, then
  read by (a) a raw aiokafka consumer that only decodes the JSON (the floor of the machine), (b) an empty Faust
  agent with the worker's batching (Faust's own ceiling here) and (c) the real worker with the full KPI set, at
  1 and at K events per message. Every consumer reports when it first got messages (and how many) and when it
  had them all, on the machine's monotonic clock (the worker in /progress); the rate is the messages from the
  start of the first batch to the end of the last, so a consumer group's start-up is not counted (the first
  batch's processing is), and all three are measured the same way. The empty agent and the worker at 1 event
  per message run back to back `--rounds` times; the pair with the median ratio is reported. The peer, Quix
  Streams' windowed counts (pipeline/tools/bench_peer.py), runs in each round and once batched when it is
  installed (`--peer-python`), for the worker's ratio to it;
- scale: 1, 2 and 4 workers of one consumer group over the same events (pipeline/tools/bench_scale.py);
- latency: a steady offered rate (one event per message) for a fixed time; every tick a probe contact is
  offered in a queue of its own, and the time from writing it to Kafka to the moment it is counted on /metrics
  (polled every 50 ms for that one metric, `?name[]=cc_queue_offered_total`, so that polling does not load the
  worker as 20 full scrapes a second of a 1,000-agent center would) and in a KPI record read from the KPI
  topic gives p50/p99/max; the worker's resident memory is sampled all along (a long run is the soak);
- memory: a simulated day of a large center (agents, queues) through the worker; peak resident memory (VmHWM)
  and the time a /metrics scrape takes with that many queues;
- growth (opt-in): the memory run at several sizes of center, with the fitted growth of memory and checkpoint
  bytes per 1,000 agents and per 100 queues (pipeline/tools/bench_growth.py);
- scrape (opt-in): one full /metrics exposition over the state of a simulated `--agents` x `--queues` center, in
  this process, whole and per collector (pipeline/tools/bench_scrape.py);
- replay: a simulated day of a 1,000-agent center through `pipeline.tools.replay.replay`, end to end;
- ingest: file import (Asterisk queue_log, call-detail TSV) into JSON Lines, records per second
  (pipeline/tools/bench_ingest.py).

It prints progress on stderr, then one table with the figures, the targets and the ratios on stdout, and can
write the same as JSON (`--json`). It leaves its logs in `--log-dir` only, and its data files (the replayed day,
the ingest files) only with `--keep` (`run_folders`). `python -m pipeline.tools.bench empty-agent|raw-consumer`
are the two reference consumers, started as children by the benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import math
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

import orjson

from pipeline.core import processes
from pipeline.core.settings import Settings, load_settings
from pipeline.runtime.broker import bootstrap_servers, ensure_topics, free_port
from pipeline.runtime.kafka_security import client_options, faust_credentials
from pipeline.runtime.memory import tune_collector
from pipeline.tools import bench_growth, bench_peer, bench_scale, bench_scrape, bench_webhook
from pipeline.tools.replay import Rate, _get, _produce, end_progress, replay, wait_until_done
from pipeline.tools.run import broker_for, worker_process

PHASES = ("processors", "checkpoints", "throughput", "scale", "latency", "memory", "replay", "ingest", "webhook")
# Run only when named: `--phases sinks` (pipeline/tools/bench_sinks.py), `--phases growth` (a day at 20,000 agents
# among others: pipeline/tools/bench_growth.py), `--phases scrape` (pipeline/tools/bench_scrape.py).
OPT_IN_PHASES = ("sinks", "growth", "scrape")
PROBE_QUEUE = "bench-probe"
EVENTS_PER_AGENT_DAY = 430  # a simulated day gives about this many events per agent (1,000 agents: ~436,000)


# ---------------------------------------------------------------------------------------------- workload


def center(agents: int, hours: float, queues: int = 0, now: datetime | None = None):
    """A simulated center loaded like the default one, its period well in the past (so no event is in the
    future of the worker's clock), starting at 09:00 UTC so short runs begin with busy hours."""
    from pipeline.tools.simulate import DEFAULT_QUEUES, CenterConfig

    # Two days back: the closing heartbeat (a day past the last event) must not be ahead of the worker's clock
    # whatever the time of day (one day back put it in the future in the early hours, UTC).
    day = ((now or datetime.now(UTC)) - timedelta(hours=hours + 48)).date()
    start = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
    specs = DEFAULT_QUEUES
    if queues and queues != len(DEFAULT_QUEUES):  # more queues: copies of the default ones, numbered
        specs = tuple(
            replace(q, queue_id=f"{q.queue_id}-{i:03d}")
            for i, q in zip(range(queues), itertools.cycle(DEFAULT_QUEUES), strict=False)
        )
    config = CenterConfig(agents=agents, duration_hours=hours, start=start, queues=specs)
    return config.with_load_of(CenterConfig())


def events_of(agents: int, hours: float, seed: int, queues: int = 0) -> Iterator:
    from pipeline.tools.simulate import simulate

    return simulate(center(agents, hours, queues), seed)


def agents_for(n_events: int, days: float = 1.0) -> int:
    """Agents of a center that gives at least `n_events` in `days` (at least 1,000: a realistic mix)."""
    return max(1000, math.ceil(n_events * 1.2 / EVENTS_PER_AGENT_DAY / days))


# ---------------------------------------------------------------------------------------------- helpers


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def megabytes(kb: float) -> float:
    """/proc's kB (1,024 bytes) in MB (10^6 bytes): the unit of every memory figure the bench prints."""
    return kb * 1024 / 1e6


def proc_status_kb(pid: int, field: str) -> int | None:
    """A memory figure of a process from /proc (VmRSS, VmHWM), in kB (of 1,024 bytes); None when it has gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


S = TypeVar("S")  # what a sampler samples


class Sampler(Generic[S]):
    """Calls `sample()` in a thread every `every` seconds and keeps what it returns, with the monotonic time."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.samples: list[tuple[float, S]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> S | None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            value = self.sample()
            if value is not None:
                self.samples.append((time.monotonic(), value))
            self._stop.wait(self.every)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def over(self, start: float, end: float) -> list:
        return [v for t, v in self.samples if start <= t <= end]


class RssSampler(Sampler[int]):
    """A process's resident memory (kB)."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        super().__init__(every)
        self.pid = pid

    def sample(self) -> int | None:
        return proc_status_kb(self.pid, "VmRSS")

    def peak_mb(self) -> float:
        hwm = proc_status_kb(self.pid, "VmHWM")
        seen = max((kb for _, kb in self.samples), default=0)
        return megabytes(max(hwm or 0, seen))

    def mb_over(self, start: float, end: float) -> list[float]:
        return [megabytes(kb) for kb in self.over(start, end)]


class StateSampler(Sampler[dict[str, int]]):
    """What the worker holds, from its /metrics: `cc_pipeline_state_entries` by kind, and the FCR contacts held."""

    def __init__(self, base_url: str, every: float = 2.0) -> None:
        super().__init__(every)
        self.url = f"{base_url}/metrics?name[]=cc_pipeline_state_entries&name[]=cc_pipeline_fcr_contacts_held"

    def sample(self) -> dict[str, int] | None:
        from prometheus_client.parser import text_string_to_metric_families

        try:
            text = _get(self.url).decode()
        except OSError:
            return None
        held: dict[str, int] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                kind = s.labels.get("kind", "fcr_contacts")
                held[kind] = held.get(kind, 0) + int(s.value)
        return held


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..1) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))]


def phase_settings(base: Settings, name: str, run_id: str, **extra: object) -> tuple[Settings, dict]:
    """Fresh topics and consumer group for one phase: (settings, the overrides a worker child needs)."""
    overrides = {
        "app_id": f"bench-{run_id}-{name}",
        "topic_prefix": f"bench-{run_id}-{name}",
        "web_port": free_port(base.web_host),
        **extra,
    }
    return load_settings(broker_url=base.broker_url, **overrides), overrides


def by_topic(events: list) -> dict[str, list]:
    """The events grouped by the topic EventWriter sends each to (its own `route`), in order."""
    from pipeline.runtime.producer import route

    groups: dict[str, list] = {"contact-events": [], "agent-events": []}
    for e in events:
        groups[route(e)[0]].append(e)
    return groups


async def preload(settings: Settings, events: list, per_message: int) -> dict[str, dict[str, int]]:
    """Write the events (contact and agent topics in turn); the events and messages written to each topic.

    Counted here, not read back: the embedded broker's ListOffsets(latest) answers the base offset of the last
    record batch + 1, which is short when a producer batch holds several records (the fetch high watermark is
    right)."""
    from pipeline.runtime.producer import EventWriter

    written = {}
    async with EventWriter(settings, bootstrap_servers(settings), per_message) as writer:
        for topic, group in by_topic(events).items():
            before = writer.sent_messages
            for i in range(0, len(group), 50_000):
                await writer.write(group[i : i + 50_000])
            written[topic] = {"events": len(group), "messages": writer.sent_messages - before}
            _say(f"    {topic}: {len(group):,} events in {written[topic]['messages']:,} messages")
    return written


def achieved_per_message(written: dict[str, dict[str, int]]) -> dict[str, float]:
    """Events per message on each topic and over all (what batching achieved), from `preload`'s counts."""
    out = {topic: w["events"] / max(1, w["messages"]) for topic, w in written.items()}
    out["all"] = sum(w["events"] for w in written.values()) / max(1, sum(w["messages"] for w in written.values()))
    return out


def run_rate(events: int, messages: int, r: dict) -> dict:
    """Events/s of a consumer's run: `r` has `idle` (nothing consumed yet), `first` ([time, messages before it]
    when the first batch began: its fetch is not counted, its processing is) and `end` (all consumed). A run with
    no time between the two (a tiny smoke run) falls back to everything since `idle`. With `cpu` (the process's
    CPU seconds at `first` and at `end`), also its CPU per event over the same messages."""
    (seen_at, first_batch), end = r["first"], r["end"]
    if first_batch < messages and end > seen_at:
        seconds, counted = end - seen_at, messages - first_batch
    else:
        seconds, counted = max(end - r["idle"], 1e-6), messages
    per_second = counted / seconds
    out = {
        "events": events,
        "messages": messages,
        "seconds": seconds,
        "messages_per_second": per_second,
        "events_per_second": per_second * events / messages,
    }
    if r.get("cpu") and r["cpu"][0] is not None and counted:
        out["cpu_us_per_event"] = 1e6 * (r["cpu"][1] - r["cpu"][0]) / (counted * events / messages)
    return out


# ---------------------------------------------------------------------------------------------- throughput


def _wait_for_result(path: Path, proc, timeout: float, label: str, log_file: Path) -> dict:
    deadline = time.monotonic() + timeout
    started = last_note = time.monotonic()
    while time.monotonic() < deadline:
        if path.exists():
            return orjson.loads(path.read_bytes())
        if proc.poll() is not None:
            raise RuntimeError(f"{label} exited with status {proc.returncode}; see {log_file}")
        if time.monotonic() - last_note >= 10:
            last_note = time.monotonic()
            _say(f"    {label}: still running ({last_note - started:.0f}s)")
        time.sleep(0.1)
    raise TimeoutError(f"{label} not done after {timeout:.0f}s; see {log_file}")


def run_reference(kind: str, settings: Settings, overrides: dict, messages: int, log_dir: Path, timeout: float) -> dict:
    """Start a reference consumer child (`empty-agent` or `raw-consumer`) and return what it measured."""
    out = log_dir / f"{overrides['app_id']}-{kind}.json"
    log_file = log_dir / f"{kind}.log"
    args = ("pipeline.tools.bench", kind, "--messages", str(messages), "--out", str(out))
    with worker_process(settings, log_file, args, **overrides) as proc:
        result = _wait_for_result(out, proc, timeout, kind, log_file)
        result["peak_rss_mb"] = megabytes(proc_status_kb(proc.pid, "VmHWM") or 0)
    return result


def run_peer(settings: Settings, group: str, messages: int, log_dir: Path, timeout: float, python: str) -> dict:
    """Start the Quix Streams peer child (`pipeline.tools.bench_peer`) under `python` and return what it measured."""
    out = log_dir / f"{group}-quix.json"
    log_file = log_dir / "quix.log"
    args = ["--broker", bootstrap_servers(settings), "--group", group, "--messages", str(messages), "--out", str(out)]
    for name in ("contact-events", "agent-events"):
        args += ["--topic", settings.topic(name)]
    args += ["--grace-ms", str(round(settings.allowed_lateness_seconds * 1000))]
    # A folder of its own for RocksDB, removed with the child (as worker_process does for the workers).
    with tempfile.TemporaryDirectory(prefix="cc-peer-") as tmp:
        env = bench_peer.child_environment({**os.environ, "TMPDIR": tmp})
        argv = [python, "-m", "pipeline.tools.bench_peer", "quix", *args, "--state-dir", str(Path(tmp) / "state")]
        proc = processes.spawn(argv, log_file, env)
        try:
            result = _wait_for_result(out, proc, timeout, "Quix Streams peer", log_file)
            result["peak_rss_mb"] = megabytes(proc_status_kb(proc.pid, "VmHWM") or 0)
        finally:
            processes.stop(proc)
    return result


def run_pipeline(
    settings: Settings, overrides: dict, messages: int, log_file: Path, label: str, timeout: float
) -> dict:
    """The real worker over pre-loaded topics: when consumption started and ended, and its peak memory.

    The worker times its own batches (`/progress`: the first batch and the end of the last, on the machine's
    monotonic clock, as the reference consumers do), so the bench polls it only four times a second: polling
    often to time it would load the worker it measures."""
    base_url = f"http://{settings.web_host}:{overrides['web_port']}"
    with worker_process(settings, log_file, **overrides) as worker, RssSampler(worker.pid) as rss:
        deadline = time.monotonic() + timeout
        idle_at = None  # the last time nothing had been consumed yet
        rate = Rate()
        last_note = time.monotonic()
        while True:
            if worker.poll() is not None:
                raise RuntimeError(f"worker exited with status {worker.returncode}; see {log_file}")
            now = time.monotonic()
            try:
                progress = orjson.loads(_get(f"{base_url}/progress"))
            except OSError:
                progress = {"source_messages": 0}
            consumed = progress["source_messages"]
            if now > deadline:
                raise TimeoutError(
                    f"{label}: gave up after {timeout:.0f}s with {consumed:,}/{messages:,} messages consumed; "
                    f"see {log_file}"
                )
            if consumed == 0:
                idle_at = now
            if consumed >= messages:
                break
            per_second = rate.add(now, consumed)
            if now - last_note >= 5:
                last_note = now
                _say(f"    {label}: {consumed:,}/{messages:,} messages ({per_second or 0:,.0f}/s)")
            time.sleep(0.25)
        return {
            "idle": idle_at or progress["first_batch"][0],
            "first": progress["first_batch"],
            "end": progress["last_batch_monotonic"],
            "cpu": progress["batches_cpu"],
            "peak_rss_mb": rss.peak_mb(),
        }


@dataclass
class Loaded:
    """Events pre-loaded on one set of topics, for the consumers measured over them."""

    base: Settings
    run_id: str
    log_dir: Path
    topic_prefix: str
    events: int
    messages: int
    per_message: int
    achieved: dict

    def pipeline(self, name: str) -> dict:
        _say(f"throughput: full pipeline over {self.messages} messages ({self.per_message} event(s) per message)")
        settings, overrides = phase_settings(self.base, name, self.run_id, topic_prefix=self.topic_prefix)
        r = run_pipeline(
            settings,
            overrides,
            self.messages,
            self.log_dir / f"worker-{name}.log",
            f"pipeline, {self.per_message}/message",
            self.timeout,
        )
        return {
            **run_rate(self.events, self.messages, r),
            "peak_rss_mb": r["peak_rss_mb"],
            "events_per_message": self.per_message,
            "achieved_per_message": self.achieved,
        }

    def peer(self, name: str, python: str) -> dict:
        _say(f"throughput: Quix Streams peer over {self.messages} messages ({self.per_message} event(s) per message)")
        settings, overrides = phase_settings(self.base, name, self.run_id, topic_prefix=self.topic_prefix)
        r = run_peer(settings, overrides["app_id"], self.messages, self.log_dir, self.timeout, python)
        # `events_seen`: what the peer counted itself (a batched message expanded), to check it saw every event
        return {**run_rate(self.events, self.messages, r), "peak_rss_mb": r["peak_rss_mb"], "events_seen": r["events"]}

    def reference(self, kind: str, name: str) -> dict:
        _say(f"throughput: {kind} over {self.messages} messages")
        settings, overrides = phase_settings(self.base, name, self.run_id, topic_prefix=self.topic_prefix)
        r = run_reference(kind, settings, overrides, self.messages, self.log_dir, self.timeout)
        return {**run_rate(self.events, self.messages, r), "peak_rss_mb": r["peak_rss_mb"]}

    @property
    def timeout(self) -> float:
        return 120 + self.messages / 200


def throughput(base: Settings, opts: argparse.Namespace, run_id: str, log_dir: Path) -> dict:
    n, k = opts.events, opts.events_per_message
    _say(f"throughput: simulating {n} events")
    events = list(itertools.islice(events_of(agents_for(n), 24, opts.seed), n))
    n_events = len(events)
    out: dict = {}
    out["peer"] = peer_info(opts, base)
    peer = out["peer"].get("not_run")  # why the peer does not run, if it does not
    for per_message in dict.fromkeys((1, k)):
        settings, overrides = phase_settings(base, f"k{per_message}", run_id)
        asyncio.run(ensure_topics(settings))
        _say(f"throughput: pre-loading {len(events)} events, {per_message} per message")
        written = asyncio.run(preload(settings, events, per_message))
        messages = sum(w["messages"] for w in written.values())
        # What batching achieved: events are grouped per Kafka key (queue, agent) within a few seconds of event
        # time (EventWriter), so agent events, keyed by agent, rarely share a message.
        achieved = achieved_per_message(written)
        loaded = Loaded(base, run_id, log_dir, overrides["topic_prefix"], n_events, messages, per_message, achieved)
        if per_message > 1:  # in rounds too, the pipeline and the peer back to back: a batched run lasts seconds
            batched: list[dict[str, Any]] = []
            for i in range(opts.rounds):
                ours = loaded.pipeline(f"k{per_message}-{i}")
                batched.append({"pipeline": ours})
                if not peer:
                    quix = loaded.peer(f"k{per_message}-quix-{i}", opts.peer_python)
                    batched[-1].update(
                        quix=quix,
                        ratio=ours["events_per_second"] / quix["events_per_second"],
                        cpu=cpu_per_event(quix, ours),
                    )
            rates = [r["pipeline"]["events_per_second"] for r in batched]
            if peer:
                median = sorted(batched, key=lambda r: r["pipeline"]["events_per_second"])[len(batched) // 2]
            else:
                median = sorted(batched, key=lambda r: r["ratio"])[len(batched) // 2]
                out[f"quix_{per_message}"] = median["quix"]
                out[f"quix_ratios_{per_message}"] = [r["ratio"] for r in batched]
                out[f"cpu_quix_{per_message}"] = [r["cpu"] for r in batched]
            out[f"pipeline_{per_message}"] = {**median["pipeline"], "rounds_events_per_second": rates}
            continue
        out["raw_consumer"] = loaded.reference("raw-consumer", "k1-raw-consumer")
        # The ratio to the empty agent is taken in pairs run back to back, several times: this machine's speed
        # drifts within a minute by more than the margin to the target (one run gave 0.90, the next 0.63).
        rounds = []
        for i in range(opts.rounds):
            empty, one = loaded.reference("empty-agent", f"k1-empty-agent-{i}"), loaded.pipeline(f"k1-{i}")
            rounds.append(
                {
                    "empty_agent": empty,
                    "pipeline_1": one,
                    "ratio": one["events_per_second"] / empty["events_per_second"],
                }
            )
            if not peer:  # the peer in the same round, so its ratio is taken back to back too
                quix = loaded.peer(f"k1-quix-{i}", opts.peer_python)
                rounds[-1].update(
                    quix_1=quix,
                    quix_ratio=one["events_per_second"] / quix["events_per_second"],
                    cpu=cpu_per_event(quix, one),
                )
        median = sorted(rounds, key=lambda r: r["ratio"])[len(rounds) // 2]
        out.update(
            empty_agent=median["empty_agent"], pipeline_1=median["pipeline_1"], ratios_1=[r["ratio"] for r in rounds]
        )
        if not peer:
            by_peer = sorted(rounds, key=lambda r: r["quix_ratio"])[len(rounds) // 2]
            out.update(quix_1=by_peer["quix_1"], quix_ratios_1=[r["quix_ratio"] for r in rounds])
            out["cpu_quix_1"] = [r["cpu"] for r in rounds]
    return out


def cpu_per_event(peer: dict, ours: dict) -> dict:
    """The CPU per event (us) of the pipeline and of the peer in one round, where both measured it."""
    return {"pipeline": ours.get("cpu_us_per_event"), "quix": peer.get("cpu_us_per_event")}


def peer_info(opts: argparse.Namespace, base: Settings) -> dict[str, str]:
    """The Quix Streams peer of this benchmark: its Python and version, or why it cannot run (`not_run`), said on
    stderr."""
    why: str | None
    if base.kafka_security_protocol != "PLAINTEXT":
        why = "the Quix Streams peer runs on a plaintext broker only (the embedded one, or PIPELINE_BROKER_URL)"
    else:
        why = bench_peer.not_available(opts.peer_python)
    if why:
        _say(f"throughput: no peer: {why}")
        return {"python": opts.peer_python, "not_run": why}
    version = bench_peer.version(opts.peer_python)
    _say(f"throughput: the peer is Quix Streams {version} ({opts.peer_python})")
    return {"python": opts.peer_python, "version": version}


# ---------------------------------------------------------------------------------------------- latency


class MetricsPoller:
    """Polls /metrics in a thread: when the probe queue's offered count changed, and how long scrapes took."""

    LINE = re.compile(r'^cc_queue_offered_total\{[^}]*queue="' + PROBE_QUEUE + r'"[^}]*\} (\S+)$', re.M)

    def __init__(self, url: str, every: float = 0.05) -> None:
        self.url = url
        self.every = every
        self.seen: list[tuple[float, int]] = []  # (monotonic, probes counted)
        self.scrapes: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            asked = time.monotonic()
            try:
                text = _get(self.url).decode()
            except OSError:
                self._stop.wait(self.every)
                continue
            got = time.monotonic()
            self.scrapes.append(got - asked)
            m = self.LINE.search(text)
            count = int(float(m.group(1))) if m else 0
            if count > (self.seen[-1][1] if self.seen else 0):
                self.seen.append((got, count))
            self._stop.wait(self.every)

    def __enter__(self) -> MetricsPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def count(self) -> int:
        return self.seen[-1][1] if self.seen else 0


async def _read_probe_records(settings: Settings, seen: list[tuple[float, int]], stop: asyncio.Event) -> None:
    """Follow the KPI topic: the probe queue's offered count (summed over intervals) as records arrive."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from pipeline.kpis.record import decode_record

    topic = settings.topic("kpis")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(settings),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **client_options(settings),
    )
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic)
        deadline = time.monotonic() + 60
        while not parts:
            if time.monotonic() > deadline:
                raise TimeoutError(f"latency: the KPI topic {topic} has no partitions after 60s")
            await consumer.topics()  # refreshes the metadata
            parts = consumer.partitions_for_topic(topic)
            await asyncio.sleep(0.2)
        consumer.assign([TopicPartition(topic, p) for p in parts])
        latest: dict[str, tuple[int, int]] = {}  # interval start -> (revision, offered)
        prefix = f"{PROBE_QUEUE}|".encode()
        while not stop.is_set():
            for msgs in (await consumer.getmany(timeout_ms=50)).values():
                for m in msgs:
                    if not (m.key or b"").startswith(prefix):
                        continue
                    r = decode_record(m.value)
                    if r.window != "interval":  # hour and day records count the same probes again
                        continue
                    start = r.interval_start.isoformat()
                    if start not in latest or r.revision >= latest[start][0]:
                        latest[start] = (r.revision, r.offered)
            total = sum(offered for _, offered in latest.values())
            if total > (seen[-1][1] if seen else 0):
                seen.append((time.monotonic(), total))
    finally:
        await consumer.stop()


def _probe(i: int, at: datetime, offered: bool):
    from pipeline.contract import events as ev

    kind = ev.ContactOffered if offered else ev.ContactAbandoned
    return kind(
        event_id=f"{PROBE_QUEUE}-{i}-{'o' if offered else 'a'}",
        time=at,
        contact_id=f"probe-{i}",
        queue_id=PROBE_QUEUE,
        channel="voice",
    )


async def _offer(
    settings: Settings,
    events: Iterator,
    start_time: datetime,
    rate: float,
    seconds: float,
    poller: MetricsPoller,
    kpi_seen: list[tuple[float, int]],
    drain: float,
) -> dict:
    """Write events at `rate` per second (one per message) with a probe each tick; wait for the last probes."""
    from pipeline.runtime.producer import EventWriter

    stop = asyncio.Event()
    reader = asyncio.create_task(_read_probe_records(settings, kpi_seen, stop))
    sent_at: list[float] = []
    tick = 0.05
    async with EventWriter(settings, bootstrap_servers(settings), 1) as writer:
        began = time.monotonic()
        sent = 0
        last_time = start_time  # probes carry the newest event time written, so they are never late
        pending_abandon: list = []
        last_note = began
        while (elapsed := time.monotonic() - began) < seconds:
            want = max(0, int(elapsed * rate) - sent - 1 - len(pending_abandon))
            chunk = list(itertools.islice(events, want))
            batch = pending_abandon + chunk
            if batch:
                await writer.write(batch)
            if chunk:
                last_time = chunk[-1].time
            i = len(sent_at) + 1
            written = time.monotonic()
            await writer.write([_probe(i, last_time, True)])
            sent_at.append(written)
            pending_abandon = [_probe(i, last_time, False)]
            sent += len(batch) + 1
            if len(chunk) < want:
                _say("    latency: the simulated events ran out; stopping early")
                break
            if time.monotonic() - last_note >= 10:
                last_note = time.monotonic()
                _say(
                    f"    latency: {last_note - began:.0f}/{seconds:.0f}s, {sent:,} events written "
                    f"({sent / (last_note - began):,.0f}/s), probes seen on /metrics {poller.count}/{len(sent_at)}"
                )
            await asyncio.sleep(max(0.0, began + (math.floor(elapsed / tick) + 1) * tick - time.monotonic()))
        offered_for = time.monotonic() - began
        if pending_abandon:
            await writer.write(pending_abandon)
            sent += 1
        # Provisional KPI records are published when a batch touches a partition: heartbeats (at the same event
        # time) keep batches coming while the last probes make their way, as a live source's traffic would.
        deadline = time.monotonic() + drain
        while time.monotonic() < deadline and (
            poller.count < len(sent_at) or (kpi_seen[-1][1] if kpi_seen else 0) < len(sent_at)
        ):
            await writer.heartbeat(last_time)
            await asyncio.sleep(0.5)
    stop.set()
    await reader
    return {"sent_at": sent_at, "events": sent, "offered_seconds": offered_for}


def _latencies(sent_at: list[float], seen: list[tuple[float, int]]) -> tuple[list[float], int]:
    """Latency of each probe (first time the count reached it minus when it was written) and how many never
    showed up."""
    out, j = [], 0
    for i, t0 in enumerate(sent_at, start=1):
        while j < len(seen) and seen[j][1] < i:
            j += 1
        if j == len(seen):
            break
        out.append(seen[j][0] - t0)
    return out, len(sent_at) - len(out)


def _summary(values: list[float], missing: int) -> dict:
    if not values:
        return {"p50": None, "p99": None, "max": None, "samples": 0, "missing": missing}
    return {
        "p50": percentile(values, 0.5),
        "p99": percentile(values, 0.99),
        "max": max(values),
        "samples": len(values),
        "missing": missing,
    }


def latency(base: Settings, opts: argparse.Namespace, run_id: str, log_dir: Path) -> dict:
    rate, seconds = opts.latency_rate, opts.latency_seconds
    settings, overrides = phase_settings(base, "latency", run_id)
    asyncio.run(ensure_topics(settings))
    needed = int(rate * seconds * 1.1) + 1000
    days = opts.latency_days
    agents = agents_for(needed, days)
    _say(f"latency: {rate:g} events/s for {seconds:g}s, from a simulated {agents}-agent center over {days:g} day(s)")
    events = events_of(agents, 24 * days, opts.seed)
    first = next(events)
    log_file = log_dir / "worker-latency.log"
    base_url = f"http://{settings.web_host}:{overrides['web_port']}"
    with (
        worker_process(settings, log_file, **overrides) as worker,
        RssSampler(worker.pid, every=1.0) as rss,
        StateSampler(base_url) as state,
    ):
        _await_partitions(settings, base_url, worker, first.time, log_file)
        kpi_seen: list[tuple[float, int]] = []
        with MetricsPoller(f"{base_url}/metrics?name[]=cc_queue_offered_total") as poller:
            drain = settings.kpi_update_seconds * 2 + 10
            result = asyncio.run(
                _offer(settings, itertools.chain([first], events), first.time, rate, seconds, poller, kpi_seen, drain)
            )
        if worker.poll() is not None:
            raise RuntimeError(f"worker exited with status {worker.returncode}; see {log_file}")
        began, ended = result["sent_at"][0], result["sent_at"][-1]
        window = min(60.0, (ended - began) / 2)
        first_minute = rss.mb_over(began, began + window)
        last_minute = rss.mb_over(ended - window, ended)
        # a soak: the minute before the end of each third (over several simulated days, FCR windows expire)
        ends = [began + (ended - began) * k / 3 for k in (1, 2, 3)]
        thirds = [rss.mb_over(end - window, end) for end in ends]
        held = [(state.over(began, end) or [None])[-1] for end in ends]  # what the state held, for the same ends
        peak = rss.peak_mb()
    metrics = _summary(*_latencies(result["sent_at"], poller.seen))
    kpis = _summary(*_latencies(result["sent_at"], kpi_seen))
    return {
        "offered_events_per_second": result["events"] / result["offered_seconds"],
        "seconds": result["offered_seconds"],
        "events": result["events"],
        "probes": len(result["sent_at"]),
        "metrics": metrics,
        "kpi_topic": kpis,
        "kpi_update_seconds": settings.kpi_update_seconds,
        "scrape_seconds_p50": percentile(poller.scrapes, 0.5) if poller.scrapes else None,
        "rss_mb_start": sum(first_minute) / len(first_minute) if first_minute else None,
        "rss_mb_end": sum(last_minute) / len(last_minute) if last_minute else None,
        "rss_mb_thirds": [sum(t) / len(t) if t else None for t in thirds],
        "state_thirds": held,
        "simulated_days": days,
        "agents": agents,
        "peak_rss_mb": peak,
    }


def _await_partitions(
    settings: Settings, base_url: str, worker, at: datetime, log_file: Path, timeout: float = 120
) -> None:
    """Wait until the worker owns and has applied every contact partition (a heartbeat at `at` to each)."""
    from pipeline.runtime.producer import EventWriter

    async def beat() -> None:
        async with EventWriter(settings, bootstrap_servers(settings)) as writer:
            await writer.heartbeat(at)

    asyncio.run(beat())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"worker exited with status {worker.returncode}; see {log_file}")
        try:
            if len(orjson.loads(_get(f"{base_url}/progress"))["partitions"]) >= settings.partitions:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"worker did not take its partitions within {timeout}s; see {log_file}")


# ---------------------------------------------------------------------------------------------- memory


def _series(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def memory(base: Settings, opts: argparse.Namespace, run_id: str, log_dir: Path) -> dict:
    return day_through_worker(
        base, run_id, log_dir, "memory", opts.agents, opts.queues, opts.memory_hours, opts.events_per_message, opts.seed
    )


def day_through_worker(
    base: Settings,
    run_id: str,
    log_dir: Path,
    name: str,
    agents: int,
    queues: int,
    hours: float,
    per_message: int,
    seed: int,
) -> dict:
    """A simulated center's period through the worker: its peak memory, the checkpoints it wrote, and the time a
    /metrics scrape takes at the end. The events are written as they are simulated (a 20,000-agent day is ~19
    million), then the worker reads them all and closes every interval."""
    settings, overrides = phase_settings(base, name, run_id)
    asyncio.run(ensure_topics(settings))
    _say(f"{name}: {agents} agents, {queues} queues, {hours:g} h, simulated and written {per_message} per message")
    produced = asyncio.run(_produce(settings, events_of(agents, hours, seed, queues), per_message))
    end_progress()
    n_events = produced.events
    log_file = log_dir / f"worker-{name}.log"
    base_url = f"http://{settings.web_host}:{overrides['web_port']}"
    with worker_process(settings, log_file, **overrides) as worker, RssSampler(worker.pid) as rss:
        started = time.monotonic()
        wait_until_done(base_url, produced, worker, timeout=600 + n_events / 1000)
        end_progress()
        seconds = time.monotonic() - started
        # The last batches' checkpoint comes up to a checkpoint period after them.
        checkpoints = _settled(
            f"{base_url}/metrics?" + "&".join(f"name[]={n}" for n in CHECKPOINT_COUNTERS),
            settings.checkpoint_seconds + 1,
        )
        before_scrapes = max(rss.mb_over(started, time.monotonic()), default=0.0)
        scrapes: list[float] = []
        text = ""
        for _ in range(SCRAPES):
            asked = time.monotonic()
            try:  # Prometheus's own limit is its scrape_timeout (10 s by default): a slower page is a finding
                text = _get(f"{base_url}/metrics", timeout=SCRAPE_TIMEOUT).decode()
            except OSError as exc:
                _say(f"{name}: a /metrics scrape failed after {time.monotonic() - asked:.1f} s ({exc}): not timed")
                continue
            scrapes.append(time.monotonic() - asked)
        end_rss = megabytes(proc_status_kb(worker.pid, "VmRSS") or 0)
        peak = rss.peak_mb()
    return {
        "agents": agents,
        "queues": queues,
        "hours": hours,
        "events": n_events,
        "seconds_with_start_up": seconds,
        "peak_rss_mb": peak,
        "rss_mb_after": end_rss,
        "peak_rss_mb_before_scrapes": before_scrapes,
        "scrape_seconds": percentile(scrapes, 0.5) if scrapes else None,
        "scrapes": SCRAPES,
        "scrapes_failed": SCRAPES - len(scrapes),
        "series": _series(text),
        "exposition_bytes": len(text),
        "checkpoints": checkpoints.get("cc_pipeline_checkpoints_total", 0.0),
        "checkpoint_bytes": checkpoints.get("cc_pipeline_checkpoint_bytes_total", 0.0),
    }


CHECKPOINT_COUNTERS = ("cc_pipeline_checkpoints_total", "cc_pipeline_checkpoint_bytes_total")
SCRAPES = 5  # full /metrics scrapes timed at the end of a memory or growth run
SCRAPE_TIMEOUT = 120.0  # seconds each may take


def _settled(url: str, quiet: float, timeout: float = 60) -> dict[str, float]:
    """The counters on a /metrics page (summed over their labels) once they have not moved for `quiet` seconds."""
    from prometheus_client.parser import text_string_to_metric_families

    deadline = time.monotonic() + timeout
    last: dict[str, float] = {}
    since = time.monotonic()
    while True:
        now: dict[str, float] = {}
        for family in text_string_to_metric_families(_get(url).decode()):
            for sample in family.samples:
                now[sample.name] = now.get(sample.name, 0.0) + sample.value
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return last
        if time.monotonic() > deadline:
            moving = ", ".join(f"{name} {value:,.0f}" for name, value in sorted(now.items()))
            raise TimeoutError(f"{url}: the counters were still moving after {timeout:.0f}s ({moving})")
        time.sleep(0.5)


# ---------------------------------------------------------------------------------------------- replay


def replay_day(opts: argparse.Namespace, log_dir: Path, data_dir: Path) -> dict:
    from pipeline.tools.simulate import write_jsonl

    path = data_dir / "replay-day.jsonl"
    _say(f"replay: simulating a {opts.replay_agents}-agent day")
    n = write_jsonl(events_of(opts.replay_agents, 24, opts.seed), path)
    _say(f"replay: {n} events through `replay` ({opts.events_per_message} per message)")
    summary = replay(path, data_dir / "replay-kpis.jsonl", opts.events_per_message, log_dir=log_dir / "replay")
    end_progress()
    return {
        "agents": opts.replay_agents,
        "events": summary.events,
        "messages": summary.messages,
        "final_records": summary.final_records,
        "seconds": summary.seconds,
    }


# ---------------------------------------------------------------------------------------------- processors


def processors(opts: argparse.Namespace) -> dict:
    """The contact, agent and FCR processors alone, without Kafka or Faust: the pipeline's own cost per message at
    one event per message, in batches of 1,000 taken every 0.25 s of a simulated wall clock (so provisional records
    come every 20 batches, as in the worker). FCR: forwarding each contact batch's offers (as the contact agent
    does) and applying them (as the FCR agent does), per contact message. Quick to A/B a change of the KPI code."""
    import msgspec

    from pipeline.contract.partitioner import partition_of
    from pipeline.core.settings import QueueConfig
    from pipeline.processing.fcr import CustomerContactForwarder, FcrProcessor, hash_key
    from pipeline.processing.processor import AgentProcessor, ContactProcessor, Message, PipelineStats
    from pipeline.runtime.producer import route

    n = opts.events
    _say(f"processors: simulating {n} events")
    settings = load_settings()
    contact, agent = (
        ContactProcessor(settings, QueueConfig(), PipelineStats()),
        AgentProcessor(settings, PipelineStats()),
    )
    messages: dict[str, list[Message]] = {"contact": [], "agent": []}
    offsets: Counter[tuple[str, int]] = Counter()  # each partition's offsets follow on, as Kafka's do
    for e in itertools.islice(events_of(agents_for(n), 24, opts.seed), n):
        topic, key = route(e)  # as EventWriter sends them
        p = partition_of(key, settings.partitions)
        messages[topic.removesuffix("-events")].append(
            Message(topic, p, offsets[topic, p], key, msgspec.json.encode(e))
        )
        offsets[topic, p] += 1
    fcr = FcrProcessor(settings, QueueConfig(), PipelineStats())
    forwarder = CustomerContactForwarder(hash_key(settings), settings.partitions, settings.max_message_bytes)
    seconds = {"contact": 0.0, "agent": 0.0, "fcr": 0.0}
    forwarded = 0
    # The worker's collector: what is loaded so far out of its sight (its full collections walk the processors'
    # state, not the libraries and the prepared messages) and the worker's thresholds; both undone after.
    threshold = gc.get_threshold()
    tune_collector()
    for name, processor in (("contact", contact), ("agent", agent)):
        batch, wall = messages[name], 0.0
        for i in range(0, len(batch), 1000):
            wall += 0.25
            started = time.perf_counter()
            result = processor.process(batch[i : i + 1000], wall_now=wall)
            seconds[name] += time.perf_counter() - started
            if processor is contact:
                started = time.perf_counter()
                watermarks = {p: s.watermark for p, s in contact.partitions.items()}
                offers = []
                for o in forwarder.messages(result.offered, watermarks):
                    offers.append(Message(fcr.topic, o.partition, offsets[fcr.topic, o.partition], o.key, o.value))
                    offsets[fcr.topic, o.partition] += 1
                forwarded += len(offers)
                fcr.process(offers, wall_now=wall)
                seconds["fcr"] += time.perf_counter() - started
    gc.unfreeze()
    gc.set_threshold(*threshold)
    out = {}
    for name, n in (
        ("contact", len(messages["contact"])),
        ("agent", len(messages["agent"])),
        ("fcr", len(messages["contact"])),
    ):
        out[name] = {"messages": n, "seconds": seconds[name], "us_per_message": 1e6 * seconds[name] / max(1, n)}
        _say(f"processors: {name}: {n} messages, {out[name]['us_per_message']:.1f} us each")
    return out


def checkpoint_cost(opts: argparse.Namespace) -> dict:
    """A contact partition's checkpoint on a realistic state, without Kafka or Faust: the first
    `--checkpoint-messages` contact messages of a simulated `--agents` center's busy morning (from 09:00) through a
    ContactProcessor in batches of 1,000 (0.25 s of wall clock each), its changes checkpointed every 8 batches
    as the worker does; then the largest partition's whole checkpoint (snapshot + zstd) and its restore (unpack +
    restore), `--checkpoint-repeats` times. Median and range in ms."""
    import statistics

    import msgspec

    from pipeline.contract.partitioner import partition_of
    from pipeline.core.settings import QueueConfig
    from pipeline.processing.processor import ContactProcessor, Message, PipelineStats, pack, unpack
    from pipeline.runtime.producer import route

    settings = load_settings()
    p = ContactProcessor(settings, QueueConfig(), PipelineStats())
    wanted = opts.checkpoint_messages
    _say(f"checkpoints: feeding {wanted} contact messages of a {opts.agents}-agent center")
    batch: list[Message] = []
    offsets: Counter[int] = Counter()
    n = batches = rounds = delta_bytes = 0
    delta_seconds = 0.0
    for e in events_of(opts.agents, 4, opts.seed):
        topic, key = route(e)
        if topic != "contact-events":
            continue
        p_key = partition_of(key, settings.partitions)
        batch.append(Message(topic, p_key, offsets[p_key], key, msgspec.json.encode(e)))
        offsets[p_key] += 1  # each partition's offsets follow on, as Kafka's do
        n += 1
        if len(batch) == 1000 or n == wanted:
            batches += 1
            p.process(batch, wall_now=batches * 0.25)
            batch = []
            if batches % 8 == 0:
                started = time.perf_counter()
                changes = p.checkpoint()
                delta_seconds += time.perf_counter() - started
                delta_bytes += sum(len(c.delta) for c in changes.values() if c.delta is not None)
                rounds += 1
        if n == wanted:
            break
    if batch:  # the center's events ended first
        p.process(batch, wall_now=(batches + 1) * 0.25)
    gc.collect()
    partition, state = max(p.partitions.items(), key=lambda kv: len(kv[1].snapshot()))
    write, read = [], []
    for _ in range(opts.checkpoint_repeats):
        # Each repeat from a full collection: a full one triggered by the previous repeat's objects walks the
        # whole heap of this process (every partition) and would be timed as the next repeat's.
        gc.collect()
        started = time.perf_counter()
        stored = pack(state.snapshot())
        write.append(time.perf_counter() - started)
        restored = p.new_state()
        gc.collect()
        started = time.perf_counter()
        restored.restore(unpack(stored))
        read.append(time.perf_counter() - started)

    def ms(xs: list[float]) -> dict:
        return {"median": 1e3 * statistics.median(xs), "min": 1e3 * min(xs), "max": 1e3 * max(xs)}

    out: dict = {
        "messages": n,
        "partition": partition,
        "legs": len(state.legs),
        "agents": len(state.agent_totals),
        "encoded_bytes": len(state.snapshot()),
        "stored_bytes": len(stored),
        "snapshot_ms": ms(write),
        "restore_ms": ms(read),
        "changes_bytes_per_round": delta_bytes / max(1, rounds),
        "changes_ms_per_round": 1e3 * delta_seconds / max(1, rounds),
    }
    _say(
        f"checkpoints: partition {partition} ({out['legs']} legs, {out['agents']} agents): "
        f"{out['encoded_bytes'] / 1e6:.2f} MB, {out['stored_bytes'] / 1e6:.3f} MB stored; snapshot + pack "
        f"{out['snapshot_ms']['median']:.1f} ms, unpack + restore {out['restore_ms']['median']:.1f} ms"
    )
    return out


# ---------------------------------------------------------------------------------------------- the run


def machine() -> dict:
    info: dict[str, object] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        info["cpu"] = model.group(1) if model else platform.processor()
        mem = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        info["memory_gib"] = round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None
    except OSError:
        pass
    from importlib.metadata import version

    for package in ("faust-streaming", "aiokafka", "msgspec"):
        info[package] = version(package)
    return info


def figures(results: dict) -> list[dict]:
    """The table's rows: figure, value, unit, target (text) and whether it is met (None: no target)."""
    rows: list[dict] = []

    def row(name: str, value, unit: str, target: str = "", ok: bool | None = None) -> None:
        rows.append({"figure": name, "value": value, "unit": unit, "target": target, "ok": ok})

    c = results.get("checkpoints")
    if c:
        size = f"{c['legs']} legs, {c['agents']} agents, {c['stored_bytes']:,} bytes stored"
        row(f"contact partition checkpoint written (snapshot + zstd), median; {size}", c["snapshot_ms"]["median"], "ms")
        row("contact partition checkpoint restored (unpack + restore), median", c["restore_ms"]["median"], "ms")
    for name, p in results.get("processors", {}).items():
        what = "FCR forwarding and processor, per contact message" if name == "fcr" else f"{name} processor"
        row(f"{what} alone (no Kafka, no Faust), 1 event/message", p["us_per_message"], "us/message")
    t = results.get("throughput")
    if t:
        raw, empty, one = t["raw_consumer"], t["empty_agent"], t["pipeline_1"]
        row("raw aiokafka consumer + JSON decode (floor), 1 event/message", raw["events_per_second"], "events/s")
        ratios = t.get("ratios_1") or [one["events_per_second"] / empty["events_per_second"]]
        ratio = one["events_per_second"] / empty["events_per_second"]
        of = f" (the median of {len(ratios)} back-to-back pairs)" if len(ratios) > 1 else ""
        row(f"empty Faust agent (Faust's ceiling), 1 event/message{of}", empty["events_per_second"], "events/s")
        row(
            f"full KPI pipeline, 1 event/message{of}",
            one["events_per_second"],
            "events/s",
            ">= 0.75 x empty agent",
            ratio >= 0.75,
        )
        each = f" (each pair, in the order run: {', '.join(f'{r:.3f}' for r in ratios)})" if len(ratios) > 1 else ""
        row(f"  ratio full pipeline / empty Faust agent{each}", ratio, "", ">= 0.75", ratio >= 0.75)
        row("  ratio full pipeline / raw floor", one["events_per_second"] / raw["events_per_second"], "")
        row("  ratio empty Faust agent / raw floor", empty["events_per_second"] / raw["events_per_second"], "")
        batched = [v for key, v in t.items() if key.startswith("pipeline_") and v["events_per_message"] > 1]
        for b in batched:
            a = b["achieved_per_message"]
            rates = b.get("rounds_events_per_second", [])
            of = f"; the round of the median, of {', '.join(f'{r:,.0f}' for r in rates)}" if len(rates) > 1 else ""
            row(
                f"full KPI pipeline, up to {b['events_per_message']} events/message (achieved {a['all']:.1f}: "
                f"contact {a['contact-events']:.1f}, agent {a['agent-events']:.1f}{of})",
                b["events_per_second"],
                "events/s",
                ">= 25,000",
                b["events_per_second"] >= 25_000,
            )
            row("  ratio batched / 1 event per message", b["events_per_second"] / one["events_per_second"], "")
        peer_rows(t, row)
        row(
            "worker peak resident memory, throughput runs",
            max(v["peak_rss_mb"] for key, v in t.items() if key.startswith("pipeline_")),
            "MB",
        )
    if results.get("scale"):
        bench_scale.figure_rows(results["scale"], row)
    lat = results.get("latency")
    if lat:
        where = f"at {lat['offered_events_per_second']:,.0f} events/s for {lat['seconds']:.0f}s"
        for name, key in (("/metrics", "metrics"), ("KPI topic", "kpi_topic")):
            s = lat[key]
            missing = f", {s['missing']} of {lat['probes']} never seen" if s["missing"] else ""
            row(f"latency to {name} p50 ({where}{missing})", s["p50"], "s")
            if key == "metrics":
                row(
                    f"latency to {name} p99",
                    s["p99"],
                    "s",
                    "<= 1 s",
                    s["p99"] is not None and s["p99"] <= 1.0 and not s["missing"],
                )
            else:
                row(f"latency to {name} p99 (records every {lat['kpi_update_seconds']:g}s)", s["p99"], "s")
            row(f"latency to {name} max", s["max"], "s")
        row("/metrics?name[]=cc_queue_offered_total scrape, median, latency run", lat["scrape_seconds_p50"], "s")
        row("worker resident memory, first minute of the latency run", lat["rss_mb_start"], "MB")
        row("worker resident memory, last minute of the latency run", lat["rss_mb_end"], "MB", "flat")
        if lat.get("simulated_days", 1) > 1:
            a, b, c = (round(x or 0) for x in lat["rss_mb_thirds"])
            row(
                f"  worker resident memory at the end of each third ({lat['agents']:,} agents over "
                f"{lat['simulated_days']:g} simulated days): {a}, {b}, {c} MB; peak",
                lat["peak_rss_mb"],
                "MB",
            )
            held = [h or {} for h in lat["state_thirds"]]
            kinds = "; ".join(
                f"{kind.replace('_', ' ')} " + "/".join(f"{h.get(kind, 0):,}" for h in held)
                for kind in sorted({k for h in held for k in h})
            )
            row(
                f"  state held at the end of each third ({kinds}); entries at the end",
                sum(held[-1].values()),
                "",
                "flat",
            )
    mem = results.get("memory")
    if mem:
        what = f"{mem['agents']:,} agents, {mem['queues']} queues, {mem['hours']:g} h ({mem['events']:,} events)"
        row(f"worker peak resident memory, {what}", mem["peak_rss_mb"], "MB", "<= 300 MB", mem["peak_rss_mb"] <= 300)
        row(
            "worker peak resident memory before the five full /metrics scrapes", mem["peak_rss_mb_before_scrapes"], "MB"
        )
        row(f"/metrics scrape with {mem['queues']} queues ({mem['series']:,} series)", bench_growth.scraped(mem), "s")
    if results.get("growth"):
        bench_growth.figure_rows(results["growth"], row)
    if results.get("scrape"):
        bench_scrape.figure_rows(results["scrape"], row)
    rep = results.get("replay")
    if rep:
        row(
            f"replay of a simulated {rep['agents']:,}-agent day ({rep['events']:,} events)",
            rep["seconds"],
            "s",
            "< 60 s",
            rep["seconds"] < 60,
        )
    if results.get("ingest"):
        from pipeline.tools.bench_ingest import rows as ingest_rows

        for name, value, unit, target, ok in ingest_rows(results["ingest"]):
            row(name, value, unit, target, ok)
    if "webhook" in results:
        bench_webhook.figure_rows(results["webhook"], row)
    if results.get("sinks"):
        from pipeline.tools.bench_sinks import figures as sink_figures

        sink_figures(results["sinks"], row)
    return rows


def peer_rows(t: dict, row) -> None:  # noqa: ANN001 (figures' row function)
    """The Quix Streams peer's rows, and the worker's ratio to it (the issue's targets), or why it did not run."""
    what = "Quix Streams, per-key 15-minute windowed counts (RocksDB state, changelog)"
    if "not_run" in t.get("peer", {}):
        row(f"{what}: not run", t["peer"]["not_run"], "")
        return
    quix, ratios = t["quix_1"], t["quix_ratios_1"]
    of = f" (the round of the median ratio, of {len(ratios)})" if len(ratios) > 1 else ""
    row(f"{what}, 1 event/message{of}", quix["events_per_second"], "events/s")
    median = sorted(ratios)[len(ratios) // 2]
    each = f" (each round, in the order run: {', '.join(f'{r:.3f}' for r in ratios)})" if len(ratios) > 1 else ""
    row(f"  ratio full pipeline / Quix Streams, 1 event/message{each}", median, "", ">= 1.2", median >= 1.2)
    cpu_rows(t, 1, row)
    for key, b in t.items():
        if not key.startswith("quix_") or key == "quix_1" or key.startswith("quix_ratios_"):
            continue
        per_message = int(key.removeprefix("quix_"))
        ratios = t.get(f"quix_ratios_{per_message}") or [
            t[f"pipeline_{per_message}"]["events_per_second"] / b["events_per_second"]
        ]
        of = f" (the round of the median ratio, of {len(ratios)})" if len(ratios) > 1 else ""
        row(f"{what}, up to {per_message} events/message{of}", b["events_per_second"], "events/s")
        median = sorted(ratios)[len(ratios) // 2]
        each = f" (each round, in the order run: {', '.join(f'{r:.3f}' for r in ratios)})" if len(ratios) > 1 else ""
        row(
            f"  ratio full pipeline / Quix Streams, up to {per_message} events/message{each}",
            median,
            "",
            ">= 1.5",
            median >= 1.5,
        )
        cpu_rows(t, per_message, row)


def cpu_rows(t: dict, per_message: int, row) -> None:  # noqa: ANN001 (figures' row function)
    """CPU per event of the pipeline and of the peer (medians over the rounds) and their ratio in each round: unlike
    the ratio of rates, not moved by what else runs on the machine meanwhile (the broker, another process)."""
    rounds = [r for r in t.get(f"cpu_quix_{per_message}", []) if r["pipeline"] and r["quix"]]
    if not rounds:
        return
    framing = "1 event/message" if per_message == 1 else f"up to {per_message} events/message"
    ratios = [r["quix"] / r["pipeline"] for r in rounds]
    of = f", median of {len(rounds)} rounds" if len(rounds) > 1 else ""
    ours, theirs = (statistics.median([r[who] for r in rounds]) for who in ("pipeline", "quix"))
    row(f"  CPU per event, full pipeline, {framing} (its threads{of})", ours, "us")
    row(f"  CPU per event, Quix Streams, {framing} (its threads, librdkafka's too{of})", theirs, "us")
    each = f" (each round: {', '.join(f'{r:.3f}' for r in ratios)})" if len(ratios) > 1 else ""
    row(f"  ratio Quix Streams' CPU per event / the pipeline's, {framing}{each}", statistics.median(ratios), "")


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def table(rows: list[dict]) -> str:
    cells = [
        (r["figure"], _fmt(r["value"]), r["unit"], r["target"], "" if r["ok"] is None else ("yes" if r["ok"] else "NO"))
        for r in rows
    ]
    head = ("figure", "value", "unit", "target", "met")
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(len(head))]
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    for c in cells:
        lines.append(
            "  ".join((c[i].rjust(widths[i]) if i == 1 else c[i].ljust(widths[i])) for i in range(len(head))).rstrip()
        )
    return "\n".join(lines)


@contextmanager
def run_folders(opts: argparse.Namespace) -> Iterator[tuple[Path, Path]]:
    """(logs, data) of one run. The data files (the replayed day and its KPI records, the ingest phase's files:
    ~190 MB at the defaults) are removed at the end unless `--keep`; the logs stay in `--log-dir`, else they go
    to a temporary folder that is removed after a successful run (kept, and named, after a failure)."""
    work = Path(tempfile.mkdtemp(prefix="cc-bench-"))
    logs = opts.log_dir or work / "logs"
    data = (opts.log_dir if opts.keep and opts.log_dir else work) / "data"  # only a folder of our own is removed
    logs.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    _say(f"logs in {logs}" + ("" if opts.log_dir else " (removed after a successful run; --log-dir to keep them)"))
    succeeded = False
    try:
        yield logs, data
        succeeded = True
    finally:
        if opts.keep:
            _say(f"data files kept in {data} (--keep)")
        else:
            shutil.rmtree(data, ignore_errors=True)  # in `work`
        if not succeeded and not opts.log_dir:
            _say(f"the benchmark failed: its logs are in {logs}")
        elif not (opts.keep and not opts.log_dir):
            shutil.rmtree(work, ignore_errors=True)


def bench(opts: argparse.Namespace) -> dict:
    with run_folders(opts) as (log_dir, data_dir):
        return _bench(opts, log_dir, data_dir)


def _bench(opts: argparse.Namespace, log_dir: Path, data_dir: Path) -> dict:
    base = load_settings()
    run_id = uuid.uuid4().hex[:8]
    _say(f"benchmark {run_id}")
    options = {k: str(v) if isinstance(v, Path) else v for k, v in vars(opts).items() if k != "json"}
    results: dict = {
        "machine": machine(),
        "options": options,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if "processors" in opts.phases:
        results["processors"] = processors(opts)
    if "checkpoints" in opts.phases:
        results["checkpoints"] = checkpoint_cost(opts)
    if "scrape" in opts.phases:
        results["scrape"] = bench_scrape.scrape(opts)
    on_broker = [
        (name, phase)
        for name, phase in (
            ("throughput", throughput),
            ("scale", bench_scale.scale),  # 1, 2, 4 workers of one group (pipeline/tools/bench_scale.py)
            ("latency", latency),
            ("memory", memory),
            ("webhook", bench_webhook.webhook),  # the webhook receiver's requests/s (pipeline/tools/bench_webhook.py)
        )
        if name in opts.phases
    ]
    if on_broker:
        with broker_for(base, log_dir) as settings:
            results["broker"] = "external" if base.broker_url else "embedded Tansu (same machine)"
            for name, phase in on_broker:
                results[name] = phase(settings, opts, run_id, log_dir)
    if "growth" in opts.phases:  # a broker of its own per size: the embedded one holds every record in memory
        results["growth"] = bench_growth.growth(base, opts, run_id, log_dir)
    if "sinks" in opts.phases:
        from pipeline.tools.bench_sinks import bench_sinks

        with broker_for(base, log_dir) as settings:
            results["sinks"] = bench_sinks(settings, opts, run_id, log_dir, data_dir)
    if "replay" in opts.phases and opts.replay_agents > 0:
        results["replay"] = replay_day(opts, log_dir, data_dir)  # like the command: its own embedded broker
    if "ingest" in opts.phases:
        from pipeline.tools import bench_ingest

        results["ingest"] = bench_ingest.ingest_phase(opts, data_dir)
    results["figures"] = figures(results)
    return results


def _at_least_one(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n}: at least 1")
    return n


def _phases(text: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in names if p not in PHASES + OPT_IN_PHASES]
    if unknown:
        allowed = ", ".join(PHASES + OPT_IN_PHASES)
        raise argparse.ArgumentTypeError(f"unknown phase(s) {', '.join(unknown)}: allowed {allowed}")
    return names


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipeline bench",
        description="Throughput, latency and memory of the real worker, with references.",
    )
    p.add_argument("--events", type=int, default=100_000, help="events pre-loaded for the throughput runs")
    p.add_argument(
        "--events-per-message",
        type=int,
        default=100,
        help="events per Kafka message of the batched runs (the pipeline also runs at 1)",
    )
    p.add_argument(
        "--rounds",
        type=_at_least_one,
        default=3,
        help="back-to-back pairs of empty agent and pipeline at 1 event/message; the median ratio counts",
    )
    p.add_argument(
        "--peer-python",
        default=sys.executable,
        help="the Python that runs the Quix Streams peer in the throughput phase (default: this one); the peer is "
        "skipped, and the table says why, when Quix Streams is not installed there (pip install '.[bench]')",
    )
    p.add_argument("--latency-rate", type=float, default=2000.0, help="offered events/s of the latency run")
    p.add_argument(
        "--latency-seconds",
        type=float,
        default=300.0,
        help="how long the latency run offers events (3600: a one-hour soak)",
    )
    p.add_argument(
        "--latency-days",
        type=float,
        default=1.0,
        help="simulated days the latency run's events span (a soak over several lets FCR windows expire)",
    )
    p.add_argument("--agents", type=int, default=5000, help="agents of the memory run's center")
    p.add_argument("--queues", type=int, default=200, help="queues of the memory run's center")
    p.add_argument("--memory-hours", type=float, default=24.0, help="simulated hours of the memory run")
    p.add_argument(
        "--checkpoint-messages",
        type=int,
        default=1_000_000,
        help="contact messages of the --agents center fed before the checkpoint phase measures",
    )
    p.add_argument("--checkpoint-repeats", type=_at_least_one, default=5, help="repeats of the checkpoint phase")
    bench_scale.add_arguments(p)
    bench_growth.add_arguments(p)
    p.add_argument("--scrape-hours", type=float, default=4.0, help="simulated hours fed before the scrape phase")
    p.add_argument("--scrape-repeats", type=_at_least_one, default=5, help="full scrapes timed by the scrape phase")
    p.add_argument("--replay-agents", type=int, default=1000, help="agents of the replayed day (0: skip)")
    from pipeline.tools.bench_ingest import add_arguments

    add_arguments(p)
    p.add_argument("--webhook-requests", type=int, default=20_000, help="requests of each webhook round")
    p.add_argument("--webhook-concurrency", type=int, default=64, help="connections posting to the webhook receiver")
    p.add_argument(
        "--phases",
        type=_phases,
        default=PHASES,
        help=f"comma-separated subset of {','.join(PHASES)} (default: all), or {','.join(OPT_IN_PHASES)}",
    )
    p.add_argument("--seed", type=int, default=1)
    from pipeline.tools.bench_sinks import add_arguments

    add_arguments(p)
    p.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    p.add_argument(
        "--log-dir",
        type=Path,
        help="where logs go, kept (default: a temporary folder, removed after a successful run)",
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the data files (the replayed day and its KPI records, the ingest files) in a data folder",
    )
    return p


def main_bench(argv: list[str]) -> int:
    opts = parser().parse_args(argv)
    processes.interrupt_on_sigterm()
    results = bench(opts)
    results["command"] = "python -m pipeline bench " + " ".join(argv)
    print(table(results["figures"]))
    if opts.json:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        _say(f"results written to {opts.json}")
    return 0


# ---------------------------------------------------------------------------------------------- references


def _write_result(path: Path, result: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(result))
    tmp.rename(path)  # atomic: the benchmark never reads half a file


def empty_agent(messages: int, out: Path) -> int:
    """A Faust worker whose agents take the same batches as the pipeline's and do nothing with them."""
    import faust

    from pipeline.runtime.transport import App, kafka_urls

    settings = load_settings()
    # The consumer settings of pipeline.runtime.app.create_app that bear on speed, so the two compare like for like.
    app = App(
        settings.app_id,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        broker=kafka_urls(settings.broker_url),
        broker_credentials=faust_credentials(settings),
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=settings.session_timeout_seconds / 3,
        consumer_max_fetch_size=settings.fetch_partition_bytes,
        broker_max_poll_records=settings.batch_max_messages,
        stream_buffer_maxsize=max(4096, settings.batch_max_messages * 2),
    )
    state: dict = {"messages": 0, "idle": None, "first": None}

    def count(batch) -> None:
        if state["first"] is None:  # as the worker's: when the first batch began (no work to do here)
            first = state["first"] = [time.monotonic(), state["messages"]]
            state["idle"] = state["idle"] or first[0]
        state["messages"] += len(batch)
        if state["messages"] >= messages and "end" not in state:
            state["end"] = time.monotonic()
            _write_result(out, state)

    for name in ("contact-events", "agent-events"):
        topic = app.topic(
            settings.topic(name),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )

        async def agent(stream: faust.StreamT) -> None:
            batches = stream.take_events(settings.batch_max_messages, within=settings.flush_seconds)  # type: ignore[attr-defined]  # on Stream, not in StreamT
            async for batch in batches:
                count(batch)

        app.agent(topic, name=f"empty-{name}")(agent)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # mode types a handler as taking any *args; this signal sends one
    async def on_assigned(sender, assigned, **kwargs) -> None:  # noqa: ANN001
        if assigned and state["messages"] == 0:
            state["idle"] = time.monotonic()  # from here on the agent could read

    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()
    return 0


def raw_consumer(messages: int, out: Path) -> int:
    """aiokafka `getmany` over both topics, decoding each message's JSON and counting the events."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    settings = load_settings()

    async def consume() -> dict:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers(settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **client_options(settings),
        )
        await consumer.start()
        try:
            tps = [
                TopicPartition(settings.topic(name), p)
                for name in ("contact-events", "agent-events")
                for p in sorted(consumer.partitions_for_topic(settings.topic(name)) or [])
            ]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            n = events = 0
            idle = time.monotonic()
            first = None
            while n < messages:
                batches = await consumer.getmany(timeout_ms=500)
                if first is None and any(batches.values()):  # when the first batch began, as the worker's
                    first = [time.monotonic(), n]
                for msgs in batches.values():
                    for m in msgs:
                        value = orjson.loads(m.value)
                        events += len(value) if isinstance(value, list) else 1
                    n += len(msgs)
                if not n:
                    idle = time.monotonic()
            return {"messages": n, "events": events, "idle": idle, "first": first, "end": time.monotonic()}
        finally:
            await consumer.stop()

    _write_result(out, asyncio.run(consume()))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["empty-agent"], ["raw-consumer"]):
        p = argparse.ArgumentParser(prog=f"python -m pipeline.tools.bench {argv[0]}")
        p.add_argument("--messages", type=int, required=True)
        p.add_argument("--out", type=Path, required=True)
        args = p.parse_args(argv[1:])
        return (empty_agent if argv[0] == "empty-agent" else raw_consumer)(args.messages, args.out)
    return main_bench(argv)


if __name__ == "__main__":
    sys.exit(main())
