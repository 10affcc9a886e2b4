"""The queue state's stored form: the typed documents its checkpoints are (`QueueSnapshot`) and their codec.

A whole checkpoint holds everything but what is derived on restore (each interval's hour and day, the contacts
waiting, the expiry bound); a checkpoint of changes holds the legs and offers changed and gone, the intervals,
hours and days, totals and newest finals of the queues and channels that changed (of those, the agents counted
since), the forecasts of those whose forecasts changed, the clocks that moved, and the rest whole (callbacks
and expiry counts: a few hundred entries at most). `merged` lays changes over a document.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import msgspec

from pipeline.kpis.counts import Forecast, HandlingCounts, QueueCounts, Window
from pipeline.state.callbacks import Callback
from pipeline.state.codec import Codec
from pipeline.state.legs import Leg
from pipeline.state.offers import Offer

VERSION = 8  # nothing earlier was released; fields added since have defaults, so version 8 checkpoints load


class StoredInterval(msgspec.Struct):
    """An open interval (`OpenInterval`; its rollups are derived)."""

    queue_id: str
    channel: str
    start: int  # epoch ms
    counts: QueueCounts
    revision: int
    changed: bool
    published_at: float
    agents: dict[str, HandlingCounts]  # in changes: only the agents counted since the last checkpoint
    event_ids: list[str]


class StoredRollup(msgspec.Struct, omit_defaults=True):  # no `causes` stored for an hour or day that met its target
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
    agents: dict[str, HandlingCounts]  # in changes: only the agents counted since the last checkpoint
    causes: dict[str, float] = {}  # contacts short of the target by cause, whole (`OpenInterval.causes`)


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
    agent_totals: dict[str, HandlingCounts]
    last_final: list[StoredFinal]
    rollups: list[StoredRollup]
    expired: list[StoredExpired]
    legs_gone: list[tuple[str, str]] = []
    # Added after version 8 was released, with a default: a version 8 checkpoint without it still loads. Whole in
    # a checkpoint of changes too (the callbacks waiting: a few hundred at most).
    callbacks: list[Callback] = []
    offers: list[Offer] = []  # in changes: the offers changed since (see `queues_changed`)
    # Added after version 8 too. A checkpoint of changes written since holds the intervals, hours and days,
    # totals and newest finals of these queues and channels only (the others' did not change), the forecasts of
    # `forecasts_changed`, the clocks that moved, and the offers changed and gone; None: those whole (a whole
    # checkpoint, or changes written before).
    queues_changed: list[tuple[str, str]] | None = None
    forecasts_changed: list[tuple[str, str]] = []
    offers_gone: list[tuple[str, str, str]] = []


CODEC = Codec("queue state", b"CCQS", VERSION, QueueSnapshot)


def merged(d: QueueSnapshot, changes: QueueSnapshot) -> QueueSnapshot:
    """A stored document with `changes` applied: their legs and agents' counts over its own, and the entries of the
    queues and channels they list over its own (`queues_changed`; the rest theirs when they list none)."""
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
    if changes.queues_changed is not None:
        queues = set(changes.queues_changed)
        changes.intervals = _over(d.intervals, changes.intervals, queues, lambda x: (x.queue_id, x.channel, x.start))
        changes.rollups = _over(
            d.rollups, changes.rollups, queues, lambda x: (x.queue_id, x.channel, x.window, x.start)
        )
        changes.forecasts = _over(
            d.forecasts,
            changes.forecasts,
            set(changes.forecasts_changed),
            lambda x: (x.queue_id, x.channel, x.start),
        )
        changes.totals = _over(d.totals, changes.totals, queues, lambda x: (x.queue_id, x.channel))
        changes.last_final = _over(d.last_final, changes.last_final, queues, lambda x: (x.queue_id, x.channel))
        changes.clocks = {**d.clocks, **changes.clocks}
        offers = {(x.queue_id, x.contact_id, x.offer_id): x for x in d.offers}
        offers.update(((x.queue_id, x.contact_id, x.offer_id), x) for x in changes.offers)
        for gone in changes.offers_gone:
            offers.pop(gone, None)
        changes.offers = list(offers.values())
        changes.queues_changed, changes.forecasts_changed, changes.offers_gone = None, [], []
    return changes


E = TypeVar("E", StoredInterval, StoredRollup, StoredForecast, StoredTotal, StoredFinal)


def _over(
    held: list[E], changed: list[E], queues: set[tuple[str, str]], key: Callable[[E], tuple[object, ...]]
) -> list[E]:
    """The entries of `changed` over those of `held` for the queues and channels in `queues` (every entry of theirs
    `changed` does not hold is gone), in the order the state holds them: each where it was, the new ones after."""
    new = {key(x): x for x in changed}
    out = []
    for x in held:
        if (x.queue_id, x.channel) not in queues:
            out.append(x)
        elif (replacement := new.pop(key(x), None)) is not None:
            out.append(replacement)
    out.extend(new.values())
    return out
