"""Unit tests of AgentState, AgentProcessor and the agent collector (no broker): hand-built scenarios with exact
expected figures, worked out in the comments.

Times are seconds after BASE (2024-01-01T00:00Z); intervals are 15 minutes unless a test says otherwise, so
interval 0 is [0 s, 900 s) and interval 1 is [900 s, 1800 s).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import msgspec
import pytest
from agentlog import AgentEvents
from eventlog import BASE_MS, BASE_S, keyed_messages
from prometheus_client import CollectorRegistry

from pipeline.contract import events as ev
from pipeline.contract.partitioner import partition_of
from pipeline.core.settings import load_settings
from pipeline.exposition.agent_metrics import AgentCollector
from pipeline.kpis.agents import (
    MAX_PRESENCE_SECONDS,
    AgentCounts,
    AgentKpiRecord,
    adherence,
    concurrency,
    decode_agent_record,
    occupancy,
    utilization,
)
from pipeline.processing.processor import AgentProcessor, Message, PipelineStats
from pipeline.state.agents import CODEC, DUPLICATE, LATE, AgentState, Status

INTERVAL = 900
LATENESS = 120
FAR = BASE_MS + 10 * 24 * 3600 * 1000
TOPIC = "cc.agent-events"


def s_ms(seconds: float) -> int:
    return round(seconds * 1000)


def close_all(state: AgentState, at_ms: int = FAR) -> dict[tuple[str, int], AgentCounts]:
    """(agent, interval start in seconds after BASE) -> final counts."""
    state.observe_time(at_ms)
    out = {}
    for u in state.advance():
        assert u.final
        out[(u.agent_id, u.start - BASE_S)] = u.counts
    return out


def feed(state: AgentState, events) -> list:
    return [state.apply(e) for e in events]


def counts(**kw) -> AgentCounts:
    kw = {k: s_ms(v) if k.endswith("_ms") and not isinstance(v, dict) else v for k, v in kw.items()}
    if "not_ready_by_reason_ms" in kw:
        kw["not_ready_by_reason_ms"] = {r: s_ms(v) for r, v in kw["not_ready_by_reason_ms"].items()}
    if "queues" in kw:
        kw["queues"] = set(kw["queues"])
    return AgentCounts(**kw)


# ---- states, spans and intervals --------------------------------------------------------------------------


def test_a_login_centuries_before_the_next_event_counts_the_longest_presence_and_costs_no_more():
    """Found by fuzzing the processors: a login stamped in the year 24 and the agent's next event now made the
    worker walk (and hold) every interval between, until it ran out of memory. A presence counts for
    `MAX_PRESENCE_SECONDS` at most (docs/kpis.md): the walk stops there too."""
    E = AgentEvents()
    s = AgentState(INTERVAL, LATENESS)
    feed(s, [E.login(-2000 * 365 * 86400, queues=["Q1"]), E.state(60, "available"), E.logout(600)])
    most = MAX_PRESENCE_SECONDS // INTERVAL + 3  # the old presence's intervals, and interval 0
    assert 0 < len(s.provisional(wall_now=0.0, every=0.0)) <= most
    finals = close_all(s)
    assert 0 < len(finals) <= most
    assert sum(c.logged_in_ms for c in finals.values()) == s_ms(MAX_PRESENCE_SECONDS + 540)
    assert finals[("A1", 0)] == counts(logged_in_ms=540, available_ms=540, queues=["Q1"])


def test_a_state_change_long_after_a_logout_logs_in_to_the_last_sessions_queues():
    """Found by the shuffled/snapshot property test: the agent's track was forgotten once its logout was final,
    and with it the queues a later state change logs it in to."""
    E = AgentEvents()
    s = AgentState(INTERVAL, LATENESS)
    feed(s, [E.login(100, queues=["Q1"]), E.logout(200)])
    close_all(s, BASE_MS + s_ms(3 * INTERVAL))  # the logout's interval is final long before the next event
    feed(s, [E.state(3 * INTERVAL + 60, "available")])
    finals = close_all(s, BASE_MS + s_ms(5 * INTERVAL))
    assert finals[("A1", 3 * INTERVAL)].queues == {"Q1"}


def test_state_spans_are_split_at_interval_boundaries():
    E = AgentEvents()
    s = AgentState(INTERVAL, LATENESS)
    assert (
        feed(
            s,
            [
                E.login(100, queues=["Q1", "Q2"]),  # not ready (unspecified) until the first state
                E.state(130, "available"),
                E.state(800, "on_contact"),  # 800 .. 1000 crosses the boundary at 900
                E.state(1000, "acw"),
                E.state(1060, "not_ready", reason="break"),
                E.state(1960, "available"),  # 1060 .. 1960: 740 s in interval 1, 160 s in interval 2
                E.logout(2000),
            ],
        )
        == [None] * 7
    )
    finals = close_all(s)
    q = ["Q1", "Q2"]
    assert finals == {
        # logged in 100..900 = 800 s: not ready 30 (100..130), available 670 (130..800), on contact 100
        ("A1", 0): counts(
            logged_in_ms=800,
            not_ready_ms=30,
            available_ms=670,
            on_contact_ms=100,
            contact_ms=100,
            not_ready_by_reason_ms={"unspecified": 30},
            queues=q,
        ),
        # on contact 900..1000, ACW 1000..1060, break 1060..1800
        ("A1", 900): counts(
            logged_in_ms=900,
            on_contact_ms=100,
            acw_ms=60,
            not_ready_ms=740,
            contact_ms=160,
            not_ready_by_reason_ms={"break": 740},
            queues=q,
        ),
        # break 1800..1960, available 1960..2000
        ("A1", 1800): counts(
            logged_in_ms=200, not_ready_ms=160, available_ms=40, not_ready_by_reason_ms={"break": 160}, queues=q
        ),
    }
    c = finals[("A1", 0)]
    assert occupancy(c) == pytest.approx(100 / (100 + 670))
    assert utilization(c) == pytest.approx(100 / 800)
    assert adherence(c) is None  # nothing scheduled
    total = AgentCounts()
    for x in finals.values():
        total.add(x)
    assert s.totals == {"A1": total}
    assert total.logged_in_ms == s_ms(1900)  # 100 .. 2000
    # logged out, nothing buffered or planned: only the queues of its last session are kept (a state change
    # while logged out logs it in to them); its totals stay
    track = s.agents["A1"]
    assert (track.settled, track.changes, track.plan, track.revisions) == (
        Status(False, queues=("Q1", "Q2")),
        [],
        [],
        {},
    )


def test_chat_concurrency_from_active_contacts():
    E = AgentEvents()
    s = AgentState(INTERVAL, LATENESS)
    feed(
        s,
        [
            E.login(0, queues=["chat"]),
            E.state(0, "available"),
            E.state(100, "on_contact", active=1),
            E.state(200, "on_contact", active=3),  # same state, more chats: only the number changes
            E.state(500, "acw", active=2),
            E.state(600, "available"),  # active 0 (absent: 0 outside on_contact/acw)
            E.state(700, "on_contact"),  # absent in on_contact: 1
            E.logout(800),
        ],
    )
    c = close_all(s)[("A1", 0)]
    # contact-time: 100 s x1 + 300 s x3 + 100 s x2 + 100 s x1 = 1300 s over handling 100+300+100+100 = 600 s
    assert c.contact_ms == s_ms(1300) and c.on_contact_ms + c.acw_ms == s_ms(600)
    assert concurrency(c) == pytest.approx(1300 / 600)


def test_state_change_while_logged_out_logs_in_and_second_login_replaces_queues():
    E = AgentEvents()
    s = AgentState(INTERVAL, LATENESS)
    feed(
        s,
        [
            E.state(0, "available"),  # no login seen: logged in from here, no queues known
            E.login(100, queues=["Q1"]),  # already logged in: queues replaced, state kept (available)
            E.login(200, queues=["Q2"]),
        ],
    )
    assert s.agents_by_state() == {"Q2": {"available": 1, "on_contact": 0, "acw": 0, "not_ready": 0, "logged_in": 1}}
    feed(s, [E.logout(300), E.state(400, "not_ready")])  # logged in again, with the last session's queues
    assert s.agents_by_state() == {"Q2": {"available": 0, "on_contact": 0, "acw": 0, "not_ready": 1, "logged_in": 1}}
    c = close_all(s, BASE_MS + s_ms(1800 + LATENESS))[("A1", 0)]
    # logged in 0..300 (available) and 400..900 (not ready, unspecified)
    assert c == counts(
        logged_in_ms=800,
        available_ms=300,
        not_ready_ms=500,
        not_ready_by_reason_ms={"unspecified": 500},
        queues=["Q1", "Q2"],
    )


def test_agents_by_state_now_per_queue():
    E = AgentEvents()
    s = AgentState(INTERVAL, LATENESS)
    feed(
        s,
        [
            E.login(0, "A1", ["Q1", "Q2"]),
            E.state(1, "available", "A1"),
            E.login(0, "A2", ["Q1"]),
            E.state(1, "on_contact", "A2"),
            E.state(5, "acw", "A2"),
            E.login(0, "A3", ["Q2"]),
            E.state(2, "not_ready", "A3", reason="lunch"),
            E.login(0, "A4", ["Q1"]),
            E.logout(3, "A4"),
        ],
    )
    zero = {"available": 0, "on_contact": 0, "acw": 0, "not_ready": 0, "logged_in": 0}
    assert s.agents_by_state() == {
        "Q1": {**zero, "available": 1, "acw": 1, "logged_in": 2},
        "Q2": {**zero, "available": 1, "not_ready": 1, "logged_in": 2},
    }


# ---- schedules and adherence ------------------------------------------------------------------------------


def test_adherence_per_activity():
    E = AgentEvents()
    s = AgentState(INTERVAL, LATENESS)
    feed(
        s,
        [
            E.plan(0, 600, "contact_handling", published=-3600),
            E.plan(600, 900, "break", published=-3600),
            E.login(60, queues=["Q1"]),
            E.state(60, "available"),  # late start: 0..60 not adherent
            E.state(300, "not_ready", reason="personal"),  # 300..400 not ready in contact handling: not adherent
            E.state(400, "on_contact"),  # adherent until 600; 600..660 on contact during the break: not adherent
            E.state(660, "not_ready", reason="break"),  # adherent (any not-ready reason would do)
            E.logout(800),  # logged out during a break: adherent
        ],
    )
    c = close_all(s)[("A1", 0)]
    # scheduled 900; adherent (300-60) + (600-400) + (900-660) = 240 + 200 + 240 = 680
    assert (c.scheduled_ms, c.adherent_ms) == (s_ms(900), s_ms(680))
    assert adherence(c) == pytest.approx(680 / 900)
    assert {q: (x.scheduled_ms, x.adherent_ms) for q, x in s.queue_totals.items()} == {
        "Q1": (s_ms(840), s_ms(680))
    }  # 0..60: no session yet, so no queue to attribute it to


def test_schedule_replaced_mid_shift():
    E = AgentEvents()
    # version 1, published before the shift: contact handling 0..3600
    # version 2, published at 1000 s: a break 1800..2100, and the shift ends early ("off" 3000..3600)
    # version 1 again for 3300..3600 must not win over version 2 whatever the order of arrival
    events = [
        E.plan(0, 3600, "contact_handling", version=1, published=-600),
        E.login(0, queues=["Q1"]),
        E.state(0, "available"),
        E.plan(1800, 2100, "break", version=2, published=1000, schedule="S1-v2"),
        E.plan(3000, 3600, "off", version=2, published=1000, schedule="S1-v2"),
        E.plan(3300, 3600, "training", version=1, published=1000),
        E.state(1800, "not_ready", reason="break"),
        E.state(2100, "available"),
        E.logout(3000),
    ]
    forward = close_all(_fed(events))
    backward = close_all(_fed(list(reversed(events))))
    assert forward == backward
    by_interval = {start: (c.scheduled_ms // 1000, c.adherent_ms // 1000) for (_, start), c in forward.items()}
    # [0, 900), [900, 1800): contact handling, available all along
    # [1800, 2700): break 1800..2100 taken (adherent), then contact handling, available
    # [2700, 3600): contact handling 2700..3000 (adherent); off 3000..3600: not scheduled
    assert by_interval == {0: (900, 900), 900: (900, 900), 1800: (900, 900), 2700: (300, 300)}


def _fed(events) -> AgentState:
    # the reversed feed spans the whole shift: a lateness as long keeps every event in time (order-independence
    # holds within the allowed lateness; beyond it an event is late, in one batch as in many)
    s = AgentState(INTERVAL, 3600)
    assert set(feed(s, events)) == {None}
    return s


def test_login_across_midnight_in_a_queue_time_zone():
    """A night shift in New York (UTC-5 in January): 22:00 local on Dec 31 to 06:00 local on Jan 1, with a
    scheduled lunch 01:30-02:00 local. Events carry local offsets; intervals are hourly, aligned in UTC (and so
    also on the local hour, the offset being whole hours)."""
    E = AgentEvents(tz=ZoneInfo("America/New_York"))
    s = AgentState(3600, LATENESS)
    local_midnight = 5 * 3600  # 2024-01-01T00:00-05:00 = BASE + 5 h
    start, end = local_midnight - 2 * 3600, local_midnight + 6 * 3600
    feed(
        s,
        [
            E.plan(start, end, "contact_handling", published=start - 3600),
            E.plan(local_midnight + 5400, local_midnight + 7200, "lunch", version=2, published=start - 3600),
            E.login(start, queues=["night"]),
            E.state(start, "available"),
            E.state(local_midnight + 5400, "not_ready", reason="lunch"),
            E.state(local_midnight + 7200, "available"),
            E.logout(end),
        ],
    )
    assert e_time_offset(E.login(0)) == "-05:00"
    finals = close_all(s)
    assert sorted(start for _, start in finals) == list(range(start, end, 3600))  # 8 whole hours, no gap
    total = AgentCounts()
    for c in finals.values():
        total.add(c)
    assert total.logged_in_ms == s_ms(8 * 3600) == total.scheduled_ms == total.adherent_ms
    assert total.not_ready_by_reason_ms == {"lunch": s_ms(1800)}
    # the hour after local midnight is whole, and the lunch is in the hour starting at 01:00 local
    assert finals[("A1", local_midnight)].available_ms == s_ms(3600)
    assert finals[("A1", local_midnight + 3600)].not_ready_ms == s_ms(1800)


def e_time_offset(e: ev.Event) -> str:
    return e.time.isoformat()[-6:]


# ---- duplicates, lateness, revisions ----------------------------------------------------------------------


def test_duplicates_are_dropped_and_late_events_not_applied():
    E = AgentEvents()
    s = AgentState(INTERVAL, LATENESS)
    login, avail = E.login(0), E.state(10, "available")
    plan = E.plan(0, 1800)
    assert feed(s, [login, avail, plan, login, plan]) == [None, None, None, DUPLICATE, DUPLICATE]
    s.observe_time(BASE_MS + s_ms(INTERVAL + LATENESS))  # interval 0 becomes final
    finals = s.advance()
    assert [(u.start - BASE_S, u.counts.logged_in_ms) for u in finals] == [(0, s_ms(900))]
    assert s.horizon == BASE_MS + s_ms(INTERVAL)
    # the login is now settled: re-delivered it is late, and so is anything stamped in interval 0
    assert feed(s, [login, E.state(899, "on_contact"), E.plan(800, 1000, "break")]) == [LATE, LATE, LATE]
    # the plan entry still runs into the open interval, so its id is still known
    assert s.apply(plan) == DUPLICATE
    assert s.apply(E.state(900, "on_contact")) is None  # interval 1 is open
    c = close_all(s, BASE_MS + s_ms(2 * INTERVAL + LATENESS))[("A1", 900)]
    assert c == counts(
        logged_in_ms=900, on_contact_ms=900, contact_ms=900, scheduled_ms=900, adherent_ms=900, queues=["Q1"]
    )


def test_provisional_revisions_then_final_with_a_higher_revision():
    E = AgentEvents()
    s = AgentState(INTERVAL, LATENESS)
    feed(s, [E.login(0), E.state(0, "available"), E.state(600, "on_contact")])
    first = s.provisional(wall_now=100.0, every=5.0)
    # counted up to the watermark (600 s): available 600 s
    assert [(u.start - BASE_S, u.revision, u.final, u.counts.available_ms) for u in first] == [(0, 1, False, 600_000)]
    assert s.provisional(wall_now=200.0, every=5.0) == []  # nothing new since
    feed(s, [E.state(700, "acw")])
    assert s.provisional(wall_now=102.0, every=5.0) == []  # too soon
    second = s.provisional(wall_now=106.0, every=5.0)
    assert [(u.revision, u.counts.on_contact_ms) for u in second] == [(2, 100_000)]
    final = close_all_updates(s, BASE_MS + s_ms(INTERVAL + LATENESS))
    assert [(u.start - BASE_S, u.revision, u.final) for u in final] == [(0, 3, True)]
    assert final[0].counts.on_contact_ms == s_ms(100) and final[0].counts.acw_ms == s_ms(200)


def close_all_updates(state: AgentState, at_ms: int):
    state.observe_time(at_ms)
    return state.advance()


def test_snapshot_restore_keeps_everything():
    E = AgentEvents()
    s = AgentState(INTERVAL, LATENESS)
    feed(s, [E.login(0, queues=["Q1"]), E.state(10, "available"), E.plan(0, 3600), E.state(950, "acw")])
    close_all(s, BASE_MS + s_ms(INTERVAL + LATENESS))
    s.provisional(1.0, 0.0)
    r = AgentState(INTERVAL, LATENESS)
    r.restore(s.snapshot())
    assert r.snapshot() == s.snapshot()
    assert r.agents_by_state() == s.agents_by_state()
    tail = [E.state(1200, "not_ready", reason="x"), E.logout(1500)]
    assert feed(r, tail) == feed(s, tail)
    assert close_all(r) == close_all(s)
    assert r.totals == s.totals and r.queue_totals == s.queue_totals


def test_an_agent_stamped_ahead_closes_only_its_own_intervals():
    """One desktop's clock an hour ahead (or a made-up agent stamped later than the real traffic) must not make
    the other agents' events late: each agent's intervals close on its own clock, or on the heartbeat."""
    E = AgentEvents()
    s = AgentState(INTERVAL, LATENESS)
    feed(s, [E.login(0, agent="A1"), E.state(0, "available", agent="A1")])
    assert feed(s, [E.login(3600, agent="AHEAD"), E.state(3700, "available", agent="AHEAD")]) == [None, None]
    finals = s.advance()
    # AHEAD's own intervals before its clock's horizon are final (it was logged out in them: nothing to report)
    assert [u.agent_id for u in finals] == []
    # A1's interval 0 is still open: its events there are applied, not late
    assert feed(s, [E.state(600, "on_contact", agent="A1"), E.state(800, "acw", agent="A1")]) == [None, None]
    assert s.advance() == []
    # A1's own clock passing the end of interval 0 by the lateness closes it, with every event counted
    feed(s, [E.state(INTERVAL + LATENESS, "available", agent="A1")])
    assert close_all(s, BASE_MS + s_ms(INTERVAL + LATENESS))[("A1", 0)] == counts(
        logged_in_ms=900, available_ms=600, on_contact_ms=200, acw_ms=100, contact_ms=300, queues=["Q1"]
    )
    # and AHEAD's stamped-ahead events are still applied to AHEAD alone
    assert s.agents["AHEAD"].now.state == "available"


def test_a_forgotten_agents_old_events_stay_late_and_its_changes_restore():
    """A logged-out agent with nothing left to report is forgotten once the heartbeat's horizon passed it; a
    re-delivery of its old events must still be late (not counted again), also after a restore from a
    checkpoint and the changes since (which must say that it is gone)."""
    E = AgentEvents()
    s = AgentState(INTERVAL, LATENESS)
    r = AgentState(INTERVAL, LATENESS)
    # a session without queues: once logged out, nothing of it is kept (with queues, they would be)
    feed(s, [E.login(0, agent="A9", queues=()), E.state(0, "available", agent="A9"), E.logout(300, agent="A9")])
    whole = s.snapshot()
    feed(s, [E.login(100, agent="B1")])
    finals = close_all(s, BASE_MS + s_ms(INTERVAL + LATENESS))
    assert finals[("A9", 0)] == counts(logged_in_ms=300, available_ms=300)
    assert "A9" not in s.agents  # forgotten
    r.restore(whole, [s.changes()])
    assert "A9" not in r.agents and r.snapshot() == s.snapshot()
    for state in (s, r):
        assert feed(state, [E.login(0, agent="A9"), E.state(200, "on_contact", agent="A9")]) == [LATE, LATE]


def test_changes_after_one_agent_moved_hold_that_agent_and_its_totals_alone():
    """A checkpoint of changes costs what changed, not the center: after a batch of one agent of many (its own clock
    closing its interval), the changes hold that agent, its totals and its queue's adherence, none of the others';
    laid over the whole checkpoint they still give the state back."""
    E = AgentEvents()
    s = AgentState(INTERVAL, LATENESS)
    agents = [f"A{i}" for i in range(20)]
    for a in agents:
        feed(s, [E.plan(0, 2 * INTERVAL, agent=a)])
        feed(s, [E.login(0, agent=a, queues=[f"Q{a}"]), E.state(10, "available", agent=a)])
        feed(s, [E.state(INTERVAL + LATENESS, "on_contact", agent=a)])  # each closes its interval 0
    assert len(s.advance()) == len(agents)
    whole = s.snapshot()
    feed(s, [E.state(2 * INTERVAL + LATENESS, "acw", agent="A7")])  # closes A7's interval 1 alone
    assert [u.agent_id for u in s.advance()] == ["A7"]
    changes = s.changes()
    stored = CODEC.decode(changes)
    assert list(stored.agents) == ["A7"]
    assert list(stored.totals) == ["A7"]
    assert list(stored.queue_totals) == ["QA7"]
    assert len(stored.totals) < len(CODEC.decode(whole).totals) == len(agents)
    r = AgentState(INTERVAL, LATENESS)
    r.restore(whole, [changes])
    assert r.snapshot() == s.snapshot()
    assert r.totals["A7"] == s.totals["A7"] and r.totals["A7"].on_contact_ms == s_ms(INTERVAL - LATENESS)


# ---- processor and collector ------------------------------------------------------------------------------


A1 = partition_of(b"A1", load_settings(broker_url="x:1").partitions)  # the partition agent A1's events are on


def messages(events, partition: int = A1, first_offset: int = 0) -> list[Message]:
    return [Message(TOPIC, partition, first_offset + i, b"A1", msgspec.json.encode(e)) for i, e in enumerate(events)]


def processor(**overrides) -> tuple[AgentProcessor, PipelineStats]:
    stats = PipelineStats()
    return AgentProcessor(load_settings(broker_url="x:1", **overrides), stats), stats


def day(E: AgentEvents) -> list[ev.Event]:
    return [
        E.plan(0, 1800, published=-60),
        E.login(0, queues=["Q1"]),
        E.state(0, "available"),
        E.state(300, "on_contact"),
        E.state(500, "acw"),
        E.state(560, "not_ready", reason="break"),
        E.state(1000, "available"),
        E.logout(1700),
        E.heartbeat(1800 + 900 + LATENESS),
    ]


def test_processor_publishes_final_agent_records_and_a_checkpoint():
    p, stats = processor()
    out = p.process(messages(day(AgentEvents())), lambda part: None, wall_now=0.0)
    finals = [r for r in out.records if r.final]
    assert all(isinstance(r, AgentKpiRecord) and r.kind == "agent" for r in out.records)
    assert [(r.agent_id, r.interval_start.isoformat(), r.logged_in_seconds) for r in finals] == [
        ("A1", "2024-01-01T00:00:00+00:00", 900.0),
        ("A1", "2024-01-01T00:15:00+00:00", 800.0),
    ]
    r0 = finals[0]
    # 0..900: available 300 + 340, on contact 200, ACW 60, break 340 (560..900)
    assert (r0.available_seconds, r0.on_contact_seconds, r0.acw_seconds, r0.not_ready_seconds) == (300, 200, 60, 340)
    assert r0.occupancy == pytest.approx(260 / (260 + 300)) and r0.utilization == pytest.approx(260 / 900)
    assert r0.adherence == pytest.approx((900 - 340) / 900)  # the break was not scheduled
    assert r0.not_ready_seconds_by_reason == {"break": 340.0}
    assert r0.key == "agent|A1|2024-01-01T00:00:00+00:00"
    assert decode_agent_record(msgspec.json.encode(r0)) == r0
    assert set(p.checkpoint()) == {A1}
    assert stats.events[(TOPIC, "schedule.activity_planned")] == 1


def test_processor_restart_from_checkpoint_with_redelivery_counts_nothing_twice():
    events = day(AgentEvents())
    whole, _ = processor()
    expected = [r for r in whole.process(messages(events), lambda part: None).records if r.final]
    first, _ = processor()
    out = first.process(messages(events[:5]), lambda part: None)
    checkpoint = [first.checkpoint()[A1].whole()]
    again, stats = processor()
    out2 = again.process(messages(events[2:], first_offset=2), lambda part: checkpoint)
    got = [r for r in out.records + out2.records if r.final]
    assert [msgspec.structs.replace(r, revision=0) for r in got] == [
        msgspec.structs.replace(r, revision=0) for r in expected
    ]
    assert sum(stats.duplicates.values()) == 0  # skipped by offset, not even seen as duplicates


def test_processor_reports_late_duplicate_future_and_invalid_events():
    E = AgentEvents()
    p, stats = processor()
    events = day(E)
    p.process(messages(events), lambda part: None)
    late = E.state(10, "available")
    bad = (
        b'{"type": "schedule.activity_planned", "event_id": "x", "time": "2024-01-01T00:00:00Z", '
        b'"agent_id": "A1", "schedule_id": "s", "version": 1, "activity": "nap", '
        b'"start": "2024-01-01T00:00:00Z", "end": "2024-01-01T01:00:00Z"}'
    )
    future = E.state(20 * 365 * 24 * 3600, "available")  # years ahead of the wall clock
    out = p.process(
        messages([late, events[1]], first_offset=len(events))  # offsets follow on: the next ones of the partition
        + [Message(TOPIC, A1, len(events) + 2, b"A1", bad)]
        + messages([future], first_offset=len(events) + 3),
        lambda part: None,
    )
    assert [d.reason for d in out.late] == ["late", "late"]  # the login is settled by now: late, not duplicate
    assert p.late == {"agent.state_changed": 1, "agent.logged_in": 1}
    assert sorted(d.reason for d in out.dead_letters) == ["future_event_time", "invalid_field"]
    assert stats.rejected[(TOPIC, "invalid_field")] == 1


def test_collector_exports_queue_series_always_and_agent_series_when_enabled():
    for enabled in (True, False):
        p, _ = processor(export_agent_metrics=enabled)
        E = AgentEvents()
        events = day(E) + [E.login(2700, "A2", ["Q1", "Q2"])]
        p.process(keyed_messages(TOPIC, events, p.settings.partitions), lambda part: None)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(AgentCollector(p))
        get = registry.get_sample_value
        assert get("cc_queue_agents", {"queue": "Q1", "state": "logged_in"}) == 1  # A2 (A1 logged out)
        assert get("cc_queue_agents", {"queue": "Q2", "state": "not_ready"}) == 1
        assert get("cc_queue_agents", {"queue": "Q1", "state": "after_contact_work"}) == 0
        # A1's scheduled 0..1800, adherent all but the break 560..1000 (440 s) and logged out 1700..1800
        assert get("cc_queue_agent_scheduled_seconds_total", {"queue": "Q1"}) == 1800
        assert get("cc_queue_agent_adherent_seconds_total", {"queue": "Q1"}) == 1800 - 440 - 100
        a1 = get("cc_agent_state_seconds_total", {"agent": "A1", "state": "after_contact_work"})
        reason = get("cc_agent_not_ready_seconds_total", {"agent": "A1", "reason": "break"})
        logged = get("cc_agent_logged_in_seconds_total", {"agent": "A1"})
        if enabled:
            assert (a1, reason, logged) == (60, 440, 1700)
            assert get("cc_agent_adherent_seconds_total", {"agent": "A1"}) == 1800 - 440 - 100
        else:
            assert (a1, reason, logged) == (None, None, None)


def test_a_checkpoint_of_another_kind_or_version_is_refused_with_a_sentence():
    from pipeline.state.codec import CheckpointError
    from pipeline.state.queues import QueueState

    queue_state = QueueState(INTERVAL, LATENESS, 3600, lambda q: None)
    s = AgentState(INTERVAL, LATENESS)
    with pytest.raises(CheckpointError, match="not a checkpoint of the agent state"):
        s.restore(queue_state.snapshot())
    whole = AgentState(INTERVAL, LATENESS).snapshot()
    with pytest.raises(CheckpointError, match="agent state checkpoint version 2: this release reads version 3 only"):
        s.restore(whole[:4] + (2).to_bytes(2, "little") + whole[6:])
