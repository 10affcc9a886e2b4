"""The consuming side every sink shares: read the KPI topic, check each record, hand a batch to the target, commit.

The order of one batch is: fetch -> decode (a bad message is counted by reason and logged with its partition
and offset, never fatal) -> `target.write(records, next_offsets)`, one atomic step that keeps the higher revision
of each key -> commit the offsets to Kafka. A crash before the write loses nothing (the batch is read again); a
crash between the write and the commit re-delivers records the target already holds, which the revision rule makes
no-ops. A target that also stores the offsets in the same step (PostgreSQL) resumes from its own.

The target or the broker going away is waited out: the batch is retried with a growing pause (up to
`MAX_BACKOFF_SECONDS`), the outage logged once when it starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from pipeline.core.settings import Settings
from pipeline.runtime.broker import bootstrap_servers
from pipeline.runtime.kafka_security import client_options
from pipeline.runtime.kpi_topic import BAD_REASONS, KINDS, BadRecord, Record, decode_kpi

log = logging.getLogger("pipeline.sink")

MAX_BACKOFF_SECONDS = 10.0
PROGRESS_SECONDS = 5.0
START_TIMEOUT_SECONDS = 15.0
REJECTED = "rejected_by_target"  # a valid record the database or Parquet cannot hold (a NUL in a text, ...)
COMMIT_TIMEOUT_SECONDS = 5.0  # longer than this, the broker is taken as away (logged once, retried)


class SinkError(Exception):
    """A user's mistake (unreachable broker or database at start, bad DSN, no such topic): one sentence, exit 2."""


@dataclass(frozen=True)
class Item:
    """One valid record and where it came from."""

    record: Record
    partition: int
    offset: int
    published: float  # the message's timestamp (epoch seconds): when the worker published it


class Target(Protocol):
    name: str
    unavailable: tuple[type[Exception], ...]  # errors that mean "not reachable now": wait and retry
    rejected: list[tuple[Item, str]]  # after a write: the records it could not hold (counted as bad), and why

    def stored_offsets(self, topic: str) -> dict[int, int] | None:
        """The next offset per partition this target stored with its data; None: it stores none (the group's)."""
        ...

    def write(self, items: list[Item], topic: str, next_offsets: dict[int, int]) -> dict[str, int]:
        """Write the batch in one atomic step (with the offsets, if the target stores them); rows changed by kind."""
        ...

    def reconnect(self) -> None:
        """Called before retrying a write that failed with one of `unavailable`."""
        ...


@dataclass
class SinkOptions:
    group: str
    provisional: bool = False  # also write records with final false
    batch_records: int = 1000  # most messages in one write
    until_end: bool = False  # stop once the end offsets seen at start are written
    metrics_port: int | None = None  # None: no /metrics server
    progress: bool = True


@dataclass
class SinkSummary:
    read: int = 0
    written: int = 0  # rows inserted or replaced
    not_newer: int = 0  # records whose key already held this revision or a later one
    provisional_skipped: int = 0
    bad: dict[str, int] = field(default_factory=dict)
    outages: int = 0
    seconds: float = 0.0
    delays: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))  # publication -> committed, s

    @property
    def median_delay(self) -> float | None:
        return statistics.median(self.delays) if self.delays else None

    def line(self, name: str) -> str:
        rate = self.read / self.seconds if self.seconds else 0.0
        bad = sum(self.bad.values())
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(self.bad.items()))
        return (
            f"{name}: {self.read} records read in {self.seconds:.1f}s ({rate:.0f}/s), {self.written} rows written, "
            f"{self.not_newer} not newer than the stored revision, {self.provisional_skipped} provisional skipped, "
            f"{bad} bad{f' ({reasons})' if bad else ''}, {self.outages} outages"
            + (f"; publication to written: median {self.median_delay:.3f}s" if self.delays else "")
        )


class SinkMetrics:
    """The sink's own /metrics (an isolated registry)."""

    def __init__(self, sink: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.read = Counter("cc_sink_records_read", "KPI-topic messages read.", ["sink"], registry=r).labels(sink)
        self.written = Counter(
            "cc_sink_records_written", "Rows inserted or replaced by a newer revision.", ["sink", "kind"], registry=r
        )
        self.skipped = Counter(
            "cc_sink_records_skipped",
            "Valid records not written: `not_newer` (the key already held this revision or a later one), "
            "`provisional` (final false, and provisional records not asked for).",
            ["sink", "reason"],
            registry=r,
        )
        self.bad = Counter(
            "cc_sink_bad_records", "Messages that are not valid KPI records.", ["sink", "reason"], registry=r
        )
        self.errors = Counter(
            "cc_sink_errors", "Failed attempts to write or commit, retried.", ["sink", "what"], registry=r
        )
        self.lag = Gauge("cc_sink_lag_records", "Messages on the topic not yet written.", ["sink"], registry=r).labels(
            sink
        )
        self.delay = Histogram(
            "cc_sink_publication_delay_seconds",
            "From a record's publication on the KPI topic to its write being committed.",
            ["sink"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=r,
        ).labels(sink)
        for reason in (*BAD_REASONS, REJECTED):
            self.bad.labels(sink, reason)
        for kind in KINDS:
            self.written.labels(sink, kind)
        self.sink = sink


class _Outage:
    """Logs an outage of one thing once when it starts and once when it ends; the pause before the next try."""

    def __init__(self, what: str, summary: SinkSummary, metrics: SinkMetrics) -> None:
        self.what, self.summary, self.metrics = what, summary, metrics
        self.since: float | None = None
        self.backoff = 0.5

    def failed(self, exc: BaseException) -> float:
        self.metrics.errors.labels(self.metrics.sink, self.what).inc()
        if self.since is None:
            self.since = time.monotonic()
            self.summary.outages += 1
            log.warning("%s unavailable (%s); retrying with backoff until it is back", self.what, _first_line(exc))
        pause, self.backoff = self.backoff, min(self.backoff * 2, MAX_BACKOFF_SECONDS)
        return pause

    def ok(self) -> None:
        if self.since is not None:
            log.warning("%s back after %.1fs", self.what, time.monotonic() - self.since)
        self.since, self.backoff = None, 0.5


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    name = type(exc).__name__
    return (text[0] if text[0].startswith(name) else f"{name}: {text[0]}") if text else name


async def _start_consumer(settings: Settings, topic: str, group: str) -> tuple[AIOKafkaConsumer, list[TopicPartition]]:
    if not settings.broker_url:
        raise SinkError("PIPELINE_BROKER_URL is empty: set it to the pipeline's Kafka (a sink starts no broker)")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(settings),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=10_000,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,  # Tansu holds a fetch this long even when records are there
        retry_backoff_ms=500,
        **client_options(settings),  # TLS and SASL
    )
    client_log = logging.getLogger("aiokafka")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)  # an unreachable broker at start is one sentence of ours, below
    try:
        await asyncio.wait_for(consumer.start(), START_TIMEOUT_SECONDS)
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            await consumer.topics()
            parts = consumer.partitions_for_topic(topic)
    except (KafkaError, OSError, TimeoutError) as exc:
        await consumer.stop()
        client_log.setLevel(level)
        raise SinkError(
            f"cannot reach the Kafka broker at {settings.broker_url or '(PIPELINE_BROKER_URL is empty)'}: "
            f"{_first_line(exc)}"
        ) from None
    client_log.setLevel(level)
    if not parts:
        await consumer.stop()
        raise SinkError(f"the topic {topic} does not exist on {settings.broker_url} (check PIPELINE_TOPIC_PREFIX)")
    return consumer, [TopicPartition(topic, p) for p in sorted(parts)]


async def run_sink(settings: Settings, target: Target, options: SinkOptions, topic: str | None = None) -> SinkSummary:
    """Consume the KPI topic into `target` until SIGTERM/SIGINT (or the end, with `until_end`)."""
    topic = topic or settings.topic("kpis")
    summary, metrics = SinkSummary(), SinkMetrics(target.name)
    if options.metrics_port is not None:
        try:
            server, _ = start_http_server(options.metrics_port, settings.web_host, metrics.registry)
        except OSError as exc:
            raise SinkError(
                f"cannot serve /metrics on {settings.web_host}:{options.metrics_port} ({exc.strerror}): "
                "set --metrics-port or PIPELINE_SINK_WEB_PORT, or --no-metrics"
            ) from None
        log.info("%s sink: /metrics on http://%s:%d/metrics", target.name, settings.web_host, server.server_port)
    consumer, tps = await _start_consumer(settings, topic, options.group)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started = last_progress = time.monotonic()
    read_at_progress = 0
    try:
        consumer.assign(tps)
        stored = await asyncio.to_thread(target.stored_offsets, topic)
        if stored is not None:  # the target's own offsets are the truth: a partition it has none of, from the start
            for tp in tps:
                if tp.partition in stored:
                    consumer.seek(tp, stored[tp.partition])
                else:
                    await consumer.seek_to_beginning(tp)
        # else: the group's committed offsets, or the beginning (auto_offset_reset)
        ends = await consumer.end_offsets(tps) if options.until_end else {}
        positions = {tp.partition: await _position(consumer, tp) for tp in tps}
        log.info("%s sink: reading %s from offsets %s", target.name, topic, positions)
        db_outage, broker_outage = _Outage("database", summary, metrics), _Outage("broker", summary, metrics)
        while not stop.is_set():
            if options.until_end and await _caught_up(consumer, ends):
                break
            try:
                batches = await consumer.getmany(timeout_ms=500, max_records=options.batch_records)
            except KafkaError as exc:
                await asyncio.sleep(broker_outage.failed(exc))
                continue
            messages = [m for msgs in batches.values() for m in msgs]
            if messages:
                items = _decode(messages, options, summary, metrics)
                next_offsets = {tp.partition: msgs[-1].offset + 1 for tp, msgs in batches.items() if msgs}
                changed = await _retry(partial(target.write, items, topic, next_offsets), target, db_outage, stop)
                if changed is None:  # stopped while the target was away: nothing written, nothing committed
                    break
                commit = {TopicPartition(topic, p): OffsetAndMetadata(o, "") for p, o in next_offsets.items()}
                while not stop.is_set():
                    try:
                        await asyncio.wait_for(consumer.commit(commit), COMMIT_TIMEOUT_SECONDS)
                        broker_outage.ok()
                        break
                    except (KafkaError, TimeoutError) as exc:  # the write is done: a re-delivery would be no-ops
                        await asyncio.sleep(broker_outage.failed(exc))
                for it, why in target.rejected:
                    _bad(summary, metrics, REJECTED, it.partition, it.offset, topic, why)
                items = [it for it in items if all(it is not r for r, _ in target.rejected)]
                now = time.time()
                for it in items:
                    metrics.delay.observe(max(0.0, now - it.published))
                    summary.delays.append(max(0.0, now - it.published))
                for kind, n in changed.items():
                    metrics.written.labels(target.name, kind).inc(n)
                summary.written += sum(changed.values())
                summary.not_newer += len(items) - sum(changed.values())
                metrics.skipped.labels(target.name, "not_newer").inc(len(items) - sum(changed.values()))
            lag = await _lag(consumer, tps)
            metrics.lag.set(lag)
            summary.seconds = time.monotonic() - started
            if options.progress and time.monotonic() - last_progress >= PROGRESS_SECONDS:
                dt = time.monotonic() - last_progress
                print(
                    f"{target.name}: {summary.read} read ({(summary.read - read_at_progress) / dt:.0f}/s), "
                    f"{summary.written} written, lag {lag}, bad {sum(summary.bad.values())}",
                    file=sys.stderr,
                    flush=True,
                )
                last_progress, read_at_progress = time.monotonic(), summary.read
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await consumer.stop()
    summary.seconds = time.monotonic() - started
    return summary


async def _caught_up(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    """Whether every partition is read up to its end: the end offset listed at start and the high watermark of the
    last fetch (Tansu's ListOffsets answers a lower end than its fetches do, so both are needed)."""
    for tp, end in ends.items():
        high = consumer.highwater(tp)
        if high is None or await _position(consumer, tp) < max(end, high):
            return False
    return True


async def _position(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
    return int(await consumer.position(tp))


async def _lag(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> int:
    """Messages between the position and the high watermark last seen by a fetch, over the partitions."""
    total = 0
    for tp in tps:
        high = consumer.highwater(tp)
        if high is not None:
            total += max(0, high - await _position(consumer, tp))
    return total


def _decode(
    messages: list[ConsumerRecord], options: SinkOptions, summary: SinkSummary, metrics: SinkMetrics
) -> list[Item]:
    items = []
    for m in messages:
        summary.read += 1
        metrics.read.inc()
        try:
            record = decode_kpi(m.key, m.value)
        except BadRecord as exc:
            _bad(summary, metrics, exc.reason, m.partition, m.offset, m.topic, exc.detail)
            continue
        if not record.final and not options.provisional:
            summary.provisional_skipped += 1
            metrics.skipped.labels(metrics.sink, "provisional").inc()
            continue
        items.append(Item(record, m.partition, m.offset, m.timestamp / 1000))
    return items


def _bad(
    summary: SinkSummary, metrics: SinkMetrics, reason: str, partition: int, offset: int, topic: str, why: str
) -> None:
    summary.bad[reason] = summary.bad.get(reason, 0) + 1
    metrics.bad.labels(metrics.sink, reason).inc()
    log.warning("bad record at %s[%d]@%d: %s (%s); skipped", topic, partition, offset, reason, why[:200])


async def _retry(
    write: Callable[[], dict[str, int]], target: Target, outage: _Outage, stop: asyncio.Event
) -> dict[str, int] | None:
    """The write's result, retried while the target is unavailable; None when stopped before it succeeded."""
    while True:
        try:
            changed = await asyncio.to_thread(write)
            outage.ok()
            return changed
        except target.unavailable as exc:
            pause = outage.failed(exc)
        try:
            await asyncio.wait_for(stop.wait(), pause)
            return None
        except TimeoutError:
            pass
        try:
            await asyncio.to_thread(target.reconnect)
        except target.unavailable:
            pass
