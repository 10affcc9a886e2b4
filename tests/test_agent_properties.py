"""Property-based tests: AgentState over random agent logs equals the independent batch computation
(tests/batch_agents.py) for every agent count, per (agent, interval), per agent and per queue.

A generated log is a few agents, each with a random walk of presence events (log in with some queues, state
changes with reason codes and active contacts, log out; also a state change while logged out and a second
login) at distinct milliseconds, and schedule entries of random versions, activities and spans, published at
or before they start. Heartbeats are sprinkled in; they only move the watermark (as the processor does).
"""

from __future__ import annotations

import itertools
import os
import random
from datetime import UTC, timedelta, timezone

import batch_agents
import msgspec
from agentlog import AgentEvents
from eventlog import BASE_MS, assert_first_applied_then_dropped, ms, perturbed, redelivered
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.contract import events as ev
from pipeline.kpis.agents import MAX_PRESENCE_SECONDS
from pipeline.state.agents import CODEC, DUPLICATE, LATE, AgentState

INTERVAL = 60  # s: short, so that spans cross several intervals
LATENESS = 120  # s
ZONES = (UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30)))
QUEUES = ("Q1", "Q2", "Q3")
REASONS = (None, "break", "lunch", "training")
ACTIVITIES = ("contact_handling", "contact_handling", "break", "lunch", "training", "meeting", "off")

SETTINGS = settings(
    max_examples=int(os.environ.get("KPI_PROPERTY_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)


@st.composite
def agent_logs(draw, long_gaps: bool = False) -> list[ev.Event]:
    """A valid agent log, sorted by event time; one agent's presence events are at distinct milliseconds. With
    `long_gaps`, some presences last about `MAX_PRESENCE_SECONDS` (a little less, exactly, or more)."""
    E = AgentEvents(tz=draw(st.sampled_from(ZONES)))
    start = draw(st.integers(0, INTERVAL * 1000 - 1))
    span = draw(st.integers(1, 5)) * INTERVAL * 1000
    timed: list[tuple[int, ev.Event]] = []
    gaps = st.one_of(st.integers(1, 5_000), st.integers(1, 3 * INTERVAL * 1000), st.sampled_from([1, 1000]))
    if long_gaps:
        longest = MAX_PRESENCE_SECONDS * 1000
        gaps = st.one_of(gaps, st.integers(longest - 2 * INTERVAL * 1000, longest + 2 * INTERVAL * 1000))
    for i in range(draw(st.integers(1, 4))):
        agent = f"A{i}"
        t = start + draw(st.integers(0, span))
        for _ in range(draw(st.integers(0, 12))):
            kind = draw(st.sampled_from(("login", "logout", "state", "state", "state")))
            if kind == "login":
                queues = draw(st.lists(st.sampled_from(QUEUES), max_size=3, unique=True))
                e = E.login(t / 1000, agent, queues)
            elif kind == "logout":
                e = E.logout(t / 1000, agent)
            else:
                state = draw(st.sampled_from(("available", "on_contact", "acw", "not_ready")))
                reason = draw(st.sampled_from(REASONS)) if state == "not_ready" else None
                active = draw(st.one_of(st.none(), st.integers(0, 3)))
                e = E.state(t / 1000, state, agent, reason, active)
            timed.append((t, e))
            t += draw(gaps)
        for _ in range(draw(st.integers(0, 4))):
            s = start + draw(st.integers(0, span))
            end = s + draw(st.integers(1, 3 * INTERVAL * 1000))
            published = draw(st.integers(start, s))
            e = E.plan(
                s / 1000,
                end / 1000,
                draw(st.sampled_from(ACTIVITIES)),
                agent,
                version=draw(st.integers(1, 3)),
                published=published / 1000,
            )
            timed.append((published, e))
    if not timed:
        timed.append((start, E.login(start / 1000, "A0", ["Q1"])))
    last = max(t for t, _ in timed)
    for _ in range(draw(st.integers(0, 5))):
        h = draw(st.integers(start, last))
        timed.append((h, E.heartbeat(h / 1000)))
    timed.sort(key=lambda x: x[0])  # stable
    return [e for _, e in timed]


def end_of(events: list[ev.Event]) -> int:
    """A watermark past every event and every planned activity."""
    times = [ms(e) for e in events] + [
        round(e.end.timestamp() * 1000) for e in events if isinstance(e, ev.ScheduleActivityPlanned)
    ]
    return BASE_MS + (max(times) - BASE_MS) + 3 * INTERVAL * 1000 + LATENESS * 1000


def feed(state: AgentState, events, advance_every: int, finals: dict, results: list) -> None:
    for i, e in enumerate(events, 1):
        if isinstance(e, ev.SourceHeartbeat):
            state.observe_time(ms(e))
        else:
            results.append(state.apply(e))
        if i % advance_every == 0:
            collect(state, finals)


def collect(state: AgentState, finals: dict) -> None:
    for u in state.advance():
        assert u.final and u.revision == 1
        key = (u.agent_id, u.start * 1000)
        assert key not in finals, f"{key} final twice"
        finals[key] = u.counts


def finish(state: AgentState, end: int, finals: dict) -> int:
    state.observe_time(end)
    collect(state, finals)
    return state.horizon


def run(events, advance_every: int):
    s = AgentState(INTERVAL, LATENESS)
    finals: dict = {}
    results: list = []
    feed(s, events, advance_every, finals, results)
    return finals, results, s


def check_against_batch(events, finals, state, until):
    intervals, totals, queues = batch_agents.compute(events, INTERVAL, until)
    assert finals == intervals
    assert state.totals == totals
    assert {q: (x.scheduled_ms, x.adherent_ms) for q, x in state.queue_totals.items()} == queues


@SETTINGS
@given(events=agent_logs(), advance_every=st.integers(1, 10))
def test_ordered_input_equals_batch(events, advance_every):
    finals, results, state = run(events, advance_every)
    assert set(results) <= {None}, results
    until = finish(state, end_of(events), finals)
    check_against_batch(events, finals, state, until)


@SETTINGS
@given(
    events=agent_logs(),
    advance_every=st.integers(1, 10),
    seed=st.integers(0, 2**32 - 1),
    max_shift=st.integers(0, LATENESS * 1000),
)
def test_shuffled_within_lateness_and_duplicated_gives_the_same_counts(events, advance_every, seed, max_shift):
    rnd = random.Random(seed)
    copies = [
        msgspec.json.decode(ev.encode(e), type=ev.AgentTopicEvent)
        for e in events
        if not isinstance(e, ev.SourceHeartbeat)
    ]
    stream = perturbed(events + copies, rnd, max_shift)
    finals, results, state = run(stream, advance_every)
    assert LATE not in results
    assert results.count(DUPLICATE) == len(copies) and results.count(None) == len(copies)
    until = finish(state, end_of(events), finals)
    check_against_batch(events, finals, state, until)
    # the same figures as the ordered run, and the same real-time view
    ref_finals, _, ref_state = run(events, advance_every)
    assert finish(ref_state, end_of(events), ref_finals) == until
    assert finals == ref_finals and ref_state.totals == state.totals


@settings(SETTINGS, max_examples=max(10, SETTINGS.max_examples // 5))
@given(events=agent_logs(long_gaps=True), advance_every=st.integers(1, 10))
def test_a_presence_longer_than_the_longest_counts_as_logged_out_after_it_as_the_batch_says(events, advance_every):
    finals, results, state = run(events, advance_every)
    assert set(results) <= {None}, results
    until = finish(state, end_of(events), finals)
    check_against_batch(events, finals, state, until)


@SETTINGS
@given(events=agent_logs(), seed=st.integers(0, 2**32 - 1), max_shift=st.integers(0, LATENESS * 1000))
def test_real_time_view_does_not_depend_on_arrival_order(events, seed, max_shift):
    ordered = AgentState(INTERVAL, LATENESS)
    shuffled = AgentState(INTERVAL, LATENESS)
    feed(ordered, events, 3, {}, [])
    feed(shuffled, perturbed(events, random.Random(seed), max_shift), 3, {}, [])
    assert ordered.agents_by_state() == shuffled.agents_by_state()
    # and it is what the batch says every agent is doing after its last event
    expected: dict = {}
    for agent in {e.agent_id for e in events if isinstance(e, ev.AgentEvent)}:
        mine = sorted(
            (
                e
                for e in events
                if isinstance(e, ev.AgentEvent)
                and e.agent_id == agent
                and not isinstance(e, ev.ScheduleActivityPlanned)
            ),
            key=ms,
        )
        s = batch_agents._status_after(mine)
        if s["logged_in"]:
            for q in s["queues"]:
                row = expected.setdefault(
                    q, dict.fromkeys(("available", "on_contact", "acw", "not_ready", "logged_in"), 0)
                )
                row[s["state"]] += 1
                row["logged_in"] += 1
    assert ordered.agents_by_state() == expected


@SETTINGS
@given(events=agent_logs(), seed=st.integers(0, 2**32 - 1))
def test_shuffled_and_duplicated_with_snapshot_restore_midway(events, seed):
    rnd = random.Random(seed)
    doubled = events + [e for e in events if not isinstance(e, ev.SourceHeartbeat)]
    stream = perturbed(doubled, rnd, LATENESS * 1000)
    cut = rnd.randint(0, len(stream))
    finals: dict = {}
    results: list = []
    first = AgentState(INTERVAL, LATENESS)
    # a whole checkpoint, then two of the changes only, or the whole state when every agent settled
    whole_at, *changes_at = sorted([cut, rnd.randint(0, cut), rnd.randint(0, cut)])
    feed(first, stream[:whole_at], 3, finals, results)
    whole, changes = first.snapshot(), []
    for start, end in itertools.pairwise([whole_at, *changes_at]):
        feed(first, stream[start:end], 3, finals, results)
        delta = first.changes()
        if delta is None:
            whole, changes = first.snapshot(), []
        else:
            changes.append(delta)
    restored = AgentState(INTERVAL, LATENESS)
    restored.restore(whole, changes)
    # the same state: compared decoded, as a restored agent's queues are the same set in another order (bytes differ)
    assert CODEC.decode(restored.snapshot()) == CODEC.decode(first.snapshot())
    feed(restored, stream[cut:], 3, finals, results)
    until = finish(restored, end_of(events), finals)
    n = len(doubled) - len(events)
    assert results.count(DUPLICATE) == n and results.count(None) == n
    check_against_batch(events, finals, restored, until)


@SETTINGS
@given(
    events=agent_logs(),
    advance_every=st.integers(1, 10),
    seed=st.integers(0, 2**32 - 1),
    max_delay=st.integers(0, 20 * INTERVAL * 1000),
)
def test_redelivery_at_any_later_time_is_duplicate_or_late_never_counted_again(events, advance_every, seed, max_delay):
    stream = redelivered(events, random.Random(seed), max_delay)
    finals, results, state = run(stream, advance_every)
    assert_first_applied_then_dropped(stream, results, (DUPLICATE, LATE))
    until = finish(state, end_of(events), finals)
    check_against_batch(events, finals, state, until)
