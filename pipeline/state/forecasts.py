"""WFM forecasts of a queue state's intervals, kept until each interval's final record.

Kept apart from the open intervals: a day's forecasts come at once, in the morning, and an open interval per
forecast would hold tens of thousands of empty intervals and sort them all every batch. Owned by `QueueState`,
which says which intervals are final; must not import it.
"""

from __future__ import annotations

import heapq
from collections.abc import Container, Iterator
from dataclasses import replace

from pipeline.kpis.counts import Forecast


class Forecasts:
    """(queue, channel) -> interval start ms -> the newest forecast, and a heap of when each falls due."""

    def __init__(self) -> None:
        self.by_queue: dict[tuple[str, str], dict[int, Forecast]] = {}
        self._due: list[tuple[int, str, str]] = []  # heap of (start, queue, channel) of `by_queue`

    def get(self, queue_id: str, channel: str, start: int) -> Forecast | None:
        return self.by_queue.get((queue_id, channel), {}).get(start)

    def put(self, queue_id: str, channel: str, start: int, new: Forecast) -> bool:
        """The newest forecast by event time wins, but an external WFM's always wins over the pipeline's own (it
        is what the planners published), which is kept beside it; False when it is the same one again (a
        duplicate)."""
        of_queue = self.by_queue.setdefault((queue_id, channel), {})
        old = of_queue.get(start)
        if old is None:
            heapq.heappush(self._due, (start, queue_id, channel))
            of_queue[start] = new
            return True
        if (old.published_at, old.offered, old.aht_seconds, old.source) == (
            new.published_at,
            new.offered,
            new.aht_seconds,
            new.source,
        ):
            return False
        if new.source == "pipeline" and old.source == "wfm":  # kept beside the WFM's, which stays compared
            if (old.own_published_at, old.own_offered, old.own_aht_seconds) == (
                new.published_at,
                new.offered,
                new.aht_seconds,
            ):
                return False
            if new.published_at >= old.own_published_at:
                of_queue[start] = replace(
                    old, own_published_at=new.published_at, own_offered=new.offered, own_aht_seconds=new.aht_seconds
                )
        elif new.source == "wfm" and old.source == "pipeline":  # the WFM's wins; the pipeline's is kept beside
            of_queue[start] = replace(
                new, own_published_at=old.published_at, own_offered=old.offered, own_aht_seconds=old.aht_seconds
            )
        elif new.published_at >= old.published_at:  # the same source: the newer
            of_queue[start] = replace(
                new,
                own_published_at=old.own_published_at,
                own_offered=old.own_offered,
                own_aht_seconds=old.own_aht_seconds,
            )
        return True

    def pop(self, queue_id: str, channel: str, start: int) -> Forecast | None:
        """The interval's forecast, forgotten (its final record carries it)."""
        of_queue = self.by_queue.get((queue_id, channel))
        if not of_queue or start not in of_queue:
            return None
        fc = of_queue.pop(start)
        if not of_queue:
            del self.by_queue[(queue_id, channel)]
        return fc

    def due(self, upto: int) -> Iterator[tuple[int, str, str]]:
        """(start, queue, channel) of the forecasts held for intervals starting at or before `upto`, taken off the
        heap; `keep` puts back one that cannot be published yet (after the loop: it would come again at once)."""
        due = self._due
        while due and due[0][0] <= upto:
            start, q, ch = heapq.heappop(due)
            if self.get(q, ch, start) is not None:  # else published with its interval
                yield start, q, ch

    def keep(self, start: int, queue_id: str, channel: str) -> None:
        heapq.heappush(self._due, (start, queue_id, channel))

    def items(self, of: Container[tuple[str, str]] | None = None) -> Iterator[tuple[str, str, int, Forecast]]:
        """Every forecast held, or those of the queues and channels in `of`."""
        for (q, ch), of_queue in self.by_queue.items():
            if of is None or (q, ch) in of:
                for s, f in of_queue.items():
                    yield q, ch, s, f

    def restore(self, items: Iterator[tuple[str, str, int, Forecast]]) -> None:
        self.by_queue = {}
        for q, ch, s, f in items:
            self.by_queue.setdefault((q, ch), {})[s] = f
        self._due = [(s, q, ch) for (q, ch), of_queue in self.by_queue.items() for s in of_queue]
        heapq.heapify(self._due)
