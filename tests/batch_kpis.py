"""An independent batch computation of the queue counts over a complete event log.

This is the "second, plain computation" the streaming `QueueState` is checked against: it sees every event
at once (in any order), groups them into legs and applies the KPI catalogue's definitions literally
(docs/kpis.md, pipeline/kpis/catalogue.py). It deliberately shares no code with `pipeline.state`: only the
event classes and `QueueCounts` (as the result type) are imported.

Rules, as written in the catalogue:
- a *leg* is one contact in one queue: the events with the same (queue_id, contact_id);
- times are integer epoch milliseconds, `round(e.time.timestamp() * 1000)`; the interval of a time t is the
  one starting at t // L * L (L = the interval length in ms);
- the queue outcome (offered, answered, abandoned, waits, within-threshold counts) belongs to the interval in
  which the leg ARRIVED (its `contact.offered`); a wait equal to the threshold counts as within;
- the handling (handled, handle/hold/ACW time, transferred_out) belongs to the interval in which the leg's
  after-contact work ENDED (`contact.acw_ended`), and only exists for a leg that was answered, ended or was
  transferred, ended its ACW and has as many hold ends as hold starts;
- `source.heartbeat` and agent events carry no counts; events with the same event_id count once;
- a queue's channel may have its own threshold, and may measure the wait against it in business hours
  (`business_wait`: here counted minute by minute, not with the state's day windows);
- a leg whose offer names a segment adds its outcome counts to `segments["<label>:<count>"]` too, the label
  being the segment when the queue configures it, else `other`; a handled leg adds one to
  `dispositions[<label>]`, its wrap-up code when configured, else `other`.
- a callback is the `callback.*` events (and a `contact.callback_requested` with `promised_by`) with the same
  (queue_id, contact_id): each dial counts in its interval; a connection or failure, with its attempt count, in
  its interval; the first dial (attempt 1) of a callback with a promise counts in the first dial's interval,
  within when at or before the promise: the newest `callback.scheduled` at or before the first dial (at the same
  time, the later promise), else the request's `promised_by`;
- an offer is the `offer.*` events with the same (queue_id, contact_id, offer_id): its ringing counts in the
  ringing's interval; its outcome (accepted, rejected, missed) in the outcome's interval, only when the offer
  rang; an accept adds its ring time (accept - ringing). Each is also the offered agent's count.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from zoneinfo import ZoneInfo

from pipeline.contract import events as ev
from pipeline.kpis.counts import HandlingCounts, QueueCounts

IntervalKey = tuple[str, str, int]  # (queue, channel, interval start in epoch ms)
TotalKey = tuple[str, str]  # (queue, channel)


def ms(e: ev.Event) -> int:
    """An event's time in integer epoch milliseconds."""
    return round(e.time.timestamp() * 1000)


@dataclass
class _Leg:
    channel: str
    offered: list[int] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    abandoned: list[int] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)
    transferred: list[int] = field(default_factory=list)
    acw_ended: list[int] = field(default_factory=list)
    hold_starts: list[int] = field(default_factory=list)
    hold_ends: list[int] = field(default_factory=list)
    flowed_out: list[int] = field(default_factory=list)
    callback: list[int] = field(default_factory=list)
    customer_messages: list[int] = field(default_factory=list)
    agent_messages: list[int] = field(default_factory=list)
    agent: str | None = None
    segment: str | None = None
    dispositions: list[str] = field(default_factory=list)


def business_wait(start: int, end: int, zone: str, days: Collection[int], opens: time, closes: time) -> int:
    """Milliseconds of [start, end) in opening hours, minute by minute: a whole local minute counts when its local
    weekday (Monday 0) is open and its local start is in [opens, closes) (`time.max`: until midnight); the partial
    minutes at either end count in proportion (opening times are whole minutes)."""
    tz = ZoneInfo(zone)
    total = 0
    t = start
    while t < end:
        minute_end = (t // 60_000 + 1) * 60_000
        local = datetime.fromtimestamp(t // 60_000 * 60, tz)
        shut = closes == time.max or local.time() < closes
        if local.weekday() in days and local.time() >= opens and shut:
            total += min(end, minute_end) - t
        t = minute_end
    return total


_SEGMENT_COUNTS = (
    "offered",
    "answered",
    "abandoned",
    "short_abandoned",
    "answered_within_threshold",
    "abandoned_within_threshold",
    "answer_wait_ms",
    "abandon_wait_ms",
)


_SLOT = {
    ev.ContactOffered: "offered",
    ev.ContactAnswered: "answered",
    ev.ContactAbandoned: "abandoned",
    ev.ContactEnded: "ended",
    ev.ContactTransferred: "transferred",
    ev.AcwEnded: "acw_ended",
    ev.HoldStarted: "hold_starts",
    ev.HoldEnded: "hold_ends",
    ev.ContactFlowedOut: "flowed_out",
    ev.CallbackRequested: "callback",
}


def count_by_key(c: QueueCounts, table: str, key: str, n: int) -> None:
    """A histogram bucket, a segment's count or a wrap-up code's (a map made at its first count, as counts keep them)."""
    counts = getattr(c, table) or {}
    counts[key] = counts.get(key, 0) + n
    setattr(c, table, counts)


def _one(times: list[int], what: str, leg: tuple[str, str]) -> int | None:
    if len(times) > 1:
        raise ValueError(f"leg {leg}: {len(times)} {what} events in a complete log")
    return times[0] if times else None


def _chat(customer: list[int], agent: list[int]) -> dict[str, int]:
    """Chat responses, as the catalogue defines them: walk the messages in time order (customer first at the
    same millisecond); an agent message after customer messages answers them, timed from the first of them."""
    timeline = sorted([(t, "customer") for t in customer] + [(t, "zagent") for t in agent])
    waiting_since = None
    times = []
    for t, who in timeline:
        if who == "customer":
            if waiting_since is None:
                waiting_since = t
        elif waiting_since is not None:
            times.append(t - waiting_since)
            waiting_since = None
    return {
        "chat_first_responses": 1 if times else 0,
        "chat_first_response_ms": times[0] if times else 0,
        "chat_responses": len(times),
        "chat_response_ms": sum(times),
    }


def compute(
    events: Iterable[ev.Event],
    interval_seconds: int,
    threshold_of: Callable[[str], float],
    short_of: Callable[[str], float] = lambda queue: 5.0,
    bounds_seconds: tuple[float, ...] = (),
    agents: dict[tuple[str, str], HandlingCounts] | None = None,
    *,
    channel_thresholds: Mapping[tuple[str, str], float] | None = None,
    business: Mapping[tuple[str, str], Callable[[int, int], int]] | None = None,
    segments_of: Callable[[str], Collection[str]] = lambda queue: (),
    dispositions_of: Callable[[str], Collection[str]] = lambda queue: (),
) -> tuple[dict[IntervalKey, QueueCounts], dict[TotalKey, QueueCounts]]:
    """(counts per (queue, channel, interval start ms), counts per (queue, channel)) of a complete log.

    `agents`, when given, receives the handling counts per (agent who answered, interval start ms).
    `channel_thresholds`: (queue, channel) -> threshold in seconds where a channel has its own; `business`:
    (queue, channel) -> the wait in business hours between two times, where the service level counts those.
    """
    length = interval_seconds * 1000
    bounds = sorted(round(b * 1000) for b in set(bounds_seconds))
    standalone: list[ev.Event] = []

    # 1. distinct contact events, grouped into legs
    seen: set[str] = set()
    legs: dict[tuple[str, str], _Leg] = {}
    callbacks: dict[tuple[str, str], list[ev.Event]] = {}
    offers: dict[tuple[str, str, str], list[ev.Event]] = {}
    for e in events:
        if isinstance(e, ev.OfferRinging | ev.OfferAccepted | ev.OfferRejected | ev.OfferMissed):
            if e.event_id not in seen:
                seen.add(e.event_id)
                offers.setdefault((e.queue_id, e.contact_id, e.offer_id), []).append(e)
            continue
        is_callback = isinstance(
            e, ev.CallbackScheduled | ev.CallbackDialled | ev.CallbackConnected | ev.CallbackFailed
        )
        if is_callback and e.event_id not in seen:
            seen.add(e.event_id)
            callbacks.setdefault((e.queue_id, e.contact_id), []).append(e)
        if isinstance(e, ev.CallbackRequested) and e.promised_by is not None and e.event_id not in seen:
            callbacks.setdefault((e.queue_id, e.contact_id), []).append(e)  # and into its leg, below
        if isinstance(e, ev.SurveyCompleted | ev.IvrSessionEnded) and e.event_id not in seen:
            seen.add(e.event_id)
            standalone.append(e)
        if isinstance(e, ev.ChatMessage) and e.event_id not in seen:
            seen.add(e.event_id)
            leg = legs.setdefault((e.queue_id, e.contact_id), _Leg(e.channel))
            (leg.customer_messages if e.sender == "customer" else leg.agent_messages).append(ms(e))
        slot = _SLOT.get(type(e))
        if slot is None:  # heartbeats, agent events, surveys, IVR sessions, forecasts
            continue
        if e.event_id in seen:
            continue
        seen.add(e.event_id)
        if isinstance(e, ev.ContactAnswered):
            legs.setdefault((e.queue_id, e.contact_id), _Leg(e.channel)).agent = e.agent_id
        leg = legs.setdefault((e.queue_id, e.contact_id), _Leg(e.channel))
        if isinstance(e, ev.ContactOffered) and e.segment is not None:
            leg.segment = e.segment if e.segment in segments_of(e.queue_id) else "other"
        if isinstance(e, ev.AcwEnded):
            leg.dispositions.append(e.disposition if e.disposition in dispositions_of(e.queue_id) else "other")
        if leg.channel != e.channel:
            raise ValueError(f"leg {(e.queue_id, e.contact_id)}: two channels")
        getattr(leg, slot).append(ms(e))

    # 2. each leg's contribution, attributed to its arrival or completion interval
    intervals: dict[IntervalKey, QueueCounts] = {}

    segment: str | None = None  # of the leg being counted

    def bump(queue: str, channel: str, t: int, name: str, amount: int) -> None:
        key = (queue, channel, t // length * length)
        c = intervals.get(key)
        if c is None:
            c = intervals[key] = QueueCounts()
        setattr(c, name, getattr(c, name) + amount)
        if segment is not None and name in _SEGMENT_COUNTS:
            count_by_key(c, "segments", f"{segment}:{name}", amount)

    def histogram(queue: str, channel: str, t: int, outcome: str, wait: int) -> None:
        c = intervals[(queue, channel, t // length * length)]
        le = next((str(b) for b in bounds if wait <= b), "inf")
        count_by_key(c, "waits", f"{outcome}:{le}", 1)
        c.longest_wait_ms = max(c.longest_wait_ms, wait)

    for (queue, contact), leg in legs.items():
        k = (queue, contact)
        ch = leg.channel
        threshold_ms = (channel_thresholds or {}).get((queue, ch), threshold_of(queue)) * 1000
        clock = (business or {}).get((queue, ch))
        segment = leg.segment
        offered = _one(leg.offered, "offered", k)
        answered = _one(leg.answered, "answered", k)
        abandoned = _one(leg.abandoned, "abandoned", k)
        flowed_out = _one(leg.flowed_out, "flowed_out", k)
        callback = _one(leg.callback, "callback", k)
        ended = _one(leg.ended, "ended", k)
        transferred = _one(leg.transferred, "transferred", k)
        acw_ended = _one(leg.acw_ended, "acw_ended", k)
        if ended is not None and transferred is not None:
            raise ValueError(f"leg {k}: both ended and transferred")
        conversation_end = ended if ended is not None else transferred

        # queue outcome: arrival interval
        if offered is not None:
            bump(queue, ch, offered, "offered", 1)
            if answered is not None:
                wait = answered - offered
                bump(queue, ch, offered, "answered", 1)
                bump(queue, ch, offered, "answer_wait_ms", wait)
                if (wait if clock is None else clock(offered, answered)) <= threshold_ms:
                    bump(queue, ch, offered, "answered_within_threshold", 1)
                histogram(queue, ch, offered, "answered", wait)
            elif abandoned is not None:
                wait = abandoned - offered
                bump(queue, ch, offered, "abandoned", 1)
                bump(queue, ch, offered, "abandon_wait_ms", wait)
                if (wait if clock is None else clock(offered, abandoned)) <= threshold_ms:
                    bump(queue, ch, offered, "abandoned_within_threshold", 1)
                if wait <= short_of(queue) * 1000:
                    bump(queue, ch, offered, "short_abandoned", 1)
                histogram(queue, ch, offered, "abandoned", wait)
            elif flowed_out is not None:
                bump(queue, ch, offered, "flowed_out", 1)
                c = intervals[(queue, ch, offered // length * length)]
                c.longest_wait_ms = max(c.longest_wait_ms, flowed_out - offered)
            elif callback is not None:
                bump(queue, ch, offered, "callbacks_requested", 1)
                c = intervals[(queue, ch, offered // length * length)]
                c.longest_wait_ms = max(c.longest_wait_ms, callback - offered)

        # handling: completion interval
        if (
            answered is not None
            and conversation_end is not None
            and acw_ended is not None
            and len(leg.hold_starts) == len(leg.hold_ends)
        ):
            hold = sum(leg.hold_ends) - sum(leg.hold_starts)
            parts = {
                "handled": 1,
                "handle_ms": acw_ended - answered,
                "talk_ms": conversation_end - answered - hold,
                "hold_ms": hold,
                "acw_ms": acw_ended - conversation_end,
                "held": int(bool(leg.hold_starts)),
                "transferred_out": int(transferred is not None),
            }
            parts.update(_chat(leg.customer_messages, leg.agent_messages))
            (label,) = leg.dispositions
            c = intervals.setdefault((queue, ch, acw_ended // length * length), QueueCounts())
            count_by_key(c, "dispositions", label, 1)
            for name, amount in parts.items():
                bump(queue, ch, acw_ended, name, amount)
                if agents is not None:
                    a = agents.setdefault((leg.agent, acw_ended // length * length), HandlingCounts())
                    setattr(a, name, getattr(a, name) + amount)

    # surveys and IVR sessions: the interval of their own time
    segment = None
    for e in standalone:
        t = ms(e)
        if isinstance(e, ev.SurveyCompleted):
            bump(e.queue_id, e.channel, t, "surveys", 1)
            bump(e.queue_id, e.channel, t, "survey_score_sum", e.score)
            bump(e.queue_id, e.channel, t, "surveys_satisfied", 1 if e.score >= 4 else 0)
        else:
            bump(e.queue_id, e.channel, t, "ivr_sessions", 1)
            bump(e.queue_id, e.channel, t, "ivr_contained", 1 if e.contained else 0)

    # callbacks: each count in the interval of the event it comes from; the promise in the first dial's
    for of_callback in callbacks.values():
        ch = of_callback[0].channel
        first_dials = []
        schedules = []
        requested = None
        for e in of_callback:
            t = ms(e)
            q = e.queue_id
            if isinstance(e, ev.CallbackDialled):
                bump(q, ch, t, "callback_dials", 1)
                if e.attempt == 1:
                    first_dials.append(t)
            elif isinstance(e, ev.CallbackConnected):
                bump(q, ch, t, "callbacks_connected", 1)
                bump(q, ch, t, "callback_attempts", e.attempt)
            elif isinstance(e, ev.CallbackFailed):
                bump(q, ch, t, "callbacks_failed", 1)
                bump(q, ch, t, "callback_attempts", e.attempts)
            elif isinstance(e, ev.CallbackScheduled):
                schedules.append((t, round(e.promised_by.timestamp() * 1000)))
            elif isinstance(e, ev.CallbackRequested) and e.promised_by is not None:
                requested = round(e.promised_by.timestamp() * 1000)
        first = _one(first_dials, "first dial", (of_callback[0].queue_id, of_callback[0].contact_id))
        if first is None:
            continue
        before = sorted(s for s in schedules if s[0] <= first)
        promise = before[-1][1] if before else requested
        if promise is not None:
            bump(of_callback[0].queue_id, ch, first, "callbacks_dialled_promised", 1)
            if first <= promise:
                bump(of_callback[0].queue_id, ch, first, "callbacks_dialled_within_promise", 1)

    # offers: the ringing in its interval, the outcome in its own once the offer rang; the agent's too
    def bump_both(e: ev.Event, t: int, name: str, amount: int) -> None:
        bump(e.queue_id, e.channel, t, name, amount)
        if agents is not None:
            a = agents.setdefault((e.agent_id, t // length * length), HandlingCounts())
            setattr(a, name, getattr(a, name) + amount)

    outcome_count = {
        ev.OfferAccepted: "agent_offers_accepted",
        ev.OfferRejected: "agent_offers_rejected",
        ev.OfferMissed: "agent_offers_missed",
    }
    for key, of_offer in offers.items():
        rings = [e for e in of_offer if isinstance(e, ev.OfferRinging)]
        ends = [e for e in of_offer if not isinstance(e, ev.OfferRinging)]
        if len(rings) > 1 or len(ends) > 1:
            raise ValueError(f"offer {key}: {len(rings)} ringing and {len(ends)} outcome events in a complete log")
        for e in rings:
            bump_both(e, ms(e), "agent_offers", 1)
        if rings and ends:
            end = ends[0]
            bump_both(end, ms(end), outcome_count[type(end)], 1)
            if isinstance(end, ev.OfferAccepted):
                bump_both(end, ms(end), "agent_offer_ring_ms", ms(end) - ms(rings[0]))

    # 3. totals = sums over the intervals
    totals: dict[TotalKey, QueueCounts] = {}
    for (queue, ch, _start), c in intervals.items():
        totals.setdefault((queue, ch), QueueCounts()).add(c)
    return intervals, totals
