"""One batch of Kafka messages in, everything it causes out: the pipeline's logic without Faust.

ingest (decode + validate) → state (QueueState per partition) → KPI records, dead letters; state checkpoints
on demand.
The Faust wiring in `pipeline.runtime.app` only moves messages in and results out; tests drive this class directly.

The error policy lives here, in one place: every message or event that cannot be used is counted by reason
and becomes a dead letter carrying its original bytes, topic, partition and offset. Nothing raises on input.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, NamedTuple, TypeVar, cast

import zstandard

from pipeline.contract import events as ev
from pipeline.contract.partitioner import partition_of
from pipeline.core.settings import QueueConfig, Settings
from pipeline.core.time import epoch_ms
from pipeline.kpis.agents import build_agent_record
from pipeline.kpis.counts import WAIT_BUCKETS_SECONDS
from pipeline.kpis.record import KpiRecord, build_record
from pipeline.processing.decode import MessageDecoder, Rejection
from pipeline.state.agents import DUPLICATE as AGENT_DUPLICATE
from pipeline.state.agents import LATE as AGENT_LATE
from pipeline.state.agents import AgentState
from pipeline.state.interface import PartitionState
from pipeline.state.queues import CLAMPS, DUPLICATE, IMPOSSIBLE, LATE, QueueEvent, QueueState

log = logging.getLogger(__name__)
# re-reads in a row that must begin past an offset before it counts as unreadable: one alone could be a broker
# delivering from elsewhere than asked (see `_in_sequence`)
HOLE_EVIDENCE = 3
# Ids that become metric labels or are shown to people, per event type (checked once per distinct value).
LABEL_FIELDS: dict[type, tuple[str, ...]] = {
    t: tuple(
        f
        for f in ("queue_id", "agent_id", "queue_ids", "to_queue_id", "reason_code", "disposition")
        if f in t.__struct_fields__
    )
    for t in (*ev.CONTACT_EVENT_TYPES, *ev.AGENT_EVENT_TYPES)
}
OTHER_QUEUE = "other"  # the label of late events of queues nobody knows (see `ContactProcessor._apply`)
MAX_REMEMBERED_IDS = 200_000  # forgotten all at once when full: bounded memory under a flood of new ids
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"  # how a zstd frame begins
_ZSTD = zstandard.ZstdCompressor(level=1)  # the worker packs on its event loop only: one of each is enough
_UNZSTD = zstandard.ZstdDecompressor()


class Change(NamedTuple):
    """What a checkpoint of one partition can store (`pipeline.runtime.checkpoints`): the whole state, or the changes
    since the last checkpoint when the state can tell them (None when it cannot)."""

    whole: Callable[[], bytes]
    delta: bytes | None = None
    offset: int = -1  # of the last message applied (-1: none): once stored, the consumer commits the one after


class Message(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = None  # Kafka's, in seconds (health's latency figures)


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
    touched: set[int] = field(default_factory=set)  # partitions this batch applied messages to
    # FCR hook (pipeline.processing.fcr): the contact.offered events applied in this batch, to forward by customer
    offered: list[ev.ContactOffered] = field(default_factory=list)
    # Partitions whose next offset was not delivered: read them again from this offset (`PartitionedProcessor`)
    rewind: dict[int, int] = field(default_factory=dict)


@dataclass
class PipelineStats:
    """The pipeline's own counts, read by the metrics collector at scrape time."""

    messages: Counter = field(default_factory=Counter)  # topic
    events: Counter = field(default_factory=Counter)  # (topic, event type)
    rejected: Counter = field(default_factory=Counter)  # (topic, reason)
    duplicates: Counter = field(default_factory=Counter)  # topic
    late: Counter = field(default_factory=Counter)  # (queue, channel)
    clamped: Counter = field(default_factory=Counter)  # reason: an outcome moved to its offer time
    skipped_offsets: Counter = field(default_factory=Counter)  # topic: offsets that could not be read
    records_published: Counter = field(default_factory=Counter)  # final: "true"/"false"
    batches: int = 0
    last_batch_seconds: float = 0.0
    checkpoints: Counter = field(default_factory=Counter)  # topic: partition checkpoints written
    checkpoint_bytes: Counter = field(default_factory=Counter)  # topic
    # topic: time taking and writing them (seconds: a Counter holds ints)
    checkpoint_seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))


class Ingest:
    """Decoding with the error policy applied, for one topic."""

    def __init__(self, topic: str, union, settings: Settings, stats: PipelineStats) -> None:
        self.topic = topic
        self.decoder = MessageDecoder(union, settings.max_event_bytes, settings.max_message_bytes)
        self.stats = stats

    def decode(self, m: Message, dead: list[DeadLetter]) -> list[Any]:  # of the topic's union
        """A message's items (the caller counts the message: once per batch, not per message)."""
        events, rejections = self.decoder.decode(m.value)
        for r in rejections:
            self.reject(m, r, dead)
        return events

    def reject(self, m: Message, r: Rejection, dead: list[DeadLetter]) -> None:
        self.stats.rejected[(self.topic, r.reason)] += 1
        # %r: the detail can quote ids from the input, whose newlines or control characters must not forge log lines
        log.warning("rejected %s event at %s[%d]@%d: %r", r.reason, m.topic, m.partition, m.offset, r.detail)
        dead.append(DeadLetter(r.reason, r.detail, r.raw, m.key, m.topic, m.partition, m.offset))


CLAMP_REASONS = frozenset(CLAMPS.values())
ItemT = TypeVar("ItemT")  # what a processor's topic carries


class PartitionedProcessor(Generic[ItemT]):
    """One input topic → a pure state per partition → records, dead letters and checkpoints, per batch.

    What every processor shares: ownership of partitions (load from a checkpoint, drop on revoke), skipping
    offsets a restored checkpoint already holds, the one error policy, each touched partition's updates once
    per batch, and checkpoints of the partitions changed since the last one (`checkpoint`), taken as often as
    the caller chooses: batches can then be small (fresh metrics) without a checkpoint each. Subclasses say
    how to build a state, apply one item (`_handle`) and turn an update into a record (`_updates`, `_record`).
    """

    key_field = ""  # the events' field their message is keyed by (a subclass's topic contract)

    def __init__(self, settings: Settings, stats: PipelineStats, topic: str, item_type) -> None:
        self.settings = settings
        self.stats = stats
        self.topic = topic
        self.ingest = Ingest(topic, item_type, settings, stats)
        self.partitions: dict[int, Any] = {}
        self.dirty: set[int] = set()  # changed since their last checkpoint
        # ids checked for label-safe characters -> the partition of their key (-1: not computed yet)
        self.ids: dict[str, int] = {}
        # partition -> (the offset asked for again, the first offset set aside since the last re-read began, the
        # re-reads seen to begin past the offset asked for): see `_in_sequence`
        self.rewinding: dict[int, tuple[int, int, int]] = {}

    def new_state(self) -> Any:
        raise NotImplementedError

    def load(self, partition: int, stored: list[bytes] | None) -> Any:
        """Take ownership of a partition, from its last checkpoint if there is one: the last whole one, then the
        changes since, oldest first (`pipeline.runtime.checkpoints`)."""
        state = self.new_state()
        if stored:
            whole, *changes = map(unpack, stored)
            state.restore(whole, changes)
        self.partitions[partition] = state
        return state

    def drop(self, partition: int) -> None:
        """Forget a partition this worker no longer owns (its series disappear from /metrics)."""
        self.partitions.pop(partition, None)
        self.dirty.discard(partition)
        self.rewinding.pop(partition, None)

    def _in_sequence(self, m: Message, state: Any, out: BatchResult) -> bool:
        """Whether a message is the next one of its partition's state; if later, the partition is read again from
        the next one and the message set aside.

        The state's own offset is what was applied; the consumer can begin past it (the checkpoint its committed
        offset counts on was not restored: `perform_seek` in `pipeline.runtime.transport`), and a rebalance can
        hand over a partition from the wrong place. Source topics are neither compacted nor transactional, so
        offsets have no holes of their own: a missing one was not delivered. Until the offset asked for comes,
        later messages (already fetched) are set aside. A message at or before the first one set aside begins a
        re-read. The fetch loop forgets a partition's fetched messages at the seek, so a re-read begins where it
        was asked to unless the offsets are gone or a broker delivers from elsewhere than asked; one re-read that
        begins past the offset asked for is therefore no proof of a hole, and the partition is read again until
        `HOLE_EVIDENCE` re-reads in a row begin past it. Then the offsets cannot be read (retention deleted
        them, or a producer wrote transactionally): counted and logged as skipped (unless nothing was applied
        yet: a new consumer group on a topic whose retention already dropped its start), and processing goes on."""
        want = state.offset + 1
        if m.offset == want:
            self.rewinding.pop(m.partition, None)
            return True
        asked = self.rewinding.get(m.partition)
        if asked is None or asked[0] != want:
            self.rewinding[m.partition] = (want, m.offset, 0)
            log.warning(
                "%s[%d]: offset %d came where %d was due; reading again from %d",
                m.topic,
                m.partition,
                m.offset,
                want,
                want,
            )
        elif m.offset <= asked[1]:  # a re-read began past the offset asked for
            misses = asked[2] + 1
            if misses >= HOLE_EVIDENCE:
                del self.rewinding[m.partition]
                if want == 0:  # nothing applied yet: the partition starts where its log does now (retention), no loss
                    log.info("%s[%d]: starts at offset %d, the earliest there is", m.topic, m.partition, m.offset)
                    return True
                self.stats.skipped_offsets[self.topic] += m.offset - want
                log.error("%s[%d]: offsets %d to %d cannot be read; skipped", m.topic, m.partition, want, m.offset - 1)
                return True
            self.rewinding[m.partition] = (want, m.offset, misses)
        out.rewind[m.partition] = want  # again for every message set aside: see `pipeline.runtime.transport.rewind`
        return False

    def process(
        self, messages: list[Message], load_snapshot=lambda partition: None, wall_now: float | None = None
    ) -> BatchResult:
        """Apply a batch. `load_snapshot(partition)` returns the stored checkpoint of a partition not yet held."""
        started = time.perf_counter()
        out = BatchResult()
        touched = out.touched
        max_future = epoch_ms_now() + round(self.settings.max_clock_skew_seconds * 1000)
        partitions, decode, handle = self.partitions, self.ingest.decode, self._handle
        decoded = 0
        for m in messages:
            state = partitions.get(m.partition)
            if state is None:
                state = self.load(m.partition, load_snapshot(m.partition))
            if m.offset <= state.offset:
                continue  # already in the restored checkpoint: applying it again would count it twice
            if (m.offset != state.offset + 1 or self.rewinding) and not self._in_sequence(m, state, out):
                continue
            state.offset = m.offset
            touched.add(m.partition)
            decoded += 1
            try:
                items = decode(m, out.dead_letters)
            except Exception as exc:  # the decoder never raises on input: this is a bug, and costs one message
                log.exception("error decoding the message at %s[%d]@%d", m.topic, m.partition, m.offset)
                self.ingest.reject(m, Rejection("processing_error", repr(exc), m.value or b""), out.dead_letters)
                continue
            for item in items:
                try:
                    handle(state, item, m, out, max_future)
                except Exception as exc:  # a bug must cost one event, not the worker (faust-streaming #175)
                    log.exception("error applying an item at %s[%d]@%d", m.topic, m.partition, m.offset)
                    self.ingest.reject(
                        m, Rejection("processing_error", repr(exc), self._original(m, item)), out.dead_letters
                    )
        self.stats.messages[self.topic] += decoded
        self._count_items()
        wall = time.time() if wall_now is None else wall_now
        for p in touched:
            state = self.partitions[p]
            for u in self._updates(state, wall, self.settings.kpi_update_seconds):
                out.records.append(self._record(u, p))
                self.stats.records_published["true" if u.final else "false"] += 1
        self.dirty |= touched
        self.stats.batches += 1
        self.stats.last_batch_seconds = time.perf_counter() - started
        return out

    def _count_items(self) -> None:
        """Add the batch's counts of items by kind to the stats (a subclass that counts them)."""

    def checkpoint(self) -> dict[int, Change]:
        """What to store of every partition changed since the last checkpoint (each carries its offset)."""
        out = {p: self._change(self.partitions[p]) for p in sorted(self.dirty) if p in self.partitions}
        self.dirty.clear()
        return out

    def _change(self, state: PartitionState) -> Change:
        """The changes since the last checkpoint if the state can tell them, and the whole state if asked."""
        delta = state.changes()
        return Change(partial(_whole, state), None if delta is None else pack(delta), state.offset)

    def _updates(self, state, wall: float, every: float) -> list:
        return state.advance() + state.provisional(wall, every)

    def _record(self, update, partition: int):
        raise NotImplementedError

    def _original(self, m: Message, item: ItemT) -> bytes:
        raise NotImplementedError

    def _handle(self, state: Any, item: ItemT, m: Message, out: BatchResult, max_future: int) -> None:
        raise NotImplementedError


class EventProcessor(PartitionedProcessor[ev.Event]):
    """A processor of an event topic: the clock-skew guard, heartbeats, label-safe ids and the key's partition."""

    def __init__(self, settings: Settings, stats: PipelineStats, topic: str, item_type) -> None:
        super().__init__(settings, stats, topic, item_type)
        self.kinds: Counter[type[ev.Event]] = Counter()  # events by type in the batch being applied

    def _original(self, m: Message, item: ev.Event) -> bytes:
        return _original(m, item)

    def _count_items(self) -> None:
        events = self.stats.events
        for kind, n in self.kinds.items():
            events[(self.topic, kind.__struct_config__.tag)] += n
        self.kinds.clear()

    def _handle(self, state: Any, e: ev.Event, m: Message, out: BatchResult, max_future: int) -> None:
        """Count the event, guard against a bad clock, let heartbeats move the watermark, apply the rest."""
        self.kinds[type(e)] += 1
        t = epoch_ms(e.time)
        if t > max_future:  # one bad clock must not push the watermark past every open interval
            self.ingest.reject(
                m,
                Rejection(
                    "future_event_time",
                    f"event time {e.time.isoformat()} is ahead of this worker's clock by more than the allowed skew",
                    _original(m, e),
                ),
                out.dead_letters,
            )
            return
        if isinstance(e, ev.SourceHeartbeat):
            state.observe_time(t)
            return
        why = self._misplaced(e, m.partition)
        if why is not None:
            self.ingest.reject(m, Rejection(why[0], why[1], _original(m, e)), out.dead_letters)
            return
        self._apply(state, e, t, m, out)

    def _misplaced(self, e: ev.Event, partition: int) -> tuple[str, str] | None:
        """(reason, detail) when the event must not be applied on this partition: an id that would become a metric
        label holds characters outside the contract's set, or the event's key belongs to another partition (its
        state lives there: applying it here would split one queue's or agent's figures between two states)."""
        ids = self.ids
        for name in LABEL_FIELDS.get(type(e), ()):
            value = getattr(e, name)
            if value is None or (type(value) is str and value in ids):  # the usual case: an id checked before
                continue
            for v in value if isinstance(value, list) else (value,):
                if v is not None and v not in ids:
                    if not ev.label_safe(v):
                        return "invalid_field", f"`{name}` holds a control, format or direction character"
                    if len(ids) >= MAX_REMEMBERED_IDS:
                        ids.clear()
                    ids[v] = -1
        key = getattr(e, self.key_field)
        owner = ids.get(key, -1)
        if owner < 0:
            owner = ids[key] = partition_of(key.encode(), self.settings.partitions)
        if owner != partition:
            return "wrong_partition", f"`{self.key_field}` maps to partition {owner}, the message is on {partition}"
        return None

    def _apply(self, state, e: ev.Event, t: int, m: Message, out: BatchResult) -> None:
        raise NotImplementedError

    def _late(self, m: Message, e: ev.Event, why: str, out: BatchResult) -> None:
        out.late.append(DeadLetter("late", why, _original(m, e), m.key, m.topic, m.partition, m.offset))


class ContactProcessor(EventProcessor):
    """Contact events → queue state per partition → queue KPI records."""

    key_field = "queue_id"

    def __init__(self, settings: Settings, queues: QueueConfig, stats: PipelineStats) -> None:
        super().__init__(settings, stats, settings.topic("contact-events"), ev.ContactTopicEvent)
        self.queues = queues
        # the wait histogram's buckets: standard ones plus every configured threshold, so that "within the
        # threshold" can be read off the histogram for every queue
        self.wait_bounds_seconds = wait_bounds(queues)
        self.wait_bounds_ms = tuple(sorted({round(b * 1000) for b in self.wait_bounds_seconds}))

    def complete_upto(self, partition: int) -> int:
        """The event time up to which every live queue of the partition is complete (what the FCR side closes its
        windows on): the slowest clock among queues heard from within the allowed clock skew of the partition's
        newest event (a quiet queue is not waited for), or the heartbeat if later. A queue stamped ahead moves
        only its own clock, so it cannot close the FCR windows of the others."""
        state: QueueState = self.partitions[partition]
        idle = round(self.settings.max_clock_skew_seconds * 1000)
        live = [c for c in state.clocks.values() if c >= state.watermark - idle]
        return max(min(live, default=state.watermark), state.heartbeat)

    def new_state(self) -> QueueState:
        s = self.settings
        return QueueState(
            s.interval_seconds,
            s.allowed_lateness_seconds,
            s.contact_timeout_seconds,
            self.queues.for_queue,
            self.wait_bounds_seconds,
            s.clamp_skew_seconds,
        )

    def _updates(self, state: QueueState, wall: float, every: float) -> list:
        return state.advance() + state.provisional(wall, every) + state.rollup_updates(wall, every)

    def _record(self, update, partition: int) -> KpiRecord:
        return build_record(update, self.settings.interval_seconds, self.wait_bounds_ms)

    def _apply(self, state: QueueState, e: ev.Event, t: int, m: Message, out: BatchResult) -> None:
        e = cast(QueueEvent, e)  # decoded as a ContactTopicEvent; `_handle` took the heartbeats
        result = state.apply(e, t)
        if result is None or result in CLAMP_REASONS:
            if result is not None:
                self.stats.clamped[result] += 1
            if type(e) is ev.ContactOffered:
                out.offered.append(e)  # the FCR hook: applied offers only, never duplicates or late ones
            return
        if result == DUPLICATE:
            self.stats.duplicates[self.topic] += 1
        elif result == LATE:
            q, ch = e.queue_id, e.channel
            # a label only for a queue this partition applied events of, or the queue file names: anyone who can
            # write to the topic could otherwise grow the late counter's series without bound
            known = (q, ch) in state.totals or q in self.queues.queues
            self.stats.late[(q if known else OTHER_QUEUE, ch)] += 1
            self._late(m, e, f"event time {e.time.isoformat()} is in a final interval", out)
        elif result == IMPOSSIBLE:
            assert isinstance(e, ev.ContactEvent)  # only a contact's own events can contradict it
            self.ingest.reject(
                m,
                Rejection(
                    IMPOSSIBLE,
                    f"{type(e).__struct_config__.tag} contradicts contact {e.contact_id} in queue {e.queue_id}",
                    _original(m, e),
                ),
                out.dead_letters,
            )


def _original(m: Message, e: ev.Event) -> bytes:
    """The event's original bytes: the message itself, or the event re-encoded when it came in a batch."""
    if m.value and m.value.lstrip()[:1] == b"{":
        return m.value
    return ev.encode(e)


class AgentProcessor(EventProcessor):
    """Agent events → agent state per partition → agent KPI records."""

    key_field = "agent_id"

    def __init__(self, settings: Settings, stats: PipelineStats) -> None:
        super().__init__(settings, stats, settings.topic("agent-events"), ev.AgentTopicEvent)
        self.late: Counter = Counter()  # event type -> late agent events (not applied)

    def new_state(self) -> AgentState:
        return AgentState(self.settings.interval_seconds, self.settings.allowed_lateness_seconds)

    def _record(self, update, partition: int):
        return build_agent_record(update, self.settings.interval_seconds)

    def _apply(self, state: AgentState, e: ev.Event, t: int, m: Message, out: BatchResult) -> None:
        e = cast(ev.AgentEvent, e)  # decoded as an AgentTopicEvent; `_handle` took the heartbeats
        result = state.apply(e, t)
        if result == AGENT_DUPLICATE:
            self.stats.duplicates[self.topic] += 1
        elif result == AGENT_LATE:
            tag = type(e).__struct_config__.tag
            self.late[tag] += 1
            self._late(m, e, f"{tag} of agent {e.agent_id} would change a final interval", out)


def _whole(state: PartitionState) -> bytes:
    return pack(state.snapshot())


def pack(snapshot: bytes) -> bytes:
    """A state checkpoint as stored: zstd-compressed at level 1 (faster than zlib and smaller; the figures are in
    docs/performance.md)."""
    return _ZSTD.compress(snapshot)


def unpack(stored: bytes) -> bytes:
    """A stored checkpoint's snapshot (`pack` is the only form ever released)."""
    if stored[:4] != ZSTD_MAGIC:
        raise ValueError(f"a stored checkpoint is a zstd frame; this one starts with {stored[:4]!r}")
    return _UNZSTD.decompress(stored)


def wait_bounds(queues: QueueConfig) -> tuple[float, ...]:
    """Histogram bounds in seconds: the standard ones, and every queue's thresholds."""
    queue_rules = [queues.defaults, *queues.queues.values()]
    rules = queue_rules + [q.for_channel(ch) for q in queue_rules for ch in q.channels]
    extra = {r.service_level_threshold_seconds for r in rules} | {r.short_abandon_seconds for r in rules}
    return tuple(sorted(set(WAIT_BUCKETS_SECONDS) | {b for b in extra if b > 0}))


def epoch_ms_now() -> int:
    return round(time.time() * 1000)
