"""When agents work: shifts placed so that staffing follows the intraday curve.

A small greedy scheduler, roughly what a workforce-management tool does: each shift goes where the
forecast demand is least covered (relative to the demand), then every shift is moved once more to its best
place, twice over. Periods of a day or more get a daily roster: each agent works the same shift every day,
so the edges of the period cut shifts (an agent already at work when it starts, or still at work when it
ends) instead of leaving the small hours before the end uncovered. Shorter periods get one shift per
agent, possibly cut by the period's edges too; periods up to a shift long are one shift for everybody.

Depends only on the config, so that the arrival scaling (`CenterConfig.with_load_of`) can use it too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple, Protocol


# Read-only members (properties): the config's dataclasses are frozen.
class _Queue(Protocol):
    @property
    def channel(self) -> str: ...


class CenterConfig(Protocol):
    """What the roster reads of `pipeline.tools.simulate.config.CenterConfig` (which imports the roster)."""

    @property
    def agents(self) -> int: ...

    @property
    def shift_hours(self) -> float: ...

    @property
    def chat_agent_share(self) -> float: ...

    @property
    def duration(self) -> float: ...

    @property
    def queues(self) -> Sequence[_Queue]: ...

    def load_at(self, seconds: float) -> float: ...


SLOT_SECONDS = 900.0  # planning granularity
DAY_SECONDS = 86400.0
IMPROVEMENT_PASSES = 2


class Session(NamedTuple):
    """An agent's time logged in: from `start` to `end` (seconds since the period start)."""

    start: float
    end: float
    shift_start: float  # the whole shift, which the period's edges may cut
    shift_end: float

    @property
    def cut_start(self) -> bool:
        """The shift began before the period: the agent is there from its first second."""
        return self.shift_start < self.start

    @property
    def cut_end(self) -> bool:
        """The shift goes on after the period: the agent logs out when the period ends."""
        return self.shift_end > self.end


def agent_sessions(config: CenterConfig, agents: int) -> list[list[Session]]:
    """The sessions of `agents` agents of one channel, one list per agent, in time order."""
    duration, shift = config.duration, config.shift_hours * 3600
    if shift >= duration:
        return [[Session(0.0, duration, 0.0, duration)] for _ in range(agents)]
    cyclic = duration >= DAY_SECONDS
    horizon = DAY_SECONDS if cyclic else duration
    slots = math.ceil(horizon / SLOT_SECONDS)
    slot = horizon / slots
    length = min(slots, max(1, round(shift / slot)))
    demand = [config.load_at((i + 0.5) * slot) for i in range(slots)]
    starts = range(slots) if cyclic else range(1 - length, slots)  # linear: may begin before, end after
    rosters = []
    for start in _plan(demand, length, agents, starts, cyclic):
        sessions = []
        for day in range(-1, math.ceil(duration / DAY_SECONDS) + 1) if cyclic else [0]:
            begin = day * DAY_SECONDS + start * slot
            end = begin + length * slot
            if min(end, duration) - max(begin, 0.0) >= SLOT_SECONDS / 2:  # no tiny scraps of shifts
                sessions.append(Session(max(begin, 0.0), min(end, duration), begin, end))
        rosters.append(sessions)
    return rosters


def _plan(demand: list[float], length: int, agents: int, starts: range, cyclic: bool) -> list[int]:
    """Start slots of `agents` shifts of `length` slots minimizing sum(gap² / target) over the slots,
    where target is the agents the demand needs and gap is target minus planned agents."""
    if agents == 0:
        return []
    slots = len(demand)
    # Square-root staffing (agents = load + sqrt(load)) with the load scaled so that the targets add up
    # to all the agent time: quiet hours get relatively more agents, as they need for the same service.
    a, b = sum(demand), sum(math.sqrt(d) for d in demand)
    root = (-b + math.sqrt(b * b + 4 * a * agents * length)) / (2 * a)  # sqrt of the scale
    target = [root * root * d + root * math.sqrt(d) for d in demand]
    gap = target.copy()

    def span(start: int) -> tuple[int, int]:  # slot indexes [first, last), modulo `slots` when cyclic
        return (start, start + length) if cyclic else (max(start, 0), min(start + length, slots))

    def best_start() -> int:
        """The start with the largest sum of (2 * gap - 1) / target over the shift: adding it there
        reduces the objective most."""
        weights = [(2 * g - 1) / t for g, t in zip(gap, target, strict=True)]
        prefix = [0.0]
        for w in weights + weights if cyclic else weights:
            prefix.append(prefix[-1] + w)
        return max(starts, key=lambda s: prefix[span(s)[1]] - prefix[span(s)[0]])

    def place(start: int, agents: int) -> None:
        first, last = span(start)
        for i in range(first, last):
            gap[i % slots] -= agents

    chosen = []
    for _ in range(agents):
        chosen.append(best_start())
        place(chosen[-1], 1)
    for _ in range(IMPROVEMENT_PASSES):
        for k, start in enumerate(chosen):
            place(start, -1)
            chosen[k] = best_start()
            place(chosen[k], 1)
    return sorted(chosen)


def chat_agents(config: CenterConfig) -> int:
    """How many of the agents are chat agents (they serve every channel but voice: chat, messaging, email, tasks)."""
    channels = {q.channel for q in config.queues}
    if channels <= {"voice"}:
        return 0
    if "voice" not in channels:
        return config.agents
    return round(config.agents * config.chat_agent_share)
