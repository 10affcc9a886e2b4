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

from bisect import bisect_right
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.core.settings import QueueConfig, QueueSettings
from pipeline.core.time import NO_TIME, interval_start, local_bounds
from pipeline.kpis.counts import QueueCounts
from pipeline.kpis.definitions import COUNT, HEADLINE_RULE, RATIO, SERVICE_LEVEL, TODAY_FIELDS, today_metric
from pipeline.kpis.staffing.live import agents_needed, observed_traffic, requirement
from pipeline.state.agents import NOW_STATES, AgentState, AgentTrack, adherent, apply_change, planned_activity
from pipeline.state.queues import QueueState

SL_WARN_POINTS = 0.10  # service level this far under target is a warning; further under, bad
OVER_TARGET_WARN = 1.5  # abandonment, ASA and oldest wait up to this many times the target are a warning


def grade_at_least(value: float | None, target: float, margin: float = SL_WARN_POINTS) -> str:
    """A figure that should be at or above its target (service level)."""
    if value is None:
        return "none"
    if value >= target:
        return "ok"
    return "warn" if value >= target - margin - 1e-9 else "bad"  # 1e-9: 0.8 - 0.1 is 0.7000000000000001


def grade_at_most(value: float | None, target: float) -> str:
    """A figure that should be at or under its target (abandonment, ASA, oldest wait)."""
    if value is None:
        return "none"
    if value <= target:
        return "ok"
    return "warn" if value <= target * OVER_TARGET_WARN else "bad"


def grade_staffing(required: int | None, staffed: float | None) -> str:
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


def queue_figures(
    state: QueueState, queues: QueueConfig, today: _Today | None = None
) -> dict[tuple[str, str], tuple[QueueCounts, QueueCounts, int, int, int]]:
    """(queue, channel) -> (current interval's counts, today's counts, interval start, day start, clock) for
    every queue and channel of this partition that has had traffic."""
    out: dict[tuple[str, str], tuple[QueueCounts, QueueCounts, int, int, int]] = {}
    today = today or _Today()
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


def _targets(rules: QueueSettings) -> dict[str, Any]:
    return {
        "service_level": rules.service_level_target,
        "service_level_threshold_seconds": rules.service_level_threshold_seconds,
        "service_level_variant": rules.service_level_variant,
        "abandon_rate": rules.abandon_rate_target,
        "asa_seconds": rules.asa_target_seconds,
        "oldest_wait_seconds": rules.oldest_wait_target_seconds,
    }


def wallboard(queue_states: Iterable[QueueState], agent_states: Iterable[AgentState], queues: QueueConfig) -> dict:
    """Per queue and channel: service level of the current interval and of today against target, contacts
    waiting and the oldest wait now, today's offered/answered/abandoned, ASA and abandonment, agents by state,
    required (from the recent traffic, `pipeline.kpis.staffing.live`) against staffed (the capacity rule of
    `AgentState.capacity_by_queue`, as `cc_queue_agents_staffed`: a share per queue of each agent able to take its
    contacts)."""
    today = _Today()
    figures: dict[tuple[str, str], tuple[QueueCounts, QueueCounts, int, int, int]] = {}
    waiting: dict[tuple[str, str], tuple[int, float]] = {}
    required: dict[tuple[str, str], int] = {}
    newest = NO_TIME
    for state in list(queue_states):
        figures.update(queue_figures(state, queues, today))  # a queue lives on exactly one partition
        for q, ch, n, age in state.waiting():
            waiting[(q, ch)] = (n, age)
        for q, ch, counts, span in state.recent():
            traffic = observed_traffic(counts, span)
            if traffic is not None:
                rules = queues.rules(q, ch)
                required[(q, ch)] = agents_needed(requirement(traffic, rules).agents, rules)
        newest = max(newest, state.watermark)
    by_state: dict[str, dict[str, int]] = {}
    capacity: dict[str, float] = {}
    for agent_state in list(agent_states):
        for q, c in agent_state.capacity_by_queue().items():
            capacity[q] = capacity.get(q, 0.0) + c.staffed
        for q, now in agent_state.agents_by_state().items():
            row = by_state.setdefault(q, dict.fromkeys(NOW_STATES, 0))
            for s, n in now.items():
                row[s] += n
    rows = []
    for (q, ch), (interval, day, current, day_start, clock) in sorted(figures.items()):
        rules = queues.rules(q, ch)
        sl = SERVICE_LEVEL[rules.service_level_variant]
        n_waiting, oldest = waiting.get((q, ch), (0, 0.0))
        agents = by_state.get(q, dict.fromkeys(NOW_STATES, 0))
        need = required.get((q, ch))
        staffed = round(capacity.get(q, 0.0), 1)
        sl_interval, sl_today = sl.value(interval), sl.value(day)
        asa, abandon = RATIO["asa"].value(day), RATIO["abandon_rate"].value(day)
        rows.append(
            {
                "queue": q,
                "channel": ch,
                "team": rules.team,
                "time_zone": rules.time_zone,
                "clock": _iso_ms(clock),
                "targets": _targets(rules),
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
    return {"event_time": _iso_ms(newest), "windows": LOCAL_WINDOWS, "queues": rows}


LOCAL_WINDOWS = {"short": {"key": "interval", "label": "this interval"}, "long": {"key": "today", "label": "today"}}
PROMETHEUS_WINDOWS = {
    "short": {"key": "last_5m", "label": "last 5 min"},
    "long": {"key": "today", "label": "today"},
    "note": "last 5 min from Prometheus · today in the queue's time zone",
}
"""The wallboard's two spans: its own state gives the current interval and today; Prometheus gives the sliding
5 minutes of the headline service level rule the Grafana wallboard shows, and today from `cc_queue_today_*`."""

PROMETHEUS_QUERIES: dict[str, str] = {
    "service_level_5m": HEADLINE_RULE.format(window="5m"),
    # as the Grafana wallboard sums them over workers
    "waiting": "sum by (queue, channel) (cc_queue_contacts_waiting)",
    "oldest_wait": "max by (queue, channel) (cc_queue_oldest_waiting_age_seconds)",
    "agents": "sum by (queue, state) (cc_queue_agents)",
    "required": "sum by (queue, channel) (cc_queue_agents_required)",
    "staffed": "sum by (queue) (cc_queue_agents_staffed)",
    **{f"today_{f}": f"sum by (queue, channel) ({today_metric(f)})" for f in TODAY_FIELDS},
}
"""What the wallboard reads from Prometheus: the headline service level over 5 minutes (the Grafana wallboard's
recording rule), the live gauges summed over workers as the Grafana wallboard sums them, and today's counts,
from which today's ratios are formed here with the KPI definitions (sums first, never averaged ratios)."""

_STATE_OF_LABEL = {"after_contact_work": "acw"}  # cc_queue_agents' label -> the board's state name


def _number(sample: dict) -> float | None:
    value = float(sample["value"][1])
    return None if value != value else value  # NaN: nothing to measure


def prometheus_wallboard(results: dict[str, list[dict]], queues: QueueConfig, at: float) -> dict:
    """The wallboard from the instant-query results of `PROMETHEUS_QUERIES` (name -> the API's `result`
    vector), evaluated at `at` (epoch seconds): the whole center, whichever worker serves the page."""
    by_qc: dict[str, dict[tuple[str, str], float | None]] = {
        name: {(r["metric"].get("queue", ""), r["metric"].get("channel", "")): _number(r) for r in vector}
        for name, vector in results.items()
        if name not in ("agents", "staffed")
    }
    agents: dict[str, dict[str, int]] = {}
    for r in results.get("agents", []):
        state = r["metric"].get("state", "")
        row = agents.setdefault(r["metric"].get("queue", ""), dict.fromkeys(NOW_STATES, 0))
        row[_STATE_OF_LABEL.get(state, state)] = round(_number(r) or 0)
    staffed_of = {r["metric"].get("queue", ""): _number(r) or 0.0 for r in results.get("staffed", [])}
    pairs = set(by_qc.get("today_offered", {})) | set(by_qc.get("waiting", {}))
    rows = []
    for q, ch in sorted(pairs):
        rules = queues.rules(q, ch)

        def get(name: str, q: str = q, ch: str = ch) -> float | None:
            return by_qc.get(name, {}).get((q, ch))

        day = QueueCounts()
        for f in TODAY_FIELDS:
            setattr(day, f, round((get(f"today_{f}") or 0) / COUNT[f].scale))  # the gauges' unit back to counts
        sl5 = get("service_level_5m")
        sl_today = SERVICE_LEVEL[rules.service_level_variant].value(day)
        asa, abandon = RATIO["asa"].value(day), RATIO["abandon_rate"].value(day)
        waiting, oldest = round(get("waiting") or 0), get("oldest_wait") or 0.0
        need = get("required")
        now = agents.get(q, dict.fromkeys(NOW_STATES, 0))
        required = None if need is None else round(need)
        staffed = round(staffed_of.get(q, 0.0), 1)
        rows.append(
            {
                "queue": q,
                "channel": ch,
                "team": rules.team,
                "time_zone": rules.time_zone,
                "clock": at,
                "targets": _targets(rules),
                "last_5m": {
                    "start": None,
                    "service_level": sl5,
                    "service_level_grade": grade_at_least(sl5, rules.service_level_target),
                },
                "today": {
                    "start": None,
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
                "waiting": waiting,
                "oldest_wait_seconds": oldest,
                "oldest_wait_grade": grade_at_most(oldest, rules.oldest_wait_target_seconds) if waiting else "ok",
                "agents": now,
                "required": required,
                "staffed": staffed,
                "staffing_grade": grade_staffing(required, staffed),
            }
        )
    return {"event_time": at, "windows": PROMETHEUS_WINDOWS, "queues": rows}


def out_of_adherence_since(track: AgentTrack, now: int) -> int | None:
    """Since when the agent has been out of adherence without a break, at `now` (call when it is out now): the
    latest moment before which it was adherent or not scheduled. What is known reaches back to when its settled
    status began (`settled_since`) and to the start of the plan it still holds; at that limit the answer is the
    limit itself (a lower bound of the time out). None if nothing is known (no event and no plan)."""
    times, statuses = [track.settled_since], [track.settled]  # from when each status held (NO_TIME: always)
    for c in track.changes:
        times.append(c.t)
        statuses.append(apply_change(statuses[-1], c))
    points = sorted(
        {t for t in times if NO_TIME < t <= now} | {x for p in track.plan for x in (p.start, p.end) if x <= now}
    )
    if not points:
        return None
    for x in reversed(points):
        i = bisect_right(times, x - 1) - 1  # the status just before x
        if i < 0:
            return x  # older than what is kept: x is a lower bound
        activity = planned_activity(track.plan, x - 1)
        if activity is None or adherent(activity, statuses[i]):
            return x
    return points[0]  # out since before anything kept: a lower bound


def _agent_today(queue_states: list[QueueState], queues: QueueConfig) -> dict[str, list[int]]:
    """Per agent: today's [handled contacts, their handle time in ms] over every queue it served, each queue's
    today in its own time zone."""
    today = _Today()
    out: dict[str, list[int]] = {}
    for state in queue_states:
        starts = {q: today.bounds(queues.for_queue(q), state.clock(q))[0] for q, _ in state.totals}
        of_today = [
            roll.agents
            for (q, _, w, start), (_, roll) in state.rollups.items()
            if w == "day" and starts.get(q) == start
        ]
        of_today += [ivl.agents for (q, _, start), ivl in state.intervals.items() if q in starts and start >= starts[q]]
        for agents in of_today:
            for agent, c in agents.items():
                mine = out.get(agent)
                if mine is None:
                    out[agent] = [c.handled, c.handle_ms]
                else:
                    mine[0] += c.handled
                    mine[1] += c.handle_ms
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


class _QueuesOf:
    """Per set of queues an agent serves: the queues sorted, their teams and the lowest adherence exception
    threshold among them (the default queue settings' without queues). Cached: agents share a few sets."""

    def __init__(self, queues: QueueConfig) -> None:
        self.queues = queues
        self._of: dict[tuple[str, ...], tuple[list[str], list[str], float]] = {}

    def __call__(self, of: tuple[str, ...]) -> tuple[list[str], list[str], float]:
        got = self._of.get(of)
        if got is None:
            rules = [self.queues.for_queue(q) for q in of]
            threshold = min(
                (r.adherence_exception_seconds for r in rules), default=self.queues.defaults.adherence_exception_seconds
            )
            got = self._of[of] = (sorted(of), sorted({r.team for r in rules}), threshold)
        return got

    def sets(self) -> list[tuple[list[str], list[str]]]:
        """The queues and teams of every set asked for."""
        return [(of, teams) for of, teams, _ in self._of.values()]


def adherence_by_queue(agent_states: Iterable[AgentState], queues: QueueConfig) -> dict[str, tuple[int, int]]:
    """queue -> (agents out of adherence now, of them out at least the queue's exception threshold), counting
    every agent in each queue of its session (the last one, if logged out); queues with agents and none out
    show zeros. Times at each agent partition's watermark, as on the agent board."""
    out: dict[str, tuple[int, int]] = {}
    for state in list(agent_states):
        now = state.watermark
        if now == NO_TIME:
            continue
        for track in state.agents.values():
            status = track.now
            activity = planned_activity(track.plan, now) if track.plan else None
            if not status.queues or (not status.logged_in and activity is None):
                continue
            out_for: float | None = None
            if activity is not None and not adherent(activity, status):
                since = out_of_adherence_since(track, now)
                out_for = max(0, now - since) / 1000 if since is not None else 0.0
            for q in status.queues:
                n, exceptions = out.get(q, (0, 0))
                if out_for is not None:
                    n += 1
                    exceptions += out_for >= queues.for_queue(q).adherence_exception_seconds
                out[q] = (n, exceptions)
    return out


AGENT_COLUMNS: tuple[str, ...] = (
    "agent",
    "logged_in",
    "state",  # one of the agent states, or logged_out
    "reason",  # the not-ready reason code
    "in_state_seconds",  # None: the state began before anything this worker holds tells
    "queues",
    "teams",
    "contact_queue",  # the newest contact it answered whose conversation has not ended
    "contact_channel",
    "contact_age_seconds",  # since answered
    "handled_today",
    "aht_today_seconds",
    "planned",  # the activity its schedule plans now (None: not scheduled)
    "adherent",  # None when not scheduled
    "out_of_adherence_seconds",
    "exception",  # out of adherence at least the threshold
    "exception_threshold_seconds",
)
"""The agent board's row: rows are arrays in this order (a board of 5,000 agents is built for every poll, and a
tuple per agent is several times cheaper than nested objects). `agent_rows` turns them into dicts."""


def agent_rows(board: dict) -> list[dict[str, Any]]:
    """The agent board's rows as dicts keyed by `AGENT_COLUMNS`."""
    return [dict(zip(board["columns"], r, strict=True)) for r in board["agents"]]


def _agent_row(
    agent: str,
    track: AgentTrack,
    now: int,
    queues_of: _QueuesOf,
    today: list[int] | None,
    contact: tuple[str, str, float] | None,
) -> tuple | None:
    status, since = track.now, track.now_since
    activity = planned_activity(track.plan, now) if track.plan else None
    if not status.logged_in and activity is None:
        return None  # neither working nor scheduled now: not on the board
    agent_queues, teams, threshold = queues_of(status.queues)
    ok: bool | None = None
    out_for: float | None = None
    if activity is not None:
        ok = adherent(activity, status)
        if not ok:
            out_since = out_of_adherence_since(track, now)
            if out_since is not None:
                out_for = max(0, now - out_since) / 1000
    handled, handle_ms = today if today is not None else (0, 0)
    return (
        agent,
        status.logged_in,
        status.state if status.logged_in else "logged_out",
        status.reason,
        max(0, now - since) / 1000 if since != NO_TIME else None,
        agent_queues,
        teams,
        *(contact if contact is not None else (None, None, None)),
        handled,
        handle_ms / 1000 / handled if handled else None,
        activity,
        ok,
        out_for,
        out_for is not None and out_for >= threshold,
        threshold,
    )


def agent_board(queue_states: Iterable[QueueState], agent_states: Iterable[AgentState], queues: QueueConfig) -> dict:
    """Per agent logged in or scheduled now (`AGENT_COLUMNS`): state, reason, time in state, current contact,
    today's handling and real-time adherence (planned activity against the state now; out of adherence for how
    long, and whether that passes the exception threshold of any of its queues). Times at the agent partition's
    watermark."""
    qs = list(queue_states)
    today = _agent_today(qs, queues)
    contacts = _current_contacts(qs)
    rows = []
    newest = NO_TIME
    queues_of = _QueuesOf(queues)
    for state in list(agent_states):
        now = state.watermark
        newest = max(newest, now)
        if now == NO_TIME:
            continue
        for agent, track in state.agents.items():  # built at once, between batches: nothing changes meanwhile
            row = _agent_row(agent, track, now, queues_of, today.get(agent), contacts.get(agent))
            if row is not None:
                rows.append(row)
    rows.sort()
    sets = queues_of.sets()
    return {
        "event_time": _iso_ms(newest),
        "queues": sorted({q for of, _ in sets for q in of}),
        "teams": sorted({t for _, teams in sets for t in teams}),
        "columns": AGENT_COLUMNS,
        "agents": rows,
    }
