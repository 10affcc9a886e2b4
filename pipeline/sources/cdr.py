"""Call-detail files (CSV/TSV, one row per call leg, the way most ACDs export their history) -> contract events.

A mapping file (TOML, docs/sources.md) names the columns, the time format and zone (local times without an
offset are read in it), the outcome values, the queue and agent columns and the optional parts (ACW, hold,
transfer target, caller). Each row becomes one leg:

- answered: `contact.offered` at the arrival, `contact.answered` by the agent, one hold of the row's hold
  seconds just before the conversation ends (a CDR says how long, not when), `contact.ended` (or
  `contact.transferred` when the transfer column is filled or the outcome is a transfer), and
  `contact.acw_ended` after the ACW seconds: zero when the file has no ACW column (explicit zero-length ACW);
- abandoned / flowed out / callback: `contact.offered` then the exit at the row's end time (or arrival + wait).

The call id alone is often not unique (re-used per day, per queue), so the contact id is the call id and the
arrival time: `<call id>@<epoch seconds>`. Placeholder agents (an empty cell, "NO_SERVER") are mapped by the
mapping file. A row's events span its call, so rows read in arrival order are released in event-time order
through a small buffer of the calls in progress (`CdrAdapter.translate` / `flush`).
"""

from __future__ import annotations

import heapq
import tomllib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.contract import events as ev
from pipeline.sources.common import Rejected, guarded
from pipeline.sources.identity import stable_event_id

# strptime formats that fromisoformat reads exactly, several times faster
_ISO_FORMATS = frozenset({"iso", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f"})
ARRIVED = "\x00arrived"  # where `arrival` keeps a row's parsed arrival, so it is read once
Outcome = Literal["answered", "abandoned", "flowed_out", "callback", "transferred"]


class MappingError(ValueError):
    """The mapping file is wrong; the message names the file and the key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileSpec(_Model):
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ","
    """One character: "," for CSV, "\\t" for tab-separated."""
    encoding: str = "utf-8"
    header: list[str] | None = None
    """Column names, for a file without a header row (Asterisk's Master.csv has none)."""
    time_format: str = "iso"
    """`iso` (ISO 8601), `epoch` (seconds) or a strptime format such as `%d/%m/%Y %H:%M:%S`."""
    time_zone: str = "UTC"
    """IANA zone of times written without an offset."""
    channel: ev.Channel = "voice"
    source: Annotated[str, Field(min_length=1, max_length=64)] = "cdr"
    """A name for this export's system: part of every event id."""

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. UTC, Europe/Paris)") from None
        return value


class Columns(_Model):
    call_id: str
    queue: str
    arrived: str
    """When the call entered the queue."""
    outcome: str
    answered: str | None = None
    """When an agent answered (or give `wait_seconds`)."""
    ended: str | None = None
    """When the conversation ended, or the caller left unanswered (or give `talk_seconds` / `wait_seconds`)."""
    wait_seconds: str | None = None
    talk_seconds: str | None = None
    agent: str | None = None
    customer: str | None = None
    acw_seconds: str | None = None
    hold_seconds: str | None = None
    transfer_to: str | None = None


class Outcomes(_Model):
    answered: list[str] = []
    abandoned: list[str] = []
    flowed_out: list[str] = []
    callback: list[str] = []
    transferred: list[str] = []


class Mapping(_Model):
    file: FileSpec = FileSpec()
    columns: Columns
    outcomes: Outcomes
    placeholder_agents: dict[str, str] = {"": "unassigned", "NONE": "unassigned", "NO_SERVER": "unassigned"}
    """Agent cells naming no agent, and the agent id their calls are credited to."""

    def outcome_of(self) -> dict[str, Outcome]:
        out: dict[str, Outcome] = {}
        names: tuple[Outcome, ...] = ("answered", "abandoned", "flowed_out", "callback", "transferred")
        for name in names:
            for value in getattr(self.outcomes, name):
                out[value] = name
        return out


def load_mapping(path: Path) -> Mapping:
    """Read and check a mapping file; any problem is a MappingError naming the key."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise MappingError(f"mapping file {path}: no such file") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise MappingError(f"mapping file {path}: cannot be read as TOML ({exc})") from None
    try:
        mapping = Mapping.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise MappingError(f"mapping file {path}: {key}: {first['msg']}") from None
    c = mapping.columns
    if c.answered is None and c.wait_seconds is None:
        raise MappingError(f"mapping file {path}: columns: give `answered` (a time) or `wait_seconds`")
    if c.ended is None and c.talk_seconds is None:
        raise MappingError(f"mapping file {path}: columns: give `ended` (a time) or `talk_seconds`")
    if not mapping.outcome_of():
        raise MappingError(f"mapping file {path}: outcomes: name the values of at least one outcome")
    return mapping


class CdrAdapter:
    """Rows (dicts by column name) in arrival order -> contract events in time order."""

    def __init__(self, mapping: Mapping) -> None:
        self.m = mapping
        self.zone = ZoneInfo(mapping.file.time_zone)
        self.outcomes = mapping.outcome_of()
        self.pending: list[tuple[datetime, int, ev.Event]] = []
        self.seq = 0
        self.ignored: Counter[str] = Counter()

    def header_problem(self, header: list[str]) -> str | None:
        """Which mapped column the file lacks, if any."""
        wanted = [v for v in self.m.columns.model_dump().values() if v is not None]
        missing = [c for c in wanted if c not in header]
        return f"columns {missing} are not in the file's header" if missing else None

    def _time(self, row: dict[str, str], column: str) -> datetime:
        text = (row.get(column) or "").strip()
        if not text:
            raise Rejected("missing_time", f"no {column}")
        fmt = self.m.file.time_format
        try:
            if fmt == "epoch":
                return datetime.fromtimestamp(float(text), UTC)
            t = datetime.fromisoformat(text) if fmt in _ISO_FORMATS else datetime.strptime(text, fmt)
        except (ValueError, OverflowError, OSError):
            raise Rejected("bad_time", f"{column} {text[:40]!r} does not match {fmt!r}") from None
        return (t if t.tzinfo else t.replace(tzinfo=self.zone)).astimezone(UTC)

    def _seconds(self, row: dict[str, str], column: str | None) -> float:
        if column is None:
            return 0.0
        text = (row.get(column) or "").strip()
        if not text:
            return 0.0
        try:
            value = float(text)
        except ValueError:
            raise Rejected("bad_number", f"{column} {text[:40]!r} is not a number of seconds") from None
        if not 0 <= value < 7 * 86400:
            raise Rejected("bad_number", f"{column} {value} is out of range")
        return value

    def arrival(self, row: dict[str, Any]) -> datetime:
        """The row's arrival time (kept in the row: sorting reads it first, translating again)."""
        t = row.get(ARRIVED)
        if t is None:
            t = row[ARRIVED] = self._time(row, self.m.columns.arrived)
        return t

    @guarded
    def translate(self, row: dict[str, str]) -> list[ev.Event]:
        """The events of one row are buffered; returns those that can no longer be preceded by a later row's."""
        c = self.m.columns
        arrived = self.arrival(row)
        outcome_text = (row.get(c.outcome) or "").strip()
        outcome = self.outcomes.get(outcome_text)
        if outcome is None:
            raise Rejected("unknown_outcome", f"outcome {outcome_text[:40]!r} is not in the mapping's [outcomes]")
        call = (row.get(c.call_id) or "").strip()
        queue = (row.get(c.queue) or "").strip()
        for what, value in (("call_id", call), ("queue", queue)):
            if not value:
                raise Rejected(f"no_{what}", f"no {what}")
            if not ev.label_safe(value) or len(value) > 100:
                raise Rejected(f"bad_{what}", f"{what} has control characters or is longer than 100 characters")
        contact = f"{call}@{arrived.timestamp():.0f}"
        source, channel = self.m.file.source, self.m.file.channel
        row_id = f"{call}\x1f{queue}\x1f{arrived.isoformat()}"  # = stable_event_id(source, call, queue, arrived, n)
        n = 0

        def emit(cls: type[ev.ContactEvent], t: datetime, **fields: Any) -> None:
            nonlocal n
            n += 1
            event_id = stable_event_id(source, row_id, n)
            e = cls(event_id=event_id, time=t, contact_id=contact, queue_id=queue, channel=channel, **fields)
            self.seq += 1
            heapq.heappush(self.pending, (t, self.seq, e))

        customer = (row.get(c.customer) or "").strip()[:128] if c.customer else ""
        emit(ev.ContactOffered, arrived, customer_id=customer or None)
        if c.answered is not None and (row.get(c.answered) or "").strip():
            answered: datetime | None = self._time(row, c.answered)
        elif c.wait_seconds is not None and outcome in ("answered", "transferred"):
            answered = arrived + timedelta(seconds=self._seconds(row, c.wait_seconds))
        else:
            answered = None
        if outcome in ("answered", "transferred"):
            if answered is None:
                raise Rejected("no_answer_time", "an answered call without an answer time")
            agent_cell = (row.get(c.agent) or "").strip() if c.agent else ""
            agent = self.m.placeholder_agents.get(agent_cell, agent_cell)
            if not agent or not ev.label_safe(agent) or len(agent) > 128:
                raise Rejected("bad_agent", "no usable agent id")
            if c.ended is not None and (row.get(c.ended) or "").strip():
                end = self._time(row, c.ended)
            else:
                end = answered + timedelta(seconds=self._seconds(row, c.talk_seconds))
            if end < answered:
                raise Rejected("impossible_sequence", "the call ends before it is answered")
            emit(ev.ContactAnswered, answered, agent_id=agent)
            hold = min(self._seconds(row, c.hold_seconds), (end - answered).total_seconds())
            if hold > 0:
                emit(ev.HoldStarted, end - timedelta(seconds=hold), agent_id=agent)
                emit(ev.HoldEnded, end, agent_id=agent)
            target = (row.get(c.transfer_to) or "").strip() if c.transfer_to else ""
            if outcome == "transferred" or target:
                emit(ev.ContactTransferred, end, agent_id=agent, to_queue_id=target[:128] or None)
            else:
                emit(ev.ContactEnded, end, agent_id=agent)
            acw = end + timedelta(seconds=self._seconds(row, c.acw_seconds))  # zero without an ACW column
            emit(ev.AcwEnded, acw, agent_id=agent, disposition=(outcome_text or outcome)[:64])
        else:
            if c.ended is not None and (row.get(c.ended) or "").strip():
                left = self._time(row, c.ended)
            else:
                left = arrived + timedelta(seconds=self._seconds(row, c.wait_seconds))
            exits: dict[str, type[ev.ContactEvent]] = {
                "abandoned": ev.ContactAbandoned,
                "flowed_out": ev.ContactFlowedOut,
                "callback": ev.CallbackRequested,
            }
            emit(exits[outcome], left)
        return self._release(arrived)

    def _release(self, until: datetime) -> list[ev.Event]:
        """Events up to `until`: rows come in arrival order, so no later row has an event before its arrival
        (answers stamped before their arrival by a skewed clock may still come: they are the worker's to clamp)."""
        out = []
        while self.pending and self.pending[0][0] <= until:
            out.append(heapq.heappop(self.pending)[2])
        return out

    def flush(self) -> list[ev.Event]:
        out = [e for _, _, e in sorted(self.pending, key=lambda p: (p[0], p[1]))]
        self.pending = []
        return out
