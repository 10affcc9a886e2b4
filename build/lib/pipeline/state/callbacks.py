"""Callbacks as their own lifecycle, beside the queue legs: requested -> scheduled -> dialled -> connected or failed.

A callback is keyed like its leg, (queue, contact), but outlives it: a promised callback may be dialled hours
after the leg that asked for it was counted and forgotten. What a callback adds to the counts is a function of
its facts, made (like a leg's) only once the facts it needs are known, so shuffled input gives the counts of
ordered input:
- each dial counts in its own interval; a connection or failure, with its attempts, in its own;
- the callback service level counts in the interval of the first dial (attempt 1): within when that dial is at
  or before the promise in force then (the newest `callback.scheduled` at or before it, else the request's
  `promised_by`). A promise that arrives after the first dial was counted moves the count (-1 / +1, same interval).

Owned by `QueueState`, which says which intervals are final and applies the increments; must not import it.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec

from pipeline.contract import events as ev
from pipeline.core.time import epoch_ms, interval_start

# A callback with no outcome is given up on this long after its newest event or promise (a promise may be days
# ahead: "call me on Monday"): long enough for any real promise, short enough to bound the state.
CALLBACK_TIMEOUT_MS = 3 * 24 * 3600 * 1000

CALLBACK_EVENTS = (ev.CallbackScheduled, ev.CallbackDialled, ev.CallbackConnected, ev.CallbackFailed)
CallbackEvent = ev.CallbackScheduled | ev.CallbackDialled | ev.CallbackConnected | ev.CallbackFailed

# (interval start ms, count name, amount)
CallbackIncrement = tuple[int, str, int]

NOT_COUNTED, WITHIN, MISSED = 0, 1, 2  # `Callback.promise_counted`


class Callback(msgspec.Struct, omit_defaults=True):
    """What is known of one callback. Stored in checkpoints without the fields still at their defaults."""

    queue_id: str
    channel: str
    contact_id: str
    first_seen: int  # event times, epoch ms
    last_seen: int
    event_ids: list[str] = msgspec.field(default_factory=list)  # of its `callback.*` events (the leg has the request's)
    requested_promise: int | None = None  # `contact.callback_requested`'s promised_by
    schedules: list[tuple[int, int]] = msgspec.field(default_factory=list)  # (event time, promised_by)
    first_dial_at: int | None = None
    dialled: bool = False
    outcome_at: int | None = None
    connected: bool = False
    promise_counted: int = NOT_COUNTED  # how its first dial is counted against the promise

    def promise(self, at: int | None = None) -> int | None:
        """The promise in force at `at` (None: now, the newest): the newest schedule, else the request's."""
        held = [s for s in self.schedules if at is None or s[0] <= at]
        return max(held)[1] if held else self.requested_promise

    @property
    def waiting(self) -> bool:
        """Known to the lifecycle (a promise or a `callback.*` event) and neither connected nor failed."""
        return self.outcome_at is None

    def expires_at(self) -> int:
        promise = self.promise()
        return max(self.last_seen, promise if promise is not None else self.last_seen) + CALLBACK_TIMEOUT_MS


def record(cb: Callback, e: CallbackEvent, t: int) -> bool:
    """Write the event's fact into the callback; False when it contradicts what is known."""
    match e:
        case ev.CallbackScheduled():
            cb.schedules = [*cb.schedules, (t, epoch_ms(e.promised_by))]
        case ev.CallbackDialled():
            if e.attempt == 1:
                if cb.first_dial_at is not None:
                    return False
                cb.first_dial_at = t
            cb.dialled = True
        case ev.CallbackConnected() | ev.CallbackFailed():
            if cb.outcome_at is not None:
                return False
            cb.outcome_at = t
            cb.connected = isinstance(e, ev.CallbackConnected)
    return True


def contribution(cb: Callback, e: CallbackEvent | None, t: int, length: int) -> list[CallbackIncrement]:
    """The counts the event (None: a request's promise) adds, and the move of the promise count, marked on `cb`."""
    at = interval_start(t, length)
    out: list[CallbackIncrement] = []
    match e:
        case ev.CallbackDialled():
            out.append((at, "callback_dials", 1))
        case ev.CallbackConnected():
            out += [(at, "callbacks_connected", 1), (at, "callback_attempts", e.attempt)]
        case ev.CallbackFailed():
            out += [(at, "callbacks_failed", 1), (at, "callback_attempts", e.attempts)]
    now = NOT_COUNTED
    if cb.first_dial_at is not None:
        promise = cb.promise(cb.first_dial_at)
        if promise is not None:
            now = WITHIN if cb.first_dial_at <= promise else MISSED
    if now != cb.promise_counted:
        assert cb.first_dial_at is not None  # counted only once the first dial is known
        dial = interval_start(cb.first_dial_at, length)
        for state, sign in ((cb.promise_counted, -1), (now, 1)):
            if state != NOT_COUNTED:
                out.append((dial, "callbacks_dialled_promised", sign))
            if state == WITHIN:
                out.append((dial, "callbacks_dialled_within_promise", sign))
        cb.promise_counted = now
    return out


def waiting(callbacks: dict[tuple[str, str], Callback]) -> Iterator[tuple[str, str, int, int | None]]:
    """(queue, channel, callbacks waiting, the earliest promise of those not dialled yet, or None)."""
    counts: dict[tuple[str, str], int] = {}
    earliest: dict[tuple[str, str], int] = {}
    for cb in callbacks.values():
        if not cb.waiting:
            continue
        qc = (cb.queue_id, cb.channel)
        counts[qc] = counts.get(qc, 0) + 1
        promise = cb.promise()
        if not cb.dialled and promise is not None and promise < earliest.get(qc, promise + 1):
            earliest[qc] = promise
    for (q, ch), n in counts.items():
        yield q, ch, n, earliest.get((q, ch))
