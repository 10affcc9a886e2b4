"""Event logs as JSON Lines: one compact contract event per line, as producers write them to Kafka."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec

from pipeline.contract.events import AgentTopicEvent, ContactTopicEvent, Event, encode

# Both topic unions tag on `type`, so one decoder reads a log that mixes contact and agent events.
_decoder = msgspec.json.Decoder(ContactTopicEvent | AgentTopicEvent)


def write_jsonl(events: Iterable[Event], path: str | Path) -> int:
    """Write the events to `path`, one per line; return how many were written."""
    count = 0
    with open(path, "wb") as out:
        for event in events:
            out.write(encode(event))
            out.write(b"\n")
            count += 1
    return count


def read_jsonl(path: str | Path) -> Iterator[Event]:
    """The events of a JSONL file, in file order (lazily, so large logs stream). Blank lines are skipped."""
    with open(path, "rb") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                try:
                    yield _decoder.decode(line)
                except msgspec.DecodeError as exc:
                    raise ValueError(f"{path}:{number}: {exc}") from exc
