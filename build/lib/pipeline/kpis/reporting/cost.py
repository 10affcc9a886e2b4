"""The cost model of the queue file (docs/reports.md): agent hours, telephony minutes and self-service sessions at
the queue's prices. Pure. The report passes the logged-in hours of the agents serving a queue (from agent records);
the queue worker, which holds no agent states, passes the agents' handling time (`handling_cost`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.core.settings import QueueSettings
from pipeline.kpis.counts import QueueCounts


@dataclass(frozen=True)
class Cost:
    """What one queue and channel cost over the period, in the queue's currency."""

    currency: str
    agent_hours: float  # logged-in hours of the agents serving it (split like `Staffed`)
    agent: float
    telephony_minutes: float
    telephony: float
    self_service_sessions: int
    self_service: float
    handled: int
    required_agent_hours: float | None  # sum of the records' agents_required x interval hours (on the phones)
    agent_hour_cost: float

    @property
    def of_target(self) -> float | None:
        """What the agents the records say the target needed would have cost (productive hours: no shrinkage)."""
        return None if self.required_agent_hours is None else self.required_agent_hours * self.agent_hour_cost

    @property
    def assisted(self) -> float:
        return self.agent + self.telephony

    @property
    def total(self) -> float:
        return self.assisted + self.self_service

    @property
    def per_handled(self) -> float | None:
        """Agent and telephony cost over handled contacts."""
        return self.assisted / self.handled if self.handled else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "agent_hours": self.agent_hours,
            "agent": self.agent,
            "telephony_minutes": self.telephony_minutes,
            "telephony": self.telephony,
            "self_service_sessions": self.self_service_sessions,
            "self_service": self.self_service,
            "assisted": self.assisted,
            "total": self.total,
            "handled": self.handled,
            "per_handled": self.per_handled,
            "required_agent_hours": self.required_agent_hours,
            "of_target": self.of_target,
        }


def cost(
    c: QueueCounts, channel: str, agent_hours: float, rules: QueueSettings, required_agent_hours: float | None = None
) -> Cost | None:
    """The cost model of the queue file (docs/reports.md); None when the queue has no `agent_hour_cost`."""
    if rules.agent_hour_cost is None:
        return None
    on_line_ms = c.answer_wait_ms + c.abandon_wait_ms + c.talk_ms + c.hold_ms if channel == "voice" else 0
    minutes = on_line_ms / 60_000
    return Cost(
        currency=rules.currency,
        agent_hours=agent_hours,
        agent=agent_hours * rules.agent_hour_cost,
        telephony_minutes=minutes,
        telephony=minutes * rules.telephony_cost_per_minute,
        self_service_sessions=c.ivr_sessions,
        self_service=c.ivr_sessions * rules.self_service_session_cost,
        handled=c.handled,
        required_agent_hours=required_agent_hours,
        agent_hour_cost=rules.agent_hour_cost,
    )


def handling_cost(c: QueueCounts, channel: str, rules: QueueSettings) -> Cost | None:
    """The cost model over what a queue's own counts hold, for its KPI records: the agents' handling time (talk,
    hold and after-contact work of the contacts handled) stands for their hours. The queue worker holds no agent
    states, so the agents' idle and not-ready time is left out: below the report's cost (logged-in hours), which
    the agent records give; a chat agent's concurrent chats each count their own handling time."""
    return cost(c, channel, c.handle_ms / 3_600_000, rules)
