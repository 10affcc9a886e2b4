"""Hours and days (in each queue's time zone) summed from a queue state's intervals.

An interval's counts go into its hour and day when it is final (`fold`), not with every increment, which would
triple the counting of every event; a provisional hour or day adds the open intervals in it when published.
Owned by `QueueState`, which says when time has passed; must not import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from zoneinfo import ZoneInfo

from pipeline.core.settings import QueueSettings
from pipeline.core.time import due_for_revision, local_bounds, next_revision
from pipeline.kpis.counts import HandlingCounts, IntervalUpdate, QueueCounts, Window
from pipeline.state.intervals import OpenInterval, add_agents

ROLLUPS: tuple[Window, ...] = ("hour", "day")  # the windows summed from the intervals
RollupKey = tuple[str, str, Window, int]  # queue, channel, window, start ms


class Rollups:
    """The open hours and days of one partition: (queue, channel, window, start ms) -> (end ms, counts)."""

    def __init__(self, rules_of: Callable[[str], QueueSettings]) -> None:
        self.rules_of = rules_of
        self.open: dict[RollupKey, tuple[int, OpenInterval]] = {}
        self._bounds: dict[tuple[str, str, int], tuple[int, int]] = {}  # (zone, window, interval start) cache

    def of(self, queue_id: str, channel: str, start: int) -> list[OpenInterval]:
        """The open hour and day (in the queue's time zone) that hold the interval starting at `start`."""
        zone = self.rules_of(queue_id).time_zone
        out = []
        for window in ROLLUPS:
            bounds = self._bounds.get((zone, window, start))
            if bounds is None:
                bounds = self._bounds[(zone, window, start)] = local_bounds(start, window, ZoneInfo(zone))
            key = (queue_id, channel, window, bounds[0])
            if key not in self.open:
                self.open[key] = (bounds[1], OpenInterval())
            out.append(self.open[key][1])
        return out

    @staticmethod
    def fold(ivl: OpenInterval, causes: dict[str, float]) -> None:
        """A final interval's counts, and the contacts it was short of the target by cause, into its hour and day."""
        for roll in ivl.rollups:
            roll.counts.add(ivl.counts)
            add_agents(roll.agents, ivl.agents)
            for cause, contacts in causes.items():
                roll.causes[cause] = roll.causes.get(cause, 0.0) + contacts

    def finals(
        self,
        closed_upto: Callable[[str, str, int], bool],
        intervals: Iterable[tuple[str, str, int]],
        offset: int,
    ) -> list[IntervalUpdate]:
        """Hours and days now final, oldest first, dropped from the open ones. `closed_upto(q, ch, end)`: time
        has passed `end` by the allowed lateness and no contact that arrived before it still waits; an hour or
        day is final then, once no interval of it (`intervals`: the open ones) is still open."""
        if len(self._bounds) > 10_000:
            self._bounds.clear()  # a cache: bounded
        still_open = list(intervals)
        out = []
        for (q, ch, window, start), (end, roll) in sorted(self.open.items(), key=lambda kv: kv[0][3]):
            if not closed_upto(q, ch, end):
                continue
            if any(iq == q and ich == ch and s < end for iq, ich, s in still_open):
                continue
            del self.open[(q, ch, window, start)]
            roll.revision = next_revision(roll.revision, offset)
            out.append(
                self._update((q, ch, window, start), end, roll.revision, True, roll.counts, roll.agents, roll.causes)
            )
        return out

    def provisional(
        self, wall_now: float, every: float, offset: int, intervals: dict[tuple[str, str, int], OpenInterval]
    ) -> list[IntervalUpdate]:
        """Open hours and days that changed `every` seconds ago, with the open intervals in them added."""
        out = []
        by_queue: dict[tuple[str, str], list[tuple[int, OpenInterval]]] | None = None
        for (q, ch, window, start), (end, roll) in self.open.items():
            if due_for_revision(roll, wall_now, every, offset):
                if by_queue is None:  # once per call: each due hour or day reads its own queue's intervals only
                    by_queue = {}
                    for (iq, ich, s), ivl in intervals.items():
                        by_queue.setdefault((iq, ich), []).append((s, ivl))
                counts = roll.counts.copy()
                for s, ivl in by_queue.get((q, ch), ()):
                    if start <= s < end:  # open: added when final
                        counts.add(ivl.counts)
                # per agent in the final record only (see `KpiRecord.agents`)
                out.append(
                    self._update((q, ch, window, start), end, roll.revision, False, counts, {}, dict(roll.causes))
                )
        return out

    def _update(
        self,
        key: RollupKey,
        end: int,
        revision: int,
        final: bool,
        counts: QueueCounts,
        agents: dict[str, HandlingCounts],
        causes: dict[str, float],
    ) -> IntervalUpdate:
        q, ch, window, start = key
        return IntervalUpdate(
            q,
            ch,
            start // 1000,
            revision,
            final,
            counts,
            self.rules_of(q).for_channel(ch),
            agents,
            None,
            window,
            end // 1000,
            causes,
        )
