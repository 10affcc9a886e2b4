"""Property-based tests: QueueState over random valid event logs equals the independent batch computation.

A generated log is a set of contacts, each a chain of queue legs: offered (with or without a segment), then
abandoned, or answered with 0..3 hold pairs, ended or transferred, and ACW ended with a wrap-up code; a transfer
may continue into another queue as a new leg of the same contact. Channels are voice, chat, email, task and
messaging; email has its own threshold in two queues and counts business hours only in two, whose opening
hours begin or end inside the generated span. Times are random milliseconds spread over several intervals, in
a few time zones. Heartbeats are sprinkled in; they only move the watermark (as the processor does).
"""

from __future__ import annotations

import itertools
import os
import random
from datetime import UTC, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import batch_kpis
import msgspec
from eventlog import BASE_MS, Events, assert_first_applied_then_dropped, ms, perturbed, redelivered
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.contract import events as ev
from pipeline.core.settings import WEEKDAYS, ChannelSettings, QueueSettings
from pipeline.kpis.counts import HandlingCounts, QueueCounts
from pipeline.state.queues import CODEC, DUPLICATE, IMPOSSIBLE, LATE, QueueState

INTERVAL = 60  # s: short, so that legs spread over several intervals
LATENESS = 120  # s
TIMEOUT = 7 * 24 * 3600  # s: no valid leg lasts this long, so nothing expires
QUEUES = ("Q1", "Q2", "Q3")
THRESHOLDS = {"Q1": 20.0, "Q2": 30.0, "Q3": 10.5}
threshold_of = THRESHOLDS.__getitem__
SHORT = {"Q1": 5.0, "Q2": 20.0, "Q3": 0.0}  # Q2: short abandons = abandons within the threshold (Cisco's view)
BOUNDS = (5.0, 10.5, 20.0, 30.0, 60.0)


ZONE_OF = {"Q1": "UTC", "Q2": "Asia/Kolkata", "Q3": "America/New_York"}  # +05:30 and a DST zone


# Email: Q1 counts business hours from 00:03 UTC on Mondays (the logs start at Monday 00:00 UTC), Q3 until
# 19:06 New York time on Sundays (the logs start at 19:00 there); Q2 has an elapsed 45 s threshold for it.
HOURS = {
    "Q1": (("mon",), time(0, 3), time.max),
    "Q2": (("mon",), time(8), time(20)),
    "Q3": (("sun",), time(0), time(19, 6)),
}
EMAIL = {
    "Q1": ChannelSettings(service_level_threshold_seconds=15, service_level_clock="business_hours"),
    "Q2": ChannelSettings(service_level_threshold_seconds=45),
    "Q3": ChannelSettings(service_level_clock="business_hours"),
}
CHANNEL_THRESHOLDS = {
    (q, "email"): c.service_level_threshold_seconds for q, c in EMAIL.items() if c.service_level_threshold_seconds
}
SEGMENTS = {"Q1": ("gold", "silver"), "Q2": ("gold",), "Q3": ()}
DISPOSITIONS = {"Q1": ("sale", "no_sale"), "Q2": ("sale",), "Q3": ()}


def _business(queue: str):
    days, opens, closes = HOURS[queue]
    index = [WEEKDAYS.index(d) for d in days]
    return lambda start, end: batch_kpis.business_wait(start, end, ZONE_OF[queue], index, opens, closes)


BUSINESS = {(q, "email"): _business(q) for q, c in EMAIL.items() if c.service_level_clock == "business_hours"}


def rules_of(queue: str) -> QueueSettings:
    days, opens, closes = HOURS[queue]
    return QueueSettings(
        service_level_threshold_seconds=THRESHOLDS[queue],
        short_abandon_seconds=SHORT[queue],
        time_zone=ZONE_OF[queue],
        open_days=days,
        opens=opens,
        closes=closes,
        channels={"email": EMAIL[queue]},
        segments=SEGMENTS[queue],
        dispositions=DISPOSITIONS[queue],
    )


FAR = BASE_MS + 365 * 24 * 3600 * 1000
ZONES = (UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30)))

# KPI_PROPERTY_EXAMPLES=2000 for a longer search than the default run's
SETTINGS = settings(
    max_examples=int(os.environ.get("KPI_PROPERTY_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)  # no .hypothesis/ directory in the working tree

# waits around the thresholds (20 s, 30 s, 10.5 s) as well as anywhere
waits = st.one_of(
    st.integers(0, 90_000),
    st.integers(0, 600_000),  # long waits keep intervals open past their end + lateness
    st.sampled_from([0, 10_499, 10_500, 10_501, 19_999, 20_000, 20_001, 29_999, 30_000, 30_001]),
)


@st.composite
def event_logs(draw) -> list[ev.Event]:
    """A valid, complete event log, sorted by event time (ties keep the order of the leg's life)."""
    E = Events(tz=draw(st.sampled_from(ZONES)))
    start = draw(st.integers(0, INTERVAL * 1000 - 1))  # where in an interval the log starts
    span = draw(st.integers(1, 6)) * INTERVAL * 1000  # arrivals spread over up to 6 intervals
    timed: list[tuple[int, ev.Event]] = []

    def at(t: int) -> float:
        return t / 1000

    # sometimes crowd every contact into fewer queues and one channel, where they interact most
    queues = draw(st.sampled_from((QUEUES, QUEUES, QUEUES[:2], QUEUES[:1])))
    channels = draw(
        st.sampled_from((("voice", "chat"), ("voice",), ("chat",), ("email",), ("voice", "email", "task", "messaging")))
    )
    for i in range(draw(st.integers(1, 20))):
        contact = f"c{i}"
        channel = draw(st.sampled_from(channels))
        customer = draw(st.one_of(st.none(), st.sampled_from(("cust1", "cust2", "cust3"))))
        chain = draw(st.permutations(queues))
        t = start + draw(st.integers(0, span))
        for n, q in enumerate(chain):
            common = {"queue": q, "contact": contact, "channel": channel}
            segment = draw(st.sampled_from((None, None, "gold", "silver", "bronze")))
            timed.append((t, E.offered(at(t), customer_id=customer, segment=segment, **common)))
            wait = draw(waits)
            t += wait
            if draw(st.integers(0, 3)) == 0:  # about one leg in four leaves the queue unanswered
                leave = draw(st.sampled_from((E.abandoned, E.abandoned, E.flowed_out, E.callback)))
                if leave == E.callback:
                    timed += callback_lifecycle(draw, E, t, common)
                else:
                    timed.append((t, leave(at(t), **common)))
                break
            timed += offers_before_answer(draw, E, t - wait, t, f"a{i}", common)
            timed.append((t, E.answered(at(t), agent=f"a{i}", **common)))
            talk = draw(st.integers(0, 300_000))
            if channel == "chat":  # messages from the arrival to the end of the conversation
                offered_at = next(x for x, e in reversed(timed) if isinstance(e, ev.ContactOffered))
                for m in draw(st.lists(st.tuples(st.integers(0, t - offered_at + talk), st.booleans()), max_size=6)):
                    when_ms = offered_at + m[0]
                    by_agent = m[1] and when_ms >= t
                    timed.append(
                        (
                            when_ms,
                            E.message(
                                at(when_ms),
                                "agent" if by_agent else "customer",
                                agent=f"a{i}" if by_agent else None,
                                **common,
                            ),
                        )
                    )
            points = sorted(draw(st.lists(st.integers(0, talk), min_size=0, max_size=6)))
            points = points[: len(points) // 2 * 2]  # 0..3 hold pairs: (start, end), (start, end), ...
            for k, p in enumerate(points):
                make = E.hold_started if k % 2 == 0 else E.hold_ended
                timed.append((t + p, make(at(t + p), agent=f"a{i}", **common)))
            t += talk
            more = n + 1 < len(chain)
            transfer = draw(st.booleans())
            onward = transfer and more and draw(st.booleans())
            if transfer:
                to = chain[n + 1] if onward else draw(st.sampled_from((None, "elsewhere")))
                timed.append((t, E.transferred(at(t), agent=f"a{i}", to_queue=to, **common)))
            else:
                timed.append((t, E.ended(at(t), agent=f"a{i}", **common)))
            acw = draw(st.integers(0, 60_000))
            code = draw(st.sampled_from(("sale", "no_sale", "call_back")))
            timed.append((t + acw, E.acw_ended(at(t + acw), agent=f"a{i}", disposition=code, **common)))
            if draw(st.integers(0, 3)) == 0:
                survey_at = t + acw + draw(st.integers(0, 120_000))
                timed.append((survey_at, E.survey(at(survey_at), draw(st.integers(1, 5)), **common)))
            if not onward:
                break
            t += draw(st.integers(0, 5_000))  # the next queue's leg starts at or after the transfer
    for k in range(draw(st.integers(0, 4))):
        t = start + draw(st.integers(0, span))
        ivr = E.ivr(
            at(t),
            draw(st.booleans()),
            queue=draw(st.sampled_from(queues)),
            session=f"s{k}",
            channel=draw(st.sampled_from(channels)),
        )
        timed.append((t, ivr))
    end = max(t for t, _ in timed)
    for _ in range(draw(st.integers(0, 5))):
        h = draw(st.integers(start, end))
        timed.append((h, E.heartbeat(at(h))))
    timed.sort(key=lambda x: x[0])  # stable: a leg's events at the same ms keep their life order
    return [e for _, e in timed]


def offers_before_answer(draw, E: Events, offered: int, answered: int, agent: str, common: dict) -> list:
    """Offers of a waiting contact from its arrival to its answer: some ring out (RONA) or are declined by other
    agents, then, often, the answering agent's accepted offer; an outcome may come at its ringing's millisecond."""

    def at(x: int) -> float:
        return x / 1000

    if not draw(st.booleans()):
        return []  # a source that reports no offers
    n = draw(st.integers(0, 3))
    points = sorted(draw(st.lists(st.integers(offered, answered), min_size=2 * n + 2, max_size=2 * n + 2)))
    out = []
    for k in range(n):
        rang, ended = points[2 * k], points[2 * k + 1]
        other = draw(st.sampled_from(("b1", "b2", agent)))
        out.append((rang, E.offer(at(rang), "ringing", f"o{k}", other, **common)))
        out.append((ended, E.offer(at(ended), draw(st.sampled_from(("missed", "rejected"))), f"o{k}", other, **common)))
    if draw(st.integers(0, 3)):  # mostly the answer's own offer, ringing from after the others to the answer
        rang = points[-2]
        out.append((rang, E.offer(at(rang), "ringing", "o-answer", agent, **common)))
        out.append((answered, E.offer(at(answered), "accepted", "o-answer", agent, **common)))
    return out


def callback_lifecycle(draw, E: Events, t: int, common: dict) -> list[tuple[int, ev.Event]]:
    """A callback request at `t` and, often, its lifecycle: schedules, dials (attempt 1, 2, ...), an outcome or none
    (still waiting). Promises fall before, at and after the first dial."""

    def at(x: int) -> float:
        return x / 1000

    out: list[tuple[int, ev.Event]] = []
    first_dial = t + draw(st.integers(0, 900_000))
    promise = st.one_of(st.none(), st.just(first_dial), st.just(first_dial - 1), st.integers(t, t + 900_000))
    requested = draw(promise)
    out.append((t, E.callback(at(t), promised_by=None if requested is None else at(requested), **common)))
    if not draw(st.booleans()):
        return out  # a request alone, as sources that report no lifecycle send
    for _ in range(draw(st.integers(0, 2))):
        scheduled_at = draw(st.integers(t, first_dial + 300_000))
        promised = draw(promise) or scheduled_at + draw(st.integers(0, 600_000))
        out.append((scheduled_at, E.callback_scheduled(at(scheduled_at), at(promised), **common)))
    attempts = draw(st.integers(0, 3))
    dial = first_dial
    for n in range(1, attempts + 1):
        out.append((dial, E.callback_dialled(at(dial), n, agent=draw(st.sampled_from((None, "a1"))), **common)))
        last, dial = dial, dial + draw(st.integers(0, 300_000))
    outcome = draw(st.sampled_from(("connected", "failed", "none")))
    if outcome == "connected" and attempts:
        done = last + draw(st.integers(0, 60_000))
        out.append((done, E.callback_connected(at(done), attempts, **common)))
    elif outcome == "failed" or (outcome == "connected" and not attempts):
        done = (last if attempts else t) + draw(st.integers(0, 60_000))
        out.append((done, E.callback_failed(at(done), attempts, **common)))
    return out


def run(events: list[ev.Event], advance_every: int):
    """Feed a QueueState like the processor does; collect every final update. Returns (finals, results, state)."""
    s = QueueState(INTERVAL, LATENESS, TIMEOUT, rules_of, BOUNDS)
    finals: dict[tuple[str, str, int], QueueCounts] = {}
    agents: dict[tuple[str, int], HandlingCounts] = {}
    results: list = []

    def collect():
        for u in s.advance():
            assert u.final and u.revision >= 1
            key = (u.queue_id, u.channel, u.start * 1000)
            assert key not in finals, f"interval {key} final twice"
            assert u.rules == rules_of(u.queue_id).for_channel(u.channel)
            finals[key] = u.counts
            for agent, c in u.agents.items():
                agents.setdefault((agent, u.start * 1000), HandlingCounts()).add(c)

    rollups: dict = {}

    def collect_rollups():
        for u in s.rollup_updates(0, 1):
            if u.final:
                key = (u.window, u.queue_id, u.channel, u.start * 1000)
                assert key not in rollups, f"{key} final twice"
                rollups[key] = (u.end * 1000, u.counts)

    for i, e in enumerate(events, 1):
        if isinstance(e, ev.SourceHeartbeat):
            s.observe_time(ms(e))
        else:
            results.append(s.apply(e))
        if i % advance_every == 0:
            collect()
            collect_rollups()
    s.observe_time(FAR)
    collect()
    collect_rollups()
    assert s.rollups == {}
    s.final_agents = agents  # for check_against_batch
    s.final_rollups = rollups
    return finals, results, s


def check_against_batch(events, finals, state):
    agents: dict = {}
    intervals, totals = batch_kpis.compute(
        events,
        INTERVAL,
        threshold_of,
        SHORT.__getitem__,
        BOUNDS,
        agents,
        channel_thresholds=CHANNEL_THRESHOLDS,
        business=BUSINESS,
        segments_of=SEGMENTS.__getitem__,
        dispositions_of=DISPOSITIONS.__getitem__,
    )
    assert finals == intervals
    assert state.totals == totals
    assert state.final_agents == agents
    assert list(state.waiting()) == []
    assert state.advance() == []
    if hasattr(state, "final_rollups"):
        check_rollups(intervals, state.final_rollups)


def check_rollups(intervals, rollups):
    """Each final hour and day equals the sum of the batch intervals in it, and each interval is in one of each."""
    for (window, q, ch, start), (end, counts) in rollups.items():
        local = datetime.fromtimestamp(start / 1000, ZoneInfo(ZONE_OF[q]))
        assert (local.minute, local.second) == (0, 0) and (window == "hour" or local.hour == 0)
        expected = QueueCounts()
        for (iq, ich, s), c in intervals.items():
            if (iq, ich) == (q, ch) and start <= s < end:
                expected.add(c)
        assert counts == expected, (window, q, ch, start)
    for q, ch, s in intervals:
        for window in ("hour", "day"):
            holders = [k for k, (end, _) in rollups.items() if k[:3] == (window, q, ch) and k[3] <= s < end]
            assert len(holders) == 1, (window, q, ch, s)


@SETTINGS
@given(events=event_logs(), advance_every=st.integers(1, 10))
def test_ordered_input_equals_batch(events, advance_every):
    finals, results, state = run(events, advance_every)
    assert set(results) <= {None}, results
    check_against_batch(events, finals, state)


@SETTINGS
@given(
    events=event_logs(),
    advance_every=st.integers(1, 10),
    seed=st.integers(0, 2**32 - 1),
    max_shift=st.integers(0, LATENESS * 1000),
)
def test_every_event_duplicated_gives_the_same_counts(events, advance_every, seed, max_shift):
    rnd = random.Random(seed)
    # each contact event is delivered twice: the copy (same event_id, re-decoded from its bytes) comes at
    # most `max_shift` of event time after the original, interleaved with the other events
    keyed = []
    for e in events:
        keyed.append((ms(e), rnd.random(), e))
        if not isinstance(e, ev.SourceHeartbeat):
            copy = msgspec.json.decode(ev.encode(e), type=ev.ContactTopicEvent)
            keyed.append((ms(e) + rnd.randint(0, max_shift), rnd.random(), copy))
    keyed.sort(key=lambda x: (x[0], x[1]))
    doubled = [e for _, _, e in keyed]
    n_contact = sum(not isinstance(e, ev.SourceHeartbeat) for e in events)

    finals, results, state = run(doubled, advance_every)
    assert results.count(DUPLICATE) == n_contact
    assert results.count(None) == n_contact
    check_against_batch(events, finals, state)
    check_against_batch(doubled, finals, state)  # the batch counts duplicates once as well
    ref_finals, _, ref_state = run(events, advance_every)
    assert finals == ref_finals and state.totals == ref_state.totals


@SETTINGS
@given(
    events=event_logs(),
    advance_every=st.integers(1, 10),
    seed=st.integers(0, 2**32 - 1),
    max_delay=st.integers(0, 20 * INTERVAL * 1000),
)
def test_redelivery_at_any_later_time_is_duplicate_or_late_never_counted_again(events, advance_every, seed, max_delay):
    stream = redelivered(events, random.Random(seed), max_delay)
    finals, results, state = run(stream, advance_every)
    assert_first_applied_then_dropped(stream, results, (DUPLICATE, LATE))
    check_against_batch(events, finals, state)


@SETTINGS
@given(
    events=event_logs(),
    advance_every=st.integers(1, 10),
    seed=st.integers(0, 2**32 - 1),
    max_shift=st.integers(0, LATENESS * 1000),
)
def test_shuffled_within_allowed_lateness_gives_the_same_counts(events, advance_every, seed, max_shift):
    shuffled = perturbed(events, random.Random(seed), max_shift)
    finals, results, state = run(shuffled, advance_every)
    assert LATE not in results and IMPOSSIBLE not in results, results
    assert set(results) <= {None}
    check_against_batch(events, finals, state)


@SETTINGS
@given(events=event_logs(), seed=st.integers(0, 2**32 - 1))
def test_shuffled_and_duplicated_with_snapshot_restore_midway(events, seed):
    """Duplicates, local shuffling and a checkpoint restore in the middle: still the batch counts."""
    rnd = random.Random(seed)
    doubled = events + [e for e in events if not isinstance(e, ev.SourceHeartbeat)]
    stream = perturbed(doubled, rnd, LATENESS * 1000)
    cut = rnd.randint(0, len(stream))
    s = QueueState(INTERVAL, LATENESS, TIMEOUT, rules_of, BOUNDS)
    finals: dict = {}
    agents: dict = {}
    results: list = []

    def keep(u):
        finals[(u.queue_id, u.channel, u.start * 1000)] = u.counts
        for agent, c in u.agents.items():
            agents.setdefault((agent, u.start * 1000), HandlingCounts()).add(c)

    def feed(state, part):
        for i, e in enumerate(part):
            if isinstance(e, ev.SourceHeartbeat):
                state.observe_time(ms(e))
            else:
                results.append(state.apply(e))
            if i % 3 == 0:
                for u in state.advance():
                    keep(u)

    # a whole checkpoint, then two of the changes only (pipeline.runtime.checkpoints)
    whole_at, *changes_at = sorted([cut, rnd.randint(0, cut), rnd.randint(0, cut)])
    feed(s, stream[:whole_at])
    whole, changes = s.snapshot(), []
    for start, end in itertools.pairwise([whole_at, *changes_at]):
        feed(s, stream[start:end])
        changes.append(s.changes())
    restored = QueueState(INTERVAL, LATENESS, TIMEOUT, rules_of, BOUNDS)
    restored.restore(whole, changes)
    assert stored_form(restored) == stored_form(s)
    feed(restored, stream[cut:])
    restored.observe_time(FAR)
    for u in restored.advance():
        assert (u.queue_id, u.channel, u.start * 1000) not in finals
        keep(u)
    restored.final_agents = agents
    n_contact = len(doubled) - len(events)
    assert results.count(DUPLICATE) == n_contact and results.count(None) == n_contact
    check_against_batch(events, finals, restored)


def stored_form(s: QueueState) -> dict:
    """A state's snapshot, its legs in key order (a restored state may hold them in another order)."""
    d = msgspec.to_builtins(CODEC.decode(s.snapshot()))
    return {**d, "legs": sorted(d["legs"], key=lambda x: (x["queue_id"], x["contact_id"]))}


# ---- the batch computation itself, on a hand-checked log -------------------------------------------------


def test_batch_compute_hand_checked():
    E = Events()
    log = [
        E.offered(10, "Q1", "c1"),
        E.answered(30, "Q1", "c1"),  # wait 20 s: within 20 s
        E.hold_started(40, "Q1", "c1"),
        E.hold_ended(45.5, "Q1", "c1"),
        E.transferred(70, "Q1", "c1", to_queue="Q2"),
        E.acw_ended(75, "Q1", "c1"),  # completes in [60, 120)
        E.offered(71, "Q2", "c1"),
        E.abandoned(90, "Q2", "c1"),  # abandon after 19 s, Q2 threshold 30 s
        E.heartbeat(100),
        E.offered(50, "Q1", "c2", channel="chat"),
        E.answered(50.25, "Q1", "c2", channel="chat"),
        E.ended(60, "Q1", "c2", channel="chat"),
        E.acw_ended(60, "Q1", "c2", channel="chat"),
        E.survey(80, 4, "Q1", "c1"),
        E.ivr(5, True, "Q2"),
        E.offered(20, "Q3", "c3"),
        E.flowed_out(50, "Q3", "c3", to_queue="Q1"),
    ]
    log = log + log[:3]  # duplicates count once
    intervals, totals = batch_kpis.compute(reversed(log), INTERVAL, threshold_of, SHORT.__getitem__, BOUNDS)
    b = BASE_MS
    assert intervals == {
        ("Q1", "voice", b): QueueCounts(
            offered=1,
            answered=1,
            answered_within_threshold=1,
            answer_wait_ms=20000,
            longest_wait_ms=20000,
            waits={"answered:20000": 1},
        ),
        # handle 75 - 30 = 45 s; hold 5.5 s; ACW 75 - 70 = 5 s; the survey at 80 s
        ("Q1", "voice", b + 60_000): QueueCounts(
            handled=1,
            handle_ms=45000,
            talk_ms=34500,
            hold_ms=5500,
            acw_ms=5000,
            held=1,
            transferred_out=1,
            surveys=1,
            survey_score_sum=4,
            surveys_satisfied=1,
            dispositions={"other": 1},  # "done": no queue configures wrap-up codes here
        ),
        ("Q2", "voice", b): QueueCounts(ivr_sessions=1, ivr_contained=1),
        # Q2's short-abandon threshold is 20 s: the 19 s abandon is short
        ("Q2", "voice", b + 60_000): QueueCounts(
            offered=1,
            abandoned=1,
            abandoned_within_threshold=1,
            short_abandoned=1,
            abandon_wait_ms=19000,
            longest_wait_ms=19000,
            waits={"abandoned:20000": 1},
        ),
        ("Q1", "chat", b): QueueCounts(
            offered=1,
            answered=1,
            answered_within_threshold=1,
            answer_wait_ms=250,
            longest_wait_ms=250,
            waits={"answered:5000": 1},
        ),
        # handle 60 - 50.25 = 9.75 s, ACW 0, completes at 60 s: interval [60, 120)
        ("Q1", "chat", b + 60_000): QueueCounts(handled=1, handle_ms=9750, talk_ms=9750, dispositions={"other": 1}),
        ("Q3", "voice", b): QueueCounts(offered=1, flowed_out=1, longest_wait_ms=30000),
    }
    assert totals[("Q1", "voice")] == QueueCounts(
        offered=1,
        answered=1,
        answered_within_threshold=1,
        answer_wait_ms=20000,
        longest_wait_ms=20000,
        waits={"answered:20000": 1},
        handled=1,
        handle_ms=45000,
        talk_ms=34500,
        hold_ms=5500,
        acw_ms=5000,
        held=1,
        transferred_out=1,
        surveys=1,
        survey_score_sum=4,
        surveys_satisfied=1,
        dispositions={"other": 1},
    )
    assert set(totals) == {("Q1", "voice"), ("Q2", "voice"), ("Q1", "chat"), ("Q3", "voice")}
