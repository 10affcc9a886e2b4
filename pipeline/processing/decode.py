"""Turn one Kafka message into valid events and rejections. Never raises on input.

A message is one JSON event object, or a JSON array of them (producers that batch). Each invalid event is
rejected on its own, with its original bytes, so one bad event never costs the rest of the batch.
Rejection reasons are a small fixed set: they become a metric label.

Sizes are checked before decoding. Nesting is bounded by the decoder itself: msgspec recurses on the C stack
under Python's recursion limit and raises `RecursionError` past it (a value nested a few thousand deep, which
no event of the contract is), and that becomes a `too_deep` rejection like any other.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

# Every reason a message or event can be rejected for, at ingest or later in state.
REJECTION_REASONS: dict[str, str] = {
    "not_json": "the bytes are not valid JSON (or not UTF-8)",
    "oversized": "the message or one event in it is larger than the configured maximum",
    "too_deep": "the JSON nests deeper than the decoder allows (no event of the contract nests more than 3 deep)",
    "not_an_object": "the JSON value is not an event object (or array of them)",
    "missing_field": "a required field is absent",
    "invalid_field": "a field has the wrong type or a value outside what the contract allows",
    "unknown_event_type": "the `type` is not an event type of this topic's contract",
    "too_many_invalid": "a batch message holds more invalid events than a message may cost in dead letters: the whole "
    "message is one dead letter and none of its events is applied",
    "wrong_partition": "the event's key (queue_id or agent_id) maps to another partition than its message's",
    "impossible_sequence": "the event contradicts what is known of its contact (e.g. answered twice)",
    "future_event_time": "the event time is ahead of the worker's clock by more than the allowed skew",
    "processing_error": "applying the event raised an unexpected error (a bug: the log has the traceback)",
}


# A batch message's invalid events are dead-lettered one by one, but a 1 MiB array of `0` or `{}` would become half a
# million dead letters and log lines from one message (seconds of a partition's time). Past this many invalid
# events the message is rejected whole, once (`too_many_invalid`): no valid producer's batch comes near it, and its
# valid events stay in the dead letter's original bytes (replaying it later counts none twice: event ids dedupe).
MAX_INVALID_PER_MESSAGE = 100


class Rejection(NamedTuple):
    reason: str
    detail: str
    raw: bytes


def _classify(exc: Exception) -> str:
    """Map a msgspec error to one of REJECTION_REASONS."""
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return "not_json"
    text = str(exc)
    if text.startswith("Object missing required field"):
        return "missing_field"
    if "at `$.type`" in text:
        return "unknown_event_type"
    if text.startswith("Expected `object`"):
        return "not_an_object"
    return "invalid_field"


def _too_deep(raw: bytes) -> Rejection:
    return Rejection("too_deep", "the JSON nests deeper than the decoder's recursion limit", raw)


class MessageDecoder:
    """Decodes messages of one topic against that topic's event union (see `pipeline.contract.events`)."""

    def __init__(self, event_union: Any, max_event_bytes: int, max_message_bytes: int) -> None:
        self._one = msgspec.json.Decoder(event_union)
        self._many = msgspec.json.Decoder(list[event_union])
        self._raw_items = msgspec.json.Decoder(list[msgspec.Raw])
        self.max_event_bytes = max_event_bytes
        self.max_message_bytes = max_message_bytes

    def decode(self, payload: bytes | None) -> tuple[list[Any], list[Rejection]]:
        """Return (events, rejections) for one message."""
        if payload is None:
            return [], [Rejection("not_json", "empty message (tombstone)", b"")]
        if len(payload) > self.max_message_bytes:
            return [], [Rejection("oversized", f"message of {len(payload)} bytes > {self.max_message_bytes}", payload)]
        if not payload.isascii():
            try:  # msgspec skips an unknown key without checking its UTF-8: a mangled known key would vanish silently
                payload.decode()
            except UnicodeDecodeError as exc:
                return [], [Rejection("not_json", f"not UTF-8 ({exc.reason} at byte {exc.start})", payload)]
        if payload[:1] == b"{" or payload.lstrip()[:1] != b"[":  # the first test alone for most messages
            return self._decode_one(payload)
        try:  # fast path: the whole batch is valid
            events = self._many.decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            return self._decode_each(payload)
        if self.max_event_bytes < self.max_message_bytes and len(payload) > self.max_event_bytes:
            # some event in it may be too large on its own: the items' sizes (spans of the payload, not copies)
            if any(len(item) > self.max_event_bytes for item in self._raw_items.decode(payload)):
                return self._decode_each(payload)
        return events, []

    def _decode_one(self, raw: bytes) -> tuple[list[Any], list[Rejection]]:
        if len(raw) > self.max_event_bytes:
            return [], [Rejection("oversized", f"event of {len(raw)} bytes > {self.max_event_bytes}", raw)]
        try:
            return [self._one.decode(raw)], []
        except RecursionError:
            return [], [_too_deep(raw)]
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            return [], [
                Rejection(_classify(exc) if isinstance(exc, msgspec.DecodeError) else "not_json", str(exc), raw)
            ]

    def _decode_each(self, payload: bytes) -> tuple[list[Any], list[Rejection]]:
        try:
            items = self._raw_items.decode(payload)
        except RecursionError:
            return [], [_too_deep(payload)]
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            return [], [Rejection("not_json", str(exc), payload)]
        events: list[Any] = []
        rejections: list[Rejection] = []
        for item in items:
            ok, bad = self._decode_one(bytes(item))
            events += ok
            rejections += bad
            if len(rejections) > MAX_INVALID_PER_MESSAGE:
                detail = f"more than {MAX_INVALID_PER_MESSAGE} of its {len(items)} events are invalid, first: {bad[0].reason}"
                return [], [Rejection("too_many_invalid", detail, payload)]
        return events, rejections
