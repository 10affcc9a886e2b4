"""Replaying an event log at a chosen speed, for live demos."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

from pipeline.contract.events import Event

MIN_BATCH_INTERVAL = 0.1  # seconds: at most about ten batches per wall-clock second


async def paced(events: Iterable[Event], speed: float) -> AsyncIterator[list[Event]]:
    """Yield the events in batches as wall-clock time catches up with their event time.

    `speed` is simulated seconds per wall-clock second (60 shows an hour per minute). The first event is
    due at once; each batch holds every event due by then. The events must be in time order.
    """
    if speed <= 0:
        raise ValueError("speed must be positive")
    loop = asyncio.get_running_loop()
    upcoming = iter(events)
    pending = next(upcoming, None)
    if pending is None:
        return
    sim_start, wall_start = pending.time, loop.time()
    while pending is not None:
        elapsed = (loop.time() - wall_start) * speed  # simulated seconds that are due
        batch = []
        while pending is not None and (pending.time - sim_start).total_seconds() <= elapsed:
            batch.append(pending)
            pending = next(upcoming, None)
        if batch:
            yield batch
        if pending is not None:
            due_in = (pending.time - sim_start).total_seconds() / speed - (loop.time() - wall_start)
            await asyncio.sleep(max(due_in, MIN_BATCH_INTERVAL))
