"""Builders of agent-topic events for the agent-state tests (times given in seconds after BASE)."""

from __future__ import annotations

import itertools
from datetime import UTC, tzinfo

from eventlog import when

from pipeline.contract import events as ev


class AgentEvents:
    """Builds agent-topic events with unique ids; `at`, `start` and `end` are seconds after BASE."""

    def __init__(self, prefix: str = "a", tz: tzinfo = UTC) -> None:
        self._ids = itertools.count(1)
        self.prefix = prefix
        self.tz = tz

    def _id(self) -> str:
        return f"{self.prefix}{next(self._ids)}"

    def login(self, at, agent="A1", queues=("Q1",)):
        return ev.AgentLoggedIn(event_id=self._id(), time=when(at, self.tz), agent_id=agent, queue_ids=list(queues))

    def logout(self, at, agent="A1"):
        return ev.AgentLoggedOut(event_id=self._id(), time=when(at, self.tz), agent_id=agent)

    def state(self, at, state, agent="A1", reason=None, active=None):
        return ev.AgentStateChanged(
            event_id=self._id(),
            time=when(at, self.tz),
            agent_id=agent,
            state=state,
            reason_code=reason,
            active_contacts=active,
        )

    def plan(self, start, end, activity="contact_handling", agent="A1", version=1, published=None, schedule="S1"):
        published = start if published is None else published
        return ev.ScheduleActivityPlanned(
            event_id=self._id(),
            time=when(published, self.tz),
            agent_id=agent,
            schedule_id=schedule,
            version=version,
            activity=activity,
            start=when(start, self.tz),
            end=when(end, self.tz),
        )

    def heartbeat(self, at):
        return ev.SourceHeartbeat(event_id=self._id(), time=when(at, self.tz))
