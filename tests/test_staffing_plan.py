"""The staffing plan (`python -m pipeline staffing plan`): required agents per interval from a forecast, checked
against pyworkforce's Erlang C (an independent implementation), and the agents scheduled, checked against a
hand count of the schedule."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyworkforce.queuing import ErlangC

from pipeline.__main__ import main
from pipeline.contract import events as ev
from pipeline.core.settings import QueueSettings
from pipeline.kpis.staffing import required_agents
from pipeline.kpis.staffing.plan import Demand, Entry, plan, scheduled_agents
from pipeline.tools.simulate.jsonl import write_jsonl

DAY = datetime(2026, 1, 5, tzinfo=UTC)
T0 = int(DAY.timestamp())


@pytest.mark.parametrize("shrinkage, cap", [(0.0, 1.0), (0.3, 0.85)])
def test_required_and_needed_agree_with_pyworkforce_erlang_c(shrinkage, cap):
    rules = QueueSettings(
        service_level_threshold_seconds=20, service_level_target=0.8, shrinkage=shrinkage, max_occupancy=cap
    )
    demands = [
        Demand("sales", "voice", T0 + k * 1800, offered, aht)
        for k, (offered, aht) in enumerate([(100, 180), (20, 240), (250, 150), (3, 300), (0, 300)])
    ]
    rows = plan(demands, 1800, lambda q: rules)
    for d, r in zip(demands, rows, strict=True):
        if d.offered == 0:
            assert (r.required, r.needed, r.model) == (0, 0, "no load")
            continue
        theirs = ErlangC(transactions=d.offered, aht=d.aht / 60, asa=20 / 60, interval=30, shrinkage=shrinkage)
        result = theirs.required_positions(service_level=0.8, max_occupancy=cap)
        assert r.required == result["raw_positions"]
        assert r.needed == result["positions"]  # raw / (1 - shrinkage), rounded up
        assert r.scheduled is None and r.gap is None


def test_chat_needs_servers_over_concurrency_and_erlang_a_with_patience():
    chat = QueueSettings(chat_concurrency=3, service_level_threshold_seconds=60)
    (r,) = plan([Demand("web", "chat", T0, 120, 600)], 900, lambda q: chat)
    servers = required_agents(120 / 900, 600, 60, 0.8).agents
    assert r.required == math.ceil(servers / 3) and servers > r.required
    voice = QueueSettings()
    (a,) = plan([Demand("sales", "voice", T0, 100, 240, patience=90.0)], 900, lambda q: voice)
    (c,) = plan([Demand("sales", "voice", T0, 100, 240)], 900, lambda q: voice)
    assert (a.model, c.model) == ("erlang_a", "erlang_c")
    assert a.required <= c.required  # customers who abandon take no agent time


def test_scheduled_agents_count_the_planned_share_split_between_queues():
    entries = [
        Entry("A", "contact_handling", T0, T0 + 3600),
        Entry("A", "break", T0 + 900, T0 + 1350, version=2, event_id="b"),  # half of 09:15 on a break
        Entry("B", "contact_handling", T0, T0 + 1800),
        Entry("B", "off", T0, T0 + 1800, version=2, event_id="o"),  # replaced: B is off
        Entry("C", "contact_handling", T0 + 450, T0 + 900),  # half an interval
        Entry("D", "contact_handling", T0, T0 + 900),  # never logged in: no known queues
    ]
    got = scheduled_agents(entries, {"A": ("s", "b"), "B": ("s",), "C": ("s",)}, 900)
    assert got[("s", T0)] == pytest.approx(0.5 + 0.5)  # A shared with b, C half the interval
    assert got[("b", T0)] == pytest.approx(0.5)
    assert got[("s", T0 + 900)] == pytest.approx(0.25)  # A half on break, shared
    assert got[("s", T0 + 1800)] == pytest.approx(0.5)
    assert ("s", T0 + 3600) not in got


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from("ABC"),
            st.sampled_from(["contact_handling", "break", "off"]),
            st.integers(0, 40),  # start, in 5-minute steps from T0
            st.integers(1, 30),  # length, in 5-minute steps
            st.integers(1, 3),  # version
        ),
        max_size=12,
    ),
    st.integers(-2, 12),  # the window's first interval
    st.integers(0, 6),  # its length in intervals
)
def test_scheduled_agents_in_a_window_are_the_whole_plans_intervals_in_it(rows, first, length):
    """/metrics asks for the next hour only: the same figures as the whole plan's for the intervals in the window."""
    entries = [
        Entry(agent, activity, T0 + 300 * a, T0 + 300 * (a + n), version, f"e{i}")
        for i, (agent, activity, a, n, version) in enumerate(rows)
    ]
    queues = {"A": ("s", "b"), "B": ("s",), "C": ("b", "s", "x")}
    lo, hi = T0 + 900 * first, T0 + 900 * (first + length)
    whole = scheduled_agents(entries, queues, 900)
    got = scheduled_agents(entries, queues, 900, (lo, hi))
    assert got.keys() <= {k for k in whole if lo <= k[1] < hi}
    for key, n in whole.items():
        if lo <= key[1] < hi:
            assert got.get(key, 0.0) == pytest.approx(n)


def test_the_plan_command_prints_the_days_table_and_writes_plan_records(tmp_path, capsys):
    forecast = []
    for k in range(4):
        start = DAY + timedelta(hours=9, minutes=15 * k)
        for source, offered in (("pipeline", 40.0), ("wfm", 60.0)):  # the WFM's wins for the plan
            forecast.append(
                ev.ForecastPublished(
                    event_id=f"{source}{k}",
                    time=DAY,
                    queue_id="sales",
                    channel="voice",
                    interval_start=start,
                    offered=offered,
                    aht_seconds=240,
                    source=source,
                )
            )
    schedule = [
        ev.AgentLoggedIn(event_id=f"l{n}", time=DAY, agent_id=f"a{n}", queue_ids=["sales"]) for n in range(10)
    ] + [
        ev.ScheduleActivityPlanned(
            event_id=f"p{n}",
            time=DAY,
            agent_id=f"a{n}",
            schedule_id="s",
            version=1,
            activity="contact_handling",
            start=DAY + timedelta(hours=9),
            end=DAY + timedelta(hours=9, minutes=30),
        )
        for n in range(10)
    ]
    write_jsonl(forecast, tmp_path / "f.jsonl")
    write_jsonl(schedule, tmp_path / "s.jsonl")
    out = tmp_path / "plan.jsonl"
    code = main(["staffing", "plan", "--forecast", str(tmp_path / "f.jsonl"), "--schedule", str(tmp_path / "s.jsonl"),
                 "--records-out", str(out)])  # fmt: skip
    assert code == 0
    text = capsys.readouterr()
    need = required_agents(60 / 900, 240, 20, 0.8).agents
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [r["kind"] for r in records] == ["plan"] * 4
    assert [r["agents_required"] for r in records] == [need] * 4
    assert [r["agents_scheduled"] for r in records] == [10, 10, 0, 0]
    assert [r["gap"] for r in records] == [need - 10, need - 10, need, need]
    assert "09:45" in text.out and "1 queues x 4 intervals planned" in text.err
    assert need > 10 and "4 intervals understaffed" in text.err


def test_the_plan_command_refuses_a_bad_counts_file_with_one_sentence(tmp_path, capsys):
    bad = tmp_path / "counts.csv"
    bad.write_text("queue,channel,interval_start,offered\nsales,voice,2026-01-05T09:00:00+00:00,10\n")
    assert main(["staffing", "plan", "--counts", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m pipeline staffing plan:") and "\n" not in err


def test_the_plan_reads_counts_with_patience(tmp_path, capsys):
    counts = tmp_path / "counts.csv"
    counts.write_text(
        "queue,channel,interval_start,offered,aht_seconds,patience_seconds\n"
        "sales,voice,2026-01-05T09:00:00+00:00,100,240,90\n"
        "sales,voice,2026-01-05T09:15:00+00:00,100,240,\n"
    )
    out = tmp_path / "plan.jsonl"
    assert main(["staffing", "plan", "--counts", str(counts), "--records-out", str(out), "--quiet"]) == 0
    a, c = (orjson.loads(line) for line in out.read_bytes().splitlines())
    assert (a["model"], c["model"]) == ("erlang_a", "erlang_c")
    assert a["agents_required"] == required_agents(100 / 900, 240, 20, 0.8, patience=90).agents
