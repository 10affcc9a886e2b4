"""Ingest decoding: every bad input becomes a rejection with a reason and its original bytes; nothing raises."""

from __future__ import annotations

import json
import random

import pytest

from pipeline.ingest import events as ev
from pipeline.ingest.decode import REJECTION_REASONS, MessageDecoder

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
