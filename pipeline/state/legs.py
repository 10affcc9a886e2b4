"""A contact's stay in one queue (a *leg*) and what it adds to the counts. Pure functions of a leg.

`record` writes an event's fact into a leg (refusing one that contradicts it), `contribution` gives the counts
the leg adds now that it did not add before, marking them added on the leg: a leg's contribution is made only
once the facts it needs are known (an answer needs the arrival; a handle time needs the answer, the end and the
end of wrap-up), so shuffled input gives the same counts as ordered input. Must not import the states.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from pipeline.contract import events as ev
from pipeline.core.time import interval_start
from pipeline.kpis.counts import SEGMENT_FIELDS, bucket_name

MAX_CHAT_MESSAGES = 2000  # per leg: more is not a chat but a flood (rejected as impossible)
# An outcome stamped before its offer by no more than the tolerance (two clocks at the source, a second apart) is
# moved to the offer time and counted; `QueueState.apply` returns which outcome it was (applied, unlike the others).
CLAMPS = {"answered_at": "answer_before_offer", "abandoned_at": "abandon_before_offer"}
CLAMPS |= {"flowed_out_at": "exit_before_offer", "callback_at": "exit_before_offer"}

# (interval start in epoch ms, count name, amount, the answering agent when it is also an agent's count)
Increment = tuple[int, str, int, str | None]


class Leg(msgspec.Struct, omit_defaults=True):
    """What is known of one contact in one queue. A msgspec struct: checkpoints store it without the fields still
    at their defaults (most of a leg's, for most of its life)."""

    queue_id: str
    channel: str
    contact_id: str
    first_seen: int  # times are event times in epoch milliseconds
    last_seen: int
    event_ids: list[str] = msgspec.field(default_factory=list)
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
    segment: str | None = None  # the label its offer's segment counts under (the queue's set, or `other`)
    disposition: str | None = None  # the label its wrap-up code counts under (the queue's set, or `other`)
    customer_messages: list[int] = msgspec.field(default_factory=list)  # chat message times
    agent_messages: list[int] = msgspec.field(default_factory=list)
    chat_counted: list[int] = msgspec.field(default_factory=lambda: [0, 0, 0, 0])  # as CHAT_FIELDS, counted so far
    outcome_counted: bool = False
    handled_counted: bool = False
    hold_counted: int = 0
    held_counted: int = 0

    def clone(self) -> Leg:
        """A shallow copy (lists are replaced, never changed in place), made by msgspec in C."""
        return msgspec.structs.replace(self)

    @property
    def left_at(self) -> int | None:
        """When the contact left the queue unanswered (abandoned, flowed out or asked for a callback)."""
        if self.abandoned_at is not None:  # spelt out, not a loop: read for every event of the leg
            return self.abandoned_at
        return self.flowed_out_at if self.flowed_out_at is not None else self.callback_at

    @property
    def waiting(self) -> bool:
        return self.offered_at is not None and not self.outcome_counted

    @property
    def complete(self) -> bool:
        return self.outcome_counted and (self.left_at is not None or self.handled_counted)


def expires_at(leg: Leg, timeout: int) -> int:
    """When an incomplete leg is given up on: the contact timeout after its arrival (or first event)."""
    return (leg.offered_at if leg.offered_at is not None else leg.first_seen) + timeout


def clamp(leg: Leg, skew: int) -> str | None:
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


def record(leg: Leg, e: ev.ContactEvent, t: int) -> bool:
    """Write the event's fact into the leg; False when it contradicts what the leg already knows."""
    gone = leg.left_at is not None
    match e:  # the cases are tried in order: a chat's messages, the most frequent events of a chat center, first
        case ev.ChatMessage():
            if len(leg.customer_messages) + len(leg.agent_messages) >= MAX_CHAT_MESSAGES:
                return False
            if e.sender == "customer":
                leg.customer_messages = [*leg.customer_messages, t]
            elif gone:
                return False  # nobody accepted it: no agent to write
            else:
                leg.agent_messages = [*leg.agent_messages, t]
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
        case _:
            return False
    return True


# The outcome counts also counted per segment (`segment:<label>:<count>`), when the leg's offer carried one.
SEGMENT_COUNTS = frozenset(SEGMENT_FIELDS)


def contribution(
    leg: Leg,
    newly_offered: bool,
    threshold: int,
    short: int,
    bounds: tuple[int, ...],
    length: int,
    business: Callable[[int, int], int] | None = None,
) -> list[Increment] | None:
    """The counts the leg adds now that it did not add before, marking them added on the leg.

    `business`, when the queue's channel measures its service level in business hours: the business time between
    two times, compared with `threshold` instead of the elapsed wait. None when the leg's times are impossible
    (an answer before the arrival, an end before the answer).
    """
    out = _contribution(leg, newly_offered, threshold, short, bounds, length, business)
    if out is None or leg.segment is None:
        return out
    prefix = f"segment:{leg.segment}:"
    return out + [(s, prefix + name, n, None) for s, name, n, a in out if a is None and name in SEGMENT_COUNTS]


def _contribution(
    leg: Leg,
    newly_offered: bool,
    threshold: int,
    short: int,
    bounds: tuple[int, ...],
    length: int,
    business: Callable[[int, int], int] | None,
) -> list[Increment] | None:
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
            if (wait if business is None else business(leg.offered_at, leg.answered_at)) <= threshold:
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
            if (wait if business is None else business(leg.offered_at, leg.abandoned_at)) <= threshold:
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
        if leg.disposition is not None:
            out.append((completed, f"disposition:{leg.disposition}", 1, None))
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
