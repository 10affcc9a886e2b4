"""Unit tests of QueueState (no broker): hand-built scenarios with exact expected counts.

Times are seconds after BASE (2024-01-01T00:00Z, aligned to the 15-minute intervals used here), so
interval 0 is [0 s, 900 s) and interval 1 is [900 s, 1800 s). Durations are kept as integer milliseconds.
"""

from __future__ import annotations

import random

import msgspec
import pytest
from eventlog import BASE_MS, BASE_S, Events

from pipeline.core.settings import QueueSettings
from pipeline.kpis.counts import (
    QueueCounts,
    average_handle_time,
    average_speed_of_answer,
    service_level,
)
from pipeline.state.codec import CheckpointError
from pipeline.state.queues import DUPLICATE, IMPOSSIBLE, LATE, QueueState

INTERVAL = 900  # s
LATENESS = 120  # s
TIMEOUT = 3600  # s
I0 = BASE_S  # start of interval 0, epoch seconds
I1 = BASE_S + INTERVAL
FAR = BASE_MS + 10 * 24 * 3600 * 1000  # a watermark far in the future (10 days)


def make_state(threshold_of=lambda q: 20.0, interval=INTERVAL, lateness=LATENESS, timeout=TIMEOUT):
    return QueueState(
        interval, lateness, timeout, lambda q: QueueSettings(service_level_threshold_seconds=threshold_of(q))
    )


def feed(state: QueueState, events) -> list:
    return [state.apply(e) for e in events]


def wm(at: float) -> int:
    """A watermark `at` seconds after BASE, in epoch ms."""
    return BASE_MS + round(at * 1000)


# The counts these hand-written cases check. The wait histogram, longest wait, time to abandon, short
# abandons and holds are checked by tests/test_kpi_properties.py against the batch computation, and by the
# cases at the end of this file.
SCOPE = (
    "offered",
    "answered",
    "abandoned",
    "answered_within_threshold",
    "abandoned_within_threshold",
    "expired",
    "answer_wait_ms",
    "handled",
    "handle_ms",
    "hold_ms",
    "acw_ms",
    "transferred_out",
)


def scoped(c: QueueCounts) -> QueueCounts:
    return QueueCounts(**{name: getattr(c, name) for name in SCOPE})


def close_all(state: QueueState, scope: bool = True) -> dict[tuple[str, str, int], QueueCounts]:
    """Push the watermark far ahead and collect every final interval: (queue, channel, start s) -> counts."""
    state.observe_time(FAR)
    out = {}
    for u in state.advance():
        assert u.final
        out[(u.queue_id, u.channel, u.start)] = scoped(u.counts) if scope else u.counts
    return out


def qc(**kw) -> QueueCounts:
    return QueueCounts(**kw)


# ---- outcome counts (arrival interval) ----------------------------------------------------------------


def test_service_level_wait_equal_to_threshold_counts_as_within():
    E = Events()
    s = make_state()  # threshold 20 s = 20000 ms
    results = feed(
        s,
        [
            E.offered(10, contact="c1"),
            E.answered(30, contact="c1"),  # wait 20.000 s == threshold -> within
            E.offered(100, contact="c2"),
            E.answered(120.001, contact="c2"),  # wait 20.001 s -> outside
            E.offered(200, contact="c3"),
            E.answered(200, contact="c3"),  # wait 0 -> within
        ],
    )
    assert results == [None] * 6
    finals = close_all(s)
    # answer_wait_ms = 20000 + 20001 + 0 = 40001
    expected = qc(offered=3, answered=3, answered_within_threshold=2, answer_wait_ms=40001)
    assert finals == {("Q1", "voice", I0): expected}
    assert scoped(s.totals[("Q1", "voice")]) == expected
    assert service_level(expected) == pytest.approx(2 / 3)  # 2 within / (3 answered + 0 abandoned)


def test_abandon_inside_and_outside_threshold():
    E = Events()
    s = make_state()  # threshold 20 s
    feed(
        s,
        [
            E.offered(0, contact="c1"),
            E.abandoned(20, contact="c1"),  # wait 20 s == threshold -> within
            E.offered(50, contact="c2"),
            E.abandoned(75, contact="c2"),  # wait 25 s -> outside
            E.offered(100, contact="c3"),
            E.answered(105, contact="c3"),  # answered after 5 s -> within
        ],
    )
    finals = close_all(s)
    expected = qc(
        offered=3,
        answered=1,
        abandoned=2,
        answered_within_threshold=1,
        abandoned_within_threshold=1,
        answer_wait_ms=5000,
    )
    assert finals == {("Q1", "voice", I0): expected}
    # "abandons count against": 1 answered within / (1 answered + 2 abandoned)
    assert service_level(expected) == pytest.approx(1 / 3)


def test_asa_is_mean_wait_of_answered_contacts_only():
    E = Events()
    s = make_state()
    feed(
        s,
        [
            E.offered(0, contact="c1"),
            E.answered(5, contact="c1"),  # 5 s
            E.offered(10, contact="c2"),
            E.answered(25, contact="c2"),  # 15 s
            E.offered(20, contact="c3"),
            E.answered(60, contact="c3"),  # 40 s (outside threshold)
            E.offered(30, contact="c4"),
            E.abandoned(130, contact="c4"),  # abandoned: not in ASA
        ],
    )
    finals = close_all(s)
    c = finals[("Q1", "voice", I0)]
    # 5000 + 15000 + 40000 = 60000 ms over 3 answered -> ASA 20 s
    assert c == qc(offered=4, answered=3, abandoned=1, answered_within_threshold=2, answer_wait_ms=60000)
    assert average_speed_of_answer(c) == pytest.approx(20.0)


# ---- handling counts (completion interval) --------------------------------------------------------------


def test_aht_with_holds():
    E = Events()
    s = make_state()
    feed(
        s,
        [
            # c1: answered 10, holds 40..60 (20 s) and 100..130 (30 s), ended 310, ACW ended 340
            E.offered(0, contact="c1"),
            E.answered(10, contact="c1"),
            E.hold_started(40, contact="c1"),
            E.hold_ended(60, contact="c1"),
            E.hold_started(100, contact="c1"),
            E.hold_ended(130, contact="c1"),
            E.ended(310, contact="c1"),
            E.acw_ended(340, contact="c1"),
            # c2: answered at once at 400, ended 460, ACW ended 470, no hold
            E.offered(400, contact="c2"),
            E.answered(400, contact="c2"),
            E.ended(460, contact="c2"),
            E.acw_ended(470, contact="c2"),
        ],
    )
    unscoped = close_all(s, scope=False)[("Q1", "voice", I0)]
    c = scoped(unscoped)
    # c1: handle = 340 - 10 = 330 s; hold = 20 + 30 = 50 s; ACW = 340 - 310 = 30 s
    # c2: handle = 470 - 400 = 70 s; hold 0; ACW = 470 - 460 = 10 s
    assert c == qc(
        offered=2,
        answered=2,
        answered_within_threshold=2,
        answer_wait_ms=10000 + 0,
        handled=2,
        handle_ms=330000 + 70000,
        hold_ms=50000,
        acw_ms=30000 + 10000,
    )
    assert average_handle_time(c) == pytest.approx(200.0)  # (330 + 70) / 2
    # talk = handle - hold - acw = 400000 - 50000 - 40000 = 310000 = (310-10-50) + (460-400) s
    assert unscoped.talk_ms == 310000
    assert unscoped.held == 1  # c1 only


def test_transfer_counts_transferred_out_and_a_new_leg_in_the_target_queue():
    E = Events()
    s = make_state(threshold_of={"Q1": 20.0, "Q2": 30.0}.__getitem__)
    feed(
        s,
        [
            E.offered(0, "Q1", "c1"),
            E.answered(5, "Q1", "c1"),
            E.transferred(65, "Q1", "c1", to_queue="Q2"),
            E.acw_ended(75, "Q1", "c1"),
            E.offered(66, "Q2", "c1"),
            E.answered(70, "Q2", "c1"),
            E.ended(130, "Q2", "c1"),
            E.acw_ended(140, "Q2", "c1"),
        ],
    )
    finals = close_all(s)
    assert finals == {
        # Q1: wait 5 s; handle 75 - 5 = 70 s; ACW 75 - 65 = 10 s; transferred out
        ("Q1", "voice", I0): qc(
            offered=1,
            answered=1,
            answered_within_threshold=1,
            answer_wait_ms=5000,
            handled=1,
            handle_ms=70000,
            acw_ms=10000,
            transferred_out=1,
        ),
        # Q2: a new leg: wait 70 - 66 = 4 s; handle 140 - 70 = 70 s; ACW 140 - 130 = 10 s; ended, not transferred
        ("Q2", "voice", I0): qc(
            offered=1,
            answered=1,
            answered_within_threshold=1,
            answer_wait_ms=4000,
            handled=1,
            handle_ms=70000,
            acw_ms=10000,
        ),
    }


def test_outcome_in_arrival_interval_handling_in_completion_interval():
    E = Events()
    s = make_state()
    feed(
        s,
        [
            # arrives 890 (interval 0), answered 895, ended 950, ACW ended 1000 (interval 1)
            E.offered(890, contact="c1"),
            E.answered(895, contact="c1"),
            E.ended(950, contact="c1"),
            E.acw_ended(1000, contact="c1"),
            # arrives 899.5 (interval 0), answered 910 (interval 1): still an interval-0 answer, wait 10.5 s
            E.offered(899.5, contact="c2"),
            E.answered(910, contact="c2"),
            E.ended(1000, contact="c2"),
            E.acw_ended(1000, contact="c2"),
        ],
    )
    finals = close_all(s)
    assert finals == {
        ("Q1", "voice", I0): qc(offered=2, answered=2, answered_within_threshold=2, answer_wait_ms=5000 + 10500),
        # c1: handle 1000 - 895 = 105 s, ACW 50 s; c2: handle 1000 - 910 = 90 s, ACW 0
        ("Q1", "voice", I1): qc(handled=2, handle_ms=105000 + 90000, acw_ms=50000),
    }


# ---- when an interval is final ------------------------------------------------------------------------


def test_interval_final_only_once_watermark_reaches_end_plus_lateness():
    E = Events()
    s = make_state()
    feed(s, [E.offered(10, contact="c1"), E.abandoned(15, contact="c1")])
    # interval 0 ends at 900 s; + 120 s lateness = 1020 s
    s.observe_time(wm(1019.999))
    assert s.advance() == []
    s.observe_time(wm(1020))
    [u] = s.advance()
    assert (u.queue_id, u.channel, u.start, u.final, u.revision) == ("Q1", "voice", I0, True, 1)
    assert u.rules.service_level_threshold_seconds == 20.0
    assert scoped(u.counts) == qc(offered=1, abandoned=1, abandoned_within_threshold=1)
    assert s.advance() == []  # closed once only


def test_final_revision_follows_provisional_revisions_and_watermark_from_events():
    E = Events()
    s = make_state()
    feed(s, [E.offered(10, contact="c1"), E.answered(12, contact="c1")])
    [p] = s.provisional(wall_now=1000.0, every=0)
    assert (p.start, p.revision, p.final) == (I0, 1, False)
    assert scoped(p.counts) == qc(offered=1, answered=1, answered_within_threshold=1, answer_wait_ms=2000)
    assert s.provisional(wall_now=1001.0, every=0) == []  # unchanged since: nothing to publish
    # an event of interval 1 at 1020 s moves the watermark to interval 0's end + lateness
    assert s.apply(E.offered(1020, contact="c2")) is None
    finals = s.advance()
    assert [(u.start, u.revision, u.final) for u in finals] == [(I0, 2, True)]
    assert scoped(finals[0].counts) == scoped(p.counts)


def test_interval_stays_open_while_a_contact_that_arrived_in_it_or_earlier_waits():
    E = Events()
    s = make_state()
    feed(
        s,
        [
            E.offered(10, contact="c1"),  # waits
            E.offered(20, contact="c2"),
            E.abandoned(25, contact="c2"),
            E.offered(950, contact="c3"),
            E.abandoned(955, contact="c3"),  # interval 1; c1 arrived earlier
        ],
    )
    s.observe_time(wm(2000))  # past the end + lateness of intervals 0 (1020 s) and 1 (1920 s)
    assert s.advance() == []
    assert list(s.waiting()) == [("Q1", "voice", 1, 1990.0)]
    # c1's answer (wait 1980 s) still lands in interval 0: not late
    assert s.apply(E.answered(1990, contact="c1")) is None
    finals = {u.start: scoped(u.counts) for u in s.advance()}
    assert finals == {
        I0: qc(offered=2, answered=1, abandoned=1, abandoned_within_threshold=1, answer_wait_ms=1980000),
        I1: qc(offered=1, abandoned=1, abandoned_within_threshold=1),
    }


def test_event_in_a_final_interval_is_late_and_changes_nothing():
    E = Events()
    s = make_state()
    feed(s, [E.offered(10, contact="c1"), E.abandoned(15, contact="c1")])
    s.observe_time(wm(1020))
    assert len(s.advance()) == 1
    before = s.snapshot()
    totals_before = {k: QueueCounts(**v.as_dict()) for k, v in s.totals.items()}
    assert s.apply(E.offered(100, contact="c2")) == LATE
    assert s.apply(E.answered(899.999, contact="c1")) == LATE
    assert s.snapshot() == before
    assert s.totals == totals_before
    assert s.advance() == []


def test_event_in_an_open_interval_that_would_change_a_final_interval_is_late():
    E = Events()
    s = make_state()
    # c1: handling complete except a hold that has not ended; all in interval 0
    feed(
        s,
        [
            E.offered(10, contact="c1"),
            E.answered(20, contact="c1"),
            E.hold_started(30, contact="c1"),
            E.ended(100, contact="c1"),
            E.acw_ended(200, contact="c1"),
        ],
    )
    s.observe_time(wm(1020))
    [u] = s.advance()  # c1 is not waiting (answered), so interval 0 closes without its handling
    assert scoped(u.counts) == qc(offered=1, answered=1, answered_within_threshold=1, answer_wait_ms=10000)
    before = s.snapshot()
    # a hold end stamped in interval 1 (open) would complete the handling, which belongs to interval 0
    assert s.apply(E.hold_ended(950, contact="c1")) == LATE
    assert s.snapshot() == before


# ---- duplicates and impossible sequences ------------------------------------------------------------


def test_duplicates_are_reported_and_change_nothing():
    E = Events()
    s = make_state()
    evs = [
        E.offered(10, contact="c1"),
        E.answered(15, contact="c1"),
        E.ended(60, contact="c1"),
        E.acw_ended(70, contact="c1"),
    ]
    assert feed(s, evs) == [None] * 4
    before = s.snapshot()
    assert feed(s, evs) == [DUPLICATE] * 4
    # same event id with other content: still the same event
    import msgspec

    assert s.apply(msgspec.structs.replace(evs[1], time=evs[1].time.replace(second=40))) == DUPLICATE
    assert s.snapshot() == before
    assert close_all(s) == {
        ("Q1", "voice", I0): qc(
            offered=1,
            answered=1,
            answered_within_threshold=1,
            answer_wait_ms=5000,
            handled=1,
            handle_ms=55000,
            acw_ms=10000,
        )
    }


def test_answered_twice_is_impossible_and_changes_nothing():
    E = Events()
    s = make_state()
    feed(s, [E.offered(10, contact="c1"), E.answered(15, contact="c1")])
    before = s.snapshot()
    assert s.apply(E.answered(18, contact="c1", agent="a2")) == IMPOSSIBLE
    assert s.apply(E.abandoned(18, contact="c1")) == IMPOSSIBLE  # abandoned after an answer
    assert s.apply(E.offered(11, contact="c1")) == IMPOSSIBLE  # offered twice
    assert s.apply(E.ended(20, contact="c1", channel="chat")) == IMPOSSIBLE  # other channel, same leg
    assert s.snapshot() == before
    assert close_all(s) == {
        ("Q1", "voice", I0): qc(offered=1, answered=1, answered_within_threshold=1, answer_wait_ms=5000)
    }


def test_answered_before_offered_in_event_time_is_impossible():
    E = Events()
    # processed in event order reversed: offered (100 s) first, then an answer stamped 90 s
    s = make_state()
    assert s.apply(E.offered(100, contact="c1")) is None
    before = s.snapshot()
    assert s.apply(E.answered(90, contact="c1")) == IMPOSSIBLE
    assert s.snapshot() == before
    assert list(s.waiting()) == [("Q1", "voice", 1, 0.0)]

    # processed answer first: the answer alone is not contradictory yet; the offered that follows is
    s = make_state()
    assert s.apply(E.answered(90, contact="c2")) is None
    before = s.snapshot()
    assert s.apply(E.offered(100, contact="c2")) == IMPOSSIBLE
    assert s.snapshot() == before


def make_skewed_state(skew: float) -> QueueState:
    return QueueState(
        INTERVAL, LATENESS, TIMEOUT, lambda q: QueueSettings(service_level_threshold_seconds=20.0), (), skew
    )


@pytest.mark.parametrize("answer_first", [False, True])
def test_an_outcome_stamped_seconds_before_its_offer_is_moved_to_the_offer_time_and_counted(answer_first):
    """Two clocks at the source, a second or two apart (issue 17): within the tolerance the answer or abandon
    counts with a wait of 0; beyond it, it is rejected as before."""
    E = Events()
    s = make_skewed_state(5.0)
    pairs = [
        (E.offered(100, contact="c1"), E.answered(98.5, contact="c1")),  # 1.5 s before: clamped
        (E.offered(200, contact="c2"), E.abandoned(196, contact="c2")),  # 4 s before: clamped
        (E.offered(300, contact="c3"), E.answered(290, contact="c3")),  # 10 s before: beyond the tolerance
    ]
    results = [feed(s, [b, a] if answer_first else [a, b]) for a, b in pairs]
    # whichever comes second completes the pair, and is the one clamped or refused
    assert results == [[None, "answer_before_offer"], [None, "abandon_before_offer"], [None, IMPOSSIBLE]]
    finals = close_all(s)
    # c1 answered with a wait of 0 (within the threshold), c2 abandoned at once; c3's refused answer leaves it
    # waiting until it expires, and its refused offer leaves an answer that was never offered (not counted)
    c3 = dict(offered=0, expired=0) if answer_first else dict(offered=1, expired=1)
    expected = qc(
        answered=1,
        abandoned=1,
        answered_within_threshold=1,
        abandoned_within_threshold=1,
        **{k: v + (2 if k == "offered" else 0) for k, v in c3.items()},
    )
    assert finals == {("Q1", "voice", I0): expected}


def test_no_tolerance_rejects_every_outcome_before_its_offer():
    E = Events()
    s = make_skewed_state(0.0)
    assert feed(s, [E.offered(100, contact="c1"), E.answered(99.9, contact="c1")]) == [None, IMPOSSIBLE]


def test_conversation_end_before_answer_is_impossible():
    E = Events()
    s = make_state()
    feed(s, [E.offered(10, contact="c1"), E.answered(50, contact="c1"), E.acw_ended(80, contact="c1")])
    before = s.snapshot()
    assert s.apply(E.ended(40, contact="c1")) == IMPOSSIBLE  # ended 40 < answered 50
    assert s.snapshot() == before


def _scenario(E: Events):
    """A few legs over intervals 0 and 1 (all events within 1000 s, less than interval + lateness)."""
    return [
        E.offered(0, "Q1", "c1"),
        E.answered(10, "Q1", "c1"),
        E.hold_started(40, "Q1", "c1"),
        E.hold_ended(60, "Q1", "c1"),
        E.hold_started(100, "Q1", "c1"),
        E.hold_ended(130, "Q1", "c1"),
        E.transferred(310, "Q1", "c1", to_queue="Q2"),
        E.acw_ended(340, "Q1", "c1"),
        E.offered(311, "Q2", "c1"),
        E.answered(345, "Q2", "c1"),
        E.ended(905, "Q2", "c1"),
        E.acw_ended(920, "Q2", "c1"),
        E.offered(50, "Q1", "c2", channel="chat"),
        E.abandoned(80, "Q1", "c2", channel="chat"),
        E.offered(880, "Q1", "c3"),
        E.answered(899.999, "Q1", "c3"),
        E.hold_started(900, "Q1", "c3"),
        E.hold_ended(901, "Q1", "c3"),
        E.ended(950, "Q1", "c3"),
        E.acw_ended(1000, "Q1", "c3"),
        E.heartbeat(1000),
    ]


def _run(s: QueueState, events, advance_every: int = 3):
    """Feed events (heartbeats to observe_time), calling advance() every few; collect the final updates."""
    finals, results = {}, []
    for i, e in enumerate(events, 1):
        if e.__struct_config__.tag == "source.heartbeat":
            s.observe_time(round(e.time.timestamp() * 1000))
        else:
            results.append(s.apply(e))
        if i % advance_every == 0:
            for u in s.advance():
                assert (u.queue_id, u.channel, u.start) not in finals
                finals[(u.queue_id, u.channel, u.start)] = scoped(u.counts)
    s.observe_time(FAR)
    for u in s.advance():
        assert (u.queue_id, u.channel, u.start) not in finals
        finals[(u.queue_id, u.channel, u.start)] = scoped(u.counts)
    return finals, results


SCENARIO_EXPECTED = {
    # c1 in Q1: wait 10 s; handle 340 - 10 = 330 s; hold 20 + 30 = 50 s; ACW 340 - 310 = 30 s; transferred
    # c3 in Q1: arrives 880 (interval 0), wait 19.999 s (within); handled in interval 1:
    #           handle 1000 - 899.999 = 100.001 s; hold 1 s; ACW 50 s
    ("Q1", "voice", I0): QueueCounts(
        offered=2,
        answered=2,
        answered_within_threshold=2,
        answer_wait_ms=10000 + 19999,
        handled=1,
        handle_ms=330000,
        hold_ms=50000,
        acw_ms=30000,
        transferred_out=1,
    ),
    ("Q1", "voice", I1): QueueCounts(handled=1, handle_ms=100001, hold_ms=1000, acw_ms=50000),
    # c2 chat in Q1: abandoned after 30 s (outside 20 s)
    ("Q1", "chat", I0): QueueCounts(offered=1, abandoned=1),
    # c1 in Q2: wait 345 - 311 = 34 s (outside); handled in interval 1: handle 920 - 345 = 575 s; ACW 15 s
    ("Q2", "voice", I0): QueueCounts(offered=1, answered=1, answer_wait_ms=34000),
    ("Q2", "voice", I1): QueueCounts(handled=1, handle_ms=575000, acw_ms=15000),
}


def test_scenario_in_order():
    s = make_state()
    finals, results = _run(s, _scenario(Events()))
    assert set(results) == {None}
    assert finals == SCENARIO_EXPECTED


@pytest.mark.parametrize("seed", range(20))
def test_out_of_order_processing_gives_the_same_counts(seed):
    events = _scenario(Events())
    if seed == 0:
        events.reverse()  # every answer before its offer, every ACW end before the answer, ...
    else:
        random.Random(seed).shuffle(events)
    s = make_state()
    finals, results = _run(s, events, advance_every=1 + seed % 4)
    assert set(results) == {None}
    assert finals == SCENARIO_EXPECTED
    totals: dict = {}
    for (q, ch, _), c in SCENARIO_EXPECTED.items():
        totals.setdefault((q, ch), QueueCounts()).add(c)
    assert {k: scoped(c) for k, c in s.totals.items()} == totals


# ---- contact timeout ---------------------------------------------------------------------------------


def test_contact_timeout_expires_a_waiting_contact_in_its_arrival_interval():
    E = Events()
    s = make_state(timeout=300)
    feed(s, [E.offered(10, contact="c1"), E.offered(20, contact="c2"), E.abandoned(30, contact="c2")])
    s.observe_time(wm(309.999))
    assert s.advance() == []
    assert [n for *_, n, _ in s.waiting()] == [1]
    s.observe_time(wm(310))  # c1 arrived 10 s + timeout 300 s
    assert s.advance() == []  # expired, but interval 0 is not past 1020 s yet
    assert list(s.waiting()) == []
    s.observe_time(wm(1020))
    [u] = s.advance()
    # c1 expired in its arrival interval; c2 abandoned after 10 s (within 20 s)
    assert scoped(u.counts) == qc(offered=2, abandoned=1, abandoned_within_threshold=1, expired=1)
    assert scoped(s.totals[("Q1", "voice")]) == scoped(u.counts)


def test_contact_timeout_lets_a_blocked_interval_close():
    E = Events()
    s = make_state(timeout=1500)
    feed(s, [E.offered(10, contact="c1")])
    s.observe_time(wm(1200))  # past interval 0's end + lateness, but c1 still waits
    assert s.advance() == []
    s.observe_time(wm(1510))  # 10 + 1500: c1 expires, and interval 0 closes in the same call
    [u] = s.advance()
    assert (u.start, u.final) == (I0, True)
    assert scoped(u.counts) == qc(offered=1, expired=1)
    assert scoped(s.totals[("Q1", "voice")]) == qc(offered=1, expired=1)


# ---- real time -----------------------------------------------------------------------------------------


def test_waiting_counts_and_oldest_age_at_the_watermark():
    E = Events()
    s = make_state()
    feed(
        s,
        [
            E.offered(10.5, "Q1", "c1"),
            E.offered(40, "Q1", "c2"),
            E.offered(50, "Q1", "c3", channel="chat"),
            E.offered(30, "Q2", "c5"),
            E.abandoned(35, "Q2", "c5"),
            E.offered(60, "Q1", "c4"),
            E.answered(70, "Q1", "c4"),  # watermark: 70 s
        ],
    )
    assert sorted(s.waiting()) == [("Q1", "chat", 1, 20.0), ("Q1", "voice", 2, 59.5)]  # 70 - 50, 70 - 10.5
    s.observe_time(wm(100))
    assert sorted(s.waiting()) == [("Q1", "chat", 1, 50.0), ("Q1", "voice", 2, 89.5)]
    s.apply(E.answered(100, "Q1", "c1"))
    assert sorted(s.waiting()) == [("Q1", "chat", 1, 50.0), ("Q1", "voice", 1, 60.0)]  # c2: 100 - 40
    s.apply(E.abandoned(100, "Q1", "c3", channel="chat"))
    assert sorted(s.waiting()) == [("Q1", "voice", 1, 60.0)]


# ---- checkpoint ----------------------------------------------------------------------------------------


def test_snapshot_restore_round_trip_gives_identical_state_and_results():
    E = Events()
    events = _scenario(E)
    random.Random(7).shuffle(events)
    head, tail = events[:11], events[11:]
    a = make_state()
    for e in head:
        if e.__struct_config__.tag != "source.heartbeat":
            a.apply(e)
    a.provisional(wall_now=5.0, every=0)  # some revisions and published_at in the snapshot
    snap = a.snapshot()
    b = make_state()
    b.restore(snap)
    assert b.snapshot() == snap
    assert b.totals == a.totals
    assert sorted(b.waiting()) == sorted(a.waiting())
    fa, ra = _run(a, tail, advance_every=2)
    fb, rb = _run(b, tail, advance_every=2)
    assert ra == rb and set(ra) == {None}
    assert fa == fb == SCENARIO_EXPECTED
    assert a.snapshot() == b.snapshot()
    assert a.totals == b.totals


def test_snapshot_round_trip_keeps_updates_identical_including_revisions():
    E = Events()
    a = make_state()
    feed(a, [E.offered(10, contact="c1"), E.offered(20, contact="c2"), E.answered(25, contact="c2")])
    a.provisional(wall_now=1.0, every=0)
    b = make_state()
    b.restore(a.snapshot())
    more = [E.answered(30, contact="c1"), E.offered(1020, contact="c3")]
    assert feed(a, more) == feed(b, more) == [None, None]
    assert a.provisional(wall_now=2.0, every=0) == b.provisional(wall_now=2.0, every=0)
    ua, ub = a.advance(), b.advance()
    assert ua == ub and [(u.start, u.revision) for u in ua] == [(I0, 3)]
    # a duplicate of an event applied before the snapshot is still a duplicate after the restore
    c = make_state()
    c.restore(a.snapshot())
    assert c.apply(more[1]) == DUPLICATE


def test_restore_refuses_another_version_or_kind_of_checkpoint():
    s = make_state()
    snap = s.snapshot()
    other_version = snap[:4] + (999).to_bytes(2, "little") + snap[6:]
    with pytest.raises(CheckpointError, match="queue state checkpoint version 999: this release reads version"):
        make_state().restore(other_version)
    with pytest.raises(CheckpointError, match="not a checkpoint of the queue state"):
        make_state().restore(b"{}" + snap)


# ---- per-queue threshold -------------------------------------------------------------------------------


def test_threshold_per_queue():
    thresholds = {"Q1": 20.0, "Q2": 60.0, "Q3": 10.5}
    E = Events()
    s = make_state(threshold_of=thresholds.__getitem__)
    for q in thresholds:
        feed(
            s,
            [
                E.offered(0, q, "c1"),
                E.answered(10.5, q, "c1"),  # wait 10.5 s
                E.offered(0, q, "c2"),
                E.answered(30, q, "c2"),  # wait 30 s
                E.offered(0, q, "c3"),
                E.abandoned(15, q, "c3"),  # abandoned after 15 s
            ],
        )
    s.observe_time(FAR)
    got = {
        u.queue_id: (
            scoped(u.counts).answered_within_threshold,
            scoped(u.counts).abandoned_within_threshold,
            u.rules.service_level_threshold_seconds,
        )
        for u in s.advance()
    }
    assert got == {
        "Q1": (1, 1, 20.0),  # 10.5 <= 20; 30 > 20; abandon 15 <= 20
        "Q2": (2, 1, 60.0),  # both within 60; abandon within
        "Q3": (1, 0, 10.5),  # 10.5 == 10.5 counts as within; 30 > 10.5; abandon 15 > 10.5
    }


# ---- regressions: two bugs these tests found in the first version (fixed in 6ea443d) ------------------


def test_duplicate_of_a_forgotten_leg_in_an_interval_kept_open_is_still_a_duplicate():
    E = Events()
    s = make_state(interval=60, lateness=10, timeout=3600)
    x = E.offered(0, contact="X")  # waits: keeps interval [0, 60) open
    y_offered, y_abandoned = E.offered(1, contact="Y"), E.abandoned(2, contact="Y")
    assert feed(s, [x, y_offered, y_abandoned]) == [None] * 3
    s.observe_time(wm(100))  # past 60 + 10; interval 0 stays open (X waits), but leg Y is forgotten
    assert s.advance() == []
    before = s.snapshot()
    results = [s.apply(y_offered), s.apply(y_abandoned)]
    # the first version had forgotten leg Y here and applied both again: offered=3, abandoned=2
    assert results == [DUPLICATE, DUPLICATE]
    assert s.snapshot() == before


def test_empty_interval_after_a_waiting_contact_is_not_final():
    E = Events()
    s = make_state(interval=60, lateness=10, timeout=3600)
    assert s.apply(E.offered(0, contact="X")) is None  # X waits from interval [0, 60)
    s.observe_time(wm(200))  # interval [60, 120) is past its end + lateness, but X, arrived earlier, waits
    assert s.advance() == []
    # applied, as it is when [60, 120) already holds a count (the first version said 'late': it took an
    # interval with no counts yet for final)
    assert s.apply(E.offered(70, contact="Z")) is None


# ---- each queue on its own clock ------------------------------------------------------------------------------


def test_a_queue_stamped_ahead_closes_only_its_own_intervals():
    """Queue Q2's events (a source clock an hour ahead, or a made-up queue) must not make Q1's events late."""
    E = Events()
    q1 = [E.offered(100, contact="a"), E.answered(110, contact="a"), E.ended(200, contact="a")]
    ahead = [E.offered(3600 + t, queue="Q2", contact=f"x{t}") for t in (0, 10)]
    s = make_state()
    assert feed(s, q1 + ahead) == [None] * 5
    s.advance()
    assert not s.is_final("Q1", "voice", wm(0))  # Q1's clock is at 200 s, whatever Q2's says
    # Q1's wrap-up comes 680 s after its last event: its interval is open on its own clock, so it is applied
    assert feed(s, [E.acw_ended(880, contact="a"), E.offered(905, contact="b")]) == [None, None]
    assert s.clock("Q1") == wm(905) and s.clock("Q2") == wm(3610) and s.watermark == wm(3610)
    s.observe_time(wm(2000))  # a heartbeat closes Q1's interval 0 (and raises every queue's clock)
    finals = {(u.queue_id, u.start): u.counts for u in s.advance()}
    assert finals[("Q1", I0)].offered == 1 and finals[("Q1", I0)].handled == 1
    assert ("Q2", I0 + 3600) not in finals  # Q2 waits on its own events
    assert s.clock("Q2") == wm(3610)


def test_each_queue_clock_survives_a_checkpoint():
    E = Events()
    s = make_state()
    feed(s, [E.offered(100, contact="a"), E.offered(3600, queue="Q2", contact="x")])
    restored = make_state()
    restored.restore(s.snapshot())
    assert (restored.clock("Q1"), restored.clock("Q2"), restored.heartbeat) == (wm(100), wm(3600), s.heartbeat)


def test_a_missed_interval_s_causes_go_into_its_hour_and_day_and_survive_a_checkpoint():
    E = Events()
    a = make_state()
    # two calls, one answered within the 20 s threshold and one after 100 s: 1 of 2 within, 0.8 x 2 - 1 = 0.6 short
    feed(a, [E.offered(10, contact="c1"), E.answered(15, contact="c1"), E.ended(60, contact="c1")])
    feed(a, [E.acw_ended(70, contact="c1"), E.offered(20, contact="c2"), E.answered(120, contact="c2")])
    feed(a, [E.ended(200, contact="c2"), E.acw_ended(210, contact="c2")])
    a.observe_time(wm(INTERVAL + LATENESS + 1))
    assert [u.start for u in a.advance()] == [I0]
    rolls = {k[2]: r for k, (_, r) in a.rollups.items()}
    assert set(rolls) == {"hour", "day"}
    for r in rolls.values():
        assert sum(r.causes.values()) == pytest.approx(0.6)
    b = make_state()
    b.restore(a.snapshot())
    assert {k: r.causes for k, (_, r) in b.rollups.items()} == {k: r.causes for k, (_, r) in a.rollups.items()}
    assert b.snapshot() == a.snapshot()
    b.observe_time(FAR)
    b.advance()
    day = [u for u in b.rollup_updates(wall_now=0.0, every=0) if u.window == "day" and u.final]
    assert len(day) == 1 and day[0].causes is not None and sum(day[0].causes.values()) == pytest.approx(0.6)


def test_changes_after_one_queue_moved_hold_that_queue_alone():
    """A checkpoint of changes costs what changed, not the number of queues: after events of one queue of many,
    the changes hold that queue's interval, hour and day, forecast, total and clock, none of the others'; laid
    over the whole checkpoint they still give the state back (with the hour and day published since)."""
    from pipeline.state.queue_checkpoint import CODEC

    E = Events()
    s = make_state()
    queues = [f"Q{i}" for i in range(12)]
    for i, q in enumerate(queues):
        feed(s, [E.offered(10 + i, q, f"c{q}"), E.answered(20 + i, q, f"c{q}"), E.forecast(5, 900, 30, 200, q)])
    s.advance()
    s.provisional(wall_now=100.0, every=5.0)
    s.rollup_updates(wall_now=100.0, every=5.0)
    whole = s.snapshot()
    feed(s, [E.offered(300, "Q7", "c2"), E.abandoned(330, "Q7", "c2")])
    s.advance()
    s.provisional(wall_now=200.0, every=5.0)
    s.rollup_updates(wall_now=200.0, every=5.0)
    changes = s.changes()
    stored = CODEC.decode(changes)
    assert stored.queues_changed == [("Q7", "voice")]
    assert {i.queue_id for i in stored.intervals} == {r.queue_id for r in stored.rollups} == {"Q7"}
    assert [t.queue_id for t in stored.totals] == ["Q7"]
    assert stored.forecasts == [] and stored.forecasts_changed == []  # no forecast came or went
    assert list(stored.clocks) == ["Q7"]
    assert len(CODEC.decode(whole).totals) == len(queues)
    r = make_state()
    r.restore(whole, [changes])

    def stored_form(state: QueueState) -> bytes:  # decoded: a restored forecast holds 30.0 where the event had 30
        return msgspec.json.encode(CODEC.decode(state.snapshot()))

    assert stored_form(r) == stored_form(s)
    assert r.totals[("Q7", "voice")].abandoned == 1 and r.totals[("Q7", "voice")].offered == 2
    # changes as written before (every queue's entries, no queue listed) still restore
    earlier, now = CODEC.decode(changes), CODEC.decode(s.snapshot())
    for name in ("clocks", "intervals", "rollups", "forecasts", "totals", "last_final", "offers"):
        setattr(earlier, name, getattr(now, name))
    earlier.queues_changed = None
    r = make_state()
    r.restore(whole, [CODEC.encode(earlier)])
    assert stored_form(r) == stored_form(s)
    # a new forecast of one queue: its forecasts alone (and its clock), laid over the rest
    feed(s, [E.forecast(400, 1800, 12, 150, "Q3")])
    more = s.changes()
    stored = CODEC.decode(more)
    assert stored.forecasts_changed == [("Q3", "voice")] and stored.queues_changed == []
    assert [(f.queue_id, f.start) for f in stored.forecasts] == [("Q3", wm(900)), ("Q3", wm(1800))]
    r = make_state()
    r.restore(whole, [changes, more])
    assert stored_form(r) == stored_form(s)
    # every interval closing, with its forecast, and the forecasts of intervals without traffic published
    s.observe_time(FAR)
    assert s.advance() and not s.forecasts
    last = s.changes()
    r = make_state()
    r.restore(whole, [changes, more, last])
    assert stored_form(r) == stored_form(s) and not r.forecasts and not r.intervals


def test_per_agent_handling_is_in_final_updates_only():
    """Provisional interval, hour and day updates carry no per-agent counts (a queue's provisional day would copy
    every agent who handled it, every few seconds); the final ones carry every agent's."""
    E = Events()
    s = make_state()
    feed(s, [E.offered(10, contact="c1"), E.answered(15, contact="c1"), E.ended(60, contact="c1")])
    feed(s, [E.acw_ended(70, contact="c1"), E.offered(20, contact="c2")])
    feed(s, [E.answered(30, contact="c2", agent="a2"), E.ended(90, contact="c2", agent="a2")])
    feed(s, [E.acw_ended(95, contact="c2", agent="a2")])
    provisional = s.provisional(wall_now=100.0, every=0) + s.rollup_updates(wall_now=100.0, every=0)
    assert sorted(u.window for u in provisional) == ["day", "hour", "interval"]
    assert all(not u.final and u.agents == {} and u.counts.answered == 2 for u in provisional)
    s.observe_time(FAR)
    finals = s.advance() + s.rollup_updates(wall_now=200.0, every=0)
    assert sorted(u.window for u in finals) == ["day", "hour", "interval"]
    for u in finals:
        assert u.final and sorted(u.agents) == ["a1", "a2"]
        assert {a: c.handled for a, c in u.agents.items()} == {"a1": 1, "a2": 1}
