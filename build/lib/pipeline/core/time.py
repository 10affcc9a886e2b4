"""Event time in integer epoch milliseconds (so sums are exact in any order) and interval alignment."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

NO_TIME = -(2**62)  # watermark before any event


def epoch_ms(t: datetime) -> int:
    """Event time to epoch milliseconds; finer precision is rounded away."""
    return round(t.timestamp() * 1000)


def interval_start(t: int, length: int) -> int:
    """Start of the interval of `length` that holds `t` (both in the same unit).

    Intervals are aligned to the epoch, so 15/30/60-minute intervals start on the quarter, half or full
    hour in UTC (and in every time zone whose offset is a whole number of such intervals).
    """
    return t // length * length


def as_datetime(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, UTC)


def local_bounds(t: int, window: str, zone: ZoneInfo) -> tuple[int, int]:
    """(start, end) in epoch ms of the local hour or day (in `zone`) that holds the epoch-ms time `t`.

    Days follow the zone's calendar, so a day with a daylight-saving change lasts 23 or 25 hours.
    """
    local = datetime.fromtimestamp(t / 1000, zone)
    if window == "hour":
        start = local.replace(minute=0, second=0, microsecond=0)
        return epoch_ms(start), epoch_ms(start) + 3_600_000
    day = local.date()
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    return epoch_ms(start), epoch_ms(end)


def open_ms(start: int, end: int, zone: ZoneInfo, open_days: frozenset[int], opens: time, closes: time) -> int:
    """Milliseconds of [start, end) (epoch ms) within opening hours: `opens`-`closes` local time (`time.max`: until
    midnight) on the weekdays `open_days` (Monday 0) in `zone`. Days follow the zone's calendar (daylight saving)."""
    if end <= start:
        return 0
    day = datetime.fromtimestamp(start / 1000, zone).date()
    last = datetime.fromtimestamp(end / 1000, zone).date()
    total = 0
    while day <= last:
        if day.weekday() in open_days:
            shut = (
                datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
                if closes == time.max
                else datetime.combine(day, closes, tzinfo=zone)
            )
            total += max(0, min(end, epoch_ms(shut)) - max(start, epoch_ms(datetime.combine(day, opens, tzinfo=zone))))
        day += timedelta(days=1)
    return total


REVISION = (
    "Grows with each record published for this key, not by one: one past the source offset the record was made at. "
    "The same revision is always the same body (a restarted worker may publish it again)."
)


def next_revision(previous: int, offset: int) -> int:
    """The revision of a key's next record: one past the source offset of the last message applied, and above the
    key's previous revision (a state fed without offsets counts by one).

    A record's body is a function of the messages applied up to that offset, so the revision names it: a worker
    that restarts from a checkpoint and applies the same messages again publishes the same body under the same
    revision, whatever its batches and clock, and never an earlier revision's number for a different body."""
    return max(previous + 1, offset + 1)


class Revisable(Protocol):
    """An open interval that publishes provisional revisions."""

    changed: bool
    published_at: float
    revision: int


def due_for_revision(interval: Revisable, wall_now: float, every: float, offset: int = -1) -> bool:
    """Whether an open interval that changed was last
    published at least `every` seconds ago; if so, it takes its next revision now (`next_revision`)."""
    if not interval.changed or wall_now - interval.published_at < every:
        return False
    interval.revision = next_revision(interval.revision, offset)
    interval.changed = False
    interval.published_at = wall_now
    return True
