"""What every vendor adapter shares: the result of translating one record, the rejection, and field readers.

An adapter turns ONE vendor record into a `Translation`: the contract events it means (often one, sometimes
none or several), or, when it bears on no KPI, none with the reason it was ignored (counted, not an error). A
record the adapter cannot read raises `Rejected` with a short reason (a bounded set: it becomes a metric label and
a dead-letter header) and a detail for people. Details never quote field values: they may be phone numbers.
"""

from __future__ import annotations

import functools
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypedDict, TypeVar

from pipeline.contract.events import Channel, Event, label_safe

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


class Rejected(ValueError):
    """A record that cannot be translated: `reason` is a short code, `detail` says what is wrong (no values)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[Rejected], tuple[str, str]]:  # pickled with the records it travels with
        return Rejected, (self.reason, self.detail)


def guarded(translate: Callable[P, R]) -> Callable[P, R]:
    """An adapter's translate, with any error but a rejection or a value the contract refuses (a record nobody
    foresaw meeting a bug) made a rejection: the record costs a dead letter, not the ingest run or the request.
    Logged by type and place only: an exception's message can quote the record's values."""

    @functools.wraps(translate)
    def translating(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return translate(*args, **kwargs)
        except ValueError:  # `Rejected`, or the contract's validation: the callers tell them apart
            raise
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            log.error("%s translating a record, at %s:%s", type(exc).__name__, where.filename, where.lineno)
            raise Rejected("processing_error", f"the adapter failed on this record ({type(exc).__name__})") from None

    return translating


@dataclass(frozen=True)
class Translation:
    """The contract events of one vendor record; none and `ignored` set when the record bears on no KPI."""

    events: tuple[Event, ...] = ()
    ignored: str | None = None


class Leg(TypedDict):
    """The fields that name a queue leg, passed on to every contact event of it."""

    contact_id: str
    queue_id: str
    channel: Channel


class Stamped(Leg):
    event_id: str
    time: datetime


def ignored(reason: str) -> Translation:
    return Translation((), reason)


@dataclass
class Tally:
    """Counts of a batch of translations (a file, a request holding several records)."""

    events: list[Event] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)

    def add(self, t: Translation) -> None:
        self.events.extend(t.events)
        if t.ignored is not None:
            self.ignored[t.ignored] = self.ignored.get(t.ignored, 0) + 1


def obj(record: object, name: str) -> dict[str, Any]:
    """A JSON object field (or the record itself when `name` is empty)."""
    value = record.get(name) if isinstance(record, dict) and name else record
    if not isinstance(value, dict):
        raise Rejected("missing_field", f"`{name or 'record'}` must be a JSON object")
    return value


def text(record: dict[str, Any], name: str, where: str = "") -> str:
    """A required, non-empty string field that can be an id (no control or direction characters)."""
    value = record.get(name)
    if not isinstance(value, str) or not value:
        raise Rejected("missing_field", f"`{where}{name}` is missing or not a string")
    if len(value) > 128 or not label_safe(value):
        raise Rejected("bad_id", f"`{where}{name}` is longer than 128 characters or holds control characters")
    return value


def optional_text(record: dict[str, Any], name: str) -> str | None:
    value = record.get(name)
    return value if isinstance(value, str) and value else None


def iso_time(record: dict[str, Any], name: str, where: str = "") -> datetime:
    """An ISO 8601 time with an offset (`Z` included)."""
    value = record.get(name)
    if not isinstance(value, str):
        raise Rejected("missing_field", f"`{where}{name}` is missing or not a string")
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise Rejected("bad_time", f"`{where}{name}` is not an ISO 8601 time") from None
    if t.tzinfo is None:
        raise Rejected("bad_time", f"`{where}{name}` has no UTC offset")
    return t.astimezone(UTC)


def epoch_ms_time(value: object, name: str) -> datetime:
    """Epoch milliseconds (an integer, or its decimal string as form fields carry it)."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 32503680000000:
        raise Rejected("bad_time", f"`{name}` is not epoch milliseconds")
    return datetime.fromtimestamp(value / 1000, UTC)


def last_segment(arn: str, name: str) -> str:
    """The resource id at the end of an ARN (`arn:aws:connect:...:instance/ID/queue/QUEUE_ID` -> QUEUE_ID)."""
    tail = arn.rsplit("/", 1)[-1]
    if not tail or len(tail) > 128 or not label_safe(tail):
        raise Rejected("bad_id", f"`{name}` does not end in a usable id")
    return tail


CHANNELS: dict[str, Channel] = {"VOICE": "voice", "CHAT": "chat"}


def channel_of(value: object, name: str, mapping: dict[str, Channel] = CHANNELS) -> Channel | None:
    """The contract channel of a vendor channel name; None for a channel the contract does not carry."""
    if not isinstance(value, str):
        raise Rejected("missing_field", f"`{name}` is missing or not a string")
    return mapping.get(value.upper())
