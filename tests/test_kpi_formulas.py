"""KPI formulas against published values, and the queue state's handling of surveys, IVR and forecasts."""

from __future__ import annotations

import msgspec
import pytest
from eventlog import BASE_S, Events

from pipeline.core.settings import QueueSettings
from pipeline.kpis import counts as k
from pipeline.kpis.counts import HANDLING_FIELDS, SUMS, HandlingCounts, QueueCounts
from pipeline.kpis.definitions import AGENT_HANDLING
from pipeline.kpis.record import build_record
from pipeline.state.queues import DUPLICATE, LATE, QueueState

# Cisco UCCE manual (../shared/reference-values.md): 100 offered, 70 answered within the threshold, 10 abandoned
# within it, 20 exceeded it. Here the 20 are answered after the threshold; with the short-abandon threshold set
# to the service level threshold, the 10 early abandons are the "short" ones.
CISCO = QueueCounts(
    offered=100,
    answered=90,
    answered_within_threshold=70,
    abandoned=10,
    abandoned_within_threshold=10,
    short_abandoned=10,
)


def test_cisco_service_level_variants():
    assert k.service_level(CISCO, "abandons_against") == pytest.approx(70 / 100)  # 70%
    assert k.service_level(CISCO, "short_abandons_excluded") == pytest.approx(0.778, abs=5e-4)  # 77.8%
    assert k.service_level(CISCO, "abandons_in_favour") == pytest.approx(0.80)  # 80%
    assert k.service_level(CISCO, "abandons_ignored") == pytest.approx(70 / 90)


def test_variants_with_nothing_to_measure_are_none_and_abandon_rates():
    assert all(k.service_level(QueueCounts(), v) is None for v in k.VARIANTS)
    c = QueueCounts(offered=50, abandoned=6, short_abandoned=2)
    assert k.abandon_rate(c) == pytest.approx(6 / 50)
    assert k.abandon_rate(c, include_short=False) == pytest.approx(4 / 48)


def test_record_carries_every_variant_and_the_headline():
    from pipeline.kpis.counts import IntervalUpdate

    rules = QueueSettings(service_level_variant="abandons_in_favour")
    r = build_record(IntervalUpdate("q", "voice", 0, 1, True, CISCO, rules), 900)
    assert r.service_level == r.service_level_abandons_in_favour == pytest.approx(0.8)
    assert r.service_level_abandons_against == pytest.approx(0.7)


def state() -> QueueState:
    return QueueState(60, 120, 3600, lambda q: QueueSettings(), (20.0,))


def finals(s: QueueState):
    s.observe_time(10**13)
    return {(u.queue_id, u.start - BASE_S): u for u in s.advance()}


def test_surveys_and_ivr_count_once_in_their_own_interval_and_late_ones_are_late():
    E = Events()
    s = state()
    survey = E.survey(70, 5)
    assert [s.apply(e) for e in (survey, survey, E.survey(75, 2), E.ivr(10, True), E.ivr(20, False))] == [
        None,
        DUPLICATE,
        None,
        None,
        None,
    ]
    out = finals(s)
    c = out[("Q1", 60)].counts
    assert (c.surveys, c.survey_score_sum, c.surveys_satisfied) == (2, 7, 1)
    assert (out[("Q1", 0)].counts.ivr_sessions, out[("Q1", 0)].counts.ivr_contained) == (2, 1)
    assert s.apply(E.survey(80, 4)) == LATE


def test_the_newest_forecast_by_event_time_wins_whatever_the_arrival_order():
    E = Events()
    newer, older = E.forecast(-3000, 0, 40.0, 300.0), E.forecast(-6000, 0, 55.0, 280.0)
    for order in ((newer, older), (older, newer)):
        s = state()
        for e in order:
            assert s.apply(e) is None
        s.apply(E.offered(5, contact="c1"))
        u = finals(s)[("Q1", 0)]
        r = build_record(u, 60)
        assert (r.forecast_offered, r.forecast_aht_seconds) == (40.0, 300.0)
        assert r.offered_vs_forecast == pytest.approx((1 - 40) / 40)


def test_a_forecast_interval_without_traffic_gets_a_final_record_of_nothing_against_its_forecast():
    E = Events()
    s = state()
    fc = E.forecast(-600, 120, 12.0, 240.0)
    assert [
        s.apply(e)
        for e in (fc, fc, E.forecast(-600, 0, 5.0, 200.0), E.offered(5, contact="c1"), E.abandoned(9, contact="c1"))
    ] == [None, DUPLICATE, None, None, None]
    assert not s.intervals.keys() & {("Q1", "voice", (BASE_S + 120) * 1000)}  # a forecast opens no interval
    s.observe_time((BASE_S + 60 + 120) * 1000)  # the first minute is closable, the one at 120 s is not yet
    assert [(u.start - BASE_S, u.counts.offered, u.forecast.offered) for u in s.advance()] == [(0, 1, 5.0)]
    assert not s.is_final("Q1", "voice", (BASE_S + 120) * 1000)
    s.observe_time((BASE_S + 180 + 120) * 1000)
    [u] = s.advance()
    assert (u.start - BASE_S, u.final, u.revision, u.counts, u.forecast.offered) == (120, True, 1, QueueCounts(), 12.0)
    r = build_record(u, 60)
    assert (r.offered, r.forecast_offered, r.offered_vs_forecast) == (0, 12.0, pytest.approx(-1.0))
    assert s.forecasts == {} and s.advance() == [] and s.apply(fc) == LATE


def test_a_flow_out_or_a_callback_ends_the_wait_and_is_not_an_abandon():
    E = Events()
    s = state()
    for e in (E.offered(0, contact="c1"), E.offered(1, contact="c2"), E.offered(2, contact="c3")):
        s.apply(e)
    assert [n for _, _, n, _ in s.waiting()] == [3]
    s.apply(E.flowed_out(30, contact="c1", to_queue="Q2"))
    s.apply(E.callback(40, contact="c2"))
    assert [n for _, _, n, _ in s.waiting()] == [1]
    s.apply(E.abandoned(45, contact="c3"))
    c = finals(s)[("Q1", 0)].counts
    assert (c.flowed_out, c.callbacks_requested, c.abandoned, c.longest_wait_ms) == (1, 1, 1, 43000)
    assert c.waits == {"abandoned:inf": 1}  # the 43 s abandon is above the only bound (20 s)


def test_hours_and_days_follow_the_queue_time_zone_including_a_daylight_saving_day():
    from datetime import UTC, datetime

    from pipeline.core.time import epoch_ms

    s = QueueState(900, 120, 3600, lambda q: QueueSettings(time_zone="America/New_York"), ())
    E = Events()
    # 2026-03-08 is the spring-forward day in New York: local midnight to midnight is 23 hours.
    times = [
        datetime(2026, 3, 8, 4, 59, tzinfo=UTC),
        datetime(2026, 3, 8, 5, 1, tzinfo=UTC),
        datetime(2026, 3, 9, 3, 30, tzinfo=UTC),
        datetime(2026, 3, 9, 4, 10, tzinfo=UTC),
    ]
    for i, t in enumerate(times):
        s.apply(E.offered((epoch_ms(t) - BASE_S * 1000) / 1000, contact=f"c{i}"))
        s.apply(E.abandoned((epoch_ms(t) - BASE_S * 1000) / 1000 + 1, contact=f"c{i}"))
    s.observe_time(10**13)
    s.advance()
    days = {(u.start, u.end): u.counts.offered for u in s.rollup_updates(0, 1) if u.final and u.window == "day"}
    # 04:59 UTC on 8 March is 23:59 on 7 March (EST, UTC-5); 03:30 UTC on 9 March is 23:30 on 8 March (EDT).
    mar7 = (int(datetime(2026, 3, 7, 5, tzinfo=UTC).timestamp()), int(datetime(2026, 3, 8, 5, tzinfo=UTC).timestamp()))
    mar8 = (mar7[1], int(datetime(2026, 3, 9, 4, tzinfo=UTC).timestamp()))  # 23 hours
    mar9 = (mar8[1], mar8[1] + 24 * 3600)
    assert days == {mar7: 1, mar8: 2, mar9: 1}


def test_chat_response_times_whatever_order_the_messages_arrive_in():
    from pipeline.state.queues import chat_figures

    # customer at 0 and 5 s, agent at 12 s (answers the run from 0: 12 s), customer 20 s, agent 21 s (1 s),
    # agent 30 s (nothing pending: not a response)
    assert chat_figures([0, 5000, 20000], [12000, 21000, 30000]) == [1, 12000, 2, 13000]
    assert chat_figures([7], [7]) == [1, 0, 1, 0]  # same millisecond: the customer's comes first
    assert chat_figures([], [1000]) == [0, 0, 0, 0]

    E = Events()
    chat = dict(channel="chat", contact="c1")
    events = [
        E.offered(0, **chat),
        E.message(0, "customer", **chat),
        E.answered(10, **chat),
        E.message(12, "agent", agent="a1", **chat),
        E.message(20, "customer", **chat),
        E.message(21, "agent", agent="a1", **chat),
        E.ended(40, **chat),
        E.acw_ended(45, **chat),
    ]
    for order in (events, events[::-1], events[:5] + events[6:] + [events[5]]):  # last: a message after ACW end
        s = state()
        assert [s.apply(e) for e in order] == [None] * len(events)
        c = finals(s)[("Q1", 0)].counts
        assert (c.chat_first_responses, c.chat_first_response_ms, c.chat_responses, c.chat_response_ms) == (
            1,
            12000,
            2,
            13000,
        )


def test_counts_copy_is_equal_and_independent_and_an_unknown_count_is_an_error():
    c = QueueCounts(offered=3, handle_ms=9_000, longest_wait_ms=40, waits={"answered:20000": 2})
    d = c.copy()
    assert d == c
    d.bump("offered", 1)
    d.bump("answered:20000", 1)
    d.bump("longest_wait_ms", 50)
    assert (c.offered, c.waits, c.longest_wait_ms) == (3, {"answered:20000": 2}, 40)
    assert (d.offered, d.waits, d.longest_wait_ms) == (4, {"answered:20000": 3}, 50)
    with pytest.raises(AttributeError, match="no count 'offerd'"):
        c.bump("offerd", 1)


def test_counts_make_a_map_only_at_its_first_count_and_never_share_one():
    c = QueueCounts(offered=1)
    d = c.copy()
    d.add(QueueCounts(handled=1))
    # many counts never count by key: no empty maps made for them by copies and sums
    assert (d.waits, d.segments, d.dispositions) == (None, None, None)
    d.bump("disposition:sale", 1)
    d.add(QueueCounts(dispositions={"sale": 2, "other": 1}))
    assert d.dispositions == {"sale": 3, "other": 1} and c.dispositions is None
    e = QueueCounts()
    e.add(d)
    f = e.copy()
    e.bump("disposition:sale", 1)
    assert (d.dispositions["sale"], e.dispositions["sale"], f.dispositions["sale"]) == (3, 4, 3)


def test_an_agents_counts_are_the_queue_sums_counted_per_agent_and_read_from_older_checkpoints():
    # every field of an agent's counts is a sum of the queue's, and every per-agent metric reads one of them
    assert set(HANDLING_FIELDS) <= SUMS
    assert {c.field for c in AGENT_HANDLING} <= set(HANDLING_FIELDS)
    a = HandlingCounts(handled=1, handle_ms=300_000, agent_offers=2)
    b = a.copy()
    b.add(HandlingCounts(handled=1, talk_ms=5_000, agent_offers_missed=1))
    assert a == HandlingCounts(handled=1, handle_ms=300_000, agent_offers=2)  # the copy is independent
    assert b == HandlingCounts(handled=2, handle_ms=300_000, talk_ms=5_000, agent_offers=2, agent_offers_missed=1)
    # checkpoints written before stored an agent's counts as a QueueCounts without its zeros: they still load
    older = msgspec.msgpack.encode({"A1": QueueCounts(handled=2, hold_ms=40_000, agent_offers_rejected=1)})
    loaded = msgspec.msgpack.decode(older, type=dict[str, HandlingCounts])
    assert loaded == {"A1": HandlingCounts(handled=2, hold_ms=40_000, agent_offers_rejected=1)}
    assert msgspec.msgpack.encode(loaded) == older  # and are stored the same way now
