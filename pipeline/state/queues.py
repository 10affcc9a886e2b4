"""The queue state of one partition of the contact-event topic, on event time. Pure Python: no Kafka, no Faust.

What it keeps:
- one *leg* per (queue, contact): a contact's stay in one queue, from the events seen of it so far;
- the open intervals' counts per (queue, channel, interval) and running totals per (queue, channel);
- each queue's clock (the newest time of its own events, or of the source's heartbeats if later), the
  partition's watermark (the newest event time of all), and the offset of the last message applied.

`QueueState` is the one interface callers use (apply, observe_time, advance, provisional, rollup_updates,
snapshot, changes, restore, and the read-only views the collectors take); its parts, each in its module:
- `legs`: a leg, the facts an event writes into it and the counts it adds (pure functions of the leg);
- `intervals`: an open interval's counts;
- `rollups`: the open hours and days, folded from the final intervals;
- `forecasts`: the WFM forecasts held until their interval's final record;
- `callbacks`: callbacks' own lifecycle (scheduled, dialled, connected or failed), which outlives their legs;
- `offers`: offers of a contact to an agent (ringing, then accepted, rejected or rung out: RONA);
- `queue_checkpoint`: the stored form (typed documents) and its codec.
This module applies events, tracks the contacts waiting, closes intervals and expires legs.

Events may come in any order: a leg's contribution to the counts is made only once the facts it needs are
known, so shuffled input gives the same counts as ordered input.

Attribution (see docs/kpis.md): a leg's queue outcome (offered, answered, abandoned, waits) belongs to the
interval in which it *arrived*; its handling (handled, handle/hold/ACW time, transfers) to the interval in
which its after-contact work *ended*.

An interval is final once its queue's clock has passed its end by the allowed lateness and no contact that
arrived in it (or earlier) is still waiting: another queue's events (a source clock ahead, a made-up queue)
cannot make it final. An event whose own interval, or an interval it would change, is
final is *late*: it is counted and reported, never applied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import msgspec

from pipeline.contract import events as ev
from pipeline.core.settings import QueueSettings
from pipeline.core.time import NO_TIME, due_for_revision, epoch_ms, interval_start, next_revision
from pipeline.kpis.counts import SUMS, Forecast, HandlingCounts, IntervalUpdate, QueueCounts, add_keyed, keyed_count
from pipeline.kpis.reporting.causes import worker_miss
from pipeline.state import callbacks as cbk
from pipeline.state import offers as ofr
from pipeline.state.forecasts import Forecasts
from pipeline.state.intervals import OpenInterval
from pipeline.state.legs import CLAMPS, Increment, Leg, chat_figures, clamp, contribution, expires_at, record
from pipeline.state.queue_checkpoint import (
    CODEC,
    VERSION,
    QueueSnapshot,
    StoredExpired,
    StoredFinal,
    StoredForecast,
    StoredInterval,
    StoredRollup,
    StoredTotal,
    merged,
)
from pipeline.state.rollups import RollupKey, Rollups

# what callers import from here (the state's one interface; the other modules are its parts)
__all__ = ["CLAMPS", "CODEC", "DUPLICATE", "IMPOSSIBLE", "LATE", "VERSION", "QueueEvent", "QueueState", "chat_figures"]
FAR_FUTURE = 2**62
# a channel's settings, its service level threshold and short abandon time in ms, its business-hours clock or None
Measure = tuple[QueueSettings, int, int, Callable[[int, int], int] | None]

# apply() results that are not "applied"
DUPLICATE = "duplicate"
LATE = "late"
IMPOSSIBLE = "impossible_sequence"


_Key = TypeVar("_Key", bound=tuple[str, ...])
_Entry = TypeVar("_Entry", cbk.Callback, ofr.Offer)  # what a callback or offer table holds


def _seen(entry: cbk.Callback | ofr.Offer, event_id: str, t: int) -> None:
    """An event applied to a callback or an offer: its id (for de-duplication) and its time."""
    entry.event_ids = [*entry.event_ids, event_id]
    entry.first_seen, entry.last_seen = min(entry.first_seen, t), max(entry.last_seen, t)


_STANDALONE = (ev.SurveyCompleted, ev.IvrSessionEnded, ev.ForecastPublished)  # events that belong to no leg
QueueEvent = ev.ContactEvent | ev.SurveyCompleted | ev.IvrSessionEnded | ev.ForecastPublished
"""What `QueueState.apply` takes: the contact topic's events but the heartbeats (they only move time)."""


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
        self.agent_totals: dict[str, HandlingCounts] = {}  # handling per agent, all queues of this partition
        self._rollups = Rollups(rules_of)  # hours and days in each queue's time zone
        # the newest final interval per (queue, channel): with the open one, the recent traffic for staffing
        self.last_final: dict[tuple[str, str], tuple[int, QueueCounts]] = {}
        # expired legs by (queue, channel, reason), for the pipeline's own metrics
        self.expired: dict[tuple[str, str, str], int] = {}
        # contacts waiting now: (queue, channel) -> {contact id: arrival time}; derived from the legs
        self.waiting_since: dict[tuple[str, str], dict[str, int]] = {}
        self._forecasts = Forecasts()  # WFM forecasts, until their interval's final record
        self._next_expiry = NO_TIME  # no incomplete leg expires before this (a bound: advance() recomputes it)
        self._closable_upto: int | None = None  # the newest interval start closable by time at the last advance()
        # since the last `snapshot` or `changes`: legs changed or gone (None: too many to list), agents counted
        self._changed_legs: set[tuple[str, str]] | None = set()
        self._changed_agents: set[str] = set()
        # queues and channels whose intervals, hours and days, totals or newest final changed since, the
        # queues whose clock moved, and the offers changed or gone: a checkpoint of changes holds these alone
        self._changed_queues: set[tuple[str, str]] = set()
        self._forecast_queues: set[tuple[str, str]] = set()  # and whose forecasts changed (a day's come at once)
        self._clocked: set[str] = set()
        # in the order changed, so that new ones are in the order `offers` has them
        self._changed_offers: dict[tuple[str, str, str], None] = {}
        self._thresholds: dict[tuple[str, str], Measure] = {}  # (queue, channel) -> how it is measured
        # callbacks known to their lifecycle (a promise or a `callback.*` event): (queue, contact) -> callback
        self.callbacks: dict[tuple[str, str], cbk.Callback] = {}
        # offers to agents, until counted and final: (queue, contact, offer id) -> offer
        self.offers: dict[tuple[str, str, str], ofr.Offer] = {}
        # event type -> what applies it, but a contact's own events (`_apply_leg`)
        self._appliers: dict[type, Callable[[Any, int], str | None]] = {
            **dict.fromkeys(_STANDALONE, self._apply_standalone),
            **dict.fromkeys(cbk.CALLBACK_EVENTS, self._apply_callback),
            **dict.fromkeys(ofr.OFFER_EVENTS, self._apply_offer),
            ev.CallbackRequested: self._apply_request,
        }

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
            self._clocked.add(queue_id)
        if t > self.watermark:
            self.watermark = t

    def is_final(self, queue_id: str, channel: str, start: int) -> bool:
        """Closed for good: past its end by the allowed lateness, and nothing arrived in or before it waits.

        From the events applied alone, not from whether `advance` has published it yet: otherwise an event would
        be late or counted depending on where a batch happened to end, and a record made at a given offset would
        not be a function of the events up to it (its revision names that offset: `next_revision`)."""
        return self._closable(queue_id, channel, start)

    @property
    def rollups(self) -> dict[RollupKey, tuple[int, OpenInterval]]:
        """The open hours and days: (queue, channel, window, start ms) -> (end ms, counts)."""
        return self._rollups.open

    @property
    def forecasts(self) -> dict[tuple[str, str], dict[int, Forecast]]:
        """The forecasts held: (queue, channel) -> interval start ms -> the newest."""
        return self._forecasts.by_queue

    def forecast(self, queue_id: str, channel: str, start: int) -> Forecast | None:
        return self._forecasts.get(queue_id, channel, start)

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
        # a look-up, not a chain of isinstance: this runs for every event (a contact's own events are not listed)
        return self._appliers.get(type(e), self._apply_leg)(e, t)

    def _apply_request(self, e: ev.CallbackRequested, t: int) -> str | None:
        """A leg's event, unless it carries a promise: then a callback's lifecycle begins too."""
        return self._apply_leg(e, t) if e.promised_by is None else self._apply_promised_request(e, t)

    def _apply_leg(self, e: ev.ContactEvent, t: int) -> str | None:
        length = self.interval_ms
        # intervals starting after this are open (`_closable`'s first test, once per event: the clock does not
        # move until the event is applied)
        horizon = self.clock(e.queue_id) - length - self.allowed_lateness
        start = interval_start(t, length)
        if start <= horizon and self.is_final(e.queue_id, e.channel, start):
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
        if not record(leg, e, t):
            return IMPOSSIBLE
        clamped = clamp(leg, self.clamp_skew) if self.clamp_skew and not leg.outcome_counted else None
        newly_offered = newly_offered and leg.offered_at is not None
        rules, threshold, short, business = self._measure(leg.queue_id, leg.channel)
        if isinstance(e, ev.ContactOffered) and e.segment is not None:
            leg.segment = rules.segment(e.segment)
        elif isinstance(e, ev.AcwEnded):
            leg.disposition = rules.disposition(e.disposition)
        increments = contribution(leg, newly_offered, threshold, short, self.wait_bounds_ms, length, business)
        if increments is None:
            return IMPOSSIBLE
        if self._any_final(leg.queue_id, leg.channel, increments, horizon):
            return LATE
        leg.event_ids = [*leg.event_ids, e.event_id]
        leg.first_seen = min(leg.first_seen, t)
        leg.last_seen = max(leg.last_seen, t)
        self.legs[key] = leg
        if self._changed_legs is not None:
            self._changed_legs.add(key)
        if not leg.complete:
            self._next_expiry = min(self._next_expiry, expires_at(leg, self.contact_timeout))
        self._track_waiting(leg)
        self._add(leg.queue_id, leg.channel, increments)
        self._observe(leg.queue_id, t)
        return clamped

    # ---- callbacks and offers: entries of their own lifecycle, beside the legs -----------------------------------

    def _entry(
        self,
        table: dict[_Key, _Entry],
        key: _Key,
        e: cbk.CallbackEvent | ofr.OfferEvent,
        t: int,
        new: Callable[[], _Entry],
    ) -> _Entry | str:
        """The entry (a callback or an offer) the event writes into: a copy of the one in `table`, so that nothing
        changes unless the event is applied, or `new()`; else why the event is not applied (LATE, DUPLICATE or
        IMPOSSIBLE: another channel than the entry's)."""
        if self.is_final(e.queue_id, e.channel, interval_start(t, self.interval_ms)):
            return LATE
        old = table.get(key)
        if old is None:
            return new()
        if e.event_id in old.event_ids:
            return DUPLICATE
        if old.channel != e.channel:
            return IMPOSSIBLE
        return msgspec.structs.replace(old)

    # ---- callbacks ---------------------------------------------------------------------------------------

    def _apply_callback(self, e: cbk.CallbackEvent, t: int) -> str | None:
        """A `callback.*` event: deduplicated by the callback, late when an interval it counts in is final."""
        key = (e.queue_id, e.contact_id)
        cb = self._entry(
            self.callbacks,
            key,
            e,
            t,
            lambda: cbk.Callback(e.queue_id, e.channel, e.contact_id, first_seen=t, last_seen=t),
        )
        if isinstance(cb, str):
            return cb
        if not cbk.record(cb, e, t):
            return IMPOSSIBLE
        increments = cbk.contribution(cb, e, t, self.interval_ms)
        if self._any_final(e.queue_id, e.channel, increments):
            return LATE
        _seen(cb, e.event_id, t)
        self._count_callback(key, cb, increments)
        self._observe(e.queue_id, t)
        return None

    def _apply_promised_request(self, e: ev.CallbackRequested, t: int) -> str | None:
        """A callback request with a promise: the leg's exit, and the promise into the callback's lifecycle (the
        leg deduplicates it; the promise may move the count of a first dial already seen)."""
        key = (e.queue_id, e.contact_id)
        old = self.callbacks.get(key)
        cb = (
            msgspec.structs.replace(old)
            if old is not None
            else cbk.Callback(e.queue_id, e.channel, e.contact_id, first_seen=t, last_seen=t)
        )
        if cb.channel != e.channel:
            return IMPOSSIBLE
        assert e.promised_by is not None
        cb.requested_promise = epoch_ms(e.promised_by)
        increments = cbk.contribution(cb, None, t, self.interval_ms)
        if self._any_final(cb.queue_id, cb.channel, increments):
            return LATE
        result = self._apply_leg(e, t)
        if result is None or result in CLAMPS.values():
            cb.first_seen, cb.last_seen = min(cb.first_seen, t), max(cb.last_seen, t)
            self._count_callback(key, cb, increments)
        return result

    def _any_final(
        self, queue_id: str, channel: str, increments: Iterable[Sequence[Any]], horizon: int = FAR_FUTURE
    ) -> bool:
        """Whether an interval the increments (of a leg, a callback or an offer) count in is final; those starting
        after `horizon` are open without asking (`_apply_leg` knows it once per event)."""
        checked = None
        for increment in increments:  # an event's increments share one or two starts, mostly in a row
            start = increment[0]
            if start != checked:
                if start <= horizon and self._closable(queue_id, channel, start):
                    return True
                checked = start
        return False

    def _count_callback(self, key: tuple[str, str], cb: cbk.Callback, increments: list[cbk.CallbackIncrement]) -> None:
        self.callbacks[key] = cb
        if increments:  # a schedule alone counts nothing: no totals for it either
            self._add(cb.queue_id, cb.channel, [(start, name, n, None) for start, name, n in increments])

    # ---- agent offers ------------------------------------------------------------------------------------

    def _apply_offer(self, e: ofr.OfferEvent, t: int) -> str | None:
        """An `offer.*` event: deduplicated by the offer, late when an interval it counts in is final."""
        key = (e.queue_id, e.contact_id, e.offer_id)
        offer = self._entry(
            self.offers,
            key,
            e,
            t,
            lambda: ofr.Offer(e.queue_id, e.channel, e.contact_id, e.offer_id, e.agent_id, first_seen=t, last_seen=t),
        )
        if isinstance(offer, str):
            return offer
        if not ofr.record(offer, e, t):
            return IMPOSSIBLE
        increments = ofr.contribution(offer, e, t, self.interval_ms)
        if increments is None:
            return IMPOSSIBLE
        if self._any_final(e.queue_id, e.channel, increments):
            return LATE
        _seen(offer, e.event_id, t)
        self.offers[key] = offer
        self._changed_offers[key] = None
        if increments:
            self._add(e.queue_id, e.channel, [(start, name, n, offer.agent_id) for start, name, n in increments])
        self._observe(e.queue_id, t)
        return None

    def _settle_offers(self) -> None:
        """Forget offers counted whose newest event's interval is final (so every earlier one is); give up on the
        others a contact timeout after their first event (reason: which half never came)."""
        for key, offer in list(self.offers.items()):
            if offer.complete:
                if self.is_final(offer.queue_id, offer.channel, interval_start(offer.last_seen, self.interval_ms)):
                    del self.offers[key]
                    self._changed_offers[key] = None
            elif offer.first_seen + self.contact_timeout <= self.clock(offer.queue_id):
                reason = "offer_no_outcome" if offer.ringing_at is not None else "offer_no_ringing"
                k = (offer.queue_id, offer.channel, reason)
                self.expired[k] = self.expired.get(k, 0) + 1
                del self.offers[key]
                self._changed_offers[key] = None

    def _settle_callbacks(self) -> None:
        """Forget callbacks that are done and can change nothing (the interval of their newest event is final, so
        every earlier one is); give up on those with no outcome long after their newest event or promise."""
        for key, cb in list(self.callbacks.items()):
            if cb.waiting:
                if cb.expires_at() <= self.clock(cb.queue_id):
                    k = (cb.queue_id, cb.channel, "callback_no_outcome")
                    self.expired[k] = self.expired.get(k, 0) + 1
                    del self.callbacks[key]
            elif self.is_final(cb.queue_id, cb.channel, interval_start(cb.last_seen, self.interval_ms)):
                del self.callbacks[key]

    def callbacks_waiting(self) -> Iterator[tuple[str, str, int, float | None]]:
        """(queue, channel, callbacks waiting now, seconds the earliest promise of those not dialled yet is past at
        the queue's clock (negative: still ahead), or None without one)."""
        for q, ch, n, earliest in cbk.waiting(self.callbacks):
            yield q, ch, n, None if earliest is None else (self.clock(q) - earliest) / 1000

    def rules(self, queue_id: str, channel: str) -> QueueSettings:
        """How the queue's channel is measured: the queue's settings with the channel's overrides."""
        return self._measure(queue_id, channel)[0]

    def _measure(self, queue_id: str, channel: str) -> Measure:
        """The channel's settings, service level threshold and short abandon time in ms, and its business-hours
        clock if it has one (looked up once per queue and channel: the rules do not change while the worker runs)."""
        found = self._thresholds.get((queue_id, channel))
        if found is None:
            rules = self.rules_of(queue_id).for_channel(channel)
            found = self._thresholds[(queue_id, channel)] = (
                rules,
                round(rules.service_level_threshold_seconds * 1000),
                round(rules.short_abandon_seconds * 1000),
                rules.business_ms if rules.service_level_clock == "business_hours" else None,
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
        if not self._forecasts.put(e.queue_id, e.channel, start, Forecast(t, e.offered, e.aht_seconds, e.source)):
            return DUPLICATE
        self._forecast_queues.add((e.queue_id, e.channel))
        self._observe(e.queue_id, t)
        return None

    def _add(self, queue_id: str, channel: str, increments: list[Increment]) -> None:
        self._changed_queues.add((queue_id, channel))
        total = self.totals.get((queue_id, channel))
        if total is None:
            total = self.totals[(queue_id, channel)] = QueueCounts()
        # Hours and days get an interval's counts when it is final (`_fold`), not every increment, which would
        # triple the counting of every event.
        intervals: dict[int, OpenInterval] = {}  # an event's increments share one or two starts
        agent_totals = self.agent_totals
        for start, name, amount, agent in increments:
            ivl = intervals.get(start)
            if ivl is None:
                ivl = self.intervals.get((queue_id, channel, start))
                if ivl is None:
                    ivl = self.intervals[(queue_id, channel, start)] = OpenInterval(
                        rollups=self._rollups.of(queue_id, channel, start)
                    )
                ivl.changed = True
                for roll in ivl.rollups:
                    roll.changed = True
                intervals[start] = ivl
            if agent is not None:  # an agent's counts are sums (`HandlingCounts`)
                by_agent = ivl.agents.get(agent)
                if by_agent is None:
                    by_agent = ivl.agents[agent] = HandlingCounts()
                agent_total = agent_totals.get(agent)
                if agent_total is None:
                    agent_total = agent_totals[agent] = HandlingCounts()
                setattr(by_agent, name, getattr(by_agent, name) + amount)
                setattr(agent_total, name, getattr(agent_total, name) + amount)
                self._changed_agents.add(agent)
            # `QueueCounts.bump`, inline: ~10 increments an event, half of them histogram or segment counts
            counts = ivl.counts
            if name in SUMS:
                setattr(counts, name, getattr(counts, name) + amount)
                setattr(total, name, getattr(total, name) + amount)
            elif name == "longest_wait_ms":
                if amount > counts.longest_wait_ms:
                    counts.longest_wait_ms = amount
                if amount > total.longest_wait_ms:
                    total.longest_wait_ms = amount
            else:
                table, key = keyed_count(name)
                add_keyed(counts, table, key, amount)
                add_keyed(total, table, key, amount)

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
                    due = expires_at(leg, self.contact_timeout)
                    if due <= self.clock(leg.queue_id):
                        self._expire(key, leg)
                    elif due < self._next_expiry:
                        self._next_expiry = due
        finals: list[IntervalUpdate] = []
        for q, ch, start in sorted(self.intervals, key=lambda k: k[2]):
            if not self._closable(q, ch, start):
                continue
            ivl = self.intervals.pop((q, ch, start))
            self._changed_queues.add((q, ch))
            self._forecast_queues.add((q, ch))  # its forecast goes with its final record
            ivl.revision = next_revision(ivl.revision, self.offset)
            final = self._final(q, ch, start, ivl.revision, ivl.counts, ivl.agents)
            self._fold(ivl, final)
            finals.append(final)
        finals += self._forecasts_without_traffic()
        finals.sort(key=lambda u: u.start)
        # A complete leg is kept while any interval it touched is open, so that a re-delivered event of it is
        # still recognised as a duplicate; after that every event of it would be late anyway. An interval becomes
        # final when time passes its end (by the lateness) or when it is closed here: otherwise nothing to forget.
        closable_upto = interval_start(wm - self.allowed_lateness - length, length)
        if not finals and closable_upto == self._closable_upto:
            return finals
        self._closable_upto = closable_upto
        self._settle_callbacks()
        self._settle_offers()
        for key, leg in list(self.legs.items()):
            if leg.complete and all(
                self.is_final(leg.queue_id, leg.channel, interval_start(t, length))
                for t in (leg.offered_at, leg.acw_end_at, leg.last_seen)
                if t is not None
            ):
                self._forget(key)
        if self._changed_legs is not None and len(self._changed_legs) > 4096 + 2 * len(self.legs):
            self._changed_legs = None  # nothing takes checkpoints (a replay, say): do not keep listing
        if self._changed_legs is None:
            self._changed_offers.clear()  # the same: a whole checkpoint comes next
        return finals

    def _forget(self, key: tuple[str, str]) -> None:
        del self.legs[key]
        if self._changed_legs is not None:
            self._changed_legs.add(key)

    def _fold(self, ivl: OpenInterval, final: IntervalUpdate) -> None:
        """A final interval's counts, and the causes of a missed target (with its forecast), into its hour and day."""
        self._rollups.fold(ivl, worker_miss(final.counts, final.rules, self.interval_ms / 1000, final.forecast))
        self._changed_agents.update(ivl.agents)

    def _final(
        self, q: str, ch: str, start: int, revision: int, counts: QueueCounts, agents: dict[str, HandlingCounts]
    ) -> IntervalUpdate:
        """The final update of a closed interval, with its forecast; the newest final is kept for staffing."""
        if start >= self.last_final.get((q, ch), (NO_TIME,))[0]:
            self.last_final[(q, ch)] = (start, counts)
        return IntervalUpdate(
            q, ch, start // 1000, revision, True, counts, self.rules(q, ch), agents, self._forecasts.pop(q, ch, start)
        )

    def _forecasts_without_traffic(self) -> list[IntervalUpdate]:
        """Final records of closable intervals that had a forecast and no event: forecast against nothing.
        (Call after the open intervals are closed: one still open is not closable.)"""
        out, blocked = [], []
        for start, q, ch in self._forecasts.due(self.watermark - self.interval_ms - self.allowed_lateness):
            self._changed_queues.add((q, ch))
            self._forecast_queues.add((q, ch))
            if not self._closable(q, ch, start):
                blocked.append((start, q, ch))  # a contact that arrived in it or earlier still waits
                continue
            out.append(self._final(q, ch, start, next_revision(0, self.offset), QueueCounts(), {}))
        for item in blocked:
            self._forecasts.keep(*item)
        return out

    def rollup_updates(self, wall_now: float, every: float) -> list[IntervalUpdate]:
        """Final hours and days (call after `advance`), then provisional ones that changed `every` seconds ago.

        An hour or day is final once it has ended by the allowed lateness, no interval of it is still open and
        no contact that arrived in it still waits: then every interval in it is final too.
        """
        out = self._rollups.finals(self._closed_upto, self.intervals, self.offset)
        out += self._rollups.provisional(wall_now, every, self.offset, self.intervals)
        self._changed_queues.update((u.queue_id, u.channel) for u in out)  # an hour or day changes when published
        return out

    def _closed_upto(self, queue_id: str, channel: str, end: int) -> bool:
        """Nothing before `end` can change any more: the queue's clock is past it by the allowed lateness, and no
        contact that arrived before it still waits."""
        if end + self.allowed_lateness > self.clock(queue_id):
            return False
        waiting = self.waiting_since.get((queue_id, channel))
        return not (waiting and min(waiting.values()) < end)

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
                self._changed_queues.add((q, ch))
                out.append(
                    IntervalUpdate(
                        q,
                        ch,
                        start // 1000,
                        ivl.revision,
                        False,
                        ivl.counts.copy(),
                        self.rules(q, ch),
                        {},  # per agent in the final record only (see `KpiRecord.agents`)
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
        self._reset_changes()
        return CODEC.encode(self._document(list(self.legs.values()), None))

    def _reset_changes(self) -> None:
        self._changed_legs, self._changed_agents = set(), set()
        self._changed_queues, self._forecast_queues, self._clocked = set(), set(), set()
        self._changed_offers = {}

    def changes(self) -> bytes | None:
        """What changed since the last `snapshot` or `changes` (None: too much to tell; take a snapshot): the legs
        and offers changed or gone, the per-agent counts of the agents counted since, of the open intervals, hours
        and days, totals and newest finals those of the queues and channels that changed, their forecasts those of
        the queues and channels whose forecasts changed, and the clocks that moved; the callbacks and expiry counts
        whole (a few hundred entries at most). What a checkpoint of changes costs follows what changed, not the
        number of queues or agents.
        `restore(snapshot, [changes, ...])` gives the state back."""
        legs = self._changed_legs
        if legs is None:
            return None
        agents, queues, forecasts = self._changed_agents, self._changed_queues, self._forecast_queues
        clocked, offers = self._clocked, self._changed_offers
        self._reset_changes()
        held = [self.legs[k] for k in legs if k in self.legs]
        document = self._document(held, agents, queues, forecasts)
        document.legs_gone = [k for k in legs if k not in self.legs]
        document.clocks = {q: c for q, c in self.clocks.items() if q in clocked}
        document.offers = [self.offers[k] for k in offers if k in self.offers]
        document.offers_gone = [k for k in offers if k not in self.offers]
        document.queues_changed = sorted(queues)
        document.forecasts_changed = sorted(forecasts)
        return CODEC.encode(document)

    def _document(
        self,
        legs: list[Leg],
        agents: set[str] | None,
        queues: set[tuple[str, str]] | None = None,
        forecasts: set[tuple[str, str]] | None = None,
    ) -> QueueSnapshot:
        """The stored form: every agent's counts, or only those of `agents`; every queue's and channel's intervals,
        hours and days, totals and newest final, or only those of `queues`; every forecast, or those of
        `forecasts`."""

        def of(counts: dict[str, HandlingCounts]) -> dict[str, HandlingCounts]:
            return counts if agents is None else {a: counts[a] for a in agents if a in counts}

        def kept(q: str, ch: str) -> bool:
            return queues is None or (q, ch) in queues

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
                if kept(q, ch)
            ],
            forecasts=[StoredForecast(q, ch, s, f) for q, ch, s, f in self._forecasts.items(forecasts)],
            totals=[StoredTotal(q, ch, c) for (q, ch), c in self.totals.items() if kept(q, ch)],
            agent_totals=of(self.agent_totals),
            last_final=[StoredFinal(q, ch, start, c) for (q, ch), (start, c) in self.last_final.items() if kept(q, ch)],
            rollups=[
                StoredRollup(
                    q, ch, w, s, end, r.counts, r.revision, r.changed, r.published_at, of(r.agents), dict(r.causes)
                )
                for (q, ch, w, s), (end, r) in self.rollups.items()
                if kept(q, ch)
            ],
            expired=[StoredExpired(q, ch, reason, n) for (q, ch, reason), n in self.expired.items()],
            callbacks=list(self.callbacks.values()),
            offers=list(self.offers.values()),
        )

    def restore(self, data: bytes, changes: Iterable[bytes] = ()) -> None:
        """From a `snapshot` and the `changes` since, oldest first."""
        d = CODEC.decode(data)
        for later in changes:
            d = merged(d, CODEC.decode(later))
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
        self._forecasts.restore((f.queue_id, f.channel, f.start, f.forecast) for f in d.forecasts)
        self.totals = {(t.queue_id, t.channel): t.counts for t in d.totals}
        self.agent_totals = d.agent_totals
        self.last_final = {(t.queue_id, t.channel): (t.start, t.counts) for t in d.last_final}
        self._rollups.open = {
            (r.queue_id, r.channel, r.window, r.start): (
                r.end,
                OpenInterval(r.counts, r.revision, r.changed, r.published_at, r.agents, causes=r.causes),
            )
            for r in d.rollups
        }
        self.expired = {(x.queue_id, x.channel, x.reason): x.n for x in d.expired}
        self.callbacks = {(c.queue_id, c.contact_id): c for c in d.callbacks}
        self.offers = {(o.queue_id, o.contact_id, o.offer_id): o for o in d.offers}
        self.waiting_since = {}
        for leg in self.legs.values():
            self._track_waiting(leg)
        self._next_expiry, self._closable_upto = NO_TIME, None
        self._reset_changes()
        for (q, ch, s), ivl in self.intervals.items():
            ivl.rollups = self._rollups.of(q, ch, s)
