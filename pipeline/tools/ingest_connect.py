"""Amazon Connect records from a file -> contract events, to a JSON Lines file or to Kafka (`ingest_connect_file`).

The file holds EventBridge contact events and/or agent event stream records (the formats of
`pipeline.sources.connect`), as JSON Lines (one record a line, as Kinesis Data Firehose and `simulate --format
connect` write them) or as one JSON array. Records are translated one by one; a record that cannot be read is
dead-lettered with its line (or array position) and the reason, and the import carries on. The events are written
in event-time order, whatever the order of the file: they are sorted in memory (about 300 bytes an event: a day of
a 1,000-agent center, ~450,000 events, takes ~150 MB), so a file larger than memory must be split by time first.

`python -m pipeline ingest connect FILE [--out EVENTS.jsonl]` is wired to it by the `ingest` command.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from pipeline.contract.events import Event, encode
from pipeline.runtime.producer import EventWriter
from pipeline.sources import connect
from pipeline.sources.common import Rejected, Tally

PROGRESS_EVERY = 100_000


@dataclass
class IngestSummary:
    records: int = 0
    events: int = 0
    ignored: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.records / self.seconds if self.seconds else 0.0
        return (
            f"read {self.records:,} Connect records in {self.seconds:.1f} s ({rate:,.0f}/s): {self.events:,} events, "
            f"ignored {sum(self.ignored.values()):,} {dict(sorted(self.ignored.items()))}, "
            f"rejected {sum(self.rejected.values()):,} {dict(sorted(self.rejected.items()))}"
        )


def read_records(path: Path) -> Iterator[tuple[int, Any | Rejected]]:
    """(line or array position, record or the reason it cannot be parsed) for every record of the file."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096).lstrip()
            f.seek(0)
            if head.startswith(b"["):
                try:
                    records = orjson.loads(f.read())
                except orjson.JSONDecodeError as exc:
                    yield 1, Rejected("malformed_json", f"the file is not a JSON array: {exc.msg}")
                    return
                yield from enumerate(records, start=1)
                return
            for number, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        yield number, orjson.loads(line)
                    except orjson.JSONDecodeError:
                        yield number, Rejected("malformed_json", "the line is not JSON")
    except OSError as exc:
        raise SystemExit(f"cannot read {path}: {exc.strerror}") from None


async def ingest_connect_file(
    path: Path, out: Path | EventWriter, progress: IO[str] | None = sys.stderr
) -> IngestSummary:
    """Translate a file of Connect records; write the events in time order to `out` (a JSONL path, or a started
    `EventWriter`: acknowledged by Kafka on return). Dead letters go beside the output (`<out>.dead-letters.jsonl`,
    one `{"line", "reason", "detail", "record"}` a line) or to the dead-letter topic."""
    began = time.perf_counter()
    summary = IngestSummary()
    tally = Tally()
    dead: list[tuple[int, Rejected, Any]] = []
    for number, record in read_records(Path(path)):
        summary.records += 1
        if isinstance(record, Rejected):
            dead.append((number, record, None))
        else:
            try:
                tally.add(connect.translate(record))
            except Rejected as exc:
                dead.append((number, exc, record))
        if progress is not None and summary.records % PROGRESS_EVERY == 0:
            elapsed = time.perf_counter() - began
            print(f"  {summary.records:>10,} records, {summary.records / elapsed:,.0f}/s", file=progress)
    events: list[Event] = sorted(tally.events, key=lambda e: e.time)  # stable: same-time events keep file order
    summary.events, summary.ignored = len(events), tally.ignored
    for _, why, _ in dead:
        summary.rejected[why.reason] = summary.rejected.get(why.reason, 0) + 1
    if isinstance(out, EventWriter):
        await out.write(events)
        dead_topic = out.contact_topic.removesuffix("contact-events") + "dead-letters"  # same prefix
        for number, why, record in dead:
            headers = [
                ("dlq.reason", why.reason.encode()),
                ("dlq.detail", why.detail.encode()[:1000]),
                ("dlq.source", f"file/connect:{Path(path).name}:{number}".encode()[:1000]),
            ]
            raw = orjson.dumps(record) if record is not None else b""
            await (await out.producer.send(dead_topic, raw, headers=headers))
    else:
        with open(out, "wb") as f:
            for e in events:
                f.write(encode(e) + b"\n")
        if dead:
            with open(f"{out}.dead-letters.jsonl", "wb") as f:
                for number, why, record in dead:
                    letter = {"line": number, "reason": why.reason, "detail": why.detail, "record": record}
                    f.write(orjson.dumps(letter) + b"\n")
    summary.seconds = time.perf_counter() - began
    if progress is not None:
        print(summary.line(), file=progress)
    return summary
