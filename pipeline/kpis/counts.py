"""The counts that every queue KPI is formed from, and the KPI formulas over them.

Counts are sums (plus one maximum and a histogram), so they can be merged across partitions, workers and
intervals; the ratios are formed only at the end (never average a ratio). This module is pure: no Kafka, no
Faust, no Prometheus. Durations are integer milliseconds so that sums are exact in any order.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field, fields
from typing import Literal

Variant = Literal["abandons_ignored", "abandons_against", "short_abandons_excluded", "abandons_in_favour"]
VARIANTS: tuple[Variant, ...] = (
    "abandons_ignored",
    "abandons_against",
    "short_abandons_excluded",
    "abandons_in_favour",
)
INF = "inf"  # the histogram's last bucket
# Standard wait histogram bounds in seconds; every queue's thresholds are added to them (see the processor).
WAIT_BUCKETS_SECONDS: tuple[float, ...] = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200)


@dataclass(slots=True)
class QueueCounts:
    """Counts of one queue and channel over some span (an interval, or since the worker started)."""

    offered: int = 0
    """Contacts that arrived in the queue."""
    answered: int = 0
    """Arrived contacts an agent answered."""
    abandoned: int = 0
    """Arrived contacts the customer abandoned before an answer (callbacks are not abandons)."""
    short_abandoned: int = 0
    """Abandoned contacts whose wait was at most the queue's short-abandon threshold."""
    answered_within_threshold: int = 0
    """Answered contacts whose wait was at most the queue's service level threshold."""
    abandoned_within_threshold: int = 0
    """Abandoned contacts whose wait was at most the threshold."""
    flowed_out: int = 0
    """Arrived contacts that routing moved out of the queue unanswered (overflow to another queue or target)."""
    callbacks_requested: int = 0
    """Arrived contacts that left the queue with a callback request instead of waiting."""
    expired: int = 0
    """Arrived contacts given up on with no outcome (no answer or abandon within the contact timeout)."""
    answer_wait_ms: int = 0
    """Sum of the queue waits of answered contacts."""
    abandon_wait_ms: int = 0
    """Sum of the waits of abandoned contacts (time to abandon)."""
    longest_wait_ms: int = 0
    """Longest wait of a contact that was answered, abandoned, flowed out or asked for a callback (a maximum)."""
    waits: dict[str, int] = field(default_factory=dict)
    """Wait histogram, not cumulative: `answered:<le ms>` / `abandoned:<le ms>` -> contacts (`inf` = above all)."""
    handled: int = 0
    """Answered contacts whose handling (conversation and after-contact work) completed."""
    handle_ms: int = 0
    """Sum of handle times (talk + hold + after-contact work)."""
    talk_ms: int = 0
    """Sum of talk times of handled contacts: handle time less hold and after-contact work."""
    hold_ms: int = 0
    """Sum of hold times of handled contacts."""
    acw_ms: int = 0
    """Sum of after-contact work times of handled contacts."""
    held: int = 0
    """Handled contacts put on hold at least once."""
    transferred_out: int = 0
    """Handled contacts that the agent transferred out instead of ending."""
    chat_first_responses: int = 0
    """Handled chats with a first agent response to a customer message."""
    chat_first_response_ms: int = 0
    """Sum of first response times: the agent's first message - the customer's first message before it."""
    chat_responses: int = 0
    """Agent responses: each run of customer messages answered by an agent message."""
    chat_response_ms: int = 0
    """Sum of response times: the agent's message - the first customer message of the run it answers."""
    surveys: int = 0
    """Customer satisfaction surveys completed."""
    survey_score_sum: int = 0
    """Sum of the survey scores (1-5)."""
    surveys_satisfied: int = 0
    """Surveys with a score of 4 or 5 (top-two box)."""
    ivr_sessions: int = 0
    """IVR / self-service sessions that ended."""
    ivr_contained: int = 0
    """IVR sessions that ended in self-service, without asking for an agent."""

    def add(self, other: QueueCounts) -> None:
        """Merge `other` into this: sums, except the longest wait (a maximum) and the histogram (per bucket)."""
        for name, mine, theirs in zip(SUM_FIELDS, _sums(self), _sums(other), strict=True):
            setattr(self, name, mine + theirs)
        self.longest_wait_ms = max(self.longest_wait_ms, other.longest_wait_ms)
        for bucket, n in other.waits.items():
            self.waits[bucket] = self.waits.get(bucket, 0) + n

    def bump(self, name: str, amount: int) -> None:
        """Apply one increment (see pipeline.state.queues): a sum, the maximum or a histogram bucket."""
        if name in SUMS:  # the hot path: ~10 increments per event
            setattr(self, name, getattr(self, name) + amount)
        elif name == "longest_wait_ms":
            self.longest_wait_ms = max(self.longest_wait_ms, amount)
        elif name.startswith(("answered:", "abandoned:")):
            self.waits[name] = self.waits.get(name, 0) + amount
        else:
            raise AttributeError(f"no count {name!r}")

    def copy(self) -> QueueCounts:
        """An independent copy (a provisional record's), several times faster than copy.deepcopy."""
        c = QueueCounts(*_values(self))
        c.waits = dict(self.waits)
        return c

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> QueueCounts:
        c = cls(**d)
        c.waits = dict(c.waits)
        return c


COUNT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(QueueCounts))
SUM_FIELDS: tuple[str, ...] = tuple(n for n in COUNT_FIELDS if n not in ("waits", "longest_wait_ms"))
SUMS = frozenset(SUM_FIELDS)
_values = operator.attrgetter(*COUNT_FIELDS)
_sums = operator.attrgetter(*SUM_FIELDS)


def bucket_name(outcome: str, wait_ms: int, bounds_ms: tuple[int, ...]) -> str:
    """The histogram bucket of a wait: the smallest bound at or above it (a wait equal to a bound is in it)."""
    for b in bounds_ms:
        if wait_ms <= b:
            return f"{outcome}:{b}"
    return f"{outcome}:{INF}"


def cumulative(c: QueueCounts, outcome: str, bounds_ms: tuple[int, ...]) -> list[int]:
    """Cumulative counts per bound, then the total (the `+Inf` bucket): Prometheus's histogram layout."""
    out, running = [], 0
    for b in bounds_ms:
        running += c.waits.get(f"{outcome}:{b}", 0)
        out.append(running)
    out.append(running + c.waits.get(f"{outcome}:{INF}", 0))
    return out


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def service_level(c: QueueCounts, variant: Variant = "abandons_against") -> float | None:
    """Share of contacts served within the threshold, in one of the four named variants (docs/kpis.md).

    None when the denominator is zero (nothing to measure).
    """
    if variant == "abandons_ignored":
        return _ratio(c.answered_within_threshold, c.answered)
    if variant == "abandons_against":
        return _ratio(c.answered_within_threshold, c.answered + c.abandoned)
    if variant == "short_abandons_excluded":
        return _ratio(c.answered_within_threshold, c.answered + c.abandoned - c.short_abandoned)
    if variant == "abandons_in_favour":
        return _ratio(c.answered_within_threshold + c.abandoned_within_threshold, c.offered)
    raise ValueError(f"unknown service level variant {variant!r}")


def abandon_rate(c: QueueCounts, *, include_short: bool = True) -> float | None:
    """Abandoned over offered; without short abandons, both sides leave them out."""
    if include_short:
        return _ratio(c.abandoned, c.offered)
    return _ratio(c.abandoned - c.short_abandoned, c.offered - c.short_abandoned)


def average_speed_of_answer(c: QueueCounts) -> float | None:
    """Mean queue wait of answered contacts, in seconds."""
    return _ratio(c.answer_wait_ms / 1000, c.answered)


def average_time_to_abandon(c: QueueCounts) -> float | None:
    """Mean wait of abandoned contacts, in seconds."""
    return _ratio(c.abandon_wait_ms / 1000, c.abandoned)


def average_handle_time(c: QueueCounts) -> float | None:
    """Mean of talk + hold + after-contact work over handled contacts, in seconds."""
    return _ratio(c.handle_ms / 1000, c.handled)


def average_part(c: QueueCounts, part_ms: int) -> float | None:
    """Mean of one part of the handle time (talk, hold or ACW) over handled contacts, in seconds."""
    return _ratio(part_ms / 1000, c.handled)


def hold_rate(c: QueueCounts) -> float | None:
    """Handled contacts put on hold at least once, over handled contacts."""
    return _ratio(c.held, c.handled)


def transfer_rate(c: QueueCounts) -> float | None:
    """Handled contacts transferred out, over handled contacts."""
    return _ratio(c.transferred_out, c.handled)


def first_response_time(c: QueueCounts) -> float | None:
    """Mean chat first response time, in seconds."""
    return _ratio(c.chat_first_response_ms / 1000, c.chat_first_responses)


def average_response_time(c: QueueCounts) -> float | None:
    """Mean chat response time, in seconds."""
    return _ratio(c.chat_response_ms / 1000, c.chat_responses)


def average_satisfaction(c: QueueCounts) -> float | None:
    """Mean survey score (1-5)."""
    return _ratio(c.survey_score_sum, c.surveys)


def satisfied_share(c: QueueCounts) -> float | None:
    """Surveys scoring 4 or 5, over surveys."""
    return _ratio(c.surveys_satisfied, c.surveys)


def ivr_containment(c: QueueCounts) -> float | None:
    """IVR sessions that ended in self-service, over IVR sessions."""
    return _ratio(c.ivr_contained, c.ivr_sessions)


def forecast_error(actual: float, forecast: float | None) -> float | None:
    """(actual - forecast) / forecast: positive when more came than planned. None without a forecast."""
    return _ratio(actual - forecast, forecast) if forecast is not None else None
