"""`python -m pipeline replay EVENTS.jsonl --kpi-out KPIS.jsonl`: push a file of events through the real worker
and write every final KPI record it produced.

Steps: read and check the file and the queue configuration (before anything starts) → broker (embedded unless
PIPELINE_BROKER_URL is set) → fresh topics under a unique prefix → the file's events, in event-time order → a
closing heartbeat past every interval → a worker → wait until the worker has applied everything and closed every
interval → read the KPI topic → write the final records, sorted, one JSON object per line.

Lenient by default: a line that is not an event of the contract (bad JSON, an unknown type, an invalid field) is
dead-lettered with its line number (`KPIS.jsonl.dead-letters.jsonl`) and the rest is replayed; `strict=True`
(`--strict`) refuses the whole file instead, before anything is sent. A file out of time order is replayed in
time order (and says so), never counted late. Broker and worker logs go to a temporary folder that is removed
after a successful run (kept, and named, after a failure), or to `log_dir` (`--log-dir`), which is kept.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import deque
from collections.abc import Iterable, Sized
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from pipeline.core.settings import QueueConfig, Settings, load_settings
from pipeline.runtime.broker import bootstrap_servers, ensure_topics, free_port
from pipeline.runtime.kpi_topic import read_final_records
from pipeline.runtime.producer import EventWriter
from pipeline.tools.run import broker_for, worker_process


class ReplayRefused(Exception):
    """A user's mistake found before anything started (missing file, refused lines with --strict, no broker)."""


@dataclass
class ReplaySummary:
    events: int
    messages: int
    final_records: int
    rejected: int
    duplicates: int
    late: int
    seconds: float
    metrics: str  # the worker's /metrics text at the end
    dead_lettered: dict[str, list[int]] = field(default_factory=dict)  # reason -> line numbers
    out_of_order: int = 0  # events earlier than one before them in the file (replayed in time order)
    log_dir: Path | None = None  # where the logs are, if kept
    topic_prefix: str = ""  # the replay's topics (left on the broker): `<prefix>.kpis` holds every revision


@dataclass
class EventFile:
    events: list
    dead: list[tuple[int, str, str]]  # (line, reason, detail)
    out_of_order: int


def read_events(path: Path) -> EventFile:
    """The file's events in event-time order (stable), and the lines that are not contract events."""
    import msgspec

    from pipeline.contract.events import AgentTopicEvent, ContactTopicEvent

    decoder = msgspec.json.Decoder(ContactTopicEvent | AgentTopicEvent)
    events, dead, out_of_order, latest = [], [], 0, None
    try:
        lines = open(path, "rb")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise ReplayRefused(f"{path}: {exc.strerror or exc}") from None
    with lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                e = decoder.decode(line)
            except msgspec.ValidationError as exc:
                reason = "unknown_type" if "`$.type`" in str(exc) else "invalid"
                dead.append((number, reason, str(exc)[:200]))
                continue
            except msgspec.DecodeError as exc:
                dead.append((number, "malformed_json", str(exc)[:200]))
                continue
            if latest is not None and e.time < latest:
                out_of_order += 1
            else:
                latest = e.time
            events.append(e)
    if out_of_order:
        events.sort(key=lambda e: e.time)  # stable: the file's order within one instant
    return EventFile(events, dead, out_of_order)


@dataclass
class Produced:
    """What `_produce` wrote: what the worker must apply before it is done."""

    messages: int  # messages of events
    ends: dict[int, int]  # the contact topic's end offsets (the closing heartbeat is each partition's last)
    closing: datetime  # the closing heartbeat's time
    topic: str  # the contact topic
    source_messages: int  # every message on both event topics, heartbeats included (what the worker consumes)
    events: int = 0  # events written (heartbeats not counted)


async def _produce(
    settings: Settings, events: Iterable, events_per_message: int, horizon_seconds: float = 0.0
) -> Produced:
    """Write the events (a list, or a generator of a center too large to hold) and a closing heartbeat."""
    total = f"/{len(events):,}" if isinstance(events, Sized) else ""
    last: datetime | None = None
    sent = 0
    rate = Rate()
    events = iter(events)
    async with EventWriter(settings, bootstrap_servers(settings), events_per_message) as writer:
        while chunk := list(itertools.islice(events, 50_000)):
            await writer.write(chunk)
            newest = max(e.time for e in chunk)
            last = newest if last is None or newest > last else last
            sent += len(chunk)
            per_second = rate.add(time.monotonic(), sent)
            _progress(f"sent {sent:,}{total} events" + (f" ({per_second:,.0f}/s)" if per_second else ""))
        if last is None:
            raise ValueError("no events to write")
        # Past every interval, the allowed lateness and the longest of the contact timeout, `horizon_seconds` (the
        # longest FCR window) and a day (every local day record): the worker closes everything.
        longest = max(settings.contact_timeout_seconds, horizon_seconds, 86400.0)
        closing = last + timedelta(seconds=settings.interval_seconds * 2 + settings.allowed_lateness_seconds + longest)
        await writer.heartbeat(closing)
    topic = settings.topic("contact-events")
    return Produced(
        messages=writer.sent_messages,
        ends=writer.ends[topic],
        closing=closing,
        topic=topic,
        source_messages=sum(sum(ends.values()) for ends in writer.ends.values()),
        events=sent,
    )


def _get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (loopback only)
        return resp.read()


class ClosingHeartbeatRejected(RuntimeError):
    """The worker took the closing heartbeat and did not apply it: its partitions would never close."""


def closing_rejected(progress: dict, ends: dict[int, int], closing_ms: int, topic: str) -> str | None:
    """Why the worker refused the closing heartbeat, if it did: the heartbeat is the last message of every contact
    partition, so a partition applied to its end whose watermark is short of the heartbeat's time refused it."""
    parts = progress.get("partitions", {})
    refused = [
        p
        for p, end in sorted(ends.items())
        if str(p) in parts and parts[str(p)]["offset"] >= end - 1 and parts[str(p)]["watermark_ms"] < closing_ms
    ]
    if not refused:
        return None
    from pipeline.processing.decode import REJECTION_REASONS

    reasons = {
        key.split("|", 1)[1]: n for key, n in progress.get("rejected", {}).items() if key.split("|", 1)[0] == topic
    }
    why = "; ".join(
        f"{reason} ({n:,} so far: {REJECTION_REASONS.get(reason, reason)})" for reason, n in reasons.items()
    )
    return (
        f"the worker rejected the closing heartbeat ({_readable(closing_ms)}) on contact partition(s) "
        f"{', '.join(map(str, refused))}, so their intervals would never close; rejected on {topic}: "
        f"{why or 'none counted'}"
    )


def _readable(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Rate:
    """Messages per second over the last `window` seconds of samples (what a progress line shows)."""

    def __init__(self, window: float = 10.0) -> None:
        self.window = window
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, at: float, count: int) -> float | None:
        self.samples.append((at, count))
        while len(self.samples) > 2 and at - self.samples[1][0] >= self.window:
            self.samples.popleft()
        (t0, c0) = self.samples[0]
        return (count - c0) / (at - t0) if at > t0 else None


def progress_line(
    done: int, partitions: int, fcr_done: bool, consumed: int, total: int | None, rate: float | None
) -> str:
    """`worker: 2/4 partitions done, FCR pending, 12,345/40,000 messages consumed (3,210/s)`."""
    of = f"/{total:,}" if total else ""
    per_second = f" ({rate:,.0f}/s)" if rate is not None else ""
    return (
        f"worker: {done}/{partitions} partitions done, FCR {'done' if fcr_done else 'pending'}, "
        f"{consumed:,}{of} messages consumed{per_second}"
    )


def wait_until_done(base_url: str, produced: Produced, worker, timeout: float) -> dict:
    """Poll the worker's /progress until every partition is applied to its end and has nothing open.

    Gives up at once when the worker refused the closing heartbeat, and after `timeout` seconds otherwise."""
    deadline = time.monotonic() + timeout
    ends, messages = produced.ends, produced.source_messages
    closing_ms = round(produced.closing.timestamp() * 1000)
    rate = Rate()
    last: dict = {}
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"worker exited with status {worker.returncode} during the replay")
        try:
            last = orjson.loads(_get(f"{base_url}/progress"))
        except OSError:
            time.sleep(0.5)
            continue
        parts = last["partitions"]
        done = sum(
            1
            for p, end in ends.items()
            if str(p) in parts
            and parts[str(p)]["offset"] >= end - 1
            and parts[str(p)]["legs"] == 0
            and parts[str(p)]["open_intervals"] == 0
            and parts[str(p)].get("open_rollups", 0) == 0
        )
        # every contact partition forwards its watermark to every FCR partition, so all of them get messages
        fcr = last.get("fcr_partitions", {})
        fcr_done = len(fcr) == len(ends) and all(x["open_intervals"] == 0 for x in fcr.values())
        consumed = last.get("source_messages", 0)
        finished = done == len(ends) and fcr_done
        line = progress_line(done, len(ends), fcr_done, consumed, messages, rate.add(time.monotonic(), consumed))
        _progress(line, every=0 if finished else 10)
        if finished:
            return last
        if why := closing_rejected(last, ends, closing_ms, produced.topic):
            raise ClosingHeartbeatRejected(why)
        time.sleep(0.5)
    done_line = progress_line(done, len(ends), fcr_done, consumed, messages, None) if last else "no /progress answer"
    raise TimeoutError(f"the worker had not finished after {timeout:.0f}s; gave up at: {done_line}")


def replay(
    events_file: Path,
    kpi_out: Path,
    events_per_message: int = 100,
    timeout: float = 1800,
    strict: bool = False,
    log_dir: Path | None = None,
) -> ReplaySummary:
    started = time.monotonic()
    base = load_settings()
    QueueConfig.load(base.queues_file)  # a wrong queue file stops here, before any broker or folder exists
    read = read_events(events_file)
    if read.dead and strict:
        first = "; ".join(f"line {n}: {reason}" for n, reason, _ in read.dead[:5])
        more = f" and {len(read.dead) - 5} more" if len(read.dead) > 5 else ""
        raise ReplayRefused(
            f"{events_file}: {len(read.dead)} lines are not contract events ({first}{more}); nothing was sent (--strict)"
        )
    events = read.events
    if not events:
        raise ReplayRefused(f"{events_file}: no events")
    if read.dead:
        kpi_out.parent.mkdir(parents=True, exist_ok=True)
        with open(kpi_out.with_name(kpi_out.name + ".dead-letters.jsonl"), "w") as f:
            for n, reason, detail in read.dead:
                f.write(json.dumps({"line": n, "reason": reason, "detail": detail}) + "\n")
    run_id = uuid.uuid4().hex[:8]
    keep = log_dir is not None
    if log_dir is None:
        log_dir = Path(tempfile.mkdtemp(prefix="cc-replay-"))
    else:
        log_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"logs: {log_dir}" + ("" if keep else " (removed after a successful run; --log-dir to keep them)"),
        file=sys.stderr,
    )
    try:
        summary = _run(base, events, kpi_out, events_per_message, timeout, run_id, log_dir)
    except BaseException:
        print(f"\nthe replay failed: its logs are in {log_dir}", file=sys.stderr)
        raise
    if not keep:
        shutil.rmtree(log_dir, ignore_errors=True)
    dead: dict[str, list[int]] = {}
    for n, reason, _ in read.dead:
        dead.setdefault(reason, []).append(n)
    summary.dead_lettered, summary.out_of_order = dead, read.out_of_order
    summary.log_dir = log_dir if keep else None
    summary.seconds = time.monotonic() - started
    return summary


def _run(
    base: Settings, events: list, kpi_out: Path, events_per_message: int, timeout: float, run_id: str, log_dir: Path
) -> ReplaySummary:
    started = time.monotonic()
    with broker_for(base, log_dir) as settings:
        # A fresh consumer group and fresh topics: a replay never mixes with live data on a shared cluster.
        port = free_port("127.0.0.1")
        overrides = {
            "app_id": f"replay-{run_id}",
            "topic_prefix": f"replay-{run_id}",
            # its own worker, read by this process only: plain HTTP on loopback, whatever the live workers use
            "web_host": "127.0.0.1",
            "web_config_file": "",
            "web_port": port,
            "max_clock_skew_seconds": 7 * 86400,
            "kpi_update_seconds": 3600,
        }
        settings = load_settings(broker_url=settings.broker_url, **overrides)
        try:
            asyncio.run(ensure_topics(settings, timeout=30))
        except RuntimeError as exc:
            raise ReplayRefused(f"the broker does not answer: {exc}") from None
        queues = QueueConfig.load(settings.queues_file)
        fcr_window = max(r.fcr_window_hours for r in (queues.defaults, *queues.queues.values())) * 3600
        produced = asyncio.run(_produce(settings, events, events_per_message, fcr_window))
        with worker_process(settings, log_dir / "worker.log", **overrides) as worker:
            base_url = f"http://{settings.web_host}:{port}"
            progress = wait_until_done(base_url, produced, worker, timeout)
            metrics = _get(f"{base_url}/metrics").decode()
        records = asyncio.run(read_final_records(settings))
    kpi_out.parent.mkdir(parents=True, exist_ok=True)
    with open(kpi_out, "wb") as f:
        for r in records:
            f.write(orjson.dumps(r) + b"\n")
    return ReplaySummary(
        events=len(events),
        messages=produced.messages,
        final_records=len(records),
        rejected=sum(progress.get("rejected", {}).values()),
        duplicates=progress.get("duplicates", 0),
        late=progress.get("late", 0),
        seconds=time.monotonic() - started,
        metrics=metrics,
        topic_prefix=settings.topic_prefix,
    )


_last_line = 0.0


def _progress(text: str, every: float = 10.0) -> None:
    """One progress line: rewritten in place on a terminal, else (a log file) a line every `every` seconds."""
    global _last_line
    if sys.stderr.isatty():
        print(f"\r  {text}\033[K", end="", file=sys.stderr, flush=True)
    elif time.monotonic() - _last_line >= every:
        _last_line = time.monotonic()
        print(f"  {text}", file=sys.stderr, flush=True)


def end_progress() -> None:
    """Ends a progress line rewritten in place (nothing to end in a log)."""
    if sys.stderr.isatty():
        print(file=sys.stderr)
