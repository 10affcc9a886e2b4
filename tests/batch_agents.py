"""An independent batch computation of the agent counts over a complete event log.

The "second, plain computation" the streaming `AgentState` is checked against. It sees every event at once,
puts each agent's presence events in time order and asks, for every elementary stretch of time, "what was the
agent doing, and what was planned?", applying the catalogue's definitions literally (docs/kpis.md,
pipeline/kpis/agents.py). It shares no code with `pipeline.state`: only the event classes and `AgentCounts`
(as the result type) are imported.

Rules, as written in the catalogue and the event contract:
- times are integer epoch milliseconds, `round(e.time.timestamp() * 1000)`; the interval of t starts at
  t // L * L; events with the same event_id count once; an agent's events at the same millisecond are taken
  in log order;
- logged in from `agent.logged_in` (state not_ready, reason `unspecified`, until a state event; a second
  login only replaces the queues) to `agent.logged_out`; `agent.state_changed` sets the state (and logs the
  agent in if it was not, keeping the queues of its last session); reason only for not_ready, `unspecified`
  when absent; active contacts = `active_contacts`, else 1 in on_contact/acw and 0 otherwise;
- planned activity at t: of the schedule entries with start <= t < end, the one with the highest
  (version, event_id); `off` means nothing planned;
- adherent: contact_handling while logged in and available/on_contact/acw; break, lunch, training, meeting
  while not_ready or logged out;
- per-queue scheduled/adherent time goes to every queue of the agent's current (or, logged out, last) session;
- a presence (logged in, one state and reason) counts for `MAX_PRESENCE_SECONDS` at most: after that, until the
  presence changes, the agent counts as logged out (its queues kept).
"""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.contract import events as ev
from pipeline.kpis.agents import MAX_PRESENCE_SECONDS, AgentCounts

MAX_PRESENCE = MAX_PRESENCE_SECONDS * 1000


def ms(t) -> int:
    return round(t.timestamp() * 1000)


def _presence_at(events: list[ev.Event], t: int) -> dict:
    """The agent's presence at `t` from its events (in order), counted as logged out once one presence has lasted
    `MAX_PRESENCE`."""
    since, before = None, None
    s = {"logged_in": False, "state": None, "reason": None, "queues": (), "active": 0}
    for e in events:
        if ms(e.time) > t:
            break
        s = _status_after([e], s)
        if (s["logged_in"], s["state"], s["reason"]) != before:
            since, before = ms(e.time), (s["logged_in"], s["state"], s["reason"])
    if s["logged_in"] and since is not None and t >= since + MAX_PRESENCE:
        return {"logged_in": False, "state": None, "reason": None, "queues": s["queues"], "active": 0}
    return s


def _status_after(events: list[ev.Event], start: dict | None = None) -> dict:
    """The agent's presence after these events (in order), from `start` (logged out)."""
    s = start or {"logged_in": False, "state": None, "reason": None, "queues": (), "active": 0}
    for e in events:
        if isinstance(e, ev.AgentLoggedIn):
            if s["logged_in"]:
                s["queues"] = tuple(e.queue_ids)
            else:
                s = {
                    "logged_in": True,
                    "state": "not_ready",
                    "reason": "unspecified",
                    "queues": tuple(e.queue_ids),
                    "active": 0,
                }
        elif isinstance(e, ev.AgentLoggedOut):
            s = {"logged_in": False, "state": None, "reason": None, "queues": s["queues"], "active": 0}
        elif isinstance(e, ev.AgentStateChanged):
            if e.active_contacts is not None:
                active = e.active_contacts
            else:
                active = 1 if e.state in ("on_contact", "acw") else 0
            s = {
                "logged_in": True,
                "state": e.state,
                "reason": (e.reason_code or "unspecified") if e.state == "not_ready" else None,
                "queues": s["queues"],
                "active": active,
            }
    return s


def _activity_at(plan: list[ev.ScheduleActivityPlanned], t: int) -> str | None:
    covering = [p for p in plan if ms(p.start) <= t < ms(p.end)]
    if not covering:
        return None
    winner = max(covering, key=lambda p: (p.version, p.event_id))
    return None if winner.activity == "off" else winner.activity


def compute(events: Iterable[ev.Event], interval_seconds: int, until: int):
    """Counts of a complete log up to `until` (epoch ms): (per (agent, interval start ms) with anything in it,
    per agent, per queue (scheduled_ms, adherent_ms))."""
    length = interval_seconds * 1000
    seen: set[str] = set()
    presence: dict[str, list[ev.Event]] = {}
    plans: dict[str, list[ev.ScheduleActivityPlanned]] = {}
    for e in events:
        if not isinstance(e, ev.AgentEvent) or e.event_id in seen:
            continue
        seen.add(e.event_id)
        if isinstance(e, ev.ScheduleActivityPlanned):
            plans.setdefault(e.agent_id, []).append(e)
        else:
            presence.setdefault(e.agent_id, []).append(e)

    intervals: dict[tuple[str, int], AgentCounts] = {}
    queues: dict[str, list[int]] = {}
    for agent in set(presence) | set(plans):
        mine = sorted(presence.get(agent, []), key=lambda e: ms(e.time))  # stable: log order at the same ms
        plan = plans.get(agent, [])
        times = [ms(e.time) for e in mine] + [ms(p.start) for p in plan] + [ms(p.end) for p in plan]
        first = min(times)
        times += [ms(e.time) + MAX_PRESENCE for e in mine]  # where a presence may run out
        points = set(t for t in times if t < until) | {until}
        points.update(range((first // length + 1) * length, until, length))  # every interval boundary
        points = sorted(p for p in points if p >= first)
        for a, b in zip(points, points[1:], strict=False):
            status = _presence_at(mine, a)
            activity = _activity_at(plan, a)
            if not status["logged_in"] and activity is None:
                continue
            d = b - a
            key = (agent, a // length * length)
            c = intervals.setdefault(key, AgentCounts())
            if status["logged_in"]:
                c.logged_in_ms += d
                c.queues |= set(status["queues"])
                state = status["state"]
                if state == "available":
                    c.available_ms += d
                elif state == "on_contact":
                    c.on_contact_ms += d
                elif state == "acw":
                    c.acw_ms += d
                elif state == "not_ready":
                    c.not_ready_ms += d
                    reason = status["reason"]
                    c.not_ready_by_reason_ms[reason] = c.not_ready_by_reason_ms.get(reason, 0) + d
                if state in ("on_contact", "acw"):
                    c.contact_ms += status["active"] * d
            if activity is not None:
                if activity == "contact_handling":
                    ok = status["logged_in"] and status["state"] in ("available", "on_contact", "acw")
                else:
                    ok = not status["logged_in"] or status["state"] == "not_ready"
                c.scheduled_ms += d
                c.adherent_ms += d if ok else 0
                for q in status["queues"]:
                    qa = queues.setdefault(q, [0, 0])
                    qa[0] += d
                    qa[1] += d if ok else 0

    intervals = {k: c for k, c in intervals.items() if c.logged_in_ms or c.scheduled_ms}
    totals: dict[str, AgentCounts] = {}
    for (agent, _), c in intervals.items():
        totals.setdefault(agent, AgentCounts()).add(c)
    return intervals, totals, {q: tuple(v) for q, v in queues.items()}


def staffed_now(events: Iterable[ev.Event]) -> dict[str, dict[str, float]]:
    """queue -> {"staffed", "ready", "not_ready"} after every event, by the capacity rule of docs/staffing.md,
    applied literally: an agent logged in and available, on a contact or in ACW is able to take contacts; it
    serves the distinct queues of its session; it counts 1/k in each of its k queues for `staffed` and 1 in each
    for `ready`; logged in and not ready, 1 in each for `not_ready`."""
    by_agent: dict[str, list[ev.Event]] = {}
    seen: set[str] = set()
    for e in events:
        agent = getattr(e, "agent_id", None)
        if agent is None or isinstance(e, ev.ScheduleActivityPlanned) or e.event_id in seen:
            continue
        seen.add(e.event_id)
        by_agent.setdefault(agent, []).append(e)
    out: dict[str, dict[str, float]] = {}
    for agent_events in by_agent.values():
        s = _status_after(sorted(agent_events, key=lambda e: ms(e.time)))  # stable: log order within a ms
        queues = sorted(set(s["queues"]))
        if not s["logged_in"] or not queues:
            continue
        for q in queues:
            row = out.setdefault(q, {"staffed": 0.0, "ready": 0, "not_ready": 0})
            if s["state"] in ("available", "on_contact", "acw"):
                row["staffed"] += 1 / len(queues)
                row["ready"] += 1
            else:
                row["not_ready"] += 1
    return out
