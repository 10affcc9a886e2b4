"""The operations room's boards as plain data: the wallboard (per queue and channel) and the agent board (per
agent), built from read-only views of the state this worker owns, for the worker to serve as JSON
(`pipeline.runtime.boards`) and the pages in `pipeline/runtime/static/` to draw.

Pure: no Faust, no HTTP, no Prometheus client. It reads the states and never changes them. It carries no
customer identifier: contacts appear only as counts, ages and the queue they are in.

Time. Every "now" is the queue's clock (the newest event time of the queue, or of the source's heartbeats;
`QueueState.clock`) or, for agents, their partition's watermark: the same clock that the oldest wait on
/metrics is measured at, so a replay of past events shows the board as it was. "Today" is the local day, in the
queue's time zone, that holds the queue's clock.

Grades (the colour of a figure, always shown with its number and a word): from the queue's targets
(`QueueSettings`). Service level: `ok` at or above target, `warn` within 10 points below, `bad` further below.
Abandonment, ASA and oldest wait: `ok` at or under target, `warn` up to 1.5 times the target, `bad` beyond.
Staffing: `ok` when staffed covers required, `warn` one agent short, `bad` more. `none` when there is nothing to
measure yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.core.settings import QueueConfig, QueueSettings
from pipeline.core.time import NO_TIME, interval_start, local_bounds
from pipeline.kpis.counts import QueueCounts
from pipeline.kpis.definitions import RATIO, SERVICE_LEVEL
from pipeline.kpis.staffing.live import observed_traffic, requirement
from pipeline.state.agents import NOW_STATES, AgentState, AgentTrack, Planned, adherent, planned_activity, status_since
from pipeline.state.queues import QueueState

SL_WARN_POINTS = 0.10  # service level this far under target is a warning; further under, bad
OVER_TARGET_WARN = 1.5  # abandonment, ASA and oldest wait up to this many times the target are a warning


def grade_at_least(value: float | None, target: float, margin: float = SL_WARN_POINTS) -> str:
    """A figure that should be at or above its target (service level)."""
    if value is None:
        return "none"
    if value >= target:
        return "ok"
    return "warn" if value >= target - margin else "bad"


def grade_at_most(value: float | None, target: float) -> str:
    """A figure that should be at or under its target (abandonment, ASA, oldest wait)."""
    if value is None:
        return "none"
    if value <= target:
        return "ok"
    return "warn" if value <= target * OVER_TARGET_WARN else "bad"


def grade_staffing(required: int | None, staffed: int | None) -> str:
    if required is None or staffed is None:
        return "none"
    short = required - staffed
    return "ok" if short <= 0 else "warn" if short == 1 else "bad"


def _seconds(ms: int) -> float:
    return ms / 1000


def _iso_ms(t: int) -> float | None:
    """Epoch seconds of an event time (ms), or None before any event."""
    return None if t == NO_TIME else t / 1000


class _Today:
    """The local day (in the queue's zone) holding a queue's clock, cached per zone and day."""

    def __init__(self) -> None:
        self._bounds: dict[tuple[str, int], tuple[int, int]] = {}

    def bounds(self, rules: QueueSettings, clock: int) -> tuple[int, int]:
        key = (rules.time_zone, clock // 3_600_000)  # a day's bounds do not change within an hour of the clock
        b = self._bounds.get(key)
        if b is None:
            b = self._bounds[key] = local_bounds(clock, "day", ZoneInfo(rules.time_zone))
        return b


def _queue_figures(
    state: QueueState, queues: QueueConfig, today: _Today
) -> dict[tuple[str, str], tuple[QueueCounts, QueueCounts, int, int, int]]:
    """(queue, channel) -> (current interval's counts, today's counts, interval start, day start, clock) for
    every queue and channel of this partition that has had traffic."""
    out: dict[tuple[str, str], tuple[QueueCounts, QueueCounts, int, int, int]] = {}
    length = state.interval_ms
    for q, ch in state.totals:
        clock = state.clock(q)
        current = interval_start(clock, length)
        day_start, _ = today.bounds(queues.for_queue(q), clock)
        out[(q, ch)] = (QueueCounts(), QueueCounts(), current, day_start, clock)
    for (q, ch, window, start), (_end, roll) in state.rollups.items():
        if window == "day" and (q, ch) in out and out[(q, ch)][3] == start:
            out[(q, ch)][1].add(roll.counts)  # the day's final intervals
    for (q, ch, start), ivl in state.intervals.items():
        fig = out.get((q, ch))
        if fig is None:
            continue
        if start == fig[2]:
            fig[0].add(ivl.counts)
        if start >= fig[3]:
            fig[1].add(ivl.counts)  # open intervals of today: added to the day only when final
    return out


def wallboard(queue_states: Iterable[QueueState], agent_states: Iterable[AgentState], queues: QueueConfig) -> dict:
    """Per queue and channel: service level of the current interval and of today against target, contacts
    waiting and the oldest wait now, today's offered/answered/abandoned, ASA and abandonment, agents by state,
    required (from the recent traffic, `pipeline.kpis.staffing.live`) against staffed (logged in for the queue)."""
    today = _Today()
    figures: dict[tuple[str, str], tuple[QueueCounts, QueueCounts, int, int, int]] = {}
    waiting: dict[tuple[str, str], tuple[int, float]] = {}
    required: dict[tuple[str, str], int] = {}
    newest = NO_TIME
    for state in list(queue_states):
        figures.update(_queue_figures(state, queues, today))  # a queue lives on exactly one partition
        for q, ch, n, age in state.waiting():
            waiting[(q, ch)] = (n, age)
        for q, ch, counts, span in state.recent():
            traffic = observed_traffic(counts, span)
            if traffic is not None:
                required[(q, ch)] = requirement(traffic, queues.for_queue(q)).agents
        newest = max(newest, state.watermark)
    by_state: dict[str, dict[str, int]] = {}
    for agent_state in list(agent_states):
        for q, now in agent_state.agents_by_state().items():
            row = by_state.setdefault(q, dict.fromkeys(NOW_STATES, 0))
            for s, n in now.items():
                row[s] += n
    rows = []
    for (q, ch), (interval, day, current, day_start, clock) in sorted(figures.items()):
        rules = queues.for_queue(q)
        sl = SERVICE_LEVEL[rules.service_level_variant]
        n_waiting, oldest = waiting.get((q, ch), (0, 0.0))
        agents = by_state.get(q, dict.fromkeys(NOW_STATES, 0))
        need = required.get((q, ch))
        staffed = agents["logged_in"]
        sl_interval, sl_today = sl.value(interval), sl.value(day)
        asa, abandon = RATIO["asa"].value(day), RATIO["abandon_rate"].value(day)
        rows.append(
            {
                "queue": q,
                "channel": ch,
                "team": rules.team,
                "time_zone": rules.time_zone,
                "clock": _iso_ms(clock),
                "targets": {
                    "service_level": rules.service_level_target,
                    "service_level_threshold_seconds": rules.service_level_threshold_seconds,
                    "service_level_variant": rules.service_level_variant,
                    "abandon_rate": rules.abandon_rate_target,
                    "asa_seconds": rules.asa_target_seconds,
                    "oldest_wait_seconds": rules.oldest_wait_target_seconds,
                },
                "interval": {
                    "start": current / 1000,
                    "offered": interval.offered,
                    "service_level": sl_interval,
                    "service_level_grade": grade_at_least(sl_interval, rules.service_level_target),
                },
                "today": {
                    "start": day_start / 1000,
                    "offered": day.offered,
                    "answered": day.answered,
                    "abandoned": day.abandoned,
                    "service_level": sl_today,
                    "service_level_grade": grade_at_least(sl_today, rules.service_level_target),
                    "asa_seconds": asa,
                    "asa_grade": grade_at_most(asa, rules.asa_target_seconds),
                    "abandon_rate": abandon,
                    "abandon_rate_grade": grade_at_most(abandon, rules.abandon_rate_target),
                },
                "waiting": n_waiting,
                "oldest_wait_seconds": oldest,
                "oldest_wait_grade": grade_at_most(oldest, rules.oldest_wait_target_seconds) if n_waiting else "ok",
                "agents": dict(agents),
                "required": need,
                "staffed": staffed,
                "staffing_grade": grade_staffing(need, staffed),
            }
        )
    return {"event_time": _iso_ms(newest), "queues": rows}


def activity_since(plan: list[Planned], t: int) -> int | None:
    """When the activity planned at `t` began: the latest entry boundary at or before `t` where the planned
    activity changed to it (None: no boundary known, it was planned before the kept plan starts)."""
    now = planned_activity(plan, t)
    for x in sorted({x for p in plan for x in (p.start, p.end) if x <= t}, reverse=True):
        if planned_activity(plan, x - 1) != now:
            return x
    return None


def _agent_today(queue_states: list[QueueState], queues: QueueConfig) -> dict[str, QueueCounts]:
    """Per agent: today's handling (handled contacts and their handle time) over every queue it served, each
    queue's today in its own time zone."""
    today = _Today()
    out: dict[str, QueueCounts] = {}
    for state in queue_states:
        starts = {q: today.bounds(queues.for_queue(q), state.clock(q))[0] for q, _ in state.totals}

        def add(agents: dict[str, QueueCounts]) -> None:
            for agent, c in agents.items():
                mine = out.get(agent)
                if mine is None:
                    mine = out[agent] = QueueCounts()
                mine.handled += c.handled
                mine.handle_ms += c.handle_ms

        for (q, _ch, window, start), (_end, roll) in state.rollups.items():
            if window == "day" and starts.get(q) == start:
                add(roll.agents)
        for (q, _ch, start), ivl in state.intervals.items():
            if q in starts and start >= starts[q]:
                add(ivl.agents)
    return out


def _current_contacts(queue_states: list[QueueState]) -> dict[str, tuple[str, str, float]]:
    """Per agent: the queue, channel and age (seconds since answered, at the queue's clock) of the newest contact
    it answered whose conversation has not ended."""
    out: dict[str, tuple[str, str, float, int]] = {}
    for state in queue_states:
        for leg in state.legs.values():
            if leg.agent_id is None or leg.answered_at is None or leg.conversation_end_at is not None:
                continue
            mine = out.get(leg.agent_id)
            if mine is None or leg.answered_at > mine[3]:
                age = max(0, state.clock(leg.queue_id) - leg.answered_at) / 1000
                out[leg.agent_id] = (leg.queue_id, leg.channel, age, leg.answered_at)
    return {a: (q, ch, age) for a, (q, ch, age, _) in out.items()}


def _agent_row(
    agent: str,
    track: AgentTrack,
    now: int,
    queues: QueueConfig,
    today: QueueCounts | None,
    contact: tuple[str, str, float] | None,
) -> dict[str, Any] | None:
    status, since = status_since(track.settled, track.settled_since, track.changes)
    activity = planned_activity(track.plan, now)
    if not status.logged_in and activity is None:
        return None  # neither working nor scheduled now: not on the board
    agent_queues = sorted(status.queues)
    rules = [queues.for_queue(q) for q in agent_queues]
    threshold = min((r.adherence_exception_seconds for r in rules), default=queues.defaults.adherence_exception_seconds)
    adherence: dict[str, Any] = {"planned": activity, "adherent": None, "out_for_seconds": None, "exception": False}
    if activity is not None:
        ok = adherent(activity, status)
        adherence["adherent"] = ok
        if not ok:
            began = activity_since(track.plan, now)
            out_since = max(x for x in (since, began if began is not None else NO_TIME))
            if out_since != NO_TIME:
                out_for = max(0, now - out_since) / 1000
                adherence["out_for_seconds"] = out_for
                adherence["exception"] = out_for >= threshold
    adherence["threshold_seconds"] = threshold
    handled = today.handled if today is not None else 0
    return {
        "agent": agent,
        "logged_in": status.logged_in,
        "state": status.state if status.logged_in else "logged_out",
        "reason": status.reason,
        "in_state_seconds": max(0, now - since) / 1000 if since != NO_TIME else None,
        "queues": agent_queues,
        "teams": sorted({r.team for r in rules}),
        "contact": None if contact is None else {"queue": contact[0], "channel": contact[1], "age_seconds": contact[2]},
        "today": {
            "handled": handled,
            "aht_seconds": today.handle_ms / 1000 / handled if today is not None and handled else None,
        },
        "adherence": adherence,
    }


def agent_board(queue_states: Iterable[QueueState], agent_states: Iterable[AgentState], queues: QueueConfig) -> dict:
    """Per agent logged in or scheduled now: state, reason, time in state, current contact, today's handling and
    real-time adherence (planned activity against the state now; out of adherence for how long, and whether
    that passes the exception threshold of any of its queues). Times at the agent partition's watermark."""
    qs = list(queue_states)
    today = _agent_today(qs, queues)
    contacts = _current_contacts(qs)
    rows = []
    newest = NO_TIME
    for state in list(agent_states):
        now = state.watermark
        newest = max(newest, now)
        if now == NO_TIME:
            continue
        for agent, track in list(state.agents.items()):
            row = _agent_row(agent, track, now, queues, today.get(agent), contacts.get(agent))
            if row is not None:
                rows.append(row)
    rows.sort(key=lambda r: r["agent"])
    return {
        "event_time": _iso_ms(newest),
        "queues": sorted({q for r in rows for q in r["queues"]}),
        "teams": sorted({t for r in rows for t in r["teams"]}),
        "agents": rows,
    }
