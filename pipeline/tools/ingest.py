"""`python -m pipeline ingest FORMAT FILE ...`: a contact center's own files in, contract events out.

Formats (one subcommand each; `FORMATS` is the registry other file sources add themselves to):
- `asterisk-queue-log FILE [--follow]`: Asterisk app_queue's queue_log (pipeline/sources/asterisk.py);
- `cdr FILE --mapping MAP.toml`: call-detail files, one row per call (pipeline/sources/cdr.py).

Whole files are read in event-time order whatever their line order, in bounded memory: records are sorted in
chunks written to temporary runs and merged (`heapq.merge`). The events go to Kafka through the reference
producer, or with `--out EVENTS.jsonl` to a JSON Lines file (which `replay` reads). A record that cannot be
read is dead-lettered (a JSON line with its line number and reason) and the import carries on.

`--follow` (queue_log) reads the live log as Asterisk writes it: it survives log rotation (the rest of the old
file is read before the new one) and restarts (a state file keeps the file's inode, the offset after the last
complete line and the adapter's open calls). Event ids are stable, so a batch sent again after a crash counts
once; with `--out`, the output file is cut back to its size at the last saved position, so it holds no
duplicate either. To Kafka, a quiet log sends a heartbeat every few seconds so that quiet partitions close.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import heapq
import json
import os
import pickle
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import orjson

from pipeline.contract import events as ev
from pipeline.core.settings import SettingsError
from pipeline.sources import asterisk, cdr, connect
from pipeline.sources.common import Rejected, iso_time

CHUNK_RECORDS = 200_000  # records sorted in memory at a time; a larger file is merged from sorted runs
BATCH_EVENTS = 20_000
PROGRESS_SECONDS = 2.0


class UserError(Exception):
    """A mistake of the user's (missing file, bad mapping, unreachable broker): one sentence, exit status 2."""


class Format(Protocol):
    """One source format: its records (with their line numbers), their time order and their translation."""

    def records(self, path: Path) -> Iterator[tuple[int, Any]]: ...

    def key(self, record: Any) -> tuple[float, int] | None: ...

    def translate(self, record: Any) -> list[ev.Event]: ...

    ignored: Counter[str]


class AsteriskFormat:
    def __init__(self, config: asterisk.AsteriskConfig) -> None:
        self.adapter = asterisk.QueueLogAdapter(config)
        self.ignored = self.adapter.ignored

    def records(self, path: Path) -> Iterator[tuple[int, Any]]:
        with open(path, encoding="utf-8", errors="replace", newline="") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    yield number, line

    def key(self, record: Any) -> tuple[float, int] | None:
        return asterisk.sort_key(record)

    def translate(self, record: Any) -> list[ev.Event]:
        return self.adapter.translate(record)


# --- dead letters and summary ----------------------------------------------------------------------------


@dataclass
class Summary:
    read: int = 0
    events: int = 0
    out_of_order: int = 0
    dead: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    def rate(self) -> float:
        return self.read / max(time.monotonic() - self.started, 1e-9)

    def text(self) -> str:
        seconds = time.monotonic() - self.started
        dead = ", ".join(f"{r} {n}" for r, n in sorted(self.dead.items())) or "none"
        ignored = ", ".join(f"{r} {n}" for r, n in sorted(self.ignored.items())) or "none"
        order = (
            f"; {self.out_of_order} records were out of time order (read in time order)" if self.out_of_order else ""
        )
        return (
            f"read {self.read:,} records in {seconds:.1f} s ({self.rate():,.0f}/s): {self.events:,} events; "
            f"dead-lettered {sum(self.dead.values()):,} ({dead}); ignored {sum(self.ignored.values()):,} "
            f"({ignored}){order}"
        )


class DeadLetters:
    """Records that could not be read: one JSON object per line (line number, reason, detail, the record)."""

    def __init__(self, path: Path, summary: Summary) -> None:
        self.path = path
        self.summary = summary
        self.file: Any = None

    def __call__(self, number: int, reason: str, detail: str, record: Any) -> None:
        self.summary.dead[reason] += 1
        if self.file is None:
            self.file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        if isinstance(record, dict):  # a CDR row: its cells, without what the adapter keeps in it
            record = json.dumps({k: v for k, v in record.items() if isinstance(k, str) and not k.startswith("\x00")})
        text = record if isinstance(record, str) else json.dumps(record)
        self.file.write(
            json.dumps({"line": number, "reason": reason, "detail": detail, "record": text.rstrip()}) + "\n"
        )

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


# --- reading in time order -------------------------------------------------------------------------------


def in_time_order(
    records: Iterable[tuple[int, Any]],
    key: Callable[[Any], tuple[float, int] | None],
    dead: Callable[[int, str, str, Any], None],
    summary: Summary,
    chunk: int = CHUNK_RECORDS,
) -> Iterator[tuple[int, Any]]:
    """The records sorted by (time, rank, line number), in bounded memory: chunks of `chunk` records are sorted
    and, beyond the first, spilled to temporary files that are merged."""
    runs: list[BinaryIO] = []
    batch: list[tuple[tuple[float, int], int, Any]] = []
    last: tuple[float, int] | None = None
    try:
        for number, record in records:
            summary.read += 1
            k = key(record)
            if k is None:
                dead(number, "bad_time", "the record's time cannot be read", record)
                continue
            if last is not None and k[0] < last[0]:  # earlier time (the rank only orders within a second)
                summary.out_of_order += 1
            else:
                last = k
            batch.append((k, number, record))
            if len(batch) >= chunk:
                batch.sort()  # (key, line number) is unique: the records themselves are never compared
                runs.append(_spill(batch))
                batch = []
        batch.sort()
        if not runs:
            for _, number, record in batch:
                yield number, record
            return
        streams = [_unspill(f) for f in runs] + [iter(batch)]
        for _, number, record in heapq.merge(*streams):
            yield number, record
    finally:
        for f in runs:
            f.close()


def _spill(items: list[tuple[tuple[float, int], int, Any]]) -> BinaryIO:
    f = tempfile.TemporaryFile()  # noqa: SIM115 (closed by in_time_order)
    pickler = pickle.Pickler(f, protocol=pickle.HIGHEST_PROTOCOL)
    for item in items:
        pickler.dump(item)
    f.seek(0)
    return f


def _unspill(f: BinaryIO) -> Iterator[tuple[tuple[float, int], int, Any]]:
    unpickler = pickle.Unpickler(f)
    while True:
        try:
            yield unpickler.load()
        except EOFError:
            return


def translated(
    fmt: Format, ordered: Iterable[tuple[int, Any]], dead: Callable[[int, str, str, Any], None], summary: Summary
) -> Iterator[list[ev.Event]]:
    """Batches of contract events from records in time order; unreadable records go to `dead`."""
    batch: list[ev.Event] = []
    shown = time.monotonic()
    for number, record in ordered:
        try:
            batch += fmt.translate(record)
        except Rejected as exc:
            dead(number, exc.reason, exc.detail, record)
        except ValueError as exc:  # a value the contract refuses (msgspec validation)
            dead(number, "invalid", str(exc)[:200], record)
        if len(batch) >= BATCH_EVENTS:
            summary.events += len(batch)
            yield batch
            batch = []
            if time.monotonic() - shown > PROGRESS_SECONDS:
                shown = time.monotonic()
                _progress(f"read {summary.read:,} records ({summary.rate():,.0f}/s), {summary.events:,} events")
    flush = getattr(fmt, "flush", None)  # formats that buffer events to release them in time order
    if flush is not None:
        batch += flush()
    summary.events += len(batch)
    if batch:
        yield batch
    summary.ignored.update(fmt.ignored)


# --- sinks -------------------------------------------------------------------------------------------------


class JsonlSink:
    def __init__(self, path: Path, append: bool = False) -> None:
        self.file = open(path, "ab" if append else "wb")  # noqa: SIM115 (closed in close())

    def write(self, events: list[ev.Event]) -> None:
        self.file.write(b"".join(ev.encode(e) + b"\n" for e in events))

    def sync(self) -> int:
        """Flush to disk; the file's size (for the follower's state)."""
        self.file.flush()
        os.fsync(self.file.fileno())
        return self.file.tell()

    def restart_at(self, size: int) -> None:
        """Cut the file back to the size saved with the follower's position: what came after is written again."""
        self.file.truncate(size)
        self.file.seek(0, os.SEEK_END)

    def idle(self) -> None:
        pass

    def close(self) -> None:
        self.file.close()


class KafkaSink:
    """The follower's events to Kafka through the reference producer; acknowledged before the position is saved.

    Events sent again after a crash carry the same ids, which the worker counts once. While the log is quiet, a
    heartbeat at the wall clock (less `HEARTBEAT_MARGIN`) tells every partition that the source's time goes on."""

    HEARTBEAT_EVERY = 10.0
    HEARTBEAT_MARGIN = timedelta(seconds=5)

    def __init__(self) -> None:
        from pipeline.core.settings import load_settings
        from pipeline.runtime.broker import bootstrap_servers, ensure_topics
        from pipeline.runtime.producer import EventWriter

        settings = load_settings()
        if not settings.broker_url:
            raise UserError("no broker to produce to: set PIPELINE_BROKER_URL, or write a file with --out EVENTS.jsonl")
        self.loop = asyncio.new_event_loop()
        try:
            self.loop.run_until_complete(ensure_topics(settings, timeout=15))
        except RuntimeError as exc:
            self.loop.close()
            raise UserError(f"the broker at {settings.broker_url} does not answer ({exc})") from None

        async def start() -> EventWriter:  # the producer must be made inside the loop it runs on
            return await EventWriter(settings, bootstrap_servers(settings), events_per_message=100).__aenter__()

        self.writer = self.loop.run_until_complete(start())
        self.beat = time.monotonic()

    def write(self, events: list[ev.Event]) -> None:
        if events:
            self.loop.run_until_complete(self.writer.write(events))
            self.beat = time.monotonic()

    def sync(self) -> int:
        return 0

    def restart_at(self, size: int) -> None:
        pass

    def idle(self) -> None:
        if time.monotonic() - self.beat > self.HEARTBEAT_EVERY:
            self.loop.run_until_complete(self.writer.heartbeat(datetime.now(UTC) - self.HEARTBEAT_MARGIN))
            self.beat = time.monotonic()

    def close(self) -> None:
        self.loop.run_until_complete(self.writer.__aexit__(None, None, None))
        self.loop.close()


def _to_kafka(batches: Iterable[list[ev.Event]]) -> None:
    from pipeline.core.settings import load_settings
    from pipeline.runtime.broker import bootstrap_servers, ensure_topics
    from pipeline.runtime.producer import EventWriter

    settings = load_settings()
    if not settings.broker_url:
        raise UserError("no broker to produce to: set PIPELINE_BROKER_URL, or write a file with --out EVENTS.jsonl")

    async def produce() -> None:
        try:
            await ensure_topics(settings, timeout=15)
        except RuntimeError as exc:
            raise UserError(f"the broker at {settings.broker_url} does not answer ({exc})") from None
        async with EventWriter(settings, bootstrap_servers(settings), events_per_message=100) as writer:
            last = None
            for batch in batches:
                await writer.write(batch)
                last = max(e.time for e in batch)
            if last is not None:
                await writer.heartbeat(last)

    asyncio.run(produce())


def import_file(fmt: Format, path: Path, out: Path | None, dead_path: Path, chunk: int = CHUNK_RECORDS) -> Summary:
    """Read a whole file in time order and write its events to `out` (JSON Lines) or to Kafka."""
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    summary = Summary()
    dead = DeadLetters(dead_path, summary)
    try:
        batches = translated(fmt, in_time_order(fmt.records(path), fmt.key, dead, summary, chunk), dead, summary)
        if out is None:
            _to_kafka(batches)
        else:
            sink = JsonlSink(out)
            try:
                for batch in batches:
                    sink.write(batch)
            finally:
                sink.close()
    finally:
        dead.close()
    return summary


# --- following a live queue_log ----------------------------------------------------------------------------


class Follower:
    """Follows a growing queue_log across rotations and restarts; see the module's docstring."""

    def __init__(
        self,
        path: Path,
        state_path: Path,
        config: asterisk.AsteriskConfig,
        sink: JsonlSink | KafkaSink,
        dead: DeadLetters,
    ) -> None:
        self.path, self.state_path, self.sink, self.dead = path, state_path, sink, dead
        self.adapter = asterisk.QueueLogAdapter(config)
        self.summary = dead.summary
        self.stopping = False

    def _save(self, inode: int, offset: int, line: int) -> None:
        state = {
            "inode": inode,
            "offset": offset,
            "line": line,
            "out_size": self.sink.sync(),
            "adapter": asterisk.snapshot(self.adapter),
        }
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.state_path)

    def _load(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise UserError(
                f"{self.state_path}: the follow state cannot be read ({exc}); remove it to start over"
            ) from None

    def _drain(self, f: BinaryIO, inode: int, offset: int, line: int) -> tuple[int, int]:
        """Translate every complete line from `offset`; save the position after each batch."""
        f.seek(offset)
        while True:
            data = f.read(1 << 20)
            end = data.rfind(b"\n")
            if end < 0:
                return offset, line
            events: list[ev.Event] = []
            for raw in data[: end + 1].splitlines():
                line += 1
                text = raw.decode("utf-8", errors="replace")
                if not text.strip():
                    continue
                self.summary.read += 1
                try:
                    events += self.adapter.translate(text)
                except Rejected as exc:
                    self.dead(line, exc.reason, exc.detail, text)
                except ValueError as exc:
                    self.dead(line, "invalid", str(exc)[:200], text)
            offset += end + 1
            f.seek(offset)
            self.sink.write(events)
            self.summary.events += len(events)
            self._save(inode, offset, line)

    def run(self, poll: float = 0.2) -> Summary:
        state = self._load()
        if state is not None:
            asterisk.restore(self.adapter, state.get("adapter", {}))
            self.sink.restart_at(state.get("out_size", 0))
        inode, offset, line = (state["inode"], state["offset"], state["line"]) if state else (None, 0, 0)
        if inode is not None:
            old = _find_inode(self.path, inode)
            if old is not None and old != self.path:  # rotated while we were down: finish the old file first
                with open(old, "rb") as f:
                    self._drain(f, inode, offset, line)
                offset, line = 0, 0
            elif old is None:
                offset, line = 0, 0
        shown = time.monotonic()
        while not self.stopping:
            try:
                f = open(self.path, "rb")  # noqa: SIM115 (closed below)
            except FileNotFoundError:
                time.sleep(poll)  # between a rotation's rename and the new file
                continue
            with f:
                current = os.fstat(f.fileno()).st_ino
                if current != inode:
                    inode, offset, line = current, (offset if inode is None else 0), (line if inode is None else 0)
                while not self.stopping:
                    offset, line = self._drain(f, current, offset, line)
                    if time.monotonic() - shown > PROGRESS_SECONDS:
                        shown = time.monotonic()
                        _progress(
                            f"following {self.path}: {self.summary.read:,} records, {self.summary.events:,} events"
                        )
                    try:
                        st = os.stat(self.path)
                    except FileNotFoundError:
                        st = None
                    if st is None or st.st_ino != current or st.st_size < offset:
                        # rotated or truncated: the old file's last lines, then the new file from its start
                        offset, line = self._drain(f, current, offset, line)
                        if st is not None and st.st_ino == current:  # truncated in place
                            offset, line = 0, 0
                            self._save(current, 0, 0)
                        break
                    self.sink.idle()
                    time.sleep(poll)
        self.summary.ignored.update(self.adapter.ignored)
        return self.summary


def _find_inode(path: Path, inode: int) -> Path | None:
    """The file of the log's directory with this inode (the log itself, or its rotated copy)."""
    for candidate in [path, *sorted(path.parent.glob(path.name + "*"))]:
        try:
            if candidate.stat().st_ino == inode:
                return candidate
        except FileNotFoundError:
            continue
    return None


# --- command line ------------------------------------------------------------------------------------------


def _asterisk_config(args: argparse.Namespace) -> asterisk.AsteriskConfig:
    placeholders = dict(asterisk.AsteriskConfig().placeholder_agents)
    for item in args.placeholder_agent or []:
        name, sep, agent = item.partition("=")
        if not sep or not agent:
            raise UserError(f"--placeholder-agent {item!r}: give NAME=AGENT_ID, e.g. NO_SERVER=unassigned")
        placeholders[name] = agent
    try:
        return asterisk.AsteriskConfig(
            time_zone=args.time_zone,
            placeholder_agents=placeholders,
            callback_keys=frozenset(args.callback_key or []),
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _add_asterisk(sub: Any) -> None:
    p = sub.add_parser("asterisk-queue-log", help="Asterisk app_queue queue_log (/var/log/asterisk/queue_log)")
    p.add_argument("file", type=Path)
    p.add_argument("--follow", action="store_true", help="keep reading the live log (survives rotation, restarts)")
    p.add_argument(
        "--state",
        type=Path,
        default=None,
        help="--follow's position file (default: OUT.follow-state.json, or ingest-asterisk-queue-log.follow-state.json)",
    )
    p.add_argument("--time-zone", default="UTC", help="the PBX's zone, for local date-times (epoch times are UTC)")
    p.add_argument(
        "--placeholder-agent",
        action="append",
        metavar="NAME=AGENT_ID",
        help="an agent field naming no member, and who its calls are credited to (default NONE, NO_SERVER -> unassigned)",
    )
    p.add_argument("--callback-key", action="append", metavar="KEY", help="an EXITWITHKEY key meaning a callback")


def _add_cdr(sub: Any) -> None:
    p = sub.add_parser("cdr", help="call-detail files (CSV/TSV, one row per call) with a TOML mapping")
    p.add_argument("file", type=Path)
    p.add_argument("--mapping", type=Path, required=True, help="the mapping file (docs/sources.md)")


# name -> (add the subcommand's arguments, build its Format); `ingest connect` is added the same way.
FORMATS: dict[str, tuple[Callable[[Any], None], Callable[[argparse.Namespace], Format]]] = {
    "asterisk-queue-log": (_add_asterisk, lambda a: AsteriskFormat(_asterisk_config(a))),
}


class CdrFormat:
    def __init__(self, mapping: cdr.Mapping) -> None:
        self.mapping = mapping
        self.adapter = cdr.CdrAdapter(mapping)
        self.ignored = self.adapter.ignored

    def records(self, path: Path) -> Iterator[tuple[int, Any]]:
        with open(path, encoding=self.mapping.file.encoding, errors="replace", newline="") as f:
            reader = csv.DictReader(f, fieldnames=self.mapping.file.header, delimiter=self.mapping.file.delimiter)
            header = list(reader.fieldnames or [])
            problem = self.adapter.header_problem(header)
            if problem:
                raise UserError(f"{path}: {problem} (the header is {header[:12]})")
            rows = iter(reader)
            while True:
                try:
                    row = next(rows)
                except StopIteration:
                    return
                except csv.Error as exc:  # a field over csv's size limit, say: that row is lost, not the file
                    # (the DictReader's own count is of the rows it gave; its reader's counts this one too)
                    yield (
                        reader.reader.line_num,
                        f"the row cannot be read as {self.mapping.file.delimiter!r}-separated: {exc}",
                    )
                    continue
                yield reader.line_num, row

    def key(self, record: Any) -> tuple[float, int] | None:
        if isinstance(record, str):  # unreadable: `translate` dead-letters it
            return 0.0, 0
        try:
            return self.adapter.arrival(record).timestamp(), 0
        except Rejected:
            return None

    def translate(self, record: Any) -> list[ev.Event]:
        if isinstance(record, str):
            raise Rejected("unreadable_row", record)
        return self.adapter.translate(record)

    def flush(self) -> list[ev.Event]:
        return self.adapter.flush()


def _cdr_format(args: argparse.Namespace) -> Format:
    try:
        mapping = cdr.load_mapping(args.mapping)
    except cdr.MappingError as exc:
        raise UserError(str(exc)) from None
    return CdrFormat(mapping)


FORMATS["cdr"] = (_add_cdr, _cdr_format)


class ConnectFormat:
    """Amazon Connect records: EventBridge contact events and agent event stream records, as JSON Lines (as Kinesis
    Data Firehose writes them) or one JSON array (`pipeline.sources.connect`)."""

    def __init__(self) -> None:
        self.ignored: Counter[str] = Counter()

    def records(self, path: Path) -> Iterator[tuple[int, Any]]:
        """(line or array position, record); a line that is not JSON comes as its text (dead-lettered)."""
        with open(path, "rb") as f:
            if f.read(4096).lstrip().startswith(b"["):
                f.seek(0)
                data = f.read()  # one JSON array is read whole: export JSON Lines for files larger than memory
                try:
                    records = orjson.loads(data)
                except orjson.JSONDecodeError:
                    yield 1, data[:200].decode("utf-8", "replace")
                    return
                yield from enumerate(records if isinstance(records, list) else [records], start=1)
                return
            f.seek(0)
            for number, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        yield number, orjson.loads(line)
                    except orjson.JSONDecodeError:
                        yield number, line.decode("utf-8", "replace")

    def key(self, record: Any) -> tuple[float, int] | None:
        # the time the record was emitted (EventBridge's `time`, the agent stream's `EventTimestamp`)
        if not isinstance(record, dict):  # not JSON, or not an object: `translate` says which
            return 0.0, 0
        try:
            field_name = "time" if "detail-type" in record else "EventTimestamp"
            return iso_time(record, field_name).timestamp(), 0
        except Rejected:
            return 0.0, 0  # first, and `translate` names what it lacks

    def translate(self, record: Any) -> list[ev.Event]:
        if isinstance(record, str):
            raise Rejected("malformed_json", "the record is not JSON")
        t = connect.translate(record)
        if t.ignored is not None:
            self.ignored[t.ignored] += 1
        return list(t.events)


def _add_connect(sub: Any) -> None:
    p = sub.add_parser("connect", help="Amazon Connect contact events and agent event stream records (JSON)")
    p.add_argument("file", type=Path)


FORMATS["connect"] = (_add_connect, lambda a: ConnectFormat())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline ingest", description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", type=Path, help="write the events to this JSON Lines file instead of Kafka")
    common.add_argument("--dead-letters", type=Path, help="where unreadable records go (default: next to --out)")
    sub = parser.add_subparsers(dest="format", required=True)
    for add, _ in FORMATS.values():
        add(_Sub(sub, common))
    return parser


class _Sub:
    """Hands every format's subparser the common options."""

    def __init__(self, sub: Any, common: argparse.ArgumentParser) -> None:
        self.sub, self.common = sub, common

    def add_parser(self, name: str, **kw: Any) -> argparse.ArgumentParser:
        return self.sub.add_parser(name, parents=[self.common], **kw)


def main_ingest(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except UserError as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an output folder that does not exist, a file that cannot be read or written
        print(f"ingest: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except SettingsError as exc:
        print(exc.message, file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    fmt = FORMATS[args.format][1](args)
    base = args.out or Path(f"ingest-{args.format}")
    dead_path = args.dead_letters or base.with_name(base.name + ".dead-letters.jsonl")
    if getattr(args, "follow", False):
        if not args.file.parent.is_dir():
            raise UserError(f"{args.file.parent}: no such directory")
        state = args.state or base.with_name(base.name + ".follow-state.json")
        summary = Summary()
        dead = DeadLetters(dead_path, summary)
        sink = JsonlSink(args.out, append=True) if args.out else KafkaSink()
        follower = Follower(args.file, state, fmt.adapter.config, sink, dead)  # type: ignore[attr-defined]

        def stop(*_: object) -> None:
            follower.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        target = args.out or "Kafka"
        print(f"following {args.file} -> {target} (position in {state}); Ctrl-C to stop", file=sys.stderr)
        try:
            follower.run()
        finally:
            sink.close()
            dead.close()
    else:
        summary = import_file(fmt, args.file, args.out, dead_path)
    print(("\r\033[K" if sys.stderr.isatty() else "") + summary.text(), file=sys.stderr)
    if summary.dead:
        print(f"dead letters: {dead_path}", file=sys.stderr)
    return 0


def _progress(text: str) -> None:
    if sys.stderr.isatty():
        print(f"\r  {text}\033[K", end="", file=sys.stderr, flush=True)
    else:
        print(f"  {text}", file=sys.stderr, flush=True)
