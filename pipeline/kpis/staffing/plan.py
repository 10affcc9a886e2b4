"""The staffing plan: required agents per future interval from a forecast, against the agents scheduled.

Pure (docs/staffing.md: "The plan"). Per queue, channel and interval:
- required: the fewest agents on contacts for the queue's headline service level target at the forecast
  arrival rate and AHT, under its occupancy cap (`max_occupancy`): Erlang A with the queue's observed
  patience when it is known, else Erlang C; chat: Erlang servers / `chat_concurrency`, rounded up;
- needed: required / (1 - `shrinkage`), rounded up: the agents to schedule for contacts, the queue's
  shrinkage being the share of their time lost to what the schedule does not show (absence, unplanned
  not-ready time);
- scheduled: agents whose published schedule (`schedule.activity_planned`) plans contact handling in the
  interval, by the share of the interval planned, each agent shared between its k queues (1/k each), the
  capacity rule of the live gap;
- gap: needed - scheduled (positive: understaffed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from pipeline.core.settings import QueueSettings
from pipeline.kpis.staffing.erlang import required_agents
from pipeline.kpis.staffing.live import agents_needed


def ahead_intervals(interval_seconds: int) -> int:
    """The intervals of "the next hour" after the current one (at least one)."""
    return max(1, 3600 // interval_seconds)


@dataclass(frozen=True, slots=True)
class Demand:
    """The forecast of one queue, channel and interval."""

    queue: str
    channel: str
    start: int  # epoch seconds
    offered: float  # contacts in the interval
    aht: float  # seconds
    patience: float | None = None  # seconds (Erlang A); None: Erlang C


@dataclass(frozen=True, slots=True)
class PlanRow:
    queue: str
    channel: str
    start: int
    offered: float
    aht: float
    required: int  # agents on contacts
    needed: int  # agents to schedule (shrinkage)
    scheduled: float | None  # None: no schedule given
    model: str  # erlang_c, erlang_a or "no load"

    @property
    def gap(self) -> float | None:
        return None if self.scheduled is None else self.needed - self.scheduled


def required_for(d: Demand, rules: QueueSettings, interval_seconds: int) -> tuple[int, int, str]:
    """(required, needed, model) for one interval's demand under the queue's settings."""
    s = required_agents(
        d.offered / interval_seconds,
        d.aht,
        rules.service_level_threshold_seconds,
        min(rules.service_level_target, 0.999),
        patience=d.patience,
        shrinkage=rules.shrinkage,
        max_occupancy=rules.max_occupancy,
        variant=rules.service_level_variant,
        short_abandon_seconds=rules.short_abandon_seconds,
    )
    required = agents_needed(s.agents, rules)
    needed = agents_needed(s.scheduled, rules)
    return required, needed, s.model if s.agents else "no load"


def plan(
    demands: Iterable[Demand],
    interval_seconds: int,
    rules_of: Callable[[str], QueueSettings],
    scheduled: Mapping[tuple[str, int], float] | None = None,
) -> list[PlanRow]:
    """The plan of every demand, in (queue, channel, start) order; `scheduled`: (queue, start) -> agents."""
    out = []
    for d in sorted(demands, key=lambda d: (d.queue, d.channel, d.start)):
        required, needed, model = required_for(d, rules_of(d.queue).for_channel(d.channel), interval_seconds)
        have = None if scheduled is None else scheduled.get((d.queue, d.start), 0.0)
        out.append(PlanRow(d.queue, d.channel, d.start, d.offered, d.aht, required, needed, have, model))
    return out


@dataclass(frozen=True, slots=True)
class Entry:
    """One schedule entry (`schedule.activity_planned`), times in epoch seconds."""

    agent: str
    activity: str
    start: float
    end: float
    version: int = 1
    event_id: str = ""


def scheduled_agents(
    entries: Iterable[Entry],
    queues_of: Mapping[str, tuple[str, ...]],
    interval_seconds: int,
    window: tuple[float, float] | None = None,
) -> dict[tuple[str, int], float]:
    """(queue, interval start) -> agents planned for contact handling: each agent counts the share of the interval
    its plan gives to contact handling, split 1/k between its k queues. Where an agent's entries overlap, the
    highest (version, event_id) holds (the contract's rule); `off` plans nothing. With `window` (start, end in
    epoch seconds, on interval boundaries), only the intervals in it: /metrics asks for the next hour of plans
    that span whole days, of agents that can serve 50 queues each."""
    lo, hi = window or (-math.inf, math.inf)
    by_agent: dict[str, list[Entry]] = {}
    for e in entries:
        if e.end > lo and e.start < hi:
            by_agent.setdefault(e.agent, []).append(e)
    out: dict[tuple[str, int], float] = {}
    for agent, plan_ in by_agent.items():
        queues = sorted(set(queues_of.get(agent, ())))
        if not queues:
            continue
        cuts = sorted({min(max(t, lo), hi) for e in plan_ for t in (e.start, e.end)})
        for a, b in zip(cuts, cuts[1:], strict=False):
            covering = [e for e in plan_ if e.start <= a and b <= e.end]
            if not covering:
                continue
            top = max(covering, key=lambda e: (e.version, e.event_id))
            if top.activity != "contact_handling":
                continue
            t = a
            while t < b:  # split the span at interval boundaries
                ivl = int(t // interval_seconds * interval_seconds)
                cut = min(b, ivl + interval_seconds)
                share = (cut - t) / interval_seconds / len(queues)
                for q in queues:
                    out[(q, ivl)] = out.get((q, ivl), 0.0) + share
                t = cut
    return out
