"""Unit tests of first contact resolution and repeat contacts (no broker): the repeat state, the forwarder, the FCR
processor and collector, and privacy.

Times are seconds after BASE (2024-01-01T00:00Z). Intervals are 15 minutes: interval 0 is [0 s, 900 s).
Windows: Q1 1 h, Q2 2 h. Allowed lateness 120 s, contact timeout 1 h.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import msgspec
import pytest
from eventlog import BASE, BASE_MS, BASE_S, keyed_messages
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.contract import events as ev
from pipeline.core.settings import QueueConfig, QueueSettings, SettingsError, load_settings
from pipeline.exposition.quality_metrics import FcrCollector
from pipeline.kpis.quality import FCR_COUNTS, FCR_KPIS, FcrCounts, FcrRecord, build_fcr_record, fcr_rate
from pipeline.processing import fcr
from pipeline.processing.processor import ContactProcessor, Message, PipelineStats
from pipeline.state.codec import CheckpointError
from pipeline.state.repeats import (
    DUPLICATE,
    LATE,
    CustomerContact,
    CustomerLegs,
    FcrUpdate,
    RepeatState,
    SourceWatermark,
    digest,
)

INTERVAL = 900
LATENESS = 120
TIMEOUT = 3600
WINDOWS = {"Q1": 1.0, "Q2": 2.0}
HOUR = 3600
KEY = b"test-key-0123456789abcdef"
FAR = BASE_MS + 30 * 24 * 3600 * 1000


def make_state(sources: int = 1, timeout: int = TIMEOUT) -> RepeatState:
    return RepeatState(INTERVAL, LATENESS, timeout, WINDOWS.__getitem__, sources)


def h(customer: str) -> str:
    return fcr.customer_hash(KEY, customer)


class Offers:
    """CustomerContact records with unique event ids; `at` in seconds after BASE."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(
        self, at: float, customer: str | None = "alice", contact: str = "c1", queue: str = "Q1", channel: str = "voice"
    ) -> CustomerContact:
        self.n += 1
        return CustomerContact(
            customer=h(customer) if customer else None,
            contact_id=contact,
            queue_id=queue,
            channel=channel,
            time_ms=BASE_MS + round(at * 1000),
            event_id=f"o{self.n}",
        )


def at_wm(state: RepeatState, at: float) -> None:
    state.observe_source(0, BASE_MS + round(at * 1000))


def feed(state: RepeatState, records) -> list:
    out = []
    for r in records:
        out.append(state.apply(r))
        state.observe_source(0, r.time_ms)  # the contact worker's watermark: the newest event time
    return out


def close_all(state: RepeatState) -> dict[tuple[str, str, int], FcrCounts]:
    state.observe_source(0, FAR)
    out = {}
    for u in state.advance():
        assert u.final
        out[(u.queue_id, u.channel, u.start - BASE_S)] = u.counts
    return out


# ---- the window's edge ----------------------------------------------------------------------------------


def test_repeat_exactly_at_the_window_edge_is_a_repeat():
    o = Offers()
    s = make_state()
    # c1 at 100 s in Q1 (window 1 h): c2 at exactly 100 s + 3600 s is inside (t1 < t2 <= t1 + W)
    assert feed(s, [o(100, contact="c1"), o(100 + HOUR, contact="c2")]) == [None, None]
    finals = close_all(s)
    assert finals == {
        ("Q1", "voice", 0): FcrCounts(eligible=1, unresolved=1),  # c1 not resolved
        ("Q1", "voice", 3600): FcrCounts(eligible=1, repeats=1),  # c2 is a repeat, and itself resolved
    }
    assert fcr_rate(finals[("Q1", "voice", 0)]) == 0.0


def test_one_millisecond_after_the_window_is_not_a_repeat():
    o = Offers()
    s = make_state()
    feed(s, [o(100, contact="c1"), o(100 + HOUR + 0.001, contact="c2")])
    assert close_all(s) == {
        ("Q1", "voice", 0): FcrCounts(eligible=1),
        ("Q1", "voice", 3600): FcrCounts(eligible=1),
    }


def test_same_millisecond_contacts_are_not_repeats_of_each_other():
    o = Offers()
    s = make_state()
    feed(s, [o(100, contact="c1"), o(100, contact="c2", queue="Q2", channel="chat")])
    assert close_all(s) == {("Q1", "voice", 0): FcrCounts(eligible=1), ("Q2", "chat", 0): FcrCounts(eligible=1)}


def test_the_window_is_that_of_the_earlier_contacts_queue():
    o = Offers()
    s = make_state()
    # c1 in Q2 (window 2 h) at 0; c2 in Q1 (window 1 h) 1.5 h later: inside c1's window (a repeat);
    # c3 at 3 h: 1.5 h after c2, outside c2's 1 h window, and 3 h after c1, outside its 2 h window
    feed(
        s,
        [
            o(0, contact="c1", queue="Q2"),
            o(1.5 * HOUR, contact="c2", queue="Q1"),
            o(3 * HOUR, contact="c3", queue="Q1"),
        ],
    )
    assert close_all(s) == {
        ("Q2", "voice", 0): FcrCounts(eligible=1, unresolved=1),
        ("Q1", "voice", 5400): FcrCounts(eligible=1, repeats=1),
        ("Q1", "voice", 10800): FcrCounts(eligible=1),
    }


def test_a_contact_on_another_channel_and_queue_counts_as_a_repeat():
    o = Offers()
    s = make_state()
    feed(
        s,
        [
            o(10, contact="call", queue="Q1", channel="voice"),
            o(1800, contact="chat", queue="Q2", channel="chat"),
            o(1900, customer="bob", contact="other"),
        ],
    )  # another customer: no effect on alice
    assert close_all(s) == {
        ("Q1", "voice", 0): FcrCounts(eligible=1, unresolved=1),
        ("Q2", "chat", 1800): FcrCounts(eligible=1, repeats=1),
        ("Q1", "voice", 1800): FcrCounts(eligible=1),
    }


# ---- transfers: the same contact, and a contact spanning two intervals -----------------------------------


def test_a_transfer_leg_of_the_same_contact_is_not_a_repeat_and_counts_once_in_its_first_interval():
    o = Offers()
    s = make_state()
    # c1 arrives in Q1 at 850 s (interval 0) and is transferred to Q2, arriving there at 950 s (interval 1)
    feed(s, [o(850, contact="c1", queue="Q1"), o(950, contact="c1", queue="Q2")])
    assert close_all(s) == {("Q1", "voice", 0): FcrCounts(eligible=1)}


def test_a_transfer_leg_seen_before_the_first_leg_moves_the_contact_to_the_first_leg():
    o = Offers()
    s = make_state()
    second, first = o(950, contact="c1", queue="Q2"), o(850, contact="c1", queue="Q1")
    assert feed(s, [second]) == [None]
    assert s.intervals[("Q2", "voice", BASE_MS + 900_000)].counts == FcrCounts(eligible=1)
    assert s.apply(first) is None  # within the lateness: the watermark is at 950 s
    assert s.intervals[("Q2", "voice", BASE_MS + 900_000)].counts == FcrCounts()
    finals = close_all(s)
    assert finals == {("Q1", "voice", 0): FcrCounts(eligible=1)}  # the emptied Q2 interval publishes nothing


def test_a_repeat_of_a_transferred_contact_counts_from_its_first_leg():
    o = Offers()
    s = make_state()
    # c1: Q2 (2 h window) at 0, transferred to Q1 at 600 s; c2 at 1.9 h: inside Q2's window (c1's first leg)
    # although it is more than 1 h after the Q1 leg
    feed(s, [o(0, contact="c1", queue="Q2"), o(600, contact="c1", queue="Q1"), o(1.9 * HOUR, contact="c2")])
    assert close_all(s) == {
        ("Q2", "voice", 0): FcrCounts(eligible=1, unresolved=1),
        ("Q1", "voice", 6300): FcrCounts(eligible=1, repeats=1),
    }


# ---- anonymous contacts --------------------------------------------------------------------------------


def test_contacts_without_customer_id_are_ineligible_and_never_match():
    o = Offers()
    s = make_state()
    feed(
        s,
        [
            o(10, customer=None, contact="a1"),
            o(20, customer=None, contact="a2"),
            o(30, customer=None, contact="a1", queue="Q2"),  # a transfer leg of a1: still one contact
            o(40, contact="c1"),
            o(50, customer=None, contact="a3"),
        ],
    )
    assert close_all(s) == {
        ("Q1", "voice", 0): FcrCounts(eligible=1, ineligible=3),  # c1 resolved: anonymous contacts never repeat
    }


# ---- time: lateness, provisional, final, multi-source watermark ---------------------------------------------


def test_fcr_is_provisional_until_the_window_has_passed_then_final():
    o = Offers()
    s = make_state()
    feed(s, [o(100, contact="c1")])
    # arrivals of interval 0 are closed at 900 + 120 s: eligible is settled, the outcome is not
    at_wm(s, 1020)
    assert s.advance() == []
    assert s.totals[("Q1", "voice")].eligible == 1 and s.totals[("Q1", "voice")].decided == 0
    [update] = s.provisional(wall_now=1000.0, every=0)
    assert not update.final and update.counts == FcrCounts(eligible=1)
    # c1's window ends at 3700 s, in the interval [3600, 4500): final once the watermark is at 4500 + 120 s
    at_wm(s, 4619.999)
    assert s.advance() == []
    # a repeat exactly at the window's edge, arriving as late as possible, still counts
    assert s.apply(o(3700, contact="c2")) is None
    at_wm(s, 4620)
    [final] = s.advance()
    assert final.final and final.revision == 2 and final.counts == FcrCounts(eligible=1, unresolved=1)
    assert s.totals[("Q1", "voice")].decided == 1 and s.totals[("Q1", "voice")].resolved == 0


def test_an_offer_before_the_horizon_is_late_and_changes_nothing():
    o = Offers()
    s = make_state()
    feed(s, [o(100, contact="c1")])
    at_wm(s, 1020)  # horizon: 900 s
    assert s.apply(o(899.999, contact="c0")) == LATE
    assert s.apply(o(900, contact="c2")) is None
    assert close_all(s) == {
        ("Q1", "voice", 0): FcrCounts(eligible=1, unresolved=1),
        ("Q1", "voice", 900): FcrCounts(eligible=1, repeats=1),
    }


def test_duplicates_count_once():
    o = Offers()
    s = make_state()
    first = o(100, contact="c1")
    assert feed(s, [first, o(200, contact="c2"), first]) == [None, None, DUPLICATE]
    assert close_all(s) == {("Q1", "voice", 0): FcrCounts(eligible=2, unresolved=1, repeats=1)}


def test_the_watermark_is_the_lowest_of_the_contact_partitions():
    s = make_state(sources=2)
    s.observe_source(0, FAR)
    assert s.horizon() < BASE_MS  # partition 1 not heard from: nothing is late, nothing closes
    assert s.apply(Offers()(100)) is None
    assert s.advance() == []
    s.observe_source(1, BASE_MS + 2000 * 1000)
    assert s.watermark == BASE_MS + 2000 * 1000
    s.observe_source(1, BASE_MS)  # a watermark never goes back
    assert s.watermark == BASE_MS + 2000 * 1000


# ---- bounded memory --------------------------------------------------------------------------------------


def test_customer_state_is_forgotten_when_no_window_can_use_it():
    o = Offers()
    s = make_state()
    feed(s, [o(100, contact="c1"), o(200, customer="bob", contact="c2")])
    assert s.contacts_held() == 2
    # keep until max(first + window, newest leg + timeout) = 100 s + 1 h: forgotten once that is before the horizon
    at_wm(s, 3600 + 120 + 99)  # horizon 2700 s
    s.advance()
    assert s.contacts_held() == 2
    at_wm(s, 4500 + 120)  # horizon 4500 s > 3700 s and > 3800 s
    s.advance()
    assert len(s.customers) == 0 and s.contacts_held() == 0
    assert s.intervals == {}


def test_forgotten_contacts_leave_their_decisions_pinned_on_the_contacts_kept():
    o = Offers()
    s = make_state()
    # c1 in Q1 (1 h) at 0; c2 in Q2 (2 h) at 1800 s: a repeat of c1. c1 is forgotten at horizon > 3600 s, while c2
    # is kept (its window runs to 9000 s). c3 at 8000 s is within c2's window: c2 is unresolved, and still a repeat.
    feed(s, [o(0, contact="c1"), o(1800, contact="c2", queue="Q2")])
    at_wm(s, 4500 + 120)
    [first] = s.advance()
    assert (first.queue_id, first.start, first.counts) == ("Q1", BASE_S, FcrCounts(eligible=1, unresolved=1))
    [customer] = s.held_contacts()
    c2 = customer[digest("c2")]
    assert set(customer) == {digest("c2")} and c2.repeat_pinned and not c2.unresolved_pinned
    feed(s, [o(8000, contact="c3")])
    assert close_all(s) == {
        ("Q2", "voice", 1800): FcrCounts(eligible=1, unresolved=1, repeats=1),
        ("Q1", "voice", 7200): FcrCounts(eligible=1, repeats=1),
    }


def test_a_forgotten_later_contact_leaves_the_earlier_one_unresolved():
    o = Offers()
    s = make_state()
    # d in Q2 (2 h) at 0; c in Q1 at 1800 s is within d's window. c is forgotten at horizon > 5400 s
    # (1800 s + 1 h); d is kept (to 7200 s) with its outcome pinned. e at 6400 s is within d's window too:
    # d stays counted once as unresolved.
    feed(s, [o(0, contact="d", queue="Q2"), o(1800, contact="c")])
    at_wm(s, 6300 + 120)
    [c_final] = s.advance()  # c's own outcome is final: its window ended at 5400 s
    assert (c_final.start, c_final.counts) == (BASE_S + 1800, FcrCounts(eligible=1, repeats=1))
    [customer] = s.held_contacts()
    d = customer[digest("d")]
    assert set(customer) == {digest("d")} and d.unresolved_pinned and not d.repeat_pinned
    feed(s, [o(6400, contact="e")])
    assert close_all(s) == {
        ("Q2", "voice", 0): FcrCounts(eligible=1, unresolved=1),
        ("Q1", "voice", 6300): FcrCounts(eligible=1, repeats=1),
    }


def interrupted(records: list, first: int, later: int) -> tuple[RepeatState, dict, RepeatState, list]:
    """The whole run and its final counts; and a run of records[:first], advanced to a horizon of 4500 s (so
    c1 at 0 s is forgotten), then records[first:later]: the state to checkpoint, with the finals published."""
    whole = make_state()
    feed(whole, records)
    expected = close_all(whole)
    s = make_state()
    feed(s, records[:first])
    at_wm(s, 4620)
    finals = s.advance()
    feed(s, records[first:later])
    return whole, expected, s, finals


def test_snapshot_and_restore_carry_on_exactly():
    o = Offers()
    records = [
        o(0, contact="c1"),
        o(1800, contact="c2", queue="Q2"),
        o(50, customer=None, contact="a"),
        o(8000, contact="c3"),
        o(8100, customer="bob", contact="c4", channel="chat"),
    ]
    whole, expected, s, finals = interrupted(records, 3, 4)
    before = {(u.queue_id, u.channel, u.start - BASE_S): u.counts for u in finals}  # c1 forgotten, c2 pinned
    assert set(before) == {("Q1", "voice", 0)}
    s.offset = 41
    restored = make_state()
    restored.restore(s.snapshot())
    assert restored.offset == 41 and restored.contacts_held() == s.contacts_held() == 2  # c2 (pinned) and c3
    assert restored.apply(records[3]) == DUPLICATE  # a re-delivery after the restart
    assert restored.apply(records[1]) == LATE  # c2's offer at 1800 s is before the horizon now
    feed(restored, records[4:])
    got = close_all(restored)
    assert ("Q1", "voice", 0) not in got  # it was final before the snapshot: not published again
    assert {**got, ("Q1", "voice", 0): before[("Q1", "voice", 0)]} == expected
    assert restored.totals == whole.totals


def test_restore_refuses_another_snapshot_version():
    s = make_state()
    with pytest.raises(CheckpointError, match="not a checkpoint of the repeat state"):
        s.restore(b'{"v": 99}')
    snap = s.snapshot()
    with pytest.raises(CheckpointError, match="repeat state checkpoint version 99: this release reads version"):
        s.restore(snap[:4] + (99).to_bytes(2, "little") + snap[6:])


def held(state: RepeatState) -> dict:
    return {
        key: {cid: (c.repeat_pinned, c.unresolved_pinned, c.legs) for cid, c in state._contacts(key).items()}
        for key in state.customers
    }


def test_changes_hold_only_the_customers_changed_and_too_many_ask_for_a_snapshot(monkeypatch):
    o = Offers()
    s = make_state()
    feed(s, [o(0, contact="c1"), o(60, customer="bob", contact="c2")])
    whole = s.snapshot()
    assert s.changes() is not None and len(s.changes()) < len(whole)  # nothing changed: the head only
    feed(s, [o(120, customer="carol", contact="c3")])
    delta = s.changes()
    restored = make_state()
    restored.restore(whole, [delta])
    assert held(restored) == held(s) and restored.contacts_held() == 3
    monkeypatch.setattr(CustomerLegs, "MIN_CHANGED", 1)
    feed(s, [o(180, customer="dave", contact="c4"), o(240, customer="erin", contact="c5")])
    assert s.changes() is None  # more customers changed than worth listing
    assert s.changes() is None  # until a snapshot is taken
    s.snapshot()
    assert s.changes() is not None


# ---- forwarder, processor, collector, settings -----------------------------------------------------------


T0 = BASE + timedelta(hours=9)


def offered(contact: str, queue: str, minutes: float, customer: str | None, channel: str = "voice"):
    return ev.ContactOffered(
        event_id=f"{contact}-{queue}-o",
        time=T0 + timedelta(minutes=minutes),
        contact_id=contact,
        queue_id=queue,
        channel=channel,
        customer_id=customer,
    )


def test_forwarder_hashes_customers_and_sends_watermarks_to_every_partition_once():
    from aiokafka.partitioner import DefaultPartitioner

    f = fcr.CustomerContactForwarder(KEY, partitions=3)
    out = f.messages([offered("c1", "Q1", 0, "cust-secret-1"), offered("c2", "Q1", 1, None)], {0: 5, 1: 7})
    # one message per partition of the internal topic, a JSON array each
    assert sorted(m.partition for m in out) == [0, 1, 2]
    batches = {m.partition: msgspec.json.decode(m.value, type=list[fcr.CustomerContactMessage]) for m in out}
    hashed = fcr.customer_hash(KEY, "cust-secret-1")
    partition_of = {k: DefaultPartitioner()(k.encode(), [0, 1, 2], [0, 1, 2]) for k in (hashed, "anon:c2")}
    contacts = {p: [r for r in b if isinstance(r, fcr.CustomerContact)] for p, b in batches.items()}
    assert [r.customer for r in contacts[partition_of[hashed]] if r.contact_id == "c1"] == [hashed]
    assert [r.customer for r in contacts[partition_of["anon:c2"]] if r.contact_id == "c2"] == [None]
    assert all(b"cust-secret-1" not in m.value + (m.key or b"") for m in out)
    for p, b in batches.items():
        marks = [(r.partition, r.watermark_ms) for r in b if isinstance(r, SourceWatermark)]
        assert marks == [(0, 5), (1, 7)]
        assert all(isinstance(r, SourceWatermark) for r in b[len(contacts[p]) :])  # offers first
    # only watermarks that moved are sent again
    assert f.messages([], {0: 5, 1: 8}) == [
        fcr.Outgoing(None, msgspec.json.encode([SourceWatermark(partition=1, watermark_ms=8)]), p) for p in range(3)
    ]
    assert f.messages([], {0: 4, 1: 8}) == []


def test_forwarder_splits_a_big_batch_within_the_message_limit_and_keeps_watermarks_last():
    limit = 4096
    f = fcr.CustomerContactForwarder(KEY, partitions=2, max_message_bytes=limit)
    offers = [offered(f"c{i}", "Q1", i / 60, f"cust-{i}") for i in range(200)]
    out = f.messages(offers, {0: 5})
    assert len(out) > 2 and all(len(m.value) <= limit for m in out)
    decoded = [(m.partition, msgspec.json.decode(m.value, type=list[fcr.CustomerContactMessage])) for m in out]
    assert sorted(r.contact_id for _, b in decoded for r in b if isinstance(r, fcr.CustomerContact)) == sorted(
        f"c{i}" for i in range(200)
    )
    for p in (0, 1):
        in_order = [r for q, b in decoded if q == p for r in b]
        assert [type(r) for r in in_order].index(SourceWatermark) == len(in_order) - 1  # after every offer


def test_the_hash_is_keyed():
    assert fcr.customer_hash(KEY, "cust-1") == fcr.customer_hash(KEY, "cust-1")
    assert fcr.customer_hash(KEY, "cust-1") != fcr.customer_hash(b"another-key-0123456", "cust-1")
    assert fcr.customer_hash(KEY, "cust-1") != fcr.customer_hash(KEY, "cust-2")


def test_hash_key_from_settings(caplog):
    with caplog.at_level(logging.WARNING):
        assert fcr.hash_key(load_settings(broker_url="x:1", customer_hash_key="")) == fcr.DEVELOPMENT_HASH_KEY
    assert "PUBLIC development key" in caplog.text
    assert fcr.hash_key(load_settings(broker_url="x:1", customer_hash_key="s" * 32)) == b"s" * 32
    with pytest.raises(SettingsError) as exc:
        fcr.hash_key(load_settings(broker_url="x:1", customer_hash_key="short-secret"))
    assert "CUSTOMER_HASH_KEY" in str(exc.value) and "short-secret" not in str(exc.value)


def contact_stream() -> list[ev.Event]:
    """alice calls Q1, chats on Q2 20 minutes later; bob calls once; one anonymous call; then a heartbeat
    30 hours on (past the default 24 h window)."""
    return [
        offered("c1", "Q1", 0, "cust-alice"),
        ev.ContactAnswered(
            event_id="c1-a",
            time=T0 + timedelta(minutes=1),
            contact_id="c1",
            queue_id="Q1",
            channel="voice",
            agent_id="ag",
        ),
        offered("c2", "Q1", 2, "cust-bob"),
        offered("c3", "Q1", 3, None),
        offered("c4", "Q2", 20, "cust-alice", channel="chat"),
        ev.SourceHeartbeat(event_id="hb", time=T0 + timedelta(hours=30)),
    ]


def run_pipeline(events, partitions: int = 2):
    """Contact processor → forwarder → FCR processor, in memory, the way the Faust wiring moves them."""
    settings = load_settings(broker_url="x:1", partitions=partitions)
    stats = PipelineStats()
    contacts = ContactProcessor(settings, QueueConfig(), stats)
    fcr_proc = fcr.FcrProcessor(settings, QueueConfig(), stats)
    forwarder = fcr.CustomerContactForwarder(KEY, partitions)
    result = contacts.process(keyed_messages(settings.topic("contact-events"), events, partitions), lambda p: None)
    out = forwarder.messages(result.offered, {p: s.watermark for p, s in contacts.partitions.items()})
    offsets = [0] * partitions
    internal = []
    for o in out:
        p = o.partition if o.partition is not None else sum(o.key) % partitions
        internal.append(Message(fcr_proc.topic, p, offsets[p], o.key, o.value))
        offsets[p] += 1
    return fcr_proc, fcr_proc.process(internal, lambda p: None, wall_now=1000.0), stats


def test_processor_publishes_final_fcr_records():
    proc, result, _ = run_pipeline(contact_stream())
    finals = [r for r in result.records if r.final]
    # one record per customer-contacts partition: distinct keys, so a compacted topic keeps them all
    assert len({r.key for r in finals}) == len(finals)

    def summed(queue, channel):
        rs = [r for r in finals if (r.queue_id, r.channel) == (queue, channel)]
        assert all(r.key == f"fcr|{queue}|{channel}|{r.interval_start.isoformat()}|{r.partition}" for r in rs)
        return tuple(
            sum(getattr(r, f) for r in rs)
            for f in ("fcr_eligible", "fcr_resolved", "fcr_unresolved", "repeat_contacts", "fcr_ineligible")
        )

    assert summed("Q1", "voice") == (2, 1, 1, 0, 1)
    assert summed("Q2", "chat") == (1, 1, 0, 1, 0)
    assert all(r.kind == "fcr" and r.fcr_window_hours == 24.0 for r in finals)
    assert set(proc.checkpoint()) == set(proc.partitions)


def test_privacy_no_customer_id_or_hash_in_records_or_metrics():
    events = contact_stream()
    proc, result, _ = run_pipeline(events)
    secrets = [b"cust-alice", b"cust-bob"] + [fcr.customer_hash(KEY, c).encode() for c in ("cust-alice", "cust-bob")]
    assert result.records
    for r in result.records:
        data = msgspec.json.encode(r)
        assert not any(s in data for s in secrets), data
        assert not any(s.decode() in r.key for s in secrets)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FcrCollector(proc))
    text = generate_latest(registry)
    assert not any(s in text for s in secrets)
    labels = {v for f in text_string_to_metric_families(text.decode()) for s in f.samples for v in s.labels.values()}
    assert labels and not any(s.decode() in v for v in labels for s in secrets)


def test_collector_exports_settled_and_final_counts_per_partition():
    proc, _, _ = run_pipeline(contact_stream())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FcrCollector(proc))

    def total(name: str, queue: str, channel: str) -> float:
        return sum(
            registry.get_sample_value(name, {"queue": queue, "channel": channel, "partition": str(p)}) or 0
            for p in proc.partitions
        )

    assert total("cc_queue_fcr_eligible_total", "Q1", "voice") == 2
    assert total("cc_queue_fcr_decided_total", "Q1", "voice") == 2
    assert total("cc_queue_fcr_resolved_total", "Q1", "voice") == 1
    assert total("cc_queue_fcr_ineligible_total", "Q1", "voice") == 1
    assert total("cc_queue_repeat_contacts_total", "Q2", "chat") == 1
    assert registry.get_sample_value("cc_pipeline_fcr_contacts_held", {"partition": "0"}) == 0  # all forgotten


def test_provisional_counters_do_not_count_unfinished_outcomes():
    events = contact_stream()[:-1] + [ev.SourceHeartbeat(event_id="hb", time=T0 + timedelta(hours=2))]
    proc, result, _ = run_pipeline(events)
    # a partition holding only an anonymous contact has nothing to wait for; the others are provisional
    assert result.records and not any(r.final for r in result.records if r.fcr_eligible)
    q1 = [r for r in result.records if r.queue_id == "Q1"]
    assert sum(r.fcr_unresolved for r in q1) == 1 and sum(r.fcr_resolved for r in q1) == 1  # bob: not yet
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FcrCollector(proc))
    resolved = [s.value for f in registry.collect() if f.name == "cc_queue_fcr_resolved" for s in f.samples]
    assert resolved and set(resolved) == {0}  # nothing final yet
    eligible = sum(s.value for f in registry.collect() if f.name == "cc_queue_fcr_eligible" for s in f.samples)
    assert eligible == 3  # arrivals are closed: 2 in Q1 and 1 in Q2


def test_catalogue_entries_name_record_fields():
    fields_ = set(FcrRecord.__struct_fields__)
    for c in FCR_COUNTS:
        assert c.record_field in fields_ and c.metric.endswith("_total")
    for k in FCR_KPIS:
        assert k.record_field in fields_ and k.attribution and k.promql


def test_window_comes_from_the_queue_file():
    queues = QueueConfig(defaults=QueueSettings(fcr_window_hours=72), queues={"Q9": QueueSettings(fcr_window_hours=1)})
    proc = fcr.FcrProcessor(load_settings(broker_url="x:1"), queues, PipelineStats())
    assert proc.window_hours("Q1") == 72 and proc.window_hours("Q9") == 1
    r = build_fcr_record(
        FcrUpdate("Q9", "voice", BASE_S, 1, True, FcrCounts(eligible=4, unresolved=1, repeats=2)), 900, 1.0
    )
    assert (r.fcr_resolved, r.fcr_rate, r.repeat_rate, r.final) == (3, 0.75, 0.5, True)


def test_customer_legs_store_behaves_as_a_dict_and_never_matches_across_two_keys(monkeypatch):
    import random
    import struct

    from pipeline.state.repeats import LEG

    monkeypatch.setattr(CustomerLegs, "BUCKETS", 3)  # many customers per bucket
    store, model = CustomerLegs(), {}
    rnd = random.Random(5)
    keys = [rnd.getrandbits(63) - (1 << 62) for _ in range(60)]
    for _ in range(3000):
        key = rnd.choice(keys)
        if rnd.random() < 0.3 and key in model:
            del store[key], model[key]
        else:
            model[key] = rnd.randbytes(LEG.size * rnd.randint(1, 4))
            store[key] = model[key]
        assert store.get(key) == model.get(key, b"")
    assert len(store) == len(model) and dict(store.items()) == model and set(store) == set(model)
    with pytest.raises(KeyError):
        del store[1 << 62]  # never stored

    # a key whose 8 bytes are the last 4 of one stored key and the first 4 of the next is not in the store
    a, b, c = b"AAAA", b"BBBB", b"CCCC"
    first, second, straddling = (struct.unpack("<q", x + y)[0] for x, y in ((a, b), (c, a), (b, c)))
    monkeypatch.setattr(CustomerLegs, "BUCKETS", 1)
    store = CustomerLegs([(first, b"x" * LEG.size), (second, b"y" * LEG.size)])
    assert store.get(straddling) == b"" and store.get(second) == b"y" * LEG.size


def test_window_ends_are_counted_per_minute_rounded_up():
    from pipeline.state.repeats import window_end_key

    assert [window_end_key(t) for t in (60_000, 60_001, 119_999)] == [60_000, 120_000, 120_000]
