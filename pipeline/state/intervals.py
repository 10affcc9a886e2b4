"""Event time in integer epoch milliseconds (so sums are exact in any order) and interval alignment."""

from __future__ import annotations

from datetime import UTC, datetime

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
