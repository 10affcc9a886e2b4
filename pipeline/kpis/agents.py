"""Agent KPIs: the additive counts of one agent over some span, the formulas over them, the agent KPI record
published on the KPI topic, and their catalogue entries.

Counts are integer milliseconds (sums are exact in any order) and can be merged over intervals, agents and
queues; the ratios are formed only at the end (never average a ratio). Pure: no Kafka, no Faust, no state.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from pipeline.contract.records import RecordVersion
from pipeline.core.time import REVISION, as_datetime
from pipeline.kpis.definitions import Count, Gauge, Kpi

# the agent states of the contract, and the label each has in Prometheus (the metric spells out `acw`)
STATES: tuple[str, ...] = ("available", "on_contact", "acw", "not_ready")
STATE_LABEL: dict[str, str] = {
    "available": "available",
    "on_contact": "on_contact",
    "acw": "after_contact_work",
    "not_ready": "not_ready",
}
HANDLING_STATES: frozenset[str] = frozenset({"on_contact", "acw"})
UNSPECIFIED_REASON = "unspecified"  # not_ready without a reason code, and logged in before the first state
MAX_PRESENCE_SECONDS = 7 * 24 * 3600
"""The longest one presence (logged in, in one state and reason) counts: past it the agent counts as logged out
until the presence changes, so that a missing logout, or an event time years off, cannot count for ever (nor
make the worker walk every interval of the years between)."""


@dataclass(slots=True)
class AgentCounts:
    """Time of one agent over some span (an interval, or since the worker started), in milliseconds."""

    logged_in_ms: int = 0
    """Time logged in (= available + on_contact + acw + not_ready)."""
    available_ms: int = 0
    """Time available (idle, ready for a contact)."""
    on_contact_ms: int = 0
    """Time in a conversation (talk and hold)."""
    acw_ms: int = 0
    """Time in after-contact work."""
    not_ready_ms: int = 0
    """Time not ready (breaks, lunch, training, ...; and logged in before the first state)."""
    contact_ms: int = 0
    """Contact-time handled: the integral of the number of active contacts over the handling time."""
    scheduled_ms: int = 0
    """Time planned in an activity other than `off` by the WFM schedule."""
    adherent_ms: int = 0
    """Scheduled time in which the agent's state matched the planned activity."""
    not_ready_by_reason_ms: dict[str, int] = field(default_factory=dict)
    """Not-ready time by reason code (`unspecified` when the event gave none)."""
    queues: set[str] = field(default_factory=set)
    """The queues the agent served while logged in during the span."""

    def add(self, other: AgentCounts) -> None:
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, dict):
                for k, v in theirs.items():
                    mine[k] = mine.get(k, 0) + v
            elif isinstance(mine, set):
                mine |= theirs
            else:
                setattr(self, f.name, mine + theirs)

    @property
    def empty(self) -> bool:
        """Nothing to report: neither logged in nor scheduled."""
        return self.logged_in_ms == 0 and self.scheduled_ms == 0

    def as_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["not_ready_by_reason_ms"] = dict(self.not_ready_by_reason_ms)
        d["queues"] = sorted(self.queues)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AgentCounts:
        return cls(**{**d, "not_ready_by_reason_ms": dict(d["not_ready_by_reason_ms"]), "queues": set(d["queues"])})


AGENT_COUNT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(AgentCounts))


def handling_ms(c: AgentCounts) -> int:
    """Time handling contacts: on_contact + acw."""
    return c.on_contact_ms + c.acw_ms


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def occupancy(c: AgentCounts) -> float | None:
    """Handling / (handling + available). None when the agent was neither handling nor available."""
    return _ratio(handling_ms(c), handling_ms(c) + c.available_ms)


def utilization(c: AgentCounts) -> float | None:
    """Handling / logged-in time. None when not logged in."""
    return _ratio(handling_ms(c), c.logged_in_ms)


def adherence(c: AgentCounts) -> float | None:
    """Adherent / scheduled time. None when nothing was scheduled."""
    return _ratio(c.adherent_ms, c.scheduled_ms)


def concurrency(c: AgentCounts) -> float | None:
    """Mean number of contacts at once while handling: contact-time / handling time."""
    return _ratio(c.contact_ms, handling_ms(c))


# ---- the agent KPI record ---------------------------------------------------------------------------------

Seconds = Annotated[float, Meta(ge=0, description="Seconds.")]
Ratio = Annotated[float | None, Meta(description="Ratio 0..1; null with nothing to measure.")]


class AgentKpiRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Agent KPIs of one agent over one interval (see docs/kpis.md for every definition).

    Published on the KPI topic with the key `agent|<agent_id>|<interval_start>`; `kind` tells it from the
    queue records on the same topic.
    """

    kind: Annotated[Literal["agent"], Meta(description="Always `agent`: an agent record.")] = "agent"
    v: RecordVersion = 1
    agent_id: str
    queue_ids: Annotated[list[str], Meta(description="Queues the agent served while logged in in the interval.")]
    interval_start: Annotated[datetime, Meta(description="Start of the interval (UTC).")]
    interval_end: Annotated[datetime, Meta(description="End of the interval (UTC), exclusive.")]
    revision: Annotated[int, Meta(ge=1, description=REVISION)]
    final: Annotated[bool, Meta(description="True when the interval is closed: no later revision will come.")]
    logged_in_seconds: Seconds
    available_seconds: Seconds
    on_contact_seconds: Seconds
    acw_seconds: Seconds
    not_ready_seconds: Seconds
    not_ready_seconds_by_reason: Annotated[dict[str, float], Meta(description="Not-ready seconds by reason code.")]
    handling_seconds: Seconds
    contact_seconds: Annotated[float, Meta(ge=0, description="Integral of active contacts over handling time.")]
    scheduled_seconds: Seconds
    adherent_seconds: Seconds
    occupancy: Ratio
    utilization: Ratio
    adherence: Ratio
    concurrency: Annotated[float | None, Meta(description="Mean contacts at once while handling; null if none.")]

    @property
    def key(self) -> str:
        return agent_record_key(self.agent_id, self.interval_start)


def agent_record_key(agent_id: str, start: datetime) -> str:
    return f"agent|{agent_id}|{start.isoformat()}"


@dataclass(slots=True)
class AgentIntervalUpdate:
    """A revision of one agent's counts over one interval, to publish."""

    agent_id: str
    start: int  # epoch seconds
    revision: int
    final: bool
    counts: AgentCounts


def build_agent_record(u: AgentIntervalUpdate, interval_seconds: int) -> AgentKpiRecord:
    c = u.counts
    return AgentKpiRecord(
        agent_id=u.agent_id,
        queue_ids=sorted(c.queues),
        interval_start=as_datetime(u.start),
        interval_end=as_datetime(u.start + interval_seconds),
        revision=u.revision,
        final=u.final,
        logged_in_seconds=c.logged_in_ms / 1000,
        available_seconds=c.available_ms / 1000,
        on_contact_seconds=c.on_contact_ms / 1000,
        acw_seconds=c.acw_ms / 1000,
        not_ready_seconds=c.not_ready_ms / 1000,
        not_ready_seconds_by_reason={r: ms / 1000 for r, ms in sorted(c.not_ready_by_reason_ms.items())},
        handling_seconds=handling_ms(c) / 1000,
        contact_seconds=c.contact_ms / 1000,
        scheduled_seconds=c.scheduled_ms / 1000,
        adherent_seconds=c.adherent_ms / 1000,
        occupancy=occupancy(c),
        utilization=utilization(c),
        adherence=adherence(c),
        concurrency=concurrency(c),
    )


def decode_agent_record(b: bytes) -> AgentKpiRecord:
    return msgspec.json.decode(b, type=AgentKpiRecord)


# ---- catalogue entries (rendered into docs/kpis.md by the catalogue) ---------------------------------------

AGENT_TIME = (
    "time is split at interval boundaries on event time: each interval gets the part of the agent's "
    "state spans (and planned activities) that falls in it; a presence (logged in, one state and reason) "
    f"counts for at most {MAX_PRESENCE_SECONDS // 86400} days, then as logged out until it changes"
)

AGENT_COUNTS: tuple[Count, ...] = (
    Count(
        "cc_agent_logged_in_seconds_total",
        "logged_in_ms",
        "logged_in_seconds",
        "seconds",
        "Time the agent was logged in.",
        AGENT_TIME,
    ),
    Count(
        "cc_agent_state_seconds_total",
        "available_ms",
        "available_seconds",
        "seconds",
        'Time the agent was available (label state="available").',
        AGENT_TIME,
    ),
    Count(
        "cc_agent_state_seconds_total",
        "on_contact_ms",
        "on_contact_seconds",
        "seconds",
        'Time the agent was in a conversation, talk and hold (label state="on_contact").',
        AGENT_TIME,
    ),
    Count(
        "cc_agent_state_seconds_total",
        "acw_ms",
        "acw_seconds",
        "seconds",
        'Time the agent was in after-contact work (label state="after_contact_work").',
        AGENT_TIME,
    ),
    Count(
        "cc_agent_state_seconds_total",
        "not_ready_ms",
        "not_ready_seconds",
        "seconds",
        'Time the agent was not ready, any reason (label state="not_ready").',
        AGENT_TIME,
    ),
    Count(
        "cc_agent_not_ready_seconds_total",
        "not_ready_by_reason_ms",
        "not_ready_seconds_by_reason",
        "seconds",
        "Not-ready time by reason code (label reason; `unspecified` when the event gave none).",
        AGENT_TIME,
    ),
    Count(
        "cc_agent_contact_seconds_total",
        "contact_ms",
        "contact_seconds",
        "seconds",
        "Integral of the agent's active contacts over handling time (chat concurrency's numerator).",
        AGENT_TIME,
    ),
    Count(
        "cc_agent_scheduled_seconds_total",
        "scheduled_ms",
        "scheduled_seconds",
        "seconds",
        "Time the WFM schedule planned the agent in an activity other than `off`.",
        AGENT_TIME,
    ),
    Count(
        "cc_agent_adherent_seconds_total",
        "adherent_ms",
        "adherent_seconds",
        "seconds",
        "Scheduled time in which the agent's state matched the planned activity.",
        AGENT_TIME,
    ),
)

AGENT_GAUGES: tuple[Gauge, ...] = (
    Gauge(
        "cc_queue_agents",
        "agents",
        "Agents logged in and serving the queue now, by state (label state: available, on_contact, "
        "after_contact_work, not_ready; logged_in = all of them), at the partition's watermark. An agent "
        "serving several queues counts in each. Sum over workers: sum by (queue, state).",
    ),
    Gauge(
        "cc_queue_agents_out_of_adherence",
        "agents",
        "Agents of the queue (logged in to it now, or last) whose scheduled activity does not match their state "
        "now (real-time adherence), at the agent partition's watermark. Sum over workers: sum by (queue).",
    ),
    Gauge(
        "cc_queue_agents_adherence_exceptions",
        "agents",
        "Of those, the agents out of adherence for at least the queue's `adherence_exception_seconds` without "
        "a break. Sum over workers: sum by (queue).",
    ),
)

# per-queue adherence totals: counters exported always (not per agent)
QUEUE_ADHERENCE_COUNTS: tuple[Count, ...] = (
    Count(
        "cc_queue_agent_scheduled_seconds_total",
        "scheduled_ms",
        "scheduled_seconds",
        "seconds",
        "Scheduled time of the agents serving the queue (an agent serving several queues counts in each; "
        "while logged out, the queues of the agent's last session).",
        AGENT_TIME,
    ),
    Count(
        "cc_queue_agent_adherent_seconds_total",
        "adherent_ms",
        "adherent_seconds",
        "seconds",
        "Adherent time of the agents serving the queue (attributed like the scheduled time).",
        AGENT_TIME,
    ),
)


def _agent_increase(selector: str) -> str:
    return f"sum by (agent) (increase({selector}[15m]))"


_HANDLING = 'cc_agent_state_seconds_total{state=~"on_contact|after_contact_work"}'
_READY = 'cc_agent_state_seconds_total{state=~"available|on_contact|after_contact_work"}'
_NOT_READY_NOTE = (
    "Logged in before the first `agent.state_changed` counts as not ready (`unspecified`); an "
    "`agent.state_changed` while logged out logs the agent in (queues of its last session)."
)

AGENT_KPIS: tuple[Kpi, ...] = (
    Kpi(
        "occupancy",
        "Occupancy (agent)",
        "(on_contact + acw) / (on_contact + acw + available)",
        "ratio 0..1",
        AGENT_TIME,
        "occupancy",
        f"{_agent_increase(_HANDLING)} / {_agent_increase(_READY)}",
        "Not-ready time is excluded from both sides (Genesys, Amazon Connect alike). Null when the agent was "
        "neither handling nor available.",
    ),
    Kpi(
        "utilization",
        "Utilization (agent)",
        "(on_contact + acw) / logged-in time",
        "ratio 0..1",
        AGENT_TIME,
        "utilization",
        f"{_agent_increase(_HANDLING)} / {_agent_increase('cc_agent_logged_in_seconds_total')}",
        "Some vendors call this occupancy; here not-ready time counts in the denominator. " + _NOT_READY_NOTE,
    ),
    Kpi(
        "not_ready_by_reason",
        "Not-ready time by reason code (agent)",
        "sum of not_ready time, by reason_code",
        "seconds",
        AGENT_TIME,
        "not_ready_seconds_by_reason",
        "sum by (agent, reason) (increase(cc_agent_not_ready_seconds_total[15m]))",
        _NOT_READY_NOTE,
    ),
    Kpi(
        "adherence",
        "Schedule adherence (agent, queue)",
        "adherent time / scheduled time",
        "ratio 0..1",
        AGENT_TIME,
        "adherence",
        f"{_agent_increase('cc_agent_adherent_seconds_total')} / {_agent_increase('cc_agent_scheduled_seconds_total')}",
        "Amazon Connect's adherent minutes / scheduled minutes. Planned activity from "
        "`schedule.activity_planned` (the highest version holds where entries overlap). Adherent: "
        "`contact_handling` while logged in and available, on_contact or acw; `break`, `lunch`, `training`, "
        "`meeting` while not_ready (any reason) or logged out; `off` is not scheduled time.",
        promql_per_queue="sum by (queue) (increase(cc_queue_agent_adherent_seconds_total[15m])) / "
        "sum by (queue) (increase(cc_queue_agent_scheduled_seconds_total[15m]))",
    ),
    Kpi(
        "concurrency",
        "Concurrency (agent, chat)",
        "contact_seconds / (on_contact + acw)",
        "contacts",
        AGENT_TIME,
        "concurrency",
        f"{_agent_increase('cc_agent_contact_seconds_total')} / {_agent_increase(_HANDLING)}",
        "Contact-time = the integral of `active_contacts` (from `agent.state_changed`; 1 in on_contact and "
        "acw when absent) over the agent's handling time: the mean number of contacts at once while handling.",
    ),
    Kpi(
        "agents_by_state",
        "Agents by state now (queue)",
        "logged-in agents serving the queue, by state",
        "agents",
        "real time (now)",
        "-",
        "sum by (queue, state) (cc_queue_agents)",
        "At the partition's watermark (newest agent event time); agents are partitioned by agent, so sum over workers.",
    ),
)
