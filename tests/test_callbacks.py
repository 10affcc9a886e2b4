"""Callbacks as their own lifecycle: the queue state against the batch computation on hand-made logs, the stored
form (a checkpoint written before callbacks existed still loads), the live gauges and the record's fields.

The random logs (in order, shuffled, duplicated, restored) are in test_kpi_properties.py."""

from __future__ import annotations

import random
from datetime import timedelta

import batch_kpis
import msgspec
from eventlog import BASE, BASE_MS, Events, ms, perturbed
from prometheus_client.parser import text_string_to_metric_families

from pipeline.contract import events as ev
from pipeline.core.settings import QueueConfig, QueueSettings, load_settings
from pipeline.exposition.metrics import build_registry, exposition
from pipeline.kpis.counts import IntervalUpdate, QueueCounts
from pipeline.kpis.definitions import RATIO
from pipeline.kpis.record import build_record
from pipeline.processing.processor import ContactProcessor, Message, PipelineStats
from pipeline.state.callbacks import CALLBACK_TIMEOUT_MS
from pipeline.state.queue_checkpoint import CODEC, VERSION
from pipeline.state.queues import DUPLICATE, IMPOSSIBLE, QueueState

INTERVAL = 60
LATENESS = 120
TIMEOUT = 4 * 3600


def rules_of(queue: str) -> QueueSettings:
    return QueueSettings()


def new_state() -> QueueState:
    return QueueState(INTERVAL, LATENESS, TIMEOUT, rules_of)


def batch(events: list[ev.Event]) -> dict[tuple[str, str], QueueCounts]:
    _, totals = batch_kpis.compute(events, INTERVAL, lambda q: rules_of(q).service_level_threshold_seconds)
    return totals


def lifecycle(E: Events) -> list[ev.Event]:
    """Three callbacks of queue Q1: c1 promised by 300 s at the request, moved to 200 s, dialled at 250 s (late
    against the moved promise), connected on attempt 2; c2 promised by 400 s, dialled at 400 s (within: at the
    promise), failed after 3 attempts, then rescheduled (after its first dial: no effect); c3 no promise, dialled."""
    return [
        E.offered(0, contact="c1"),
        E.callback(30, contact="c1", promised_by=300),
        E.callback_scheduled(60, 200, contact="c1"),
        E.callback_dialled(250, 1, contact="c1", agent="a1"),
        E.callback_dialled(280, 2, contact="c1"),
        E.callback_connected(281, 2, contact="c1"),
        E.offered(10, contact="c2"),
        E.callback(40, contact="c2", promised_by=400),
        E.callback_dialled(400, 1, contact="c2"),
        E.callback_scheduled(401, 900, contact="c2"),
        E.callback_dialled(460, 2, contact="c2"),
        E.callback_dialled(520, 3, contact="c2"),
        E.callback_failed(530, 3, contact="c2"),
        E.offered(20, contact="c3"),
        E.callback(50, contact="c3"),
        E.callback_dialled(130, 1, contact="c3"),
    ]


def test_the_lifecycle_counts_as_the_batch_after_every_event_in_order_and_shuffled():
    events = sorted(lifecycle(Events()), key=ms)
    for order in (events, *(perturbed(events, random.Random(seed), LATENESS * 1000) for seed in range(5))):
        s = new_state()
        for n, e in enumerate(order, 1):
            assert s.apply(e) is None, e
            assert s.totals == batch(order[:n]), f"after {n} events"
    c = s.totals[("Q1", "voice")]
    # the definitions, read off the log above: 2 promised first dials, 1 within; 6 dials; 1 of 2 connected
    assert (c.callbacks_dialled_promised, c.callbacks_dialled_within_promise, c.callback_dials) == (2, 1, 6)
    assert (c.callbacks_connected, c.callbacks_failed, c.callback_attempts) == (1, 1, 5)


def test_a_promise_that_comes_after_the_first_dial_moves_its_count():
    E = Events()
    dial, request = E.callback_dialled(100, 1), E.callback(30, promised_by=90)
    s = new_state()
    s.apply(dial)
    assert s.totals[("Q1", "voice")].callbacks_dialled_promised == 0  # no promise known yet
    s.apply(request)  # dialled 10 s after the promise: missed
    assert s.totals == batch([dial, request])
    later = E.callback_scheduled(40, 120)  # moved to 120 s before the dial: now within
    s.apply(later)
    assert s.totals == batch([dial, request, later])
    assert s.totals[("Q1", "voice")].callbacks_dialled_within_promise == 1


def test_contradictions_are_impossible_and_copies_duplicates():
    E = Events()
    s = new_state()
    first = E.callback_dialled(100, 1)
    assert s.apply(first) is None
    assert s.apply(msgspec.json.decode(ev.encode(first), type=ev.ContactTopicEvent)) == DUPLICATE
    assert s.apply(E.callback_dialled(110, 1)) == IMPOSSIBLE  # a second first attempt
    assert s.apply(E.callback_connected(120, 1)) is None
    assert s.apply(E.callback_failed(130, 1)) == IMPOSSIBLE  # a second outcome
    assert s.apply(E.callback_dialled(140, 2, channel="chat")) == IMPOSSIBLE  # another channel


def test_a_callback_without_an_outcome_is_given_up_and_counted_as_expired():
    E = Events()
    s = new_state()
    s.apply(E.callback_scheduled(0, 3600))
    s.observe_time(BASE_MS + 3600_000 + CALLBACK_TIMEOUT_MS - 1)
    s.advance()
    assert list(s.callbacks_waiting()) == [("Q1", "voice", 1, (CALLBACK_TIMEOUT_MS - 1) / 1000)]
    s.observe_time(BASE_MS + 3600_000 + CALLBACK_TIMEOUT_MS + INTERVAL * 1000)  # looked at once an interval
    s.advance()
    assert list(s.callbacks_waiting()) == []
    assert s.expired == {("Q1", "voice", "callback_no_outcome"): 1}


def test_a_done_callback_is_forgotten_once_its_intervals_are_final():
    s = new_state()
    events = sorted(lifecycle(Events()), key=ms)
    for e in events:
        assert s.apply(e) is None
        s.advance()
        if ms(e) == BASE_MS + 400_000:  # c1 connected at 281 s: its interval [240, 300) is open until 420 s
            assert set(s.callbacks) == {("Q1", "c1"), ("Q1", "c2"), ("Q1", "c3")}
    assert set(s.callbacks) == {("Q1", "c2"), ("Q1", "c3")}  # the clock is at 530 s
    s.observe_time(BASE_MS + 530_000 + (INTERVAL + LATENESS) * 1000)
    s.advance()
    assert set(s.callbacks) == {("Q1", "c3")}  # c3 waits for its outcome


def test_a_checkpoint_written_before_callbacks_existed_still_loads():
    """Version 8 as released had no `callbacks` or `offers` in the document and no callback or offer counts: it
    loads, and the state
    goes on counting as one that never stopped."""
    events = sorted(lifecycle(Events()), key=ms)
    s = new_state()
    for e in events[:6]:
        s.apply(e)
    old = msgspec.to_builtins(CODEC.decode(s.snapshot()))
    del old["callbacks"], old["offers"]
    for t in old["totals"]:  # counts the old release did not have
        t["counts"] = {
            k: v
            for k, v in t["counts"].items()
            if not k.startswith("agent_offer") and ("callback" not in k or k == "callbacks_requested")
        }
    old_bytes = s.snapshot()[:6] + msgspec.msgpack.encode(old)
    assert old_bytes[4:6] == VERSION.to_bytes(2, "little")
    restored = new_state()
    restored.restore(old_bytes)
    assert restored.callbacks == {}
    for e in events[6:]:
        assert restored.apply(e) is None
    # what the old release counted (offers, requests) plus what the new events add
    expected = batch([e for e in events[:6] if isinstance(e, ev.ContactOffered | ev.CallbackRequested)])
    after = batch(events[6:])
    for key, counts in after.items():
        expected.setdefault(key, QueueCounts()).add(counts)
    assert restored.totals == expected


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_metrics_show_the_callbacks_waiting_and_the_oldest_promise_past_due():
    settings = load_settings(broker_url="x:1", partitions=1)
    stats = PipelineStats()
    p = ContactProcessor(settings, QueueConfig(), stats)
    E = Events()
    events = [
        E.offered(0, "sales", "c1"),
        E.callback(30, "sales", "c1", promised_by=600),
        E.offered(5, "sales", "c2"),
        E.callback(40, "sales", "c2", promised_by=900),
        E.callback_scheduled(50, 500, "sales", "c2"),  # moved earlier: the earliest promise now
        E.offered(6, "sales", "c3"),
        E.callback(45, "sales", "c3", promised_by=100),
        E.callback_dialled(90, 1, "sales", "c3"),  # dialled: no longer counted as due, still waiting
        E.offered(700, "sales", "c4"),  # the queue's clock: 700 s
    ]
    msgs = [Message("cc.contact-events", 0, i, b"sales", ev.encode(e)) for i, e in enumerate(events)]
    p.process(msgs, lambda part: None)
    m = samples(exposition(build_registry(p, stats)).decode())
    labels = (("channel", "voice"), ("queue", "sales"))
    assert m[("cc_queue_callbacks_waiting", labels)] == 3
    assert m[("cc_queue_callback_oldest_promise_overdue_seconds", labels)] == 700 - 500
    totals = batch(events)[("sales", "voice")]
    assert m[("cc_queue_callbacks_dialled_promised_total", labels)] == totals.callbacks_dialled_promised == 1
    assert m[("cc_queue_callbacks_dialled_within_promise_total", labels)] == totals.callbacks_dialled_within_promise
    assert m[("cc_queue_callback_dials_total", labels)] == totals.callback_dials
    assert not any("c1" in str(k) or "c2" in str(k) for k in m)  # contact ids never in labels


def test_the_record_carries_the_callback_counts_and_the_tables_ratios():
    events = lifecycle(Events())
    totals = batch(events)[("Q1", "voice")]
    update = IntervalUpdate("Q1", "voice", int(BASE.timestamp()), 1, True, totals, QueueSettings())
    r = build_record(update, INTERVAL)
    assert r.callbacks_connected == totals.callbacks_connected and r.callback_attempts == totals.callback_attempts
    for name in ("callback_service_level", "callback_attempts_avg", "callback_connect_rate"):
        assert getattr(r, name) == RATIO[name].value(totals)
    assert r.callback_service_level == 0.5 and r.callback_attempts_avg == 2.5 and r.callback_connect_rate == 0.5
    empty = build_record(IntervalUpdate("Q1", "voice", 0, 1, True, QueueCounts(), QueueSettings()), INTERVAL)
    assert empty.callback_service_level is None and empty.callback_connect_rate is None


def test_old_events_stay_valid_and_a_request_without_promise_starts_no_lifecycle():
    raw = (
        b'{"type":"contact.callback_requested","event_id":"x","time":"2026-01-05T09:00:00Z",'
        b'"contact_id":"c","queue_id":"q","channel":"voice"}'
    )
    e = msgspec.json.decode(raw, type=ev.ContactTopicEvent)
    assert isinstance(e, ev.CallbackRequested) and e.promised_by is None
    s = new_state()
    s.apply(
        ev.ContactOffered(
            event_id="o", time=e.time - timedelta(seconds=5), contact_id="c", queue_id="q", channel="voice"
        )
    )
    assert s.apply(e) is None
    assert s.callbacks == {} and list(s.callbacks_waiting()) == []
    assert s.totals[("q", "voice")].callbacks_requested == 1
