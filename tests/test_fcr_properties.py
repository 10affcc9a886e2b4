"""Property-based tests: the streaming repeat state over random offer logs equals a plain batch computation.

A generated log is a set of contacts of a few customers (and some anonymous ones), each with a first offer and
0..2 transfer legs in other queues shortly after. Times fall often on a coarse grid, so that a later contact
exactly at the end of a window (and two at the same millisecond) happen often. The stream is fed in event order,
shuffled within the allowed lateness, duplicated, and restored from a snapshot midway; after a final watermark
far ahead, every interval's final counts must equal the batch's, and nothing must be left in memory.
"""

from __future__ import annotations

import itertools
import os
import random
from collections import defaultdict

from eventlog import BASE_MS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.kpis.quality import FcrCounts
from pipeline.state.repeats import DUPLICATE, CustomerContact, RepeatState, window_end_key

INTERVAL = 60  # s
LATENESS = 120  # s
TIMEOUT = 300  # s: transfer legs come within this of the contact's newest leg
WINDOWS = {"Q1": 0.05, "Q2": 0.25, "Q3": 1 / 60}  # hours: 180 s, 900 s, 60 s
QUEUES = tuple(WINDOWS)
CUSTOMERS = ("a" * 64, "b" * 64, "c" * 64)  # stand-ins for hashes
FAR = BASE_MS + 365 * 24 * 3600 * 1000

SETTINGS = settings(
    max_examples=int(os.environ.get("KPI_PROPERTY_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)


# ---- the batch computation: every record at once, the definitions applied literally ---------------------------


def batch_fcr(records: list[CustomerContact]) -> dict[tuple[str, str, int], FcrCounts]:
    """(queue, channel, interval start ms) -> counts, from the definitions in pipeline/kpis/quality.py."""
    unique = {r.event_id: r for r in records}.values()  # the same event id counts once
    legs: dict[tuple[str | None, str], list[CustomerContact]] = defaultdict(list)
    for r in unique:
        legs[(r.customer, r.contact_id)].append(r)
    # a contact is its earliest offer (ties: smallest queue, then channel)
    first = {k: min(v, key=lambda r: (r.time_ms, r.queue_id, r.channel)) for k, v in legs.items()}
    window_ms = {q: round(w * 3600 * 1000) for q, w in WINDOWS.items()}
    out: dict[tuple[str, str, int], FcrCounts] = defaultdict(FcrCounts)
    for (customer, contact), r in first.items():
        counts = out[(r.queue_id, r.channel, r.time_ms // (INTERVAL * 1000) * INTERVAL * 1000)]
        if customer is None:
            counts.ineligible += 1
            continue
        counts.eligible += 1
        others = [o for (c, k), o in first.items() if c == customer and k != contact]
        t, w = r.time_ms, window_ms[r.queue_id]
        if any(t < o.time_ms <= t + w for o in others):  # contacted again within this contact's window
            counts.unresolved += 1
        if any(o.time_ms < t <= o.time_ms + window_ms[o.queue_id] for o in others):  # inside an earlier window
            counts.repeats += 1
    return dict(out)


def batch_window_ends(records: list[CustomerContact]) -> dict[tuple[str, str, int], int]:
    """(queue, channel, interval start ms) -> the latest end of a window of a contact first offered in it: its FCR
    can be final once the horizon (the interval start holding watermark - lateness) is past this."""
    first: dict[tuple[str | None, str], CustomerContact] = {}
    for r in records:
        k = (r.customer, r.contact_id)
        if k not in first or (r.time_ms, r.queue_id, r.channel) < (
            first[k].time_ms,
            first[k].queue_id,
            first[k].channel,
        ):
            first[k] = r
    out: dict[tuple[str, str, int], int] = {}
    for (customer, _), r in first.items():
        key = (r.queue_id, r.channel, r.time_ms // (INTERVAL * 1000) * INTERVAL * 1000)
        end = r.time_ms + (0 if customer is None else round(WINDOWS[r.queue_id] * 3600 * 1000))
        out[key] = max(out.get(key, end), end)
    return out


# ---- generated logs --------------------------------------------------------------------------------------------


@st.composite
def offer_logs(draw) -> list[CustomerContact]:
    span = draw(st.integers(1, 20)) * INTERVAL * 1000
    grid = draw(st.sampled_from((1, 1000, 60_000)))  # coarse grids make window edges and ties frequent
    channels = draw(st.sampled_from((("voice", "chat"), ("voice",))))
    out = []
    n = 0
    for i in range(draw(st.integers(1, 25))):
        customer = draw(st.sampled_from((*CUSTOMERS, None)))
        channel = draw(st.sampled_from(channels))
        chain = draw(st.permutations(QUEUES))[: draw(st.integers(1, 3))]
        t = BASE_MS + draw(st.integers(0, span // grid)) * grid
        for q in chain:
            n += 1
            out.append(
                CustomerContact(
                    customer=customer, contact_id=f"c{i}", queue_id=q, channel=channel, time_ms=t, event_id=f"e{n}"
                )
            )
            t += draw(st.integers(0, TIMEOUT * 1000 // grid)) * grid  # the next leg, at most TIMEOUT later
    out.sort(key=lambda r: r.time_ms)
    return out


def new_state() -> RepeatState:
    return RepeatState(INTERVAL, LATENESS, TIMEOUT, WINDOWS.__getitem__, sources=1)


class Run:
    """Feeds a state the way the FCR processor does: records, the source watermark (the newest time seen by the
    contact worker), and advance() every few records; collects the final updates."""

    def __init__(self, advance_every: int) -> None:
        self.state = new_state()
        self.every = advance_every
        self.finals: dict[tuple[str, str, int], FcrCounts] = {}
        self.results: list = []
        self.n = 0
        self.emitted_at: dict[tuple[str, str, int], int] = {}  # horizon when the final update came
        self.horizons: list[tuple[int, set]] = []  # (horizon, intervals final by then) at every advance()

    def collect(self) -> None:
        for u in self.state.advance():
            key = (u.queue_id, u.channel, u.start * 1000)
            assert u.final and key not in self.finals, f"interval {key} final twice"
            self.finals[key] = u.counts
            self.emitted_at[key] = self.state.horizon()
        self.horizons.append((self.state.horizon(), set(self.finals)))

    def feed(self, records) -> None:
        for r in records:
            self.results.append(self.state.apply(r))
            self.state.observe_source(0, r.time_ms)
            self.n += 1
            if self.n % self.every == 0:
                self.collect()

    def finish(self) -> None:
        self.state.observe_source(0, FAR)
        self.collect()


def check(run: Run, records: list[CustomerContact]) -> None:
    expected = batch_fcr(records)
    assert run.finals == expected
    # final when it may be: not before every window of the interval has passed, and once the latest window end
    # rounded up to the minute has (the state counts window ends per minute, not per contact)
    ends = batch_window_ends(records)
    for key, emitted in run.emitted_at.items():
        assert emitted > ends[key], (key, emitted, ends[key])
    for h, done in run.horizons:
        assert {k for k, end in ends.items() if window_end_key(end) < h} <= done
    s = run.state
    assert len(s.customers) == 0 and s.intervals == {} and s.advance() == []  # everything forgotten at the end
    for (q, ch), t in s.totals.items():
        mine = [c for (q2, ch2, _), c in expected.items() if (q2, ch2) == (q, ch)]
        assert t.eligible == t.decided == sum(c.eligible for c in mine)
        assert t.resolved == sum(c.eligible - c.unresolved for c in mine)
        assert t.repeats == sum(c.repeats for c in mine) and t.ineligible == sum(c.ineligible for c in mine)


def shifted(records, rnd: random.Random, max_shift_ms: int):
    """Processing order = event time + a random shift in [0, max_shift_ms] (at most the allowed lateness)."""
    keyed = [(r.time_ms + rnd.randint(0, max_shift_ms), rnd.random(), r) for r in records]
    keyed.sort(key=lambda x: (x[0], x[1]))
    return [r for _, _, r in keyed]


@SETTINGS
@given(records=offer_logs(), advance_every=st.integers(1, 8))
def test_in_order_equals_batch(records, advance_every):
    run = Run(advance_every)
    run.feed(records)
    run.finish()
    assert set(run.results) == {None}
    check(run, records)


@SETTINGS
@given(
    records=offer_logs(),
    advance_every=st.integers(1, 8),
    seed=st.integers(0, 2**32 - 1),
    max_shift=st.integers(0, LATENESS * 1000),
)
def test_shuffled_within_lateness_equals_batch(records, advance_every, seed, max_shift):
    run = Run(advance_every)
    run.feed(shifted(records, random.Random(seed), max_shift))
    run.finish()
    assert set(run.results) == {None}, run.results
    check(run, records)


@SETTINGS
@given(records=offer_logs(), advance_every=st.integers(1, 8), seed=st.integers(0, 2**32 - 1))
def test_duplicated_and_shuffled_equals_batch(records, advance_every, seed):
    doubled = shifted(records + records, random.Random(seed), LATENESS * 1000)
    run = Run(advance_every)
    run.feed(doubled)
    run.finish()
    assert run.results.count(DUPLICATE) == len(records) and run.results.count(None) == len(records)
    check(run, doubled)


@SETTINGS
@given(records=offer_logs(), seed=st.integers(0, 2**32 - 1))
def test_snapshot_restore_midway_equals_batch(records, seed):
    rnd = random.Random(seed)
    stream = shifted(records + records[: rnd.randint(0, len(records))], rnd, LATENESS * 1000)
    # a whole checkpoint, then two of the changes only (pipeline.runtime.checkpoints)
    whole_at, *changes_at = sorted(rnd.randint(0, len(stream)) for _ in range(3))
    run = Run(advance_every=3)
    run.feed(stream[:whole_at])
    whole, changes = run.state.snapshot(), []
    for start, end in itertools.pairwise([whole_at, *changes_at]):
        run.feed(stream[start:end])
        changes.append(run.state.changes())
    restored = new_state()
    restored.restore(whole, changes)
    assert restored.contacts_held() == run.state.contacts_held()
    run.state = restored
    run.feed(stream[changes_at[-1] :])
    run.finish()
    assert run.results.count(None) == len(records)
    check(run, records)


@SETTINGS
@given(records=offer_logs())
def test_memory_holds_only_contacts_a_window_can_use(records):
    """At every step, each contact held is one whose window or timeout still reaches the horizon."""
    run = Run(advance_every=1)
    for r in records:
        run.feed([r])
        h = run.state.horizon()
        for contacts in run.state.held_contacts():
            for c in contacts.values():
                assert c.keep_until(TIMEOUT * 1000) >= h
    run.finish()
    check(run, records)


def test_batch_computation_hand_checked():
    w1 = 180_000  # Q1's window, ms
    b = BASE_MS
    cust = CUSTOMERS[0]

    def offer(t, contact, queue="Q1", event=None, customer=cust):
        return CustomerContact(
            customer=customer,
            contact_id=contact,
            queue_id=queue,
            channel="voice",
            time_ms=b + t,
            event_id=event or f"{contact}-{queue}",
        )

    log = [
        offer(0, "x"),  # unresolved: y is exactly at the window's edge
        offer(w1, "y"),  # a repeat of x; resolved (z is 1 ms after its window)
        offer(2 * w1 + 1, "z"),
        offer(10, "x", queue="Q2"),  # a transfer leg of x: neither a repeat nor a second contact
        offer(5, "anon", customer=None),
        offer(0, "x", event="x-Q1"),  # a duplicate
    ]
    assert batch_fcr(log) == {
        ("Q1", "voice", b): FcrCounts(eligible=1, unresolved=1, ineligible=1),
        ("Q1", "voice", b + 180_000): FcrCounts(eligible=1, repeats=1),
        ("Q1", "voice", b + 360_000): FcrCounts(eligible=1),
    }
