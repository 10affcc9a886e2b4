"""Ingest decoding: every bad input becomes a rejection with a reason and its original bytes; nothing raises."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.contract import events as ev
from pipeline.processing.decode import REJECTION_REASONS, MessageDecoder

GOOD = {
    "type": "contact.offered",
    "event_id": "e1",
    "time": "2026-01-05T09:00:00+01:00",
    "contact_id": "c1",
    "queue_id": "sales",
    "channel": "voice",
    "customer_id": "cust-1",
}


@pytest.fixture
def decoder():
    return MessageDecoder(ev.ContactTopicEvent, max_event_bytes=1024, max_message_bytes=8192)


def enc(x) -> bytes:
    return json.dumps(x).encode()


def test_one_valid_event(decoder):
    events, rejections = decoder.decode(enc(GOOD))
    assert rejections == []
    assert isinstance(events[0], ev.ContactOffered)
    assert events[0].time.utcoffset().total_seconds() == 3600


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"not json", "not_json"),
        (b"\xff\xfe", "not_json"),
        (None, "not_json"),
        (enc(7), "not_an_object"),
        (enc("text"), "not_an_object"),
        (enc({k: v for k, v in GOOD.items() if k != "queue_id"}), "missing_field"),
        (enc({**GOOD, "type": "contact.teleported"}), "unknown_event_type"),
        (enc({**GOOD, "type": "agent.logged_in"}), "unknown_event_type"),
        (enc({**GOOD, "event_id": 17}), "invalid_field"),
        (enc({**GOOD, "time": "2026-01-05T09:00:00"}), "invalid_field"),  # no UTC offset: ambiguous
        (enc({**GOOD, "channel": "fax"}), "invalid_field"),
        (enc({**GOOD, "queue_id": "q" * 200}), "invalid_field"),
        (enc({**GOOD, "customer_id": "x" * 2000}), "oversized"),
    ],
)
def test_bad_input_is_rejected_by_reason_with_original_bytes(decoder, payload, reason):
    events, rejections = decoder.decode(payload)
    assert events == []
    assert [r.reason for r in rejections] == [reason]
    assert rejections[0].raw == (payload or b"")
    assert reason in REJECTION_REASONS


def test_a_bad_event_in_a_batch_costs_only_itself(decoder):
    bad = {**GOOD, "event_id": "e2", "channel": "fax"}
    payload = enc([GOOD, bad, {**GOOD, "event_id": "e3"}])
    events, rejections = decoder.decode(payload)
    assert [e.event_id for e in events] == ["e1", "e3"]
    assert [r.reason for r in rejections] == ["invalid_field"]
    assert json.loads(rejections[0].raw) == bad


def test_each_non_event_in_an_array_is_rejected_on_its_own(decoder):
    events, rejections = decoder.decode(b"[1, 2]")
    assert events == [] and [(r.reason, r.raw) for r in rejections] == [
        ("not_an_object", b"1"),
        ("not_an_object", b"2"),
    ]


def test_a_batch_larger_than_one_event_may_be_is_read_whole_unless_an_event_in_it_is_too_large(decoder):
    small = [{**GOOD, "event_id": f"e{i}"} for i in range(12)]  # ~2.5 KB together, each well under 1 KB
    events, rejections = decoder.decode(enc(small))
    assert len(enc(small)) > decoder.max_event_bytes
    assert [e.event_id for e in events] == [f"e{i}" for i in range(12)] and rejections == []
    big = {**GOOD, "event_id": "big", "customer_id": "x" * 1100}
    events, rejections = decoder.decode(enc([*small[:3], big, *small[3:6]]))
    assert [e.event_id for e in events] == [f"e{i}" for i in range(6)]
    assert [r.reason for r in rejections] == ["oversized"] and json.loads(rejections[0].raw) == big


@pytest.mark.parametrize("payload", [enc(GOOD), b"  \n" + enc(GOOD), b"\t" + enc([GOOD])])
def test_leading_whitespace_does_not_change_what_a_message_is(decoder, payload):
    events, rejections = decoder.decode(payload)
    assert [e.event_id for e in events] == ["e1"] and rejections == []


def test_oversized_message(decoder):
    payload = enc([GOOD] * 100)
    events, rejections = decoder.decode(payload)
    assert events == [] and rejections[0].reason == "oversized"


def test_random_and_mutated_bytes_never_raise(decoder):
    rng = random.Random(5)
    base = enc([GOOD, {**GOOD, "event_id": "e2"}])
    for _ in range(5000):
        b = bytearray(base)
        for _ in range(rng.randint(1, 8)):
            op = rng.random()
            i = rng.randrange(len(b))
            if op < 0.4:
                b[i] = rng.randrange(256)
            elif op < 0.7:
                del b[i]
            else:
                b.insert(i, rng.randrange(256))
        events, rejections = decoder.decode(bytes(b))
        assert all(r.reason in REJECTION_REASONS for r in rejections)
        assert events or rejections


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 10_000 + b"]" * 10_000,  # an array nested 10,000 deep
        b"{" + b'"a":{' * 5_000 + b"}" * 5_001,  # objects
        enc({**GOOD, "extra": 1})[:-1] + b', "deep": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",  # in an unknown field
    ],
)
def test_nesting_too_deep_to_decode_is_rejected_not_raised(payload):
    # the limits allow the payload through (sizes are not what is tested here)
    events, rejections = MessageDecoder(ev.ContactTopicEvent, 1 << 20, 1 << 20).decode(payload)
    assert events == [] and [(r.reason, r.raw) for r in rejections] == [("too_deep", payload)]


def test_a_too_deep_event_in_a_batch_rejects_the_message_once():
    deep = b"[" * 10_000 + b"]" * 10_000
    payload = b"[" + enc(GOOD) + b"," + deep + b"]"
    events, rejections = MessageDecoder(ev.ContactTopicEvent, 1 << 20, 1 << 20).decode(payload)
    # the array cannot even be split into its items: one rejection holds the whole message, nothing is lost
    assert events == [] and [(r.reason, r.raw) for r in rejections] == [("too_deep", payload)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=40,
)


@given(value=json_values, depth=st.integers(0, 3000), wrap=st.sampled_from([b"[", b'{"k":']))
@settings(max_examples=300, deadline=None)
def test_any_json_at_any_depth_decodes_or_is_rejected_by_a_known_reason(value, depth, wrap):
    close = b"]" if wrap == b"[" else b"}"
    payload = wrap * depth + json.dumps(value).encode() + close * depth
    events, rejections = MessageDecoder(ev.ContactTopicEvent, 1 << 20, 1 << 20).decode(payload)
    assert all(r.reason in REJECTION_REASONS for r in rejections)
    # nothing vanishes without a reason (an empty array holds no event to lose)
    assert events or rejections or payload == b"[]"
