"""The queue state of one partition of the contact-event topic, on event time. Pure Python: no Kafka, no Faust.

What it keeps:
- one *leg* per (queue, contact): a contact's stay in one queue, from the events seen of it so far;
- the open intervals' counts per (queue, channel, interval) and running totals per (queue, channel);
- the partition's watermark (the newest event time seen) and the offset of the last message applied.

Events may come in any order: a leg's contribution to the counts is made only once the facts it needs are
known (an answer needs the arrival; a handle time needs the answer, the end and the end of wrap-up), so
shuffled input gives the same counts as ordered input.

Attribution (see docs/kpis.md): a leg's queue outcome (offered, answered, abandoned, waits) belongs to the
interval in which it *arrived*; its handling (handled, handle/hold/ACW time, transfers) to the interval in
which its after-contact work *ended*.

An interval is final once the watermark has passed its end by the allowed lateness and no contact that
arrived in it (or earlier) is still waiting. An event whose own interval, or an interval it would change, is
final is *late*: it is counted and reported, never applied.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import orjson

from pipeline.ingest import events as ev
from pipeline.kpis.counts import QueueCounts
from pipeline.state.intervals import NO_TIME, epoch_ms, interval_start

SNAPSHOT_VERSION = 1

# apply() results that are not "applied"
DUPLICATE = "duplicate"
LATE = "late"
IMPOSSIBLE = "impossible_sequence"


@dataclass(slots=True)
class Leg:
    """What is known of one contact in one queue."""

    queue_id: str
    channel: str
    contact_id: str
    first_seen: int  # times are event times in epoch milliseconds
    last_seen: int
    event_ids: list[str] = field(default_factory=list)
    offered_at: int | None = None
    answered_at: int | None = None
    abandoned_at: int | None = None
    conversation_end_at: int | None = None  # contact.ended or contact.transferred
    transferred: bool = False
    acw_end_at: int | None = None
    holds_started: int = 0
    holds_ended: int = 0
    hold_start_sum: int = 0  # hold time = sum of ends - sum of starts, whatever order they came in
    hold_end_sum: int = 0
    outcome_counted: bool = False
    handled_counted: bool = False
    hold_counted: int = 0

    @property
    def waiting(self) -> bool:
        return self.offered_at is not None and not self.outcome_counted

    @property
    def complete(self) -> bool:
        return self.outcome_counted and (self.abandoned_at is not None or self.handled_counted)


@dataclass(slots=True)
class OpenInterval:
    counts: QueueCounts = field(default_factory=QueueCounts)
    revision: int = 0
    changed: bool = False
    published_at: float = 0.0  # wall clock (seconds) of the last published revision


@dataclass(slots=True)
class IntervalUpdate:
    """A revision of one interval's counts to publish."""

    queue_id: str
    channel: str
    start: int  # epoch seconds
    revision: int
    final: bool
    counts: QueueCounts
    threshold_seconds: float


Increment = tuple[int, str, int]  # (interval start in epoch ms, count field, amount)


class QueueState:
    """All queue legs, intervals and totals of one partition."""

    def __init__(
        self,
        interval_seconds: int,
        allowed_lateness_seconds: float,
        contact_timeout_seconds: float,
        threshold_of: Callable[[str], float],
    ) -> None:
        self.interval_ms = interval_seconds * 1000
        self.allowed_lateness = round(allowed_lateness_seconds * 1000)
        self.contact_timeout = round(contact_timeout_seconds * 1000)
        self.threshold_of = threshold_of  # queue id -> service level threshold in seconds
        self.watermark = NO_TIME
        self.offset = -1  # last source offset applied; replays of older offsets are skipped
        self.legs: dict[tuple[str, str], Leg] = {}
        self.intervals: dict[tuple[str, str, int], OpenInterval] = {}
        self.totals: dict[tuple[str, str], QueueCounts] = {}
        # expired legs by (queue, channel, reason), for the pipeline's own metrics
        self.expired: dict[tuple[str, str, str], int] = {}
        # contacts waiting now: (queue, channel) -> {contact id: arrival time}; derived from the legs
        self.waiting_since: dict[tuple[str, str], dict[str, int]] = {}

    # ---- applying events -------------------------------------------------------------------------------

    def observe_time(self, t: int) -> None:
        """Advance the watermark (heartbeats, and every applied event)."""
        if t > self.watermark:
            self.watermark = t

    def is_final(self, queue_id: str, channel: str, start: int) -> bool:
        """Closed for good: past its end by the allowed lateness, and nothing arrived in or before it waits."""
        return (queue_id, channel, start) not in self.intervals and self._closable(queue_id, channel, start)

    def _closable(self, queue_id: str, channel: str, start: int) -> bool:
        if start + self.interval_ms + self.allowed_lateness > self.watermark:
            return False
        waiting = self.waiting_since.get((queue_id, channel))
        return not waiting or min(waiting.values()) >= start + self.interval_ms

    def _track_waiting(self, leg: Leg) -> None:
        qc = (leg.queue_id, leg.channel)
        if leg.waiting:
            self.waiting_since.setdefault(qc, {})[leg.contact_id] = leg.offered_at
        elif qc in self.waiting_since:
            self.waiting_since[qc].pop(leg.contact_id, None)
            if not self.waiting_since[qc]:
                del self.waiting_since[qc]

    def apply(self, e: ev.ContactEvent) -> str | None:
        """Apply one contact event. Returns None when applied, else DUPLICATE, LATE or IMPOSSIBLE."""
        t = epoch_ms(e.time)
        length = self.interval_ms
        if self.is_final(e.queue_id, e.channel, interval_start(t, length)):
            return LATE
        key = (e.queue_id, e.contact_id)
        old = self.legs.get(key)
        if old is None:
            leg = Leg(e.queue_id, e.channel, e.contact_id, first_seen=t, last_seen=t)
        elif e.event_id in old.event_ids:
            return DUPLICATE
        elif old.channel != e.channel:
            return IMPOSSIBLE
        else:
            leg = copy.copy(old)
        newly_offered = leg.offered_at is None
        if not _record(leg, e, t):
            return IMPOSSIBLE
        newly_offered = newly_offered and leg.offered_at is not None
        increments = _contribution(leg, newly_offered, round(self.threshold_of(leg.queue_id) * 1000), length)
        if increments is None:
            return IMPOSSIBLE
        if any(self.is_final(leg.queue_id, leg.channel, start) for start, _, _ in increments):
            return LATE
        leg.event_ids = [*leg.event_ids, e.event_id]
        leg.first_seen = min(leg.first_seen, t)
        leg.last_seen = max(leg.last_seen, t)
        self.legs[key] = leg
        self._track_waiting(leg)
        self._add(leg.queue_id, leg.channel, increments)
        self.observe_time(t)
        return None

    def _add(self, queue_id: str, channel: str, increments: list[Increment]) -> None:
        total = self.totals.get((queue_id, channel))
        if total is None:
            total = self.totals[(queue_id, channel)] = QueueCounts()
        for start, name, amount in increments:
            ivl = self.intervals.get((queue_id, channel, start))
            if ivl is None:
                ivl = self.intervals[(queue_id, channel, start)] = OpenInterval()
            setattr(ivl.counts, name, getattr(ivl.counts, name) + amount)
            ivl.changed = True
            setattr(total, name, getattr(total, name) + amount)

    # ---- time passing ----------------------------------------------------------------------------------

    def advance(self) -> list[IntervalUpdate]:
        """Expire stale legs, close every interval that is now final, and forget legs that can change nothing.

        Returns the final updates, oldest first. Call once per batch, after applying it.
        """
        wm = self.watermark
        length = self.interval_ms
        for key, leg in list(self.legs.items()):
            if not leg.complete and (leg.offered_at if leg.offered_at is not None else leg.first_seen) \
                    + self.contact_timeout <= wm:
                self._expire(key, leg)
        finals: list[IntervalUpdate] = []
        for (q, ch, start) in sorted(self.intervals, key=lambda k: k[2]):
            if not self._closable(q, ch, start):
                continue
            ivl = self.intervals.pop((q, ch, start))
            ivl.revision += 1
            finals.append(IntervalUpdate(q, ch, start // 1000, ivl.revision, True, ivl.counts, self.threshold_of(q)))
        # A complete leg is kept while any interval it touched is open, so that a re-delivered event of it is
        # still recognised as a duplicate; after that every event of it would be late anyway.
        for key, leg in list(self.legs.items()):
            if leg.complete and all(self.is_final(leg.queue_id, leg.channel, interval_start(t, length))
                                    for t in (leg.offered_at, leg.acw_end_at, leg.last_seen) if t is not None):
                del self.legs[key]
        return finals

    def _expire(self, key: tuple[str, str], leg: Leg) -> None:
        if leg.offered_at is None:
            reason = "no_arrival"
        elif not leg.outcome_counted:
            reason = "no_outcome"
            self._add(leg.queue_id, leg.channel, [(interval_start(leg.offered_at, self.interval_ms),
                                                   "expired", 1)])
        else:
            reason = "no_handling_end"
        k = (leg.queue_id, leg.channel, reason)
        self.expired[k] = self.expired.get(k, 0) + 1
        del self.legs[key]
        leg.outcome_counted = True  # no longer waiting
        self._track_waiting(leg)

    def provisional(self, wall_now: float, every: float) -> list[IntervalUpdate]:
        """Updates for open intervals that changed and were last published at least `every` seconds ago."""
        out = []
        for (q, ch, start), ivl in self.intervals.items():
            if ivl.changed and wall_now - ivl.published_at >= every:
                ivl.revision += 1
                ivl.changed = False
                ivl.published_at = wall_now
                out.append(IntervalUpdate(q, ch, start // 1000, ivl.revision, False, copy.copy(ivl.counts),
                                          self.threshold_of(q)))
        return out

    # ---- real time -------------------------------------------------------------------------------------

    def waiting(self) -> Iterator[tuple[str, str, int, float]]:
        """(queue, channel, contacts waiting now, age in seconds of the oldest, measured at the watermark)."""
        for (q, ch), since in self.waiting_since.items():
            yield q, ch, len(since), max(0, self.watermark - min(since.values())) / 1000

    # ---- checkpoint ------------------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        return orjson.dumps({
            "v": SNAPSHOT_VERSION,
            "watermark": self.watermark,
            "offset": self.offset,
            "legs": [asdict(leg) for leg in self.legs.values()],
            "intervals": [[q, ch, s, i.counts.as_dict(), i.revision, i.changed, i.published_at]
                          for (q, ch, s), i in self.intervals.items()],
            "totals": [[q, ch, c.as_dict()] for (q, ch), c in self.totals.items()],
            "expired": [[*k, n] for k, n in self.expired.items()],
        })

    def restore(self, data: bytes) -> None:
        d = orjson.loads(data)
        if d.get("v") != SNAPSHOT_VERSION:
            raise ValueError(f"queue state snapshot version {d.get('v')!r}, expected {SNAPSHOT_VERSION}")
        self.watermark = d["watermark"]
        self.offset = d["offset"]
        self.legs = {(x["queue_id"], x["contact_id"]): Leg(**x) for x in d["legs"]}
        self.intervals = {
            (q, ch, s): OpenInterval(QueueCounts.from_dict(c), rev, changed, pub)
            for q, ch, s, c, rev, changed, pub in d["intervals"]
        }
        self.totals = {(q, ch): QueueCounts.from_dict(c) for q, ch, c in d["totals"]}
        self.expired = {(q, ch, r): n for q, ch, r, n in d["expired"]}
        self.waiting_since = {}
        for leg in self.legs.values():
            self._track_waiting(leg)


def _record(leg: Leg, e: ev.ContactEvent, t: int) -> bool:
    """Write the event's fact into the leg; False when it contradicts what the leg already knows."""
    match e:
        case ev.ContactOffered():
            if leg.offered_at is not None:
                return False
            leg.offered_at = t
        case ev.ContactAnswered():
            if leg.answered_at is not None or leg.abandoned_at is not None:
                return False
            leg.answered_at = t
        case ev.ContactAbandoned():
            if leg.answered_at is not None or leg.abandoned_at is not None or leg.conversation_end_at is not None:
                return False
            leg.abandoned_at = t
        case ev.HoldStarted():
            if leg.abandoned_at is not None:
                return False
            leg.holds_started += 1
            leg.hold_start_sum += t
        case ev.HoldEnded():
            if leg.abandoned_at is not None:
                return False
            leg.holds_ended += 1
            leg.hold_end_sum += t
        case ev.ContactEnded() | ev.ContactTransferred():
            if leg.conversation_end_at is not None or leg.abandoned_at is not None:
                return False
            leg.conversation_end_at = t
            leg.transferred = isinstance(e, ev.ContactTransferred)
        case ev.AcwEnded():
            if leg.acw_end_at is not None or leg.abandoned_at is not None:
                return False
            leg.acw_end_at = t
        case _:
            return False
    return True


def _contribution(leg: Leg, newly_offered: bool, threshold: int, length: int) -> list[Increment] | None:
    """The counts the leg adds now that it did not add before, marking them added on the leg.

    None when the leg's times are impossible (an answer before the arrival, an end before the answer).
    """
    out: list[Increment] = []
    if newly_offered:
        out.append((interval_start(leg.offered_at, length), "offered", 1))
    if not leg.outcome_counted and leg.offered_at is not None:
        arrival = interval_start(leg.offered_at, length)
        if leg.answered_at is not None:
            wait = leg.answered_at - leg.offered_at
            if wait < 0:
                return None
            out += [(arrival, "answered", 1), (arrival, "answer_wait_ms", wait)]
            if wait <= threshold:
                out.append((arrival, "answered_within_threshold", 1))
            leg.outcome_counted = True
        elif leg.abandoned_at is not None:
            wait = leg.abandoned_at - leg.offered_at
            if wait < 0:
                return None
            out.append((arrival, "abandoned", 1))
            if wait <= threshold:
                out.append((arrival, "abandoned_within_threshold", 1))
            leg.outcome_counted = True
    if leg.holds_started != leg.holds_ended:
        return out  # a hold is still open: the handle time is not known yet
    hold = leg.hold_end_sum - leg.hold_start_sum
    if leg.handled_counted:
        if hold != leg.hold_counted:  # a hold pair that arrived after the handling was counted
            out.append((interval_start(leg.acw_end_at, length), "hold_ms", hold - leg.hold_counted))
            leg.hold_counted = hold
    elif leg.answered_at is not None and leg.conversation_end_at is not None and leg.acw_end_at is not None:
        if not leg.answered_at <= leg.conversation_end_at <= leg.acw_end_at:
            return None
        completed = interval_start(leg.acw_end_at, length)
        out += [
            (completed, "handled", 1),
            (completed, "handle_ms", leg.acw_end_at - leg.answered_at),
            (completed, "hold_ms", hold),
            (completed, "acw_ms", leg.acw_end_at - leg.conversation_end_at),
        ]
        if leg.transferred:
            out.append((completed, "transferred_out", 1))
        leg.handled_counted = True
        leg.hold_counted = hold
    return out
