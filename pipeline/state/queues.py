"""The queue state of one partition of the contact-event topic, on event time. Pure Python: no Kafka, no Faust.

What it keeps:
- one *leg* per (queue, contact): a contact's stay in one queue, from the events seen of it so far;
- the open intervals' counts per (queue, channel, interval) and running totals per (queue, channel);
- each queue's clock (the newest time of its own events, or of the source's heartbeats if later), the
  partition's watermark (the newest event time of all), and the offset of the last message applied.

Events may come in any order: a leg's contribution to the counts is made only once the facts it needs are
known (an answer needs the arrival; a handle time needs the answer, the end and the end of wrap-up), so
shuffled input gives the same counts as ordered input.

Attribution (see docs/kpis.md): a leg's queue outcome (offered, answered, abandoned, waits) belongs to the
interval in which it *arrived*; its handling (handled, handle/hold/ACW time, transfers) to the interval in
which its after-contact work *ended*.

An interval is final once its queue's clock has passed its end by the allowed lateness and no contact that
arrived in it (or earlier) is still waiting: another queue's events (a source clock ahead, a made-up queue)
cannot make it final. An event whose own interval, or an interval it would change, is
final is *late*: it is counted and reported, never applied.
"""

from __future__ import annotations

import heapq
import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from zoneinfo import ZoneInfo

import msgspec

from pipeline.contract import events as ev
from pipeline.core.settings import QueueSettings
from pipeline.core.time import (
    NO_TIME,
    due_for_revision,
    epoch_ms,
    interval_start,
    local_bounds,
    next_revision,
)
from pipeline.kpis.counts import Forecast, IntervalUpdate, QueueCounts, Window, bucket_name
from pipeline.state.codec import Codec

SNAPSHOT_VERSION = 8  # typed documents (`QueueSnapshot`); nothing earlier was released
FAR_FUTURE = 2**62
MAX_CHAT_MESSAGES = 2000  # per leg: more is not a chat but a flood (rejected as impossible)

# apply() results that are not "applied"
DUPLICATE = "duplicate"
LATE = "late"
IMPOSSIBLE = "impossible_sequence"
# An outcome stamped before its offer by no more than the tolerance (two clocks at the source, a second apart) is
# moved to the offer time and counted; `apply` returns which outcome it was (applied, unlike the others).
CLAMPS = {"answered_at": "answer_before_offer", "abandoned_at": "abandon_before_offer"}
CLAMPS |= {"flowed_out_at": "exit_before_offer", "callback_at": "exit_before_offer"}
ROLLUPS: tuple[Window, ...] = ("hour", "day")  # the windows summed from the intervals


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
    agent_id: str | None = None  # who answered
    abandoned_at: int | None = None
    flowed_out_at: int | None = None
    callback_at: int | None = None
    conversation_end_at: int | None = None  # contact.ended or contact.transferred
    transferred: bool = False
    acw_end_at: int | None = None
    holds_started: int = 0
    holds_ended: int = 0
    hold_start_sum: int = 0  # hold time = sum of ends - sum of starts, whatever order they came in
    hold_end_sum: int = 0
    customer_messages: list[int] = field(default_factory=list)  # chat message times
    agent_messages: list[int] = field(default_factory=list)
    chat_counted: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # as CHAT_FIELDS, counted so far
    outcome_counted: bool = False
    handled_counted: bool = False
    hold_counted: int = 0
    held_counted: int = 0

    def clone(self) -> Leg:
        """A shallow copy (lists are replaced, never changed in place), several times faster than copy.copy."""
        return Leg(*_leg_fields(self))

    @property
    def left_at(self) -> int | None:
        """When the contact left the queue unanswered (abandoned, flowed out or asked for a callback)."""
        for t in (self.abandoned_at, self.flowed_out_at, self.callback_at):
            if t is not None:
                return t
        return None

    @property
    def waiting(self) -> bool:
        return self.offered_at is not None and not self.outcome_counted

    @property
    def complete(self) -> bool:
        return self.outcome_counted and (self.left_at is not None or self.handled_counted)


_leg_fields = operator.attrgetter(*(f.name for f in fields(Leg)))


@dataclass(slots=True)
class OpenInterval:
    counts: QueueCounts = field(default_factory=QueueCounts)
    revision: int = 0
    changed: bool = False
    published_at: float = 0.0  # wall clock (seconds) of the last published revision
    agents: dict[str, QueueCounts] = field(default_factory=dict)  # handling per agent who answered
    event_ids: set[str] = field(default_factory=set)  # of events that belong to no leg (surveys, IVR)
    rollups: list[OpenInterval] = field(default_factory=list)  # the open hour and day it is added to when final


_STANDALONE = (ev.SurveyCompleted, ev.IvrSessionEnded, ev.ForecastPublished)  # events that belong to no leg
QueueEvent = ev.ContactEvent | ev.SurveyCompleted | ev.IvrSessionEnded | ev.ForecastPublished
"""What `QueueState.apply` takes: the contact topic's events but the heartbeats (they only move time)."""

# (interval start in epoch ms, count name, amount, the answering agent when it is also an agent's count)
Increment = tuple[int, str, int, str | None]


class QueueState:
    """All queue legs, intervals and totals of one partition."""

    def __init__(
        self,
        interval_seconds: int,
        allowed_lateness_seconds: float,
        contact_timeout_seconds: float,
        rules_of: Callable[[str], QueueSettings],
        wait_bounds_seconds: tuple[float, ...] = (),
        clamp_skew_seconds: float = 0.0,
    ) -> None:
        self.interval_ms = interval_seconds * 1000
        self.clamp_skew = round(clamp_skew_seconds * 1000)
        self.allowed_lateness = round(allowed_lateness_seconds * 1000)
        self.contact_timeout = round(contact_timeout_seconds * 1000)
        self.rules_of = rules_of  # queue id -> its settings (thresholds, variant, ...)
        self.wait_bounds_ms = tuple(sorted({round(b * 1000) for b in wait_bounds_seconds}))
        self.watermark = NO_TIME  # the newest event time on the partition (shown; the FCR side reads it)
        # Each queue closes its intervals on its own clock: the newest time of its own events, or of the source's
        # heartbeats if later. Another queue's clock (a source ahead, or a writer stamping a made-up queue later
        # than the real traffic) never makes this queue's events late.
        self.clocks: dict[str, int] = {}  # queue id -> newest event time of its applied events
        self.heartbeat = NO_TIME  # newest `source.heartbeat`: no event older is still to come on this partition
        self.offset = -1  # last source offset applied; replays of older offsets are skipped
        self.legs: dict[tuple[str, str], Leg] = {}
        self.intervals: dict[tuple[str, str, int], OpenInterval] = {}
        self.totals: dict[tuple[str, str], QueueCounts] = {}
        self.agent_totals: dict[str, QueueCounts] = {}  # handling per agent, all queues of this partition
        # hour and day rollups in each queue's time zone: (queue, channel, window, start ms) -> end ms, counts
        self.rollups: dict[tuple[str, str, Window, int], tuple[int, OpenInterval]] = {}
        # the newest final interval per (queue, channel): with the open one, the recent traffic for staffing
        self.last_final: dict[tuple[str, str], tuple[int, QueueCounts]] = {}
        self._bounds: dict[tuple[str, str, int], tuple[int, int]] = {}  # (zone, window, interval start) cache
        # expired legs by (queue, channel, reason), for the pipeline's own metrics
        self.expired: dict[tuple[str, str, str], int] = {}
        # contacts waiting now: (queue, channel) -> {contact id: arrival time}; derived from the legs
        self.waiting_since: dict[tuple[str, str], dict[str, int]] = {}
        # WFM forecasts, (queue, channel) -> interval start -> the newest, until the interval's final record. Kept
        # apart from the open intervals: a day's forecasts come at once, in the morning, and an open interval per
        # forecast (57,600 for 200 queues) cost ~40 MB and a sort of all of them per batch.
        self.forecasts: dict[tuple[str, str], dict[int, Forecast]] = {}
        self._forecast_due: list[tuple[int, str, str]] = []  # heap of (start, queue, channel) of self.forecasts
        self._next_expiry = NO_TIME  # no incomplete leg expires before this (a bound: advance() recomputes it)
        self._closable_upto: int | None = None  # the newest interval start closable by time at the last advance()
        # since the last `snapshot` or `changes`: legs changed or gone (None: too many to list), agents counted
        self._changed_legs: set[tuple[str, str]] | None = set()
        self._changed_agents: set[str] = set()
        self._thresholds: dict[str, tuple[int, int]] = {}  # queue id -> (service level threshold, short abandon) ms

    # ---- applying events -------------------------------------------------------------------------------

    def observe_time(self, t: int) -> None:
        """A heartbeat: every queue's clock is at least `t` from now on."""
        if t > self.heartbeat:
            self.heartbeat = t
        if t > self.watermark:
            self.watermark = t

    def clock(self, queue_id: str) -> int:
        """The event time up to which the queue is complete: its own newest event, or the newest heartbeat."""
        own = self.clocks.get(queue_id, NO_TIME)
        return own if own > self.heartbeat else self.heartbeat

    def _observe(self, queue_id: str, t: int) -> None:
        if t > self.clocks.get(queue_id, NO_TIME):
            self.clocks[queue_id] = t
        if t > self.watermark:
            self.watermark = t

    def is_final(self, queue_id: str, channel: str, start: int) -> bool:
        """Closed for good: past its end by the allowed lateness, and nothing arrived in or before it waits.

        From the events applied alone, not from whether `advance` has published it yet: otherwise an event would
        be late or counted depending on where a batch happened to end, and a record made at a given offset would
        not be a function of the events up to it (its revision names that offset: `next_revision`)."""
        return self._closable(queue_id, channel, start)

    def forecast(self, queue_id: str, channel: str, start: int) -> Forecast | None:
        return self.forecasts.get((queue_id, channel), {}).get(start)

    def _pop_forecast(self, queue_id: str, channel: str, start: int) -> Forecast | None:
        of_queue = self.forecasts.get((queue_id, channel))
        if not of_queue or start not in of_queue:
            return None
        fc = of_queue.pop(start)
        if not of_queue:
            del self.forecasts[(queue_id, channel)]
        return fc

    def _closable(self, queue_id: str, channel: str, start: int) -> bool:
        if start + self.interval_ms + self.allowed_lateness > self.clock(queue_id):
            return False
        waiting = self.waiting_since.get((queue_id, channel))
        return not waiting or min(waiting.values()) >= start + self.interval_ms

    def _track_waiting(self, leg: Leg) -> None:
        qc = (leg.queue_id, leg.channel)
        if leg.offered_at is not None and not leg.outcome_counted:  # `leg.waiting`, spelt out for the type checker
            self.waiting_since.setdefault(qc, {})[leg.contact_id] = leg.offered_at
        elif qc in self.waiting_since:
            self.waiting_since[qc].pop(leg.contact_id, None)
            if not self.waiting_since[qc]:
                del self.waiting_since[qc]

    def apply(self, e: QueueEvent, t: int | None = None) -> str | None:
        """Apply one contact-topic event (`t`: its time in epoch ms, if the caller has it already). Returns None
        when applied, one of `CLAMPS`' reasons when applied with an outcome moved to the offer time, else DUPLICATE,
        LATE or IMPOSSIBLE."""
        if t is None:
            t = epoch_ms(e.time)
        if isinstance(e, _STANDALONE):
            return self._apply_standalone(e, t)
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
            leg = old.clone()
        newly_offered = leg.offered_at is None
        if not _record(leg, e, t):
            return IMPOSSIBLE
        clamped = _clamp(leg, self.clamp_skew) if self.clamp_skew and not leg.outcome_counted else None
        newly_offered = newly_offered and leg.offered_at is not None
        threshold, short = self._thresholds_ms(leg.queue_id)
        increments = _contribution(leg, newly_offered, threshold, short, self.wait_bounds_ms, length)
        if increments is None:
            return IMPOSSIBLE
        checked = None
        for start, _, _, _ in increments:  # an event's increments share one or two starts, mostly in a row
            if start != checked:
                if self.is_final(leg.queue_id, leg.channel, start):
                    return LATE
                checked = start
        leg.event_ids = [*leg.event_ids, e.event_id]
        leg.first_seen = min(leg.first_seen, t)
        leg.last_seen = max(leg.last_seen, t)
        self.legs[key] = leg
        if self._changed_legs is not None:
            self._changed_legs.add(key)
        if not leg.complete:
            self._next_expiry = min(self._next_expiry, _expires_at(leg, self.contact_timeout))
        self._track_waiting(leg)
        self._add(leg.queue_id, leg.channel, increments)
        self._observe(leg.queue_id, t)
        return clamped

    def _thresholds_ms(self, queue_id: str) -> tuple[int, int]:
        """The queue's service level threshold and short abandon time in ms (looked up once per queue: the
        rules do not change while the worker runs)."""
        found = self._thresholds.get(queue_id)
        if found is None:
            rules = self.rules_of(queue_id)
            found = self._thresholds[queue_id] = (
                round(rules.service_level_threshold_seconds * 1000),
                round(rules.short_abandon_seconds * 1000),
            )
        return found

    def _apply_standalone(
        self, e: ev.SurveyCompleted | ev.IvrSessionEnded | ev.ForecastPublished, t: int
    ) -> str | None:
        """Events that belong to an interval but to no leg: deduplicated per interval, while it is open."""
        at = epoch_ms(e.interval_start) if isinstance(e, ev.ForecastPublished) else t
        start = interval_start(at, self.interval_ms)
        if self.is_final(e.queue_id, e.channel, start):
            return LATE
        if isinstance(e, ev.ForecastPublished):
            return self._forecast(e, t, start)
        ivl = self.intervals.get((e.queue_id, e.channel, start))
        if ivl is not None and e.event_id in ivl.event_ids:
            return DUPLICATE
        increments: list[Increment]
        match e:
            case ev.SurveyCompleted():
                increments = [
                    (start, "surveys", 1, None),
                    (start, "survey_score_sum", e.score, None),
                    (start, "surveys_satisfied", int(e.score >= 4), None),
                ]
            case _:
                increments = [(start, "ivr_sessions", 1, None), (start, "ivr_contained", int(e.contained), None)]
        self._add(e.queue_id, e.channel, increments)
        self.intervals[(e.queue_id, e.channel, start)].event_ids.add(e.event_id)
        self._observe(e.queue_id, t)
        return None

    def _forecast(self, e: ev.ForecastPublished, t: int, start: int) -> str | None:
        """The newest forecast by event time wins; the same one again is a duplicate."""
        new = Forecast(t, e.offered, e.aht_seconds)
        of_queue = self.forecasts.setdefault((e.queue_id, e.channel), {})
        old = of_queue.get(start)
        if old == new:
            return DUPLICATE
        if old is None:
            heapq.heappush(self._forecast_due, (start, e.queue_id, e.channel))
        if old is None or t >= old.published_at:
            of_queue[start] = new
        self._observe(e.queue_id, t)
        return None

    def _add(self, queue_id: str, channel: str, increments: list[Increment]) -> None:
        total = self.totals.get((queue_id, channel))
        if total is None:
            total = self.totals[(queue_id, channel)] = QueueCounts()
        # Hours and days get an interval's counts when it is final (`_fold`), not every increment, which would
        # triple the counting of every event.
        intervals: dict[int, OpenInterval] = {}  # an event's increments share one or two starts
        for start, name, amount, agent in increments:
            ivl = intervals.get(start)
            if ivl is None:
                ivl = self.intervals.get((queue_id, channel, start))
                if ivl is None:
                    ivl = self.intervals[(queue_id, channel, start)] = OpenInterval(
                        rollups=self._rollups_of(queue_id, channel, start)
                    )
                ivl.changed = True
                for roll in ivl.rollups:
                    roll.changed = True
                intervals[start] = ivl
            ivl.counts.bump(name, amount)
            if agent is not None:
                ivl.agents.setdefault(agent, QueueCounts()).bump(name, amount)
            total.bump(name, amount)
            if agent is not None:
                self.agent_totals.setdefault(agent, QueueCounts()).bump(name, amount)
                self._changed_agents.add(agent)

    def _rollups_of(self, queue_id: str, channel: str, start: int) -> list[OpenInterval]:
        """The open hour and day (in the queue's time zone) that hold the interval starting at `start`."""
        zone = self.rules_of(queue_id).time_zone
        out = []
        for window in ROLLUPS:
            bounds = self._bounds.get((zone, window, start))
            if bounds is None:
                bounds = self._bounds[(zone, window, start)] = local_bounds(start, window, ZoneInfo(zone))
            key = (queue_id, channel, window, bounds[0])
            if key not in self.rollups:
                self.rollups[key] = (bounds[1], OpenInterval())
            out.append(self.rollups[key][1])
        return out

    # ---- time passing ----------------------------------------------------------------------------------

    def advance(self) -> list[IntervalUpdate]:
        """Expire stale legs, close every interval that is now final, and forget legs that can change nothing.

        Returns the final updates, oldest first. Call once per batch, after applying it.
        """
        wm = self.watermark  # the newest clock of any queue: what can change anything is at or before it
        length = self.interval_ms
        if wm >= self._next_expiry:  # both passes over the legs run only when they can change something
            self._next_expiry = FAR_FUTURE
            for key, leg in list(self.legs.items()):
                if not leg.complete:
                    due = _expires_at(leg, self.contact_timeout)
                    if due <= self.clock(leg.queue_id):
                        self._expire(key, leg)
                    elif due < self._next_expiry:
                        self._next_expiry = due
        finals: list[IntervalUpdate] = []
        for q, ch, start in sorted(self.intervals, key=lambda k: k[2]):
            if not self._closable(q, ch, start):
                continue
            ivl = self.intervals.pop((q, ch, start))
            self._fold(ivl)
            ivl.revision = next_revision(ivl.revision, self.offset)
            finals.append(self._final(q, ch, start, ivl.revision, ivl.counts, ivl.agents))
        finals += self._forecasts_without_traffic()
        finals.sort(key=lambda u: u.start)
        # A complete leg is kept while any interval it touched is open, so that a re-delivered event of it is
        # still recognised as a duplicate; after that every event of it would be late anyway. An interval becomes
        # final when time passes its end (by the lateness) or when it is closed here: otherwise nothing to forget.
        closable_upto = interval_start(wm - self.allowed_lateness - length, length)
        if not finals and closable_upto == self._closable_upto:
            return finals
        self._closable_upto = closable_upto
        for key, leg in list(self.legs.items()):
            if leg.complete and all(
                self.is_final(leg.queue_id, leg.channel, interval_start(t, length))
                for t in (leg.offered_at, leg.acw_end_at, leg.last_seen)
                if t is not None
            ):
                self._forget(key)
        if self._changed_legs is not None and len(self._changed_legs) > 4096 + 2 * len(self.legs):
            self._changed_legs = None  # nothing takes checkpoints (a replay, say): do not keep listing
        return finals

    def _forget(self, key: tuple[str, str]) -> None:
        del self.legs[key]
        if self._changed_legs is not None:
            self._changed_legs.add(key)

    def _fold(self, ivl: OpenInterval) -> None:
        """A final interval's counts into its hour and day."""
        for roll in ivl.rollups:
            roll.counts.add(ivl.counts)
            _add_agents(roll.agents, ivl.agents)
        self._changed_agents.update(ivl.agents)

    def _final(
        self, q: str, ch: str, start: int, revision: int, counts: QueueCounts, agents: dict[str, QueueCounts]
    ) -> IntervalUpdate:
        """The final update of a closed interval, with its forecast; the newest final is kept for staffing."""
        if start >= self.last_final.get((q, ch), (NO_TIME,))[0]:
            self.last_final[(q, ch)] = (start, counts)
        return IntervalUpdate(
            q, ch, start // 1000, revision, True, counts, self.rules_of(q), agents, self._pop_forecast(q, ch, start)
        )

    def _forecasts_without_traffic(self) -> list[IntervalUpdate]:
        """Final records of closable intervals that had a forecast and no event: forecast against nothing.
        (Call after the open intervals are closed: one still open is not closable.)"""
        out, blocked = [], []
        due = self._forecast_due
        while due and due[0][0] + self.interval_ms + self.allowed_lateness <= self.watermark:
            start, q, ch = heapq.heappop(due)
            if self.forecast(q, ch, start) is None:
                continue  # published with its interval
            if not self._closable(q, ch, start):
                blocked.append((start, q, ch))  # a contact that arrived in it or earlier still waits
                continue
            out.append(self._final(q, ch, start, next_revision(0, self.offset), QueueCounts(), {}))
        for item in blocked:
            heapq.heappush(due, item)
        return out

    def rollup_updates(self, wall_now: float, every: float) -> list[IntervalUpdate]:
        """Final hours and days (call after `advance`), then provisional ones that changed `every` seconds ago.

        An hour or day is final once it has ended by the allowed lateness, no interval of it is still open and
        no contact that arrived in it still waits: then every interval in it is final too.
        """
        if len(self._bounds) > 10_000:
            self._bounds.clear()  # a cache: bounded
        finals = []
        for (q, ch, window, start), (end, roll) in sorted(self.rollups.items(), key=lambda kv: kv[0][3]):
            if end + self.allowed_lateness > self.clock(q):
                continue
            if any(iq == q and ich == ch and s < end for iq, ich, s in self.intervals):
                continue
            waiting = self.waiting_since.get((q, ch))
            if waiting and min(waiting.values()) < end:
                continue
            del self.rollups[(q, ch, window, start)]
            roll.revision = next_revision(roll.revision, self.offset)
            finals.append(
                IntervalUpdate(
                    q,
                    ch,
                    start // 1000,
                    roll.revision,
                    True,
                    roll.counts,
                    self.rules_of(q),
                    roll.agents,
                    None,
                    window,
                    end // 1000,
                )
            )
        for (q, ch, window, start), (end, roll) in self.rollups.items():
            if due_for_revision(roll, wall_now, every, self.offset):
                counts, agents = roll.counts.copy(), _copied(roll.agents)
                for (iq, ich, s), ivl in self.intervals.items():  # open ones: added when final
                    if iq == q and ich == ch and start <= s < end:
                        counts.add(ivl.counts)
                        _add_agents(agents, ivl.agents)
                finals.append(
                    IntervalUpdate(
                        q,
                        ch,
                        start // 1000,
                        roll.revision,
                        False,
                        counts,
                        self.rules_of(q),
                        agents,
                        None,
                        window,
                        end // 1000,
                    )
                )
        return finals

    def _expire(self, key: tuple[str, str], leg: Leg) -> None:
        if leg.offered_at is None:
            reason = "no_arrival"
        elif not leg.outcome_counted:
            reason = "no_outcome"
            self._add(
                leg.queue_id, leg.channel, [(interval_start(leg.offered_at, self.interval_ms), "expired", 1, None)]
            )
        else:
            reason = "no_handling_end"
        k = (leg.queue_id, leg.channel, reason)
        self.expired[k] = self.expired.get(k, 0) + 1
        self._forget(key)
        leg.outcome_counted = True  # no longer waiting
        self._track_waiting(leg)

    def provisional(self, wall_now: float, every: float) -> list[IntervalUpdate]:
        """Updates for open intervals that changed and were last published at least `every` seconds ago."""
        out = []
        for (q, ch, start), ivl in self.intervals.items():
            if due_for_revision(ivl, wall_now, every, self.offset):
                out.append(
                    IntervalUpdate(
                        q,
                        ch,
                        start // 1000,
                        ivl.revision,
                        False,
                        ivl.counts.copy(),
                        self.rules_of(q),
                        _copied(ivl.agents),
                        self.forecast(q, ch, start),
                    )
                )
        return out

    # ---- real time -------------------------------------------------------------------------------------

    def recent(self) -> Iterator[tuple[str, str, QueueCounts, float]]:
        """(queue, channel, counts, span in seconds) of the newest final interval and everything open after it,
        up to the queue's clock: the recent traffic that live staffing is estimated from."""
        for (q, ch), (start, final) in self.last_final.items():
            counts = QueueCounts()
            counts.add(final)
            for (iq, ich, s), ivl in self.intervals.items():
                if (iq, ich) == (q, ch) and s > start:
                    counts.add(ivl.counts)
            yield q, ch, counts, max(self.clock(q) - start, self.interval_ms) / 1000

    def waiting(self) -> Iterator[tuple[str, str, int, float]]:
        """(queue, channel, contacts waiting now, age in seconds of the oldest, measured at the queue's clock)."""
        for (q, ch), since in self.waiting_since.items():
            yield q, ch, len(since), max(0, self.clock(q) - min(since.values())) / 1000

    # ---- checkpoint ------------------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The whole state (resets what `changes` reports)."""
        self._changed_legs, self._changed_agents = set(), set()
        return CODEC.encode(self._document(list(self.legs.values()), None))

    def changes(self) -> bytes | None:
        """What changed since the last `snapshot` or `changes` (None: too much to tell; take a snapshot): the legs
        changed or gone, and of the per-agent counts only the agents counted since; the rest whole (open
        intervals and rollups, totals: a few dozen entries). `restore(snapshot, [changes, ...])` gives the state
        back."""
        legs, agents = self._changed_legs, self._changed_agents
        if legs is None:
            return None
        self._changed_legs, self._changed_agents = set(), set()
        held = [self.legs[k] for k in legs if k in self.legs]
        document = self._document(held, agents)
        document.legs_gone = [k for k in legs if k not in self.legs]
        return CODEC.encode(document)

    def _document(self, legs: list[Leg], agents: set[str] | None) -> QueueSnapshot:
        """The stored form: every agent's counts, or only those of `agents`."""

        def of(counts: dict[str, QueueCounts]) -> dict[str, QueueCounts]:
            return counts if agents is None else {a: counts[a] for a in agents if a in counts}

        return QueueSnapshot(
            watermark=self.watermark,
            clocks=self.clocks,
            heartbeat=self.heartbeat,
            offset=self.offset,
            legs=legs,
            intervals=[
                StoredInterval(
                    q, ch, s, i.counts, i.revision, i.changed, i.published_at, of(i.agents), sorted(i.event_ids)
                )
                for (q, ch, s), i in self.intervals.items()
            ],
            forecasts=[
                StoredForecast(q, ch, s, f) for (q, ch), of_queue in self.forecasts.items() for s, f in of_queue.items()
            ],
            totals=[StoredTotal(q, ch, c) for (q, ch), c in self.totals.items()],
            agent_totals=of(self.agent_totals),
            last_final=[StoredFinal(q, ch, start, c) for (q, ch), (start, c) in self.last_final.items()],
            rollups=[
                StoredRollup(q, ch, w, s, end, r.counts, r.revision, r.changed, r.published_at, of(r.agents))
                for (q, ch, w, s), (end, r) in self.rollups.items()
            ],
            expired=[StoredExpired(q, ch, reason, n) for (q, ch, reason), n in self.expired.items()],
        )

    def restore(self, data: bytes, changes: Iterable[bytes] = ()) -> None:
        """From a `snapshot` and the `changes` since, oldest first."""
        d = CODEC.decode(data)
        for later in changes:
            d = _merged(d, CODEC.decode(later))
        self.watermark = d.watermark
        self.clocks = d.clocks
        self.heartbeat = d.heartbeat
        self.offset = d.offset
        self.legs = {(x.queue_id, x.contact_id): x for x in d.legs}
        self.intervals = {
            (i.queue_id, i.channel, i.start): OpenInterval(
                i.counts, i.revision, i.changed, i.published_at, i.agents, set(i.event_ids)
            )
            for i in d.intervals
        }
        self.forecasts = {}
        for f in d.forecasts:
            self.forecasts.setdefault((f.queue_id, f.channel), {})[f.start] = f.forecast
        self._forecast_due = [(s, q, ch) for (q, ch), of_queue in self.forecasts.items() for s in of_queue]
        heapq.heapify(self._forecast_due)
        self.totals = {(t.queue_id, t.channel): t.counts for t in d.totals}
        self.agent_totals = d.agent_totals
        self.last_final = {(t.queue_id, t.channel): (t.start, t.counts) for t in d.last_final}
        self.rollups = {
            (r.queue_id, r.channel, r.window, r.start): (
                r.end,
                OpenInterval(r.counts, r.revision, r.changed, r.published_at, r.agents),
            )
            for r in d.rollups
        }
        self.expired = {(x.queue_id, x.channel, x.reason): x.n for x in d.expired}
        self.waiting_since = {}
        for leg in self.legs.values():
            self._track_waiting(leg)
        self._next_expiry, self._closable_upto = NO_TIME, None
        self._changed_legs, self._changed_agents = set(), set()
        for (q, ch, s), ivl in self.intervals.items():
            ivl.rollups = self._rollups_of(q, ch, s)


# ---- the stored form (`CODEC`) ----------------------------------------------------------------------------


class StoredInterval(msgspec.Struct):
    """An open interval (`OpenInterval`; its rollups are derived)."""

    queue_id: str
    channel: str
    start: int  # epoch ms
    counts: QueueCounts
    revision: int
    changed: bool
    published_at: float
    agents: dict[str, QueueCounts]  # in changes: only the agents counted since the last checkpoint
    event_ids: list[str]


class StoredRollup(msgspec.Struct):
    """An open hour or day (the open intervals' counts are not in it: they are added when final)."""

    queue_id: str
    channel: str
    window: Window
    start: int  # epoch ms
    end: int
    counts: QueueCounts
    revision: int
    changed: bool
    published_at: float
    agents: dict[str, QueueCounts]  # in changes: only the agents counted since the last checkpoint


class StoredForecast(msgspec.Struct):
    queue_id: str
    channel: str
    start: int  # of the interval it forecasts, epoch ms
    forecast: Forecast


class StoredTotal(msgspec.Struct):
    """The running totals of a queue and channel."""

    queue_id: str
    channel: str
    counts: QueueCounts


class StoredFinal(msgspec.Struct):
    """The newest final interval of a queue and channel (live staffing reads it)."""

    queue_id: str
    channel: str
    start: int  # epoch ms
    counts: QueueCounts


class StoredExpired(msgspec.Struct):
    queue_id: str
    channel: str
    reason: str
    n: int


class QueueSnapshot(msgspec.Struct):
    """A queue state's checkpoint: whole (`snapshot`), or the changes since the last one (`changes`: the legs
    changed, those gone, the agents counted since; the rest whole)."""

    watermark: int
    clocks: dict[str, int]
    heartbeat: int
    offset: int
    legs: list[Leg]
    intervals: list[StoredInterval]
    forecasts: list[StoredForecast]
    totals: list[StoredTotal]
    agent_totals: dict[str, QueueCounts]
    last_final: list[StoredFinal]
    rollups: list[StoredRollup]
    expired: list[StoredExpired]
    legs_gone: list[tuple[str, str]] = []


CODEC = Codec("queue state", b"CCQS", SNAPSHOT_VERSION, QueueSnapshot)


def _merged(d: QueueSnapshot, changes: QueueSnapshot) -> QueueSnapshot:
    """A stored document with `changes` applied: their legs and agents' counts over its own, the rest theirs."""
    legs = {(x.queue_id, x.contact_id): x for x in d.legs}
    legs.update(((x.queue_id, x.contact_id), x) for x in changes.legs)
    for key in changes.legs_gone:
        legs.pop(key, None)
    agents = {(i.queue_id, i.channel, i.start): i.agents for i in d.intervals}
    for i in changes.intervals:
        i.agents = {**agents.get((i.queue_id, i.channel, i.start), {}), **i.agents}
    rollup_agents = {(r.queue_id, r.channel, r.window, r.start): r.agents for r in d.rollups}
    for r in changes.rollups:
        r.agents = {**rollup_agents.get((r.queue_id, r.channel, r.window, r.start), {}), **r.agents}
    changes.legs = list(legs.values())
    changes.agent_totals = {**d.agent_totals, **changes.agent_totals}
    changes.legs_gone = []
    return changes


def _add_agents(into: dict[str, QueueCounts], agents: dict[str, QueueCounts]) -> None:
    for a, c in agents.items():
        mine = into.get(a)
        if mine is None:
            into[a] = c.copy()
        else:
            mine.add(c)


def _copied(agents: dict[str, QueueCounts]) -> dict[str, QueueCounts]:
    return {a: c.copy() for a, c in agents.items()}


def _expires_at(leg: Leg, timeout: int) -> int:
    """When an incomplete leg is given up on: the contact timeout after its arrival (or first event)."""
    return (leg.offered_at if leg.offered_at is not None else leg.first_seen) + timeout


def _clamp(leg: Leg, skew: int) -> str | None:
    """Move an outcome stamped at most `skew` ms before the offer to the offer time; which one it was, if any."""
    offered = leg.offered_at
    if offered is None:
        return None
    for name, reason in CLAMPS.items():
        t = getattr(leg, name)
        if t is not None and offered - skew <= t < offered:
            setattr(leg, name, offered)
            return reason
    return None


def _record(leg: Leg, e: ev.ContactEvent, t: int) -> bool:
    """Write the event's fact into the leg; False when it contradicts what the leg already knows."""
    gone = leg.left_at is not None
    match e:
        case ev.ContactOffered():
            if leg.offered_at is not None:
                return False
            leg.offered_at = t
        case ev.ContactAnswered():
            if leg.answered_at is not None or gone:
                return False
            leg.answered_at = t
            leg.agent_id = e.agent_id
        case ev.ContactAbandoned() | ev.ContactFlowedOut() | ev.CallbackRequested():
            if leg.answered_at is not None or gone or leg.conversation_end_at is not None:
                return False
            if isinstance(e, ev.ContactAbandoned):
                leg.abandoned_at = t
            elif isinstance(e, ev.ContactFlowedOut):
                leg.flowed_out_at = t
            else:
                leg.callback_at = t
        case ev.HoldStarted():
            if gone:
                return False
            leg.holds_started += 1
            leg.hold_start_sum += t
        case ev.HoldEnded():
            if gone:
                return False
            leg.holds_ended += 1
            leg.hold_end_sum += t
        case ev.ContactEnded() | ev.ContactTransferred():
            if leg.conversation_end_at is not None or gone:
                return False
            leg.conversation_end_at = t
            leg.transferred = isinstance(e, ev.ContactTransferred)
        case ev.AcwEnded():
            if leg.acw_end_at is not None or gone:
                return False
            leg.acw_end_at = t
        case ev.ChatMessage():
            if len(leg.customer_messages) + len(leg.agent_messages) >= MAX_CHAT_MESSAGES:
                return False
            if e.sender == "customer":
                leg.customer_messages = [*leg.customer_messages, t]
            elif gone:
                return False  # nobody accepted it: no agent to write
            else:
                leg.agent_messages = [*leg.agent_messages, t]
        case _:
            return False
    return True


def _contribution(
    leg: Leg, newly_offered: bool, threshold: int, short: int, bounds: tuple[int, ...], length: int
) -> list[Increment] | None:
    """The counts the leg adds now that it did not add before, marking them added on the leg.

    None when the leg's times are impossible (an answer before the arrival, an end before the answer).
    """
    out: list[Increment] = []
    if newly_offered and leg.offered_at is not None:  # newly offered: it has an arrival time
        out.append((interval_start(leg.offered_at, length), "offered", 1, None))
    if not leg.outcome_counted and leg.offered_at is not None:
        arrival = interval_start(leg.offered_at, length)
        if leg.answered_at is not None:
            wait = leg.answered_at - leg.offered_at
            if wait < 0:
                return None
            out += [
                (arrival, "answered", 1, None),
                (arrival, "answer_wait_ms", wait, None),
                (arrival, bucket_name("answered", wait, bounds), 1, None),
            ]
            if wait <= threshold:
                out.append((arrival, "answered_within_threshold", 1, None))
        elif leg.abandoned_at is not None:
            wait = leg.abandoned_at - leg.offered_at
            if wait < 0:
                return None
            out += [
                (arrival, "abandoned", 1, None),
                (arrival, "abandon_wait_ms", wait, None),
                (arrival, bucket_name("abandoned", wait, bounds), 1, None),
            ]
            if wait <= threshold:
                out.append((arrival, "abandoned_within_threshold", 1, None))
            if wait <= short:
                out.append((arrival, "short_abandoned", 1, None))
        elif leg.left_at is not None:
            wait = leg.left_at - leg.offered_at
            if wait < 0:
                return None
            out.append((arrival, "flowed_out" if leg.flowed_out_at is not None else "callbacks_requested", 1, None))
        else:
            wait = None
        if wait is not None:
            out.append((arrival, "longest_wait_ms", wait, None))
            leg.outcome_counted = True
    if leg.holds_started != leg.holds_ended:
        return out  # a hold is still open: the handle time is not known yet
    hold = leg.hold_end_sum - leg.hold_start_sum
    held = int(leg.holds_started > 0)
    agent = leg.agent_id
    if leg.handled_counted and leg.acw_end_at is not None:  # counted once its after-contact work ended
        completed = interval_start(leg.acw_end_at, length)
        if hold != leg.hold_counted:  # a hold pair that arrived after the handling was counted
            out.append((completed, "hold_ms", hold - leg.hold_counted, agent))
            out.append((completed, "talk_ms", leg.hold_counted - hold, agent))  # talk = handle - hold - ACW
            leg.hold_counted = hold
        if held != leg.held_counted:
            out.append((completed, "held", held - leg.held_counted, agent))
            leg.held_counted = held
        out += _chat_delta(leg, completed)
    elif leg.answered_at is not None and leg.conversation_end_at is not None and leg.acw_end_at is not None:
        if not leg.answered_at <= leg.conversation_end_at <= leg.acw_end_at:
            return None
        completed = interval_start(leg.acw_end_at, length)
        out += [
            (completed, "handled", 1, agent),
            (completed, "handle_ms", leg.acw_end_at - leg.answered_at, agent),
            (completed, "talk_ms", leg.conversation_end_at - leg.answered_at - hold, agent),
            (completed, "hold_ms", hold, agent),
            (completed, "acw_ms", leg.acw_end_at - leg.conversation_end_at, agent),
            (completed, "held", held, agent),
            (completed, "transferred_out", int(leg.transferred), agent),
        ]
        leg.handled_counted = True
        leg.hold_counted = hold
        leg.held_counted = held
        out += _chat_delta(leg, completed)
    return out


CHAT_FIELDS = ("chat_first_responses", "chat_first_response_ms", "chat_responses", "chat_response_ms")


def chat_figures(customer: list[int], agent: list[int]) -> list[int]:
    """[first responses, first response ms, responses, response ms] of one chat's messages.

    A response is an agent message after one or more customer messages: its time is measured from the first
    customer message of that run. The first response is the first of them. At the same millisecond the
    customer's message comes first.
    """
    messages = sorted([(t, 0) for t in customer] + [(t, 1) for t in agent])
    pending, responses = None, []
    for t, by_agent in messages:
        if not by_agent:
            pending = t if pending is None else pending
        elif pending is not None:
            responses.append(t - pending)
            pending = None
    if not responses:
        return [0, 0, 0, 0]
    return [1, responses[0], len(responses), sum(responses)]


def _chat_delta(leg: Leg, completed: int) -> list[Increment]:
    """Chat response counts of a handled leg not yet counted (messages may arrive after the handling ended)."""
    if not leg.customer_messages and not leg.agent_messages:
        return []
    figures = chat_figures(leg.customer_messages, leg.agent_messages)
    out = [
        (completed, name, now - before, leg.agent_id)
        for name, now, before in zip(CHAT_FIELDS, figures, leg.chat_counted, strict=True)
        if now != before
    ]
    leg.chat_counted = figures
    return out
