"""`python -m pipeline sink postgres`: the KPI topic upserted into PostgreSQL, one table per record kind.

Tables `kpi_queue`, `kpi_agent`, `kpi_fcr`: the primary key is the record's key (the topic's key), then one
column per record field (nested fields such as `agents` and `wait_histogram` as `jsonb`), then where the row came
from (`kafka_partition`, `kafka_offset`, `published_at`) and when it was written (`written_at`). A row is replaced
only by a higher revision of its key (`ON CONFLICT ... DO UPDATE ... WHERE excluded.revision > table.revision`),
so a re-delivered or older record never undoes a newer one.

The sink creates what it needs at start (`migrate`): the tables, a column for any field the record classes gained
since (additive changes only, as the contract allows), the indexes, the table of its offsets, and the views for BI
tools. Each batch is one transaction that writes the rows and the next offset of every partition
(`kpi_sink_offsets`); the sink resumes from those, so the database alone decides what has been written.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import msgspec
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from pipeline.runtime.kpi_topic import KINDS
from pipeline.tools.sinks.columns import Column, columns
from pipeline.tools.sinks.loop import Item, SinkError

log = logging.getLogger("pipeline.sink")

PG_TYPES = {
    "int": "bigint",
    "float": "double precision",
    "str": "text",
    "bool": "boolean",
    "datetime": "timestamptz",
    "nested": "jsonb",
}
SOURCE_COLUMNS = ("kafka_partition", "kafka_offset", "published_at", "written_at")
INDEXES = {
    "queue": ("queue_id", "channel", "window", "interval_start"),
    "agent": ("agent_id", "interval_start"),
    "fcr": ("queue_id", "channel", "interval_start"),
}

VIEWS = {
    # The day record is the sum of the local day's intervals, so its ratios are already formed from summed counts.
    # `day` is the local date of the queue's time zone, read from the middle of the local day (exact for UTC
    # offsets from -12 to +12 hours); `day_start` is the instant the local day began.
    "kpi_service_level_by_queue_day": """
        SELECT queue_id, channel,
               ((interval_start + (interval_end - interval_start) / 2) AT TIME ZONE 'UTC')::date AS day,
               interval_start AS day_start, final,
               service_level_variant, service_level_threshold_seconds, service_level,
               offered, answered, abandoned, short_abandoned, answered_within_threshold, abandoned_within_threshold,
               asa_seconds, abandon_rate
        FROM kpi_queue WHERE "window" = 'day'""",
    # Never average a ratio: the week's adherence is its adherent time over its scheduled time. Weeks start on
    # Monday, 00:00 UTC.
    "kpi_agent_adherence_by_week": """
        SELECT agent_id, date_trunc('week', interval_start AT TIME ZONE 'UTC')::date AS week_start,
               sum(scheduled_seconds) AS scheduled_seconds, sum(adherent_seconds) AS adherent_seconds,
               sum(adherent_seconds) / nullif(sum(scheduled_seconds), 0) AS adherence,
               count(*) AS intervals, bool_and(final) AS final
        FROM kpi_agent GROUP BY agent_id, week_start""",
}


def table(kind: str) -> str:
    return f"kpi_{kind}"


def redact(text: str, dsn: str) -> str:
    """`text` without the DSN's password."""
    try:
        password = psycopg.conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        password = None
    return text.replace(str(password), "***") if password else text


def _value(c: Column, v: Any) -> Any:
    return Jsonb(msgspec.to_builtins(v)) if c.kind == "nested" and v is not None else v


class PostgresTarget:
    name = "postgres"
    unavailable: tuple[type[Exception], ...] = (psycopg.OperationalError, psycopg.InterfaceError)

    def __init__(self, dsn: str, group: str) -> None:
        self.dsn, self.group = dsn, group
        self.rejected: list[tuple[Item, str]] = []
        self.columns = {kind: columns(cls) for kind, cls in KINDS.items()}
        self.upserts = {kind: self._upsert(kind) for kind in KINDS}
        try:
            psycopg.conninfo.conninfo_to_dict(dsn)
        except psycopg.ProgrammingError as exc:
            raise SinkError(f"the PostgreSQL DSN is not valid: {redact(str(exc), dsn).splitlines()[0]}") from None
        try:
            self.conn = self._connect()
            self.migrate()
        except psycopg.Error as exc:
            raise SinkError(
                f"cannot use the PostgreSQL database: {redact(str(exc), dsn).strip().splitlines()[0]}"
            ) from None

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, connect_timeout=5, application_name="cc-kpi-sink")

    def reconnect(self) -> None:
        try:
            self.conn.close()
        finally:
            self.conn = self._connect()

    def migrate(self) -> None:
        """Create or complete the tables, indexes and views (idempotent; one sink at a time holds the lock)."""
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('cc-kpi-sink migrate'))")
            for kind, cols in self.columns.items():
                t = sql.Identifier(table(kind))
                cur.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, kafka_partition integer NOT NULL, "
                        "kafka_offset bigint NOT NULL, published_at timestamptz NOT NULL, "
                        "written_at timestamptz NOT NULL)"
                    ).format(t)
                )
                for c in cols:
                    cur.execute(
                        sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                            t, sql.Identifier(c.name), sql.SQL(PG_TYPES[c.kind])
                        )
                    )
                cur.execute(
                    sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                        sql.Identifier(f"{table(kind)}_by_time"),
                        t,
                        sql.SQL(", ").join(map(sql.Identifier, INDEXES[kind])),
                    )
                )
            cur.execute(
                "CREATE TABLE IF NOT EXISTS kpi_sink_offsets (consumer_group text NOT NULL, topic text NOT NULL, "
                "partition integer NOT NULL, next_offset bigint NOT NULL, updated_at timestamptz NOT NULL, "
                "PRIMARY KEY (consumer_group, topic, partition))"
            )
            for name, body in VIEWS.items():
                cur.execute(sql.SQL("CREATE OR REPLACE VIEW {} AS {}").format(sql.Identifier(name), sql.SQL(body)))

    def _upsert(self, kind: str) -> sql.Composed:
        names = ["key", *(c.name for c in self.columns[kind]), *SOURCE_COLUMNS]
        t = sql.Identifier(table(kind))
        values = [sql.Placeholder()] * (len(names) - 1) + [sql.SQL("clock_timestamp()")]
        return sql.SQL(
            "INSERT INTO {t} ({cols}) VALUES ({values}) ON CONFLICT (key) DO UPDATE SET {sets} "
            "WHERE excluded.revision > {t}.revision"
        ).format(
            t=t,
            cols=sql.SQL(", ").join(map(sql.Identifier, names)),
            values=sql.SQL(", ").join(values),
            sets=sql.SQL(", ").join(
                sql.SQL("{} = excluded.{}").format(sql.Identifier(n), sql.Identifier(n)) for n in names[1:]
            ),
        )

    def stored_offsets(self, topic: str) -> dict[int, int]:
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(
                "SELECT partition, next_offset FROM kpi_sink_offsets WHERE consumer_group = %s AND topic = %s",
                (self.group, topic),
            )
            return {int(p): int(o) for p, o in cur.fetchall()}

    def write(self, items: list[Item], topic: str, next_offsets: dict[int, int]) -> dict[str, int]:
        self.rejected = []
        try:
            return self._write(items, topic, next_offsets, isolate=False)
        except psycopg.DataError:  # a value the database refuses (out of bigint's range, a NUL in a text, ...)
            return self._write(items, topic, next_offsets, isolate=True)

    def _write(self, items: list[Item], topic: str, next_offsets: dict[int, int], isolate: bool) -> dict[str, int]:
        """One transaction; with `isolate`, each record in a savepoint of its own, the refused ones set aside."""
        changed: dict[str, int] = {}
        with self.conn.transaction(), self.conn.cursor() as cur:
            rows: dict[str, list[tuple[Item, list[Any]]]] = {}
            for it in items:  # in topic order: a later revision of a key in the same batch replaces an earlier one
                r = it.record
                values = [r.key, *(_value(c, getattr(r, c.name)) for c in self.columns[r.kind]), it.partition]
                rows.setdefault(r.kind, []).append((it, [*values, it.offset, _timestamp(it.published)]))
            for kind, kind_rows in rows.items():
                if not isolate:
                    cur.executemany(self.upserts[kind], [v for _, v in kind_rows])  # pipelined; rowcount: the sum
                    changed[kind] = cur.rowcount
                    continue
                for it, v in kind_rows:
                    try:
                        with self.conn.transaction():
                            cur.execute(self.upserts[kind], v)
                            changed[kind] = changed.get(kind, 0) + cur.rowcount
                    except psycopg.DataError as exc:
                        self.rejected.append((it, _first_line(str(exc))))
            cur.executemany(
                "INSERT INTO kpi_sink_offsets VALUES (%s, %s, %s, %s, clock_timestamp()) "
                "ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = excluded.next_offset, "
                "updated_at = excluded.updated_at",
                [(self.group, topic, p, o) for p, o in next_offsets.items()],
            )
        return changed

    def close(self) -> None:
        self.conn.close()


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


def _timestamp(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
