"""The wallboard and agent board views (pipeline.exposition.boards) on hand-built states, with every figure
worked out in the comments. Times are seconds after BASE (2024-01-01T00:00Z); intervals are 15 minutes, the
allowed lateness 2 minutes.

The queue Q1 is in Europe/Paris, so its "today" (1 January, local) began at -3600 s (23:00Z on 31 December).
"""

from __future__ import annotations

import pytest
from agentlog import AgentEvents
from eventlog import BASE_MS, BASE_S, Events

from pipeline.core.settings import QueueConfig, QueueSettings
from pipeline.exposition.boards import agent_board, grade_at_least, grade_at_most, grade_staffing, wallboard
from pipeline.state.agents import AgentState
from pipeline.state.queues import QueueState

INTERVAL, LATENESS = 900, 120
QUEUES = QueueConfig(
    queues={
        "Q1": QueueSettings(time_zone="Europe/Paris", team="north", adherence_exception_seconds=30),
        "Q2": QueueSettings(team="south"),
    }
)


def at(seconds: float) -> int:
    return BASE_MS + round(seconds * 1000)


def queue_state() -> QueueState:
    s = QueueState(INTERVAL, LATENESS, 3600, QUEUES.for_queue)
    e = Events()
    events = [
        # yesterday, local time (22:53Z on 31 December is 23:53 in Paris): not today
        e.offered(-4000, contact="c0"),
        e.answered(-3990, contact="c0", agent="A1"),
        e.ended(-3900, contact="c0", agent="A1"),
        e.acw_ended(-3890, contact="c0", agent="A1"),
        # interval 0: c1 answered after 10 s (within 20 s), handled 80 s talk + 10 s ACW by A1; c2 abandoned at 50 s
        e.offered(10, contact="c1"),
        e.answered(20, contact="c1", agent="A1"),
        e.ended(100, contact="c1", agent="A1"),
        e.acw_ended(110, contact="c1", agent="A1"),
        e.offered(30, contact="c2"),
        e.abandoned(80, contact="c2"),
        # interval 1 (the current one): c3 answered after 50 s by A1, still talking; c4 waiting since 1100
        e.offered(1000, contact="c3"),
        e.answered(1050, contact="c3", agent="A1"),
        e.offered(1100, contact="c4"),
    ]
    for x in events:
        assert s.apply(x) is None
    s.observe_time(at(1200))
    s.advance()  # interval 0 is final (1200 >= 900 + 120) and in the day's rollup; interval 1 is open
    return s


def agent_state() -> AgentState:
    s = AgentState(INTERVAL, LATENESS)
    a = AgentEvents()
    events = [
        a.plan(0, 3600, "contact_handling", agent="A1"),
        a.login(0, agent="A1", queues=("Q1",)),
        a.state(5, "available", agent="A1"),
        a.plan(0, 600, "contact_handling", agent="A2"),
        a.plan(600, 1800, "break", agent="A2"),  # planned on break from 600, still available: out since 600
        a.login(0, agent="A2", queues=("Q1", "Q2")),
        a.state(0, "available", agent="A2"),
        a.plan(0, 3600, "contact_handling", agent="A3"),  # scheduled, never logged in: out since the plan began
        a.state(
            1150, "not_ready", agent="A1", reason="break"
        ),  # out of adherence from 1150 (last: it moves the watermark)
    ]
    for x in events:
        assert s.apply(x) is None
    s.observe_time(at(1200))
    s.advance()  # settles up to 900: A1's and A2's states before it are settled, A1's break is still buffered
    assert s.horizon == at(900)
    return s


def test_wallboard_figures_of_the_interval_and_of_the_local_day():
    board = wallboard([queue_state()], [agent_state()], QUEUES)
    assert board["event_time"] == BASE_S + 1200
    (q1,) = board["queues"]
    assert (q1["queue"], q1["channel"], q1["team"], q1["time_zone"]) == ("Q1", "voice", "north", "Europe/Paris")
    assert q1["today"]["start"] == BASE_S - 3600  # local midnight in Paris
    # today: c1..c4 (c0 was yesterday, local): offered 4, answered 2 (c1, c3), abandoned 1 (c2)
    today = q1["today"]
    assert (today["offered"], today["answered"], today["abandoned"]) == (4, 2, 1)
    # abandons count against: 1 within (c1) / (2 answered + 1 abandoned)
    assert today["service_level"] == pytest.approx(1 / 3) and today["service_level_grade"] == "bad"
    assert today["asa_seconds"] == pytest.approx(30.0)  # (10 + 50) / 2, target 30: ok
    assert today["asa_grade"] == "ok"
    assert today["abandon_rate"] == pytest.approx(0.25) and today["abandon_rate_grade"] == "bad"
    # the current interval [900, 1800): c3 answered after 50 s, c4 waiting: 0 within / 1
    assert q1["interval"]["start"] == BASE_S + 900
    assert (q1["interval"]["offered"], q1["interval"]["service_level"]) == (2, 0.0)
    assert (q1["waiting"], q1["oldest_wait_seconds"], q1["oldest_wait_grade"]) == (1, 100.0, "ok")
    assert q1["agents"] == {"available": 1, "on_contact": 0, "acw": 0, "not_ready": 1, "logged_in": 2}
    assert q1["staffed"] == 2 and q1["targets"]["service_level"] == 0.8


def test_agent_board_state_time_in_state_contact_today_and_adherence():
    board = agent_board([queue_state()], [agent_state()], QUEUES)
    rows = {r["agent"]: r for r in board["agents"]}
    assert set(rows) == {"A1", "A2", "A3"}
    assert board["teams"] == ["north", "south"] and board["queues"] == ["Q1", "Q2"]
    a1, a2, a3 = rows["A1"], rows["A2"], rows["A3"]
    assert (a1["state"], a1["reason"], a1["in_state_seconds"]) == ("not_ready", "break", 50.0)
    assert a1["contact"] == {"queue": "Q1", "channel": "voice", "age_seconds": 150.0}  # answered at 1050
    assert a1["today"] == {"handled": 1, "aht_seconds": 90.0}  # c1: 80 s talk + 10 s ACW (c0 was yesterday)
    assert a1["adherence"] == {
        "planned": "contact_handling",
        "adherent": False,
        "out_for_seconds": 50.0,
        "exception": True,  # Q1's threshold is 30 s
        "threshold_seconds": 30,
    }
    assert (a2["state"], a2["in_state_seconds"], a2["teams"]) == ("available", 1200.0, ["north", "south"])
    assert a2["contact"] is None and a2["today"] == {"handled": 0, "aht_seconds": None}
    assert a2["adherence"]["planned"] == "break" and a2["adherence"]["out_for_seconds"] == 600.0
    assert a2["adherence"]["exception"]  # the lowest threshold of its queues (Q1's 30 s)
    assert (a3["state"], a3["logged_in"], a3["in_state_seconds"]) == ("logged_out", False, None)
    # never logged in: its state has no time, and the plan began at 0: out since then, at the default threshold
    assert a3["adherence"]["adherent"] is False and a3["adherence"]["threshold_seconds"] == 300
    assert a3["adherence"]["out_for_seconds"] == 1200.0 and a3["adherence"]["exception"]


def test_time_in_state_survives_a_checkpoint():
    s = agent_state()
    restored = AgentState(INTERVAL, LATENESS)
    restored.restore(s.snapshot())
    rows = {r["agent"]: r for r in agent_board([], [restored], QUEUES)["agents"]}
    assert rows["A2"]["in_state_seconds"] == 1200.0 and rows["A1"]["in_state_seconds"] == 50.0


def test_grades_follow_the_targets():
    assert [grade_at_least(v, 0.8) for v in (None, 0.8, 0.71, 0.69)] == ["none", "ok", "warn", "bad"]
    assert [grade_at_most(v, 30) for v in (None, 30, 45, 46)] == ["none", "ok", "warn", "bad"]
    assert [grade_staffing(r, 5) for r in (None, 5, 6, 7)] == ["none", "ok", "warn", "bad"]
