"""The wallboard and agent board views (pipeline.exposition.boards) on hand-built states, with every figure
worked out in the comments. Times are seconds after BASE (2024-01-01T00:00Z); intervals are 15 minutes, the
allowed lateness 2 minutes.

The queue Q1 is in Europe/Paris, so its "today" (1 January, local) began at -3600 s (23:00Z on 31 December).
"""

from __future__ import annotations

import pytest
from agentlog import AgentEvents
from eventlog import BASE_MS, BASE_S, Events
from prometheus_client import CollectorRegistry

from pipeline.core.settings import QueueConfig, QueueSettings, SettingsError, load_settings
from pipeline.exposition.board_metrics import AdherenceCollector, TodayCollector
from pipeline.exposition.boards import (
    agent_board,
    agent_rows,
    grade_at_least,
    grade_at_most,
    grade_staffing,
    prometheus_wallboard,
    wallboard,
)
from pipeline.processing.processor import AgentProcessor, ContactProcessor, PipelineStats
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
        a.plan(0, 3600, "contact_handling", agent="A4"),
        a.login(0, agent="A4", queues=("Q2",)),
        a.state(0, "available", agent="A4"),
        a.state(100, "not_ready", agent="A4", reason="lunch"),  # out of adherence from 100...
        a.logout(1140, agent="A4"),  # ...and still: logged out is another state, not back in adherence
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
    # staffed: able to take the queue's contacts now (the capacity rule): A2, available for Q1 and Q2, counts half
    # in each; A1, not ready, counts nothing
    assert q1["staffed"] == 0.5 and q1["targets"]["service_level"] == 0.8


def test_agent_board_state_time_in_state_contact_today_and_adherence():
    board = agent_board([queue_state()], [agent_state()], QUEUES)
    rows = {r["agent"]: r for r in agent_rows(board)}
    assert set(rows) == {"A1", "A2", "A3", "A4"}
    assert board["teams"] == ["north", "south"] and board["queues"] == ["Q1", "Q2"]
    a1, a2, a3 = rows["A1"], rows["A2"], rows["A3"]
    assert (a1["state"], a1["reason"], a1["in_state_seconds"]) == ("not_ready", "break", 50.0)
    # c3, answered at 1050 and still in conversation
    assert (a1["contact_queue"], a1["contact_channel"], a1["contact_age_seconds"]) == ("Q1", "voice", 150.0)
    assert (a1["handled_today"], a1["aht_today_seconds"]) == (1, 90.0)  # c1: 80 s talk + 10 s ACW (c0: yesterday)
    assert (a1["planned"], a1["adherent"], a1["out_of_adherence_seconds"]) == ("contact_handling", False, 50.0)
    assert a1["exception"] and a1["exception_threshold_seconds"] == 30  # Q1's threshold
    assert (a2["state"], a2["in_state_seconds"], a2["teams"]) == ("available", 1200.0, ["north", "south"])
    assert a2["contact_queue"] is None and (a2["handled_today"], a2["aht_today_seconds"]) == (0, None)
    assert (a2["planned"], a2["out_of_adherence_seconds"]) == ("break", 600.0)
    assert a2["exception"]  # the lowest threshold of its queues (Q1's 30 s)
    assert (a3["state"], a3["logged_in"], a3["in_state_seconds"]) == ("logged_out", False, None)
    # never logged in: its state has no time, and the plan began at 0: out since then, at the default threshold
    assert a3["adherent"] is False and a3["exception_threshold_seconds"] == 300
    assert a3["out_of_adherence_seconds"] == 1200.0 and a3["exception"]
    a4 = rows["A4"]
    assert (a4["state"], a4["in_state_seconds"], a4["queues"]) == ("logged_out", 60.0, ["Q2"])
    assert (a4["out_of_adherence_seconds"], a4["exception"]) == (1100.0, True)  # since 100, over Q2's 300 s


def test_time_in_state_survives_a_checkpoint():
    s = agent_state()
    restored = AgentState(INTERVAL, LATENESS)
    restored.restore(s.snapshot())
    rows = {r["agent"]: r for r in agent_rows(agent_board([], [restored], QUEUES))}
    assert rows["A2"]["in_state_seconds"] == 1200.0 and rows["A1"]["in_state_seconds"] == 50.0


def test_grades_follow_the_targets():
    assert [grade_at_least(v, 0.8) for v in (None, 0.8, 0.71, 0.69)] == ["none", "ok", "warn", "bad"]
    assert [grade_at_most(v, 30) for v in (None, 30, 45, 46)] == ["none", "ok", "warn", "bad"]
    assert [grade_staffing(r, 5) for r in (None, 5, 6, 7)] == ["none", "ok", "warn", "bad"]


def test_time_in_state_is_the_same_whatever_order_the_events_came_in():
    a = AgentEvents()
    events = [
        a.login(1000, agent="A1"),
        a.state(1010, "available", agent="A1"),
        a.state(1100, "on_contact", agent="A1"),
        a.state(1130, "on_contact", agent="A1", active=2),  # a second contact: the same state, time goes on
        a.state(1150, "not_ready", agent="A1", reason="lunch"),
        a.state(1170, "not_ready", agent="A1", reason="break"),  # another reason: a new state
    ]
    for order in (events, events[::-1], events[2:] + events[:2]):
        s = AgentState(INTERVAL, LATENESS)
        for x in order:
            assert s.apply(x) is None
        track = s.agents["A1"]
        assert (track.now.reason, track.now_since) == ("break", at(1170))
    s = AgentState(INTERVAL, LATENESS)
    for x in events[:4]:
        s.apply(x)
    assert s.agents["A1"].now_since == at(1100)  # the second contact did not restart the time in state


def test_the_prometheus_url_arrives_as_a_string_and_a_wrong_one_stops_the_start(monkeypatch):
    monkeypatch.setenv("PIPELINE_PROMETHEUS_URL", "http://127.0.0.1:9090/")
    assert load_settings().prometheus_url == "http://127.0.0.1:9090"
    monkeypatch.setenv("PIPELINE_PROMETHEUS_URL", "")
    assert load_settings().prometheus_url == ""  # the default: the wallboard reads this worker's state
    monkeypatch.setenv("PIPELINE_PROMETHEUS_URL", "127.0.0.1:9090")
    with pytest.raises(SettingsError, match="PIPELINE_PROMETHEUS_URL='127.0.0.1:9090': must be empty or an http"):
        load_settings()


def test_the_adherence_threshold_comes_from_the_queue_file(tmp_path):
    path = tmp_path / "queues.toml"
    path.write_text("[defaults]\nadherence_exception_seconds = 240\n[queues.Q1]\nadherence_exception_seconds = 60\n")
    config = QueueConfig.load(path)
    assert config.for_queue("Q1").adherence_exception_seconds == 60
    assert config.for_queue("other").adherence_exception_seconds == 240
    path.write_text("[queues.Q1]\nadherence_exception_seconds = 0\n")
    with pytest.raises(SettingsError, match="adherence_exception_seconds"):
        QueueConfig.load(path)


def test_the_wallboard_from_prometheus_vectors():
    def vec(*rows):
        return [{"metric": labels, "value": [1.0, value]} for labels, value in rows]

    qc = {"queue": "Q1", "channel": "voice"}
    results = {
        "service_level_5m": vec((qc, "NaN")),  # nothing to measure in the window
        "today_offered": vec((qc, "12")),
        "today_answered": vec((qc, "8")),
        "today_abandoned": vec((qc, "2")),
        "today_answered_within_threshold": vec((qc, "7")),
        "today_answer_wait_ms": vec((qc, "80.5")),
        "waiting": vec((qc, "2"), ({"queue": "Q2", "channel": "chat"}, "0")),
        "oldest_wait": vec((qc, "95")),
        "agents": vec(
            ({"queue": "Q1", "state": "after_contact_work"}, "3"), ({"queue": "Q1", "state": "logged_in"}, "7")
        ),
        "required": vec((qc, "9")),
        "staffed": vec(({"queue": "Q1"}, "6.5")),  # summed over the workers' capacity shares
    }
    board = prometheus_wallboard(results, QUEUES, at=1000.0)
    assert board["windows"]["long"] == {"key": "today", "label": "today"}
    q1, q2 = board["queues"]
    assert (q1["queue"], q2["queue"]) == ("Q1", "Q2")
    assert q1["last_5m"]["service_level"] is None and q1["last_5m"]["service_level_grade"] == "none"
    today = q1["today"]
    assert (today["offered"], today["answered"], today["abandoned"]) == (12, 8, 2)
    assert today["service_level"] == pytest.approx(0.7) and today["service_level_grade"] == "warn"  # 7 / (8 + 2)
    assert today["asa_seconds"] == pytest.approx(80.5 / 8) and today["abandon_rate"] == pytest.approx(2 / 12)
    assert (q1["waiting"], q1["oldest_wait_seconds"]) == (2, 95.0)
    assert q1["agents"]["acw"] == 3 and (q1["staffed"], q1["required"], q1["staffing_grade"]) == (6.5, 9, "bad")
    assert q2["agents"]["logged_in"] == 0 and q2["required"] is None and q2["today"]["offered"] == 0


def test_today_gauges_are_the_wallboards_today():
    processor = ContactProcessor(load_settings(), QUEUES, PipelineStats())
    processor.partitions[0] = queue_state()
    registry = CollectorRegistry()
    registry.register(TodayCollector(processor))
    get = registry.get_sample_value
    labels = {"queue": "Q1", "channel": "voice"}
    # as the wallboard's today: c1..c4 of 1 January in Paris, not c0 of the day before
    assert (get("cc_queue_today_offered", labels), get("cc_queue_today_answered", labels)) == (4, 2)
    assert get("cc_queue_today_abandoned", labels) == 1
    assert get("cc_queue_today_answered_within_threshold", labels) == 1
    assert get("cc_queue_today_answer_wait_seconds", labels) == pytest.approx(60.0)


def test_adherence_gauges_per_queue_are_the_agent_boards():
    processor = AgentProcessor(load_settings(), PipelineStats())
    processor.partitions[0] = agent_state()
    registry = CollectorRegistry()
    registry.register(AdherenceCollector(processor, QUEUES))
    get = registry.get_sample_value
    # Q1: A1 (out 50 s) and A2 (out 600 s), both over Q1's 30 s; Q2: A2 and A4 (out 1,100 s), both over 300 s.
    # A3 has no queue: it counts in none.
    assert get("cc_queue_agents_out_of_adherence", {"queue": "Q1"}) == 2
    assert get("cc_queue_agents_adherence_exceptions", {"queue": "Q1"}) == 2
    assert get("cc_queue_agents_out_of_adherence", {"queue": "Q2"}) == 2
    assert get("cc_queue_agents_adherence_exceptions", {"queue": "Q2"}) == 2
    stricter = QueueConfig(queues={**QUEUES.queues, "Q2": QueueSettings(adherence_exception_seconds=900)})
    registry = CollectorRegistry()
    registry.register(AdherenceCollector(processor, stricter))
    assert registry.get_sample_value("cc_queue_agents_adherence_exceptions", {"queue": "Q2"}) == 1  # A4 only
