"""The additive counts that every queue KPI is formed from, and the KPI formulas over them.

Counts are sums, so they can be merged across partitions, workers and intervals; the ratios are formed only
at the end (never average a ratio). This module is pure: no Kafka, no Faust, no Prometheus.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(slots=True)
class QueueCounts:
    """Counts of one queue and channel over some span (an interval, or since the worker started)."""

    offered: int = 0
    """Contacts that arrived in the queue."""
    answered: int = 0
    """Arrived contacts an agent answered."""
    abandoned: int = 0
    """Arrived contacts the customer abandoned before an answer."""
    answered_within_threshold: int = 0
    """Answered contacts whose wait was at most the queue's service level threshold."""
    abandoned_within_threshold: int = 0
    """Abandoned contacts whose wait was at most the threshold."""
    expired: int = 0
    """Arrived contacts given up on with no outcome (no answer or abandon within the contact timeout)."""
    answer_wait_ms: int = 0
    """Sum of the queue waits of answered contacts, in milliseconds (integers keep sums exact)."""
    handled: int = 0
    """Answered contacts whose handling (conversation and after-contact work) completed."""
    handle_ms: int = 0
    """Sum of handle times (talk + hold + after-contact work), in milliseconds."""
    hold_ms: int = 0
    """Sum of hold times of handled contacts, in milliseconds."""
    acw_ms: int = 0
    """Sum of after-contact work times of handled contacts, in milliseconds."""
    transferred_out: int = 0
    """Handled contacts that the agent transferred out instead of ending."""

    def add(self, other: QueueCounts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, int]) -> QueueCounts:
        return cls(**d)


COUNT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(QueueCounts))


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def service_level(c: QueueCounts) -> float | None:
    """Answered within threshold / (answered + abandoned). None when nothing was answered or abandoned."""
    return _ratio(c.answered_within_threshold, c.answered + c.abandoned)


def average_speed_of_answer(c: QueueCounts) -> float | None:
    """Mean queue wait of answered contacts, in seconds."""
    return _ratio(c.answer_wait_ms / 1000, c.answered)


def average_handle_time(c: QueueCounts) -> float | None:
    """Mean of talk + hold + after-contact work over handled contacts, in seconds."""
    return _ratio(c.handle_ms / 1000, c.handled)


def talk_ms(c: QueueCounts) -> int:
    """Talk time is handle time less hold and after-contact work (it is not counted separately)."""
    return c.handle_ms - c.hold_ms - c.acw_ms
