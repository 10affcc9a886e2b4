"""The figures of an operations report, from final KPI records: per queue and channel over a day, week or month
against the targets and the period before, cost per contact, self-service share, understaffed intervals and the
causes of each missed interval (docs/reports.md).

Pure: records (JSON objects as the KPI topic and `python -m pipeline replay --kpi-out` carry them) and the queue
file in, plain data out. Counts are summed over the records first and the KPIs formed after, with the formulas of
`pipeline.kpis.definitions` and `pipeline.kpis.agents` (never an average of ratios). Rendering and delivery are in
`pipeline.tools.report`. No customer identifier is in any record, so none can reach a report.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

import msgspec

from pipeline.core.settings import QueueConfig, QueueSettings
from pipeline.kpis.agents import AgentCounts, AgentKpiRecord, adherence, occupancy, utilization
from pipeline.kpis.counts import QueueCounts
from pipeline.kpis.definitions import COUNTS, RATIO, SERVICE_LEVEL
from pipeline.kpis.quality import FcrRecord
from pipeline.kpis.record import KpiRecord
from pipeline.kpis.reporting.causes import CAUSES, Evidence, contributions, shares, shortfall
from pipeline.kpis.reporting.cost import Cost, cost
from pipeline.kpis.staffing.erlang import predict

PeriodKind = Literal["day", "week", "month"]
PERIODS: tuple[PeriodKind, ...] = ("day", "week", "month")
WORST_INTERVALS = 12  # missed intervals listed one by one in a report


# ---- records ------------------------------------------------------------------------------------------------


@dataclass
class Records:
    """The final records of a file or topic, by kind: queue intervals, queue days, agents, FCR (all revisions kept
    as given: the caller passes the last revision of each key)."""

    intervals: list[KpiRecord] = field(default_factory=list)
    days: list[KpiRecord] = field(default_factory=list)
    agents: list[AgentKpiRecord] = field(default_factory=list)
    fcr: list[FcrRecord] = field(default_factory=list)  # provisional ones too: the report counts them apart


def parse_records(raw: Iterable[dict[str, Any]]) -> Records:
    """Typed records from JSON objects; queue and agent records that are not final are left out."""
    out = Records()
    for r in raw:
        kind = r.get("kind", "queue")
        if kind == "fcr":
            out.fcr.append(msgspec.convert(r, FcrRecord, strict=False))
        elif not r.get("final"):
            continue
        elif kind == "agent":
            out.agents.append(msgspec.convert(r, AgentKpiRecord, strict=False))
        elif kind == "queue":
            rec = msgspec.convert(r, KpiRecord, strict=False)
            if rec.window == "interval":
                out.intervals.append(rec)
            elif rec.window == "day":
                out.days.append(rec)
    return out


# ---- periods ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Local days [start, end) of a day, an ISO week (Monday first) or a calendar month."""

    kind: PeriodKind
    start: date
    end: date

    @property
    def label(self) -> str:
        if self.kind == "day":
            return self.start.isoformat()
        if self.kind == "week":
            year, week, _ = self.start.isocalendar()
            return f"{year}-W{week:02d} ({self.start.isoformat()} to {(self.end - timedelta(days=1)).isoformat()})"
        return self.start.strftime("%Y-%m")

    def previous(self) -> Period:
        return period_of(self.kind, self.start - timedelta(days=1))

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day < self.end

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "start": self.start.isoformat(), "end": self.end.isoformat(), "label": self.label}


def period_of(kind: PeriodKind, day: date) -> Period:
    """The day, week or month that holds `day`."""
    if kind == "day":
        return Period(kind, day, day + timedelta(days=1))
    if kind == "week":
        start = day - timedelta(days=day.weekday())
        return Period(kind, start, start + timedelta(days=7))
    start = day.replace(day=1)
    return Period(kind, start, start + timedelta(days=calendar.monthrange(day.year, day.month)[1]))


def local_date(t: datetime, rules: QueueSettings) -> date:
    return t.astimezone(rules.zone).date()


def latest_period(kind: PeriodKind, records: Records, config: QueueConfig) -> Period:
    """The period that holds the newest local day of the queue records."""
    if not records.intervals:
        raise ValueError("no final queue interval records")
    newest = max(records.intervals, key=lambda r: r.interval_start)
    return period_of(kind, local_date(newest.interval_start, config.for_queue(newest.queue_id)))


# ---- counts from records ------------------------------------------------------------------------------------


def queue_counts(records: Iterable[KpiRecord]) -> QueueCounts:
    """The records' counts summed (durations back to milliseconds): what every queue KPI is formed from."""
    c = QueueCounts()
    for r in records:
        for k in COUNTS:
            value = getattr(r, k.record_field)
            setattr(c, k.field, getattr(c, k.field) + (round(value * 1000) if k.field.endswith("_ms") else value))
        c.longest_wait_ms = max(c.longest_wait_ms, round(r.longest_wait_seconds * 1000))
    return c


def agent_counts(records: Iterable[AgentKpiRecord]) -> AgentCounts:
    c = AgentCounts()
    for r in records:
        c.logged_in_ms += round(r.logged_in_seconds * 1000)
        c.available_ms += round(r.available_seconds * 1000)
        c.on_contact_ms += round(r.on_contact_seconds * 1000)
        c.acw_ms += round(r.acw_seconds * 1000)
        c.not_ready_ms += round(r.not_ready_seconds * 1000)
        c.scheduled_ms += round(r.scheduled_seconds * 1000)
        c.adherent_ms += round(r.adherent_seconds * 1000)
    return c


# ---- per interval: the agents each queue had --------------------------------------------------------------


@dataclass
class Staffed:
    """Agent-equivalents of one queue and channel in one interval (an agent serving k queues counts 1/k in each,
    split again equally over the queue's channels): logged in, not ready, and able to take contacts."""

    logged_in: float = 0.0
    not_ready: float = 0.0
    logged_in_seconds: float = 0.0  # the same logged-in time, in seconds (cost)
    handling_seconds: float = 0.0
    contact_seconds: float = 0.0  # contacts at once x handling time: above handling_seconds for chat agents

    @property
    def concurrency(self) -> float:
        """Mean contacts at once while handling (1 for voice; 1 when nothing was handled)."""
        return self.contact_seconds / self.handling_seconds if self.handling_seconds > 0 else 1.0

    @property
    def available(self) -> float:
        """Agents able to take contacts, in contact slots: a chat agent taking two chats at once counts as two
        servers of the Erlang requirement, as the records' `agents_required` treats contacts."""
        return (self.logged_in - self.not_ready) * max(1.0, self.concurrency)


Key = tuple[str, str, datetime]  # queue, channel, interval start


def staffed_by_interval(records: Records) -> dict[Key, Staffed]:
    """Agents per queue, channel and interval; a queue's channels are all those its records ever show, so time
    in an interval without a queue record (no arrival, nothing completed) still counts."""
    channels: dict[str, set[str]] = defaultdict(set)
    for r in records.intervals:
        channels[r.queue_id].add(r.channel)
    out: dict[Key, Staffed] = {}
    for a in records.agents:
        span = (a.interval_end - a.interval_start).total_seconds()
        if not a.queue_ids or span <= 0:
            continue
        for q in a.queue_ids:
            chans = sorted(channels.get(q, ()))
            for ch in chans:
                share = 1 / (len(a.queue_ids) * len(chans))
                s = out.setdefault((q, ch, a.interval_start), Staffed())
                s.logged_in += a.logged_in_seconds * share / span
                s.not_ready += a.not_ready_seconds * share / span
                s.logged_in_seconds += a.logged_in_seconds * share
                s.handling_seconds += a.handling_seconds * share
                s.contact_seconds += a.contact_seconds * share
    return out


def not_ready_norm(records: Records) -> float:
    """The usual not-ready share of logged-in time: over every agent record given (both periods and more)."""
    logged = sum(a.logged_in_seconds for a in records.agents)
    return sum(a.not_ready_seconds for a in records.agents) / logged if logged else 0.0


# ---- the figures of one queue and channel over a period --------------------------------------------------

ROWS: tuple[tuple[str, str, str], ...] = (
    # (key, title, unit); the ratio titles are the definitions' own
    ("offered", "Offered", "contacts"),
    ("handled", "Handled", "contacts"),
    ("service_level", "Service level (headline)", "ratio"),
    ("asa", RATIO["asa"].title, "seconds"),
    ("abandon_rate", RATIO["abandon_rate"].title, "ratio"),
    ("abandon_rate_without_short", RATIO["abandon_rate_without_short"].title, "ratio"),
    ("aht", RATIO["aht"].title, "seconds"),
    ("talk_avg", RATIO["talk_avg"].title, "seconds"),
    ("hold_avg", RATIO["hold_avg"].title, "seconds"),
    ("acw_avg", RATIO["acw_avg"].title, "seconds"),
    ("fcr_rate", "First contact resolution (final intervals only)", "ratio"),
    ("csat", RATIO["csat"].title, "score"),
    ("csat_satisfied", RATIO["csat_satisfied"].title, "ratio"),
    ("occupancy", "Occupancy (agents serving the queue)", "ratio"),
    ("utilization", "Utilization (agents serving the queue)", "ratio"),
    ("adherence", "Schedule adherence (agents serving the queue)", "ratio"),
    ("forecast_accuracy", "Forecast accuracy (1 - WAPE of offered)", "ratio"),
    ("staffing_gap_hours", "Understaffed agent-hours (required - available)", "hours"),
    ("ivr_containment", RATIO["ivr_containment"].title, "ratio"),
    ("cost_per_handled", "Cost per handled contact", "money"),
    ("cost_total", "Cost (agents, telephony, self-service)", "money"),
)
BETTER_LOW = frozenset({"asa", "abandon_rate", "abandon_rate_without_short", "staffing_gap_hours", "cost_per_handled"})


@dataclass
class QueueFigures:
    queue_id: str
    channel: str
    records: int
    counts: QueueCounts
    agents: AgentCounts
    agent_hours: float
    fcr_eligible: int
    fcr_resolved: int
    fcr_provisional_intervals: int
    forecast_intervals: int
    forecast_offered: float
    forecast_abs_error: float
    staffing_gap_hours: float
    intervals: int
    intervals_missed: int
    cost: Cost | None

    def kpis(self, rules: QueueSettings) -> dict[str, float | None]:
        """Every KPI of the report's table (None: not available); all None for a period without records."""
        if not self.records:
            return {key: None for key, _, _ in ROWS}
        c, a = self.counts, self.agents
        values: dict[str, float | None] = {
            "offered": c.offered,
            "handled": c.handled,
            "service_level": SERVICE_LEVEL[rules.service_level_variant].value(c),
        }
        for key in ("asa", "abandon_rate", "abandon_rate_without_short", "aht", "talk_avg", "hold_avg", "acw_avg"):
            values[key] = RATIO[key].value(c)
        for key in ("csat", "csat_satisfied", "ivr_containment"):
            values[key] = RATIO[key].value(c)
        values["fcr_rate"] = self.fcr_resolved / self.fcr_eligible if self.fcr_eligible else None
        values["occupancy"], values["utilization"], values["adherence"] = occupancy(a), utilization(a), adherence(a)
        values["forecast_accuracy"] = (
            1 - self.forecast_abs_error / self.forecast_offered if self.forecast_offered > 0 else None
        )
        values["staffing_gap_hours"] = self.staffing_gap_hours if self.intervals else None
        values["cost_per_handled"] = self.cost.per_handled if self.cost else None
        values["cost_total"] = self.cost.total if self.cost else None
        return values


def targets(rules: QueueSettings) -> dict[str, float]:
    return {
        "service_level": rules.service_level_target,
        "asa": rules.asa_target_seconds,
        "abandon_rate": rules.abandon_rate_target,
    }


def met(key: str, value: float | None, target: float | None) -> bool | None:
    if value is None or target is None:
        return None
    return value <= target if key in BETTER_LOW else value >= target


# ---- the report's data ------------------------------------------------------------------------------------


def build(
    records: Records,
    config: QueueConfig,
    period: Period,
    queues: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Everything a report shows, as JSON-able data: rendering only formats and draws it."""
    wanted = set(queues) if queues else None
    chosen = [r for r in records.intervals if wanted is None or r.queue_id in wanted]
    staffed = staffed_by_interval(records)
    norm = not_ready_norm(records)
    previous = period.previous()

    def in_period(r: KpiRecord | FcrRecord, p: Period) -> bool:
        return local_date(r.interval_start, config.for_queue(r.queue_id)) in p

    pairs = sorted({(r.queue_id, r.channel) for r in chosen if in_period(r, period) or in_period(r, previous)})
    rows = []
    for q, ch in pairs:
        rules = config.rules(q, ch)
        now = _figures(
            q, ch, [r for r in chosen if r.queue_id == q and r.channel == ch], records, staffed, period, config
        )
        before = _figures(
            q, ch, [r for r in chosen if r.queue_id == q and r.channel == ch], records, staffed, previous, config
        )
        rows.append(
            {
                "queue_id": q,
                "channel": ch,
                "team": rules.team,
                "variant": rules.service_level_variant,
                "threshold_seconds": rules.service_level_threshold_seconds,
                "targets": targets(rules),
                "kpis": now.kpis(rules),
                "previous": before.kpis(rules),
                "cost": now.cost.as_dict() if now.cost else None,
                "fcr_provisional_intervals": now.fcr_provisional_intervals,
                "intervals": now.intervals,
                "intervals_missed": now.intervals_missed,
                "forecast_intervals": now.forecast_intervals,
            }
        )
    current = [r for r in chosen if in_period(r, period)]
    return {
        "period": period.as_dict(),
        "previous_period": previous.as_dict(),
        "queues": rows,
        "self_service": _self_service(current, [r for r in chosen if in_period(r, previous)]),
        "days": _days(current, staffed, norm, config, _agents_by_day(records, config)),
        "missed_intervals": _worst(current, staffed, norm, config),
        "intraday": _intraday(current, config),
        "understaffed": _understaffed(current, staffed, config),
        "tradeoff": _tradeoff(current, config),
        "not_ready_norm": norm,
        "causes": CAUSES,
        "has_forecast": any(r.forecast_offered is not None for r in current),
        "has_agents": bool(records.agents),
        "has_fcr": bool(records.fcr),
    }


def _figures(
    q: str,
    ch: str,
    mine: list[KpiRecord],
    records: Records,
    staffed: dict[Key, Staffed],
    period: Period,
    config: QueueConfig,
) -> QueueFigures:
    rules = config.rules(q, ch)
    recs = [r for r in mine if local_date(r.interval_start, rules) in period]
    c = queue_counts(recs)
    agents = [a for a in records.agents if q in a.queue_ids and local_date(a.interval_start, rules) in period]
    none = Staffed()
    agent_hours = (
        sum(
            s.logged_in_seconds
            for (sq, sc, start), s in staffed.items()
            if (sq, sc) == (q, ch) and local_date(start, rules) in period
        )
        / 3600
    )
    fcr = [
        f for f in records.fcr if f.queue_id == q and f.channel == ch and local_date(f.interval_start, rules) in period
    ]
    final_fcr = [f for f in fcr if f.final]
    forecast = [r for r in recs if r.forecast_offered is not None]
    definition = SERVICE_LEVEL[rules.service_level_variant]
    measured = [r for r in recs if r.service_level is not None]
    gap = 0.0
    required = [r for r in recs if r.agents_required is not None]
    for r in required:
        gap += max(0.0, (r.agents_required or 0) - staffed.get((q, ch, r.interval_start), none).available) * _span(r)
    required_hours = sum((r.agents_required or 0) * _span(r) for r in required) / 3600 if required else None
    return QueueFigures(
        queue_id=q,
        channel=ch,
        records=len(recs),
        counts=c,
        agents=agent_counts(agents),
        agent_hours=agent_hours,
        fcr_eligible=sum(f.fcr_eligible for f in final_fcr),
        fcr_resolved=sum(f.fcr_resolved for f in final_fcr),
        fcr_provisional_intervals=len({f.interval_start for f in fcr if not f.final}),
        forecast_intervals=len(forecast),
        forecast_offered=sum(r.forecast_offered or 0.0 for r in forecast),
        forecast_abs_error=sum(abs(r.offered - (r.forecast_offered or 0.0)) for r in forecast),
        staffing_gap_hours=gap / 3600,
        intervals=len(measured),
        intervals_missed=sum(
            1 for r in measured if shortfall(queue_counts([r]), definition, rules.service_level_target)
        ),
        cost=cost(c, ch, agent_hours, rules, required_hours),
    )


def _span(r: KpiRecord | AgentKpiRecord) -> float:
    return (r.interval_end - r.interval_start).total_seconds()


def _self_service(current: list[KpiRecord], previous: list[KpiRecord]) -> list[dict[str, Any]]:
    """Per channel: sessions contained in self-service over all contacts (contained + contacts that reached a
    queue, a transfer counted once: offered - transferred_out); not available for a channel without sessions."""

    def figures(recs: list[KpiRecord], channel: str) -> dict[str, Any]:
        mine = [r for r in recs if r.channel == channel]
        contained = sum(r.ivr_contained for r in mine)
        assisted = sum(r.offered for r in mine) - sum(r.transferred_out for r in mine)
        total = contained + assisted
        sessions = sum(r.ivr_sessions for r in mine)
        return {
            "contained": contained,
            "sessions": sessions,
            "assisted": assisted,
            # no IVR / bot session at all: the channel's self-service is not measured (not 0%)
            "share": contained / total if total > 0 and sessions else None,
        }

    out = []
    for ch in sorted({r.channel for r in current} | {r.channel for r in previous}):
        now = figures(current, ch)
        out.append({"channel": ch, **now, "previous_share": figures(previous, ch)["share"]})
    return out


def _evidence(r: KpiRecord, s: Staffed | None, norm: float, rules: QueueSettings) -> Evidence:
    s = s or Staffed()
    return Evidence(
        interval_seconds=_span(r),
        threshold=r.service_level_threshold_seconds,
        target=rules.service_level_target,
        offered=r.offered,
        aht=r.aht_seconds,
        forecast_offered=r.forecast_offered,
        forecast_aht=r.forecast_aht_seconds,
        agents_available=s.available,
        not_ready_excess=s.not_ready - norm * s.logged_in,
    )


def _missed(
    current: list[KpiRecord], staffed: dict[Key, Staffed], norm: float, config: QueueConfig
) -> list[tuple[KpiRecord, float, dict[str, float], dict[str, float]]]:
    """(record, contacts short of the target, cause shares, cause parts in agents) of every missed interval."""
    out = []
    for r in current:
        rules = config.rules(r.queue_id, r.channel)
        short = shortfall(queue_counts([r]), SERVICE_LEVEL[rules.service_level_variant], rules.service_level_target)
        if short <= 0:
            continue
        parts = contributions(_evidence(r, staffed.get((r.queue_id, r.channel, r.interval_start)), norm, rules))
        out.append((r, short, shares(parts), parts))
    return out


def _agents_by_day(records: Records, config: QueueConfig) -> dict[tuple[str, date], AgentCounts]:
    """Agent counts of the agents serving each queue, per local day of the queue."""
    out: dict[tuple[str, date], AgentCounts] = defaultdict(AgentCounts)
    for a in records.agents:
        for q in a.queue_ids:
            out[(q, local_date(a.interval_start, config.for_queue(q)))].add(agent_counts([a]))
    return out


def _days(
    current: list[KpiRecord],
    staffed: dict[Key, Staffed],
    norm: float,
    config: QueueConfig,
    agents: dict[tuple[str, date], AgentCounts],
) -> list[dict[str, Any]]:
    """Per queue, channel and local day: the service level, schedule adherence (the daily track), and the causes of
    its missed intervals, each cause's share weighted by the contacts each interval was short of the target."""
    by_day: dict[tuple[str, str, date], list[KpiRecord]] = defaultdict(list)
    for r in current:
        by_day[(r.queue_id, r.channel, local_date(r.interval_start, config.for_queue(r.queue_id)))].append(r)
    missed = defaultdict(list)
    for r, short, sh, _ in _missed(current, staffed, norm, config):
        missed[(r.queue_id, r.channel, local_date(r.interval_start, config.for_queue(r.queue_id)))].append((short, sh))
    out = []
    for (q, ch, day), recs in sorted(by_day.items()):
        rules = config.rules(q, ch)
        c = queue_counts(recs)
        weights: dict[str, float] = defaultdict(float)
        for short, sh in missed.get((q, ch, day), []):
            for cause, share in sh.items():
                weights[cause] += short * share
        total = sum(weights.values())
        out.append(
            {
                "queue_id": q,
                "channel": ch,
                "date": day.isoformat(),
                "offered": c.offered,
                "service_level": SERVICE_LEVEL[rules.service_level_variant].value(c),
                "target": rules.service_level_target,
                "adherence": adherence(agents[(q, day)]) if (q, day) in agents else None,
                "missed_intervals": len(missed.get((q, ch, day), [])),
                "short_contacts": total,
                "causes": [
                    {"cause": cause, "contacts": w, "share": w / total}
                    for cause, w in sorted(weights.items(), key=lambda cw: -cw[1])
                ],
            }
        )
    return out


def _worst(
    current: list[KpiRecord], staffed: dict[Key, Staffed], norm: float, config: QueueConfig
) -> list[dict[str, Any]]:
    rows = sorted(_missed(current, staffed, norm, config), key=lambda m: -m[1])[:WORST_INTERVALS]
    out = []
    for r, short, sh, parts in rows:
        s = staffed.get((r.queue_id, r.channel, r.interval_start), Staffed())
        out.append(
            {
                "queue_id": r.queue_id,
                "channel": r.channel,
                "start": r.interval_start.isoformat(),
                "service_level": r.service_level,
                "offered": r.offered,
                "forecast_offered": r.forecast_offered,
                "aht": r.aht_seconds,
                "forecast_aht": r.forecast_aht_seconds,
                "agents_available": s.available,
                "agents_required": r.agents_required,
                "short_contacts": short,
                "causes": [{"cause": c, "share": v, "agents": parts[c]} for c, v in sh.items()],
            }
        )
    return out


def _time_of_day(r: KpiRecord, config: QueueConfig) -> str:
    return r.interval_start.astimezone(config.for_queue(r.queue_id).zone).strftime("%H:%M")


def _intraday(current: list[KpiRecord], config: QueueConfig) -> list[dict[str, Any]]:
    """Per queue and channel, by local time of day over the period: headline service level (counts summed over
    the days, then divided), offered and forecast."""
    groups: dict[tuple[str, str], dict[str, list[KpiRecord]]] = defaultdict(lambda: defaultdict(list))
    for r in current:
        groups[(r.queue_id, r.channel)][_time_of_day(r, config)].append(r)
    out = []
    for (q, ch), by_time in sorted(groups.items()):
        rules = config.rules(q, ch)
        points = []
        for t, recs in sorted(by_time.items()):
            c = queue_counts(recs)
            fc = [r.forecast_offered for r in recs if r.forecast_offered is not None]
            points.append(
                {
                    "time": t,
                    "service_level": SERVICE_LEVEL[rules.service_level_variant].value(c),
                    "offered": c.offered,
                    "forecast": sum(fc) if fc else None,
                }
            )
        out.append({"queue_id": q, "channel": ch, "target": rules.service_level_target, "points": points})
    return out


def _understaffed(current: list[KpiRecord], staffed: dict[Key, Staffed], config: QueueConfig) -> dict[str, Any]:
    """Agents short (required by the record - available), summed over the queues, by local day and time of day."""
    cells: dict[tuple[str, str], float] = defaultdict(float)
    for r in current:
        if r.agents_required is None:
            continue
        rules = config.for_queue(r.queue_id)
        s = staffed.get((r.queue_id, r.channel, r.interval_start), Staffed())
        key = (local_date(r.interval_start, rules).isoformat(), _time_of_day(r, config))
        cells[key] += max(0.0, r.agents_required - s.available)
    days = sorted({d for d, _ in cells})
    times = sorted({t for _, t in cells})
    return {"dates": days, "times": times, "agents_short": [[cells.get((d, t), 0.0) for t in times] for d in days]}


def _tradeoff(current: list[KpiRecord], config: QueueConfig) -> dict[str, Any] | None:
    """Service level, ASA, occupancy and cost against agents, at the busiest interval's volume and AHT."""
    busy = [r for r in current if r.aht_seconds and r.offered]
    if not busy:
        return None
    r = max(busy, key=lambda r: r.offered)
    rules = config.rules(r.queue_id, r.channel)
    return {
        "queue_id": r.queue_id,
        "channel": r.channel,
        "start": r.interval_start.isoformat(),
        **tradeoff(r.offered, _span(r), r.aht_seconds or 0.0, rules),
    }


def tradeoff(offered: float, span_seconds: float, aht: float, rules: QueueSettings) -> dict[str, Any]:
    """Erlang C predictions for a range of agents around the load: the decision makers' picture of how volume,
    service level, staffing and occupancy (and cost, with `agent_hour_cost`) relate."""
    rate = offered / span_seconds
    load = rate * aht
    low, high = max(1, int(load)), int(load + 4 * load**0.5 + 4)
    rows = []
    for n in range(low, high + 1):
        p = predict(n, rate, aht, rules.service_level_threshold_seconds)
        hour = None if rules.agent_hour_cost is None else n * rules.agent_hour_cost
        rows.append(
            {
                "agents": n,
                "service_level": p.service_level,
                "asa": p.asa if p.asa != float("inf") else None,
                "occupancy": p.occupancy,
                "cost_per_hour": hour,
                "cost_per_contact": hour / (rate * 3600) if hour is not None and rate > 0 else None,
            }
        )
    return {
        "offered": offered,
        "span_seconds": span_seconds,
        "aht": aht,
        "load": load,
        "threshold_seconds": rules.service_level_threshold_seconds,
        "target": rules.service_level_target,
        "currency": rules.currency,
        "rows": rows,
    }
