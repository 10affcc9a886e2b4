"""`python -m pipeline sink parquet --dir DIR`: final KPI records as Parquet files, one per kind and local date.

Layout (Hive-style, so DuckDB, Spark and pandas read the partition columns from the path):
`DIR/kind=<queue|agent|fcr>/date=<YYYY-MM-DD>/records.parquet`, the date being the record's `interval_start` in
`--time-zone`. A file holds one row per key: the record's key, then one column per record field, with the types
of the record class (nested fields as lists, structs and maps), sorted by key.

A batch merges its records into the files it touches (a key's row is replaced only by a higher revision) and writes
each file whole to a temporary name in the same directory, flushed to disk, then renamed over the old one: a
reader sees the old file or the new, never half of one. Offsets are committed after the renames. The content of
a file depends only on the records, not on the order or number of times they came, so a sink killed at any point
and restarted, or run again over the same topic, writes the same bytes.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import msgspec.inspect as mi
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.runtime.kpi_topic import KINDS
from pipeline.tools.sinks.columns import bare, columns, kind_of
from pipeline.tools.sinks.loop import Item, SinkError

FILE_NAME = "records.parquet"
SCALAR_TYPES = {
    "int": pa.int64(),
    "float": pa.float64(),
    "str": pa.string(),
    "bool": pa.bool_(),
    "datetime": pa.timestamp("ms", tz="UTC"),
}


def arrow_type(t: mi.Type) -> pa.DataType:
    t, _ = bare(t)
    if isinstance(t, mi.ListType):
        return pa.list_(arrow_type(t.item_type))
    if isinstance(t, mi.DictType):
        return pa.map_(arrow_type(t.key_type), arrow_type(t.value_type))
    if isinstance(t, mi.StructType):
        return pa.struct([pa.field(f.encode_name, arrow_type(f.type), nullable=bare(f.type)[1]) for f in t.fields])
    return SCALAR_TYPES[kind_of(t)]


def schema(kind: str) -> pa.Schema:
    cols = columns(KINDS[kind])
    return pa.schema(
        [pa.field("key", pa.string(), nullable=False)]
        + [pa.field(c.name, arrow_type(c.type), nullable=c.nullable) for c in cols]
    )


def row(record: msgspec.Struct) -> dict[str, Any]:
    """The record as Parquet row values (datetimes kept; maps as key-value pairs)."""
    d: dict[str, Any] = msgspec.to_builtins(record, builtin_types=(datetime,))
    return {"key": record.key, **d}  # type: ignore[attr-defined]  # every record class has `key`


class ParquetTarget:
    name = "parquet"
    unavailable: tuple[type[Exception], ...] = (OSError,)  # a full or unmounted disk: wait, as for a database

    def __init__(self, root: Path, time_zone: str = "UTC") -> None:
        try:
            self.zone = ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SinkError(f"unknown time zone {time_zone!r} (an IANA name such as Europe/Paris)") from None
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"cannot create the directory {root}: {exc.strerror}") from None
        self.root = root
        self.schemas = {kind: schema(kind) for kind in KINDS}
        self.rejected: list[tuple[Item, str]] = []

    def stored_offsets(self, topic: str) -> dict[int, int] | None:
        return None  # the files hold no offsets: the group's committed offsets say where to resume

    def reconnect(self) -> None:
        pass

    def path(self, kind: str, start: datetime) -> Path:
        return self.root / f"kind={kind}" / f"date={start.astimezone(self.zone).date().isoformat()}" / FILE_NAME

    def write(self, items: list[Item], topic: str, next_offsets: dict[int, int]) -> dict[str, int]:
        self.rejected = []
        by_file: dict[Path, list[Item]] = {}
        for it in items:
            by_file.setdefault(self.path(it.record.kind, it.record.interval_start), []).append(it)
        changed: dict[str, int] = {}
        for path, file_items in sorted(by_file.items()):
            kind = file_items[0].record.kind
            stored = {r["key"]: r for r in _read(path)} if path.exists() else {}
            rows, n = _merge(stored, file_items)
            if n:
                try:
                    table = pa.Table.from_pylist([rows[k] for k in sorted(rows)], schema=self.schemas[kind])
                except (pa.ArrowException, OverflowError, TypeError, ValueError):
                    # a record Parquet cannot hold (an integer beyond 64 bits, ...): set it aside, merge the others
                    good = [it for it in file_items if self._fits(kind, it)]
                    rows, n = _merge(stored, good)
                    table = pa.Table.from_pylist([rows[k] for k in sorted(rows)], schema=self.schemas[kind])
                if n:
                    self._replace(path, table)
            changed[kind] = changed.get(kind, 0) + n
        return changed

    def _fits(self, kind: str, it: Item) -> bool:
        try:
            pa.Table.from_pylist([row(it.record)], schema=self.schemas[kind])
            return True
        except (pa.ArrowException, OverflowError, TypeError, ValueError) as exc:
            self.rejected.append((it, str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
            return False

    def _replace(self, path: Path, table: pa.Table) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".records-", suffix=".parquet.tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                pq.write_table(table, f, compression="zstd")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself is durable
        finally:
            os.close(dir_fd)

    def close(self) -> None:
        pass


def _merge(stored: dict[str, dict[str, Any]], items: list[Item]) -> tuple[dict[str, dict[str, Any]], int]:
    """The file's rows with the items merged in (a key's row replaced only by a higher revision); replacements."""
    rows, n = dict(stored), 0
    for it in items:
        old = rows.get(it.record.key)
        if old is None or it.record.revision > old["revision"]:
            rows[it.record.key] = row(it.record)
            n += 1
    return rows, n


def _read(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(path).to_pylist(maps_as_pydicts="strict")
    return rows
