"""An open interval's (or hour's or day's) counts while it can still change, and merging per-agent counts."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.kpis.counts import HandlingCounts, QueueCounts


@dataclass(slots=True)
class OpenInterval:
    counts: QueueCounts = field(default_factory=QueueCounts)
    revision: int = 0
    changed: bool = False
    published_at: float = 0.0  # wall clock (seconds) of the last published revision
    agents: dict[str, HandlingCounts] = field(default_factory=dict)  # handling per agent who answered
    event_ids: set[str] = field(default_factory=set)  # of events that belong to no leg (surveys, IVR)
    rollups: list[OpenInterval] = field(default_factory=list)  # the open hour and day it is added to when final
    # an hour or day: contacts its final intervals were short of the target, by cause (`worker_miss`)
    causes: dict[str, float] = field(default_factory=dict)


def add_agents(into: dict[str, HandlingCounts], agents: dict[str, HandlingCounts]) -> None:
    for a, c in agents.items():
        mine = into.get(a)
        if mine is None:
            into[a] = c.copy()
        else:
            mine.add(c)
