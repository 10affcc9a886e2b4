"""One batch of Kafka messages in, everything it causes out: the pipeline's logic without Faust.

ingest (decode + validate) → state (QueueState per partition) → KPI records, dead letters, state snapshots.
The Faust wiring in `pipeline.app` only moves messages in and results out; tests drive this class directly.

The error policy lives here, in one place: every message or event that cannot be used is counted by reason
and becomes a dead letter carrying its original bytes, topic, partition and offset. Nothing raises on input.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from pipeline.ingest import events as ev
from pipeline.ingest.decode import MessageDecoder, Rejection
from pipeline.kpis.agents import build_agent_record
from pipeline.kpis.counts import WAIT_BUCKETS_SECONDS
from pipeline.kpis.record import KpiRecord, build_record
from pipeline.settings import QueueConfig, Settings
from pipeline.state.agents import DUPLICATE as AGENT_DUPLICATE
from pipeline.state.agents import LATE as AGENT_LATE
from pipeline.state.agents import AgentState
from pipeline.state.intervals import epoch_ms
from pipeline.state.queues import DUPLICATE, IMPOSSIBLE, LATE, QueueState

log = logging.getLogger(__name__)


class Message(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class DeadLetter:
    reason: str
    detail: str
    original: bytes
    key: bytes | None
    topic: str
    partition: int
    offset: int

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers of the dead-letter record (the value is the original bytes, unchanged)."""
        return [
            ("dlq.reason", self.reason.encode()),
            ("dlq.detail", self.detail.encode()[:1000]),
            ("dlq.topic", self.topic.encode()),
            ("dlq.partition", str(self.partition).encode()),
            ("dlq.offset", str(self.offset).encode()),
        ]


@dataclass(slots=True)
class BatchResult:
    records: list[KpiRecord] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    late: list[DeadLetter] = field(default_factory=list)  # late events, for the late-events topic
    snapshots: dict[int, bytes] = field(default_factory=dict)
    # FCR hook (pipeline.fcr): the contact.offered events applied in this batch, to forward by customer
    offered: list[ev.ContactOffered] = field(default_factory=list)


@dataclass
class PipelineStats:
    """The pipeline's own counts, read by the metrics collector at scrape time."""

    messages: Counter = field(default_factory=Counter)  # topic
    events: Counter = field(default_factory=Counter)  # (topic, event type)
    rejected: Counter = field(default_factory=Counter)  # (topic, reason)
    duplicates: Counter = field(default_factory=Counter)  # topic
    late: Counter = field(default_factory=Counter)  # (queue, channel)
    records_published: Counter = field(default_factory=Counter)  # final: "true"/"false"
    batches: int = 0
    last_batch_seconds: float = 0.0


class Ingest:
    """Decoding with the error policy applied, for one topic."""

    def __init__(self, topic: str, union, settings: Settings, stats: PipelineStats) -> None:
        self.topic = topic
        self.decoder = MessageDecoder(union, settings.max_event_bytes, settings.max_message_bytes)
        self.stats = stats

    def decode(self, m: Message, dead: list[DeadLetter]) -> list[ev.Event]:
        self.stats.messages[self.topic] += 1
        events, rejections = self.decoder.decode(m.value)
        for r in rejections:
            self.reject(m, r, dead)
        return events

    def reject(self, m: Message, r: Rejection, dead: list[DeadLetter]) -> None:
        self.stats.rejected[(self.topic, r.reason)] += 1
        log.warning("rejected %s event at %s[%d]@%d: %s", r.reason, m.topic, m.partition, m.offset, r.detail)
        dead.append(DeadLetter(r.reason, r.detail, r.raw, m.key, m.topic, m.partition, m.offset))


class ContactProcessor:
    """Contact events → queue state per partition → KPI records."""

    def __init__(self, settings: Settings, queues: QueueConfig, stats: PipelineStats) -> None:
        self.settings = settings
        self.queues = queues
        self.stats = stats
        self.topic = settings.topic("contact-events")
        self.ingest = Ingest(self.topic, ev.ContactTopicEvent, settings, stats)
        self.partitions: dict[int, QueueState] = {}
        # the wait histogram's buckets: standard ones plus every configured threshold, so that "within the
        # threshold" can be read off the histogram for every queue
        self.wait_bounds_seconds = wait_bounds(queues)
        self.wait_bounds_ms = tuple(sorted({round(b * 1000) for b in self.wait_bounds_seconds}))

    def new_state(self) -> QueueState:
        s = self.settings
        return QueueState(s.interval_seconds, s.allowed_lateness_seconds, s.contact_timeout_seconds,
                          self.queues.for_queue, self.wait_bounds_seconds)

    def load(self, partition: int, snapshot: bytes | None) -> QueueState:
        """Take ownership of a partition, from its last snapshot if there is one."""
        state = self.new_state()
        if snapshot:
            state.restore(unpack(snapshot))
        self.partitions[partition] = state
        return state

    def drop(self, partition: int) -> None:
        """Forget a partition this worker no longer owns (its series disappear from /metrics)."""
        self.partitions.pop(partition, None)

    def process(self, messages: list[Message], load_snapshot, wall_now: float | None = None) -> BatchResult:
        """Apply a batch. `load_snapshot(partition)` returns the stored snapshot of a partition not yet held."""
        started = time.perf_counter()
        out = BatchResult()
        touched: set[int] = set()
        max_future = epoch_ms_now() + round(self.settings.max_clock_skew_seconds * 1000)
        for m in messages:
            state = self.partitions.get(m.partition)
            if state is None:
                state = self.load(m.partition, load_snapshot(m.partition))
            if m.offset <= state.offset:
                continue  # already in the restored snapshot: applying it again would count it twice
            state.offset = m.offset
            touched.add(m.partition)
            for e in self.ingest.decode(m, out.dead_letters):
                try:
                    self._apply(state, e, m, out, max_future)
                except Exception as exc:  # a bug must cost one event, not the worker (faust-streaming #175)
                    log.exception("error applying %s at %s[%d]@%d", e.event_id, m.topic, m.partition, m.offset)
                    self.ingest.reject(m, Rejection("processing_error", repr(exc), _original(m, e)), out.dead_letters)
        wall = time.time() if wall_now is None else wall_now
        interval = self.settings.interval_seconds
        for p in touched:
            state = self.partitions[p]
            every = self.settings.kpi_update_seconds
            updates = state.advance() + state.provisional(wall, every) + state.rollup_updates(wall, every)
            for u in updates:
                out.records.append(build_record(u, interval, self.wait_bounds_ms))
                self.stats.records_published["true" if u.final else "false"] += 1
            out.snapshots[p] = pack(state.snapshot())
        self.stats.batches += 1
        self.stats.last_batch_seconds = time.perf_counter() - started
        return out

    def _apply(self, state: QueueState, e: ev.Event, m: Message, out: BatchResult, max_future: int) -> None:
        etype = type(e)
        self.stats.events[(self.topic, etype.__struct_config__.tag)] += 1
        t = epoch_ms(e.time)
        if t > max_future:  # one bad clock must not push the watermark past every open interval
            self.ingest.reject(m, Rejection("future_event_time", f"event time {e.time.isoformat()} is ahead "
                                            "of this worker's clock by more than the allowed skew",
                                            _original(m, e)), out.dead_letters)
            return
        if etype is ev.SourceHeartbeat:
            state.observe_time(t)
            return
        result = state.apply(e)  # type: ignore[arg-type]
        if result is None:
            if etype is ev.ContactOffered:
                out.offered.append(e)  # type: ignore[arg-type]  (FCR hook)
            return
        if result == DUPLICATE:
            self.stats.duplicates[self.topic] += 1
        elif result == LATE:
            self.stats.late[(e.queue_id, e.channel)] += 1  # type: ignore[attr-defined]
            out.late.append(DeadLetter("late", f"event time {e.time.isoformat()} is in a final interval",
                                       _original(m, e), m.key, m.topic, m.partition, m.offset))
        elif result == IMPOSSIBLE:
            self.ingest.reject(m, Rejection(IMPOSSIBLE, f"{etype.__struct_config__.tag} "
                                            f"contradicts contact {e.contact_id} in queue {e.queue_id}",  # type: ignore[attr-defined]
                                            _original(m, e)), out.dead_letters)


def _original(m: Message, e: ev.Event) -> bytes:
    """The event's original bytes: the message itself, or the event re-encoded when it came in a batch."""
    if m.value and m.value.lstrip()[:1] == b"{":
        return m.value
    return ev.encode(e)


class AgentProcessor:
    """Agent events → agent state per partition → agent KPI records; the same error policy as for contacts."""

    def __init__(self, settings: Settings, stats: PipelineStats) -> None:
        self.settings = settings
        self.stats = stats
        self.topic = settings.topic("agent-events")
        self.ingest = Ingest(self.topic, ev.AgentTopicEvent, settings, stats)
        self.partitions: dict[int, AgentState] = {}
        self.late: Counter = Counter()  # event type -> late agent events (not applied)

    def new_state(self) -> AgentState:
        return AgentState(self.settings.interval_seconds, self.settings.allowed_lateness_seconds)

    def load(self, partition: int, snapshot: bytes | None) -> AgentState:
        """Take ownership of a partition, from its last snapshot if there is one."""
        state = self.new_state()
        if snapshot:
            state.restore(unpack(snapshot))
        self.partitions[partition] = state
        return state

    def drop(self, partition: int) -> None:
        """Forget a partition this worker no longer owns (its series disappear from /metrics)."""
        self.partitions.pop(partition, None)

    def logged_in_by_queue(self) -> dict[str, int]:
        """Agents logged in and serving each queue now, over the partitions this worker owns."""
        out: dict[str, int] = {}
        for state in list(self.partitions.values()):
            for q, counts in state.agents_by_state().items():
                out[q] = out.get(q, 0) + counts["logged_in"]
        return out

    def process(self, messages: list[Message], load_snapshot=lambda partition: None,
                wall_now: float | None = None) -> BatchResult:
        """Apply a batch. `load_snapshot(partition)` returns the stored snapshot of a partition not yet held."""
        out = BatchResult()
        touched: set[int] = set()
        max_future = epoch_ms_now() + round(self.settings.max_clock_skew_seconds * 1000)
        for m in messages:
            state = self.partitions.get(m.partition)
            if state is None:
                state = self.load(m.partition, load_snapshot(m.partition))
            if m.offset <= state.offset:
                continue  # already in the restored snapshot: applying it again would count it twice
            state.offset = m.offset
            touched.add(m.partition)
            for e in self.ingest.decode(m, out.dead_letters):
                try:
                    self._apply(state, e, m, out, max_future)
                except Exception as exc:  # a bug must cost one event, not the worker
                    log.exception("error applying %s at %s[%d]@%d", e.event_id, m.topic, m.partition, m.offset)
                    self.ingest.reject(m, Rejection("processing_error", repr(exc), _original(m, e)), out.dead_letters)
        wall = time.time() if wall_now is None else wall_now
        interval = self.settings.interval_seconds
        for p in touched:
            state = self.partitions[p]
            for u in state.advance() + state.provisional(wall, self.settings.kpi_update_seconds):
                out.records.append(build_agent_record(u, interval))  # type: ignore[arg-type]
                self.stats.records_published["true" if u.final else "false"] += 1
            out.snapshots[p] = pack(state.snapshot())
        return out

    def _apply(self, state: AgentState, e: ev.Event, m: Message, out: BatchResult, max_future: int) -> None:
        tag = type(e).__struct_config__.tag
        self.stats.events[(self.topic, tag)] += 1
        t = epoch_ms(e.time)
        if t > max_future:
            self.ingest.reject(m, Rejection("future_event_time", f"event time {e.time.isoformat()} is ahead "
                                            "of this worker's clock by more than the allowed skew",
                                            _original(m, e)), out.dead_letters)
            return
        if isinstance(e, ev.SourceHeartbeat):
            state.observe_time(t)
            return
        result = state.apply(e)  # type: ignore[arg-type]
        if result == AGENT_DUPLICATE:
            self.stats.duplicates[self.topic] += 1
        elif result == AGENT_LATE:
            self.late[tag] += 1
            out.late.append(DeadLetter("late", f"{tag} of agent {e.agent_id} would change a final interval",  # type: ignore[attr-defined]
                                       _original(m, e), m.key, m.topic, m.partition, m.offset))



def pack(snapshot: bytes) -> bytes:
    """A state checkpoint as stored: zlib-compressed JSON (about a tenth of the size, so a busy partition's
    checkpoint stays far below Kafka's message size limit)."""
    return zlib.compress(snapshot, 1)


def unpack(stored: bytes) -> bytes:
    """The JSON of a stored checkpoint (plain JSON from before compression is read as it is)."""
    return stored if stored[:1] == b"{" else zlib.decompress(stored)


def wait_bounds(queues: QueueConfig) -> tuple[float, ...]:
    """Histogram bounds in seconds: the standard ones, and every queue's thresholds."""
    rules = [queues.defaults, *queues.queues.values()]
    extra = {r.service_level_threshold_seconds for r in rules} | {r.short_abandon_seconds for r in rules}
    return tuple(sorted(set(WAIT_BUCKETS_SECONDS) | {b for b in extra if b > 0}))


def epoch_ms_now() -> int:
    return round(time.time() * 1000)
