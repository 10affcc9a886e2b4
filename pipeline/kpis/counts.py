"""The counts that every queue KPI is formed from, and the KPI formulas over them.

Counts are sums (plus one maximum and a histogram), so they can be merged across partitions, workers and
intervals; the ratios are formed only at the end (never average a ratio). This module is pure: no Kafka, no
Faust, no Prometheus. Durations are integer milliseconds so that sums are exact in any order.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from pipeline.core.settings import QueueSettings
from pipeline.kpis.definitions import RATIO, SEGMENT_FIELDS, SERVICE_LEVEL, VARIANTS, Variant

Window = Literal["interval", "hour", "day"]
"""What a queue record covers: one interval, or the hour or day (in the queue's time zone) that holds it."""

__all__ = [
    "SEGMENT_FIELDS",
    "VARIANTS",
    "HandlingCounts",
    "QueueCounts",
    "Variant",
]  # the variants are defined in pipeline.kpis.definitions
INF = "inf"  # the histogram's last bucket
# Standard wait histogram bounds in seconds; every queue's thresholds are added to them (see the processor).
WAIT_BUCKETS_SECONDS: tuple[float, ...] = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200)


class QueueCounts(msgspec.Struct, omit_defaults=True):
    """Counts of one queue and channel over some span (an interval, or since the worker started).

    A msgspec struct: checkpoints store it without its zero counts (an agent's handling leaves most at zero)."""

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
    # The three maps are None until they hold a count: most counts (an agent's above all) have none, and hundreds
    # of thousands of counts are open at once in a large center.
    waits: dict[str, int] | None = None
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
    segments: dict[str, int] | None = None
    """Outcome counts per segment of the offer: `<segment>:<count>` -> value (count: a `SEGMENT_FIELDS` name)."""
    dispositions: dict[str, int] | None = None
    """Handled contacts per wrap-up code (the queue's configured codes, else `other`)."""
    # callbacks (`callback.*` events): each count in the interval of the event it comes from
    callback_dials: int = 0
    """Callback dial attempts (`callback.dialled`), in the dial's interval."""
    callbacks_dialled_promised: int = 0
    """Callbacks with a promised time whose first dial (attempt 1) fell in the interval."""
    callbacks_dialled_within_promise: int = 0
    """Of those, first dialled at or before the promised time in force at that dial."""
    callbacks_connected: int = 0
    """Callbacks that reached the customer (`callback.connected`), in the interval of the connection."""
    callbacks_failed: int = 0
    """Callbacks given up (`callback.failed`), in the interval they were given up."""
    callback_attempts: int = 0
    """Dial attempts of the callbacks connected or failed in the interval (their attempt count)."""
    # agent offers (`offer.*` events): also per agent; an outcome counts once its offer's ringing is known
    agent_offers: int = 0
    """Offers of a contact to an agent (`offer.ringing`), in the interval it rang."""
    agent_offers_accepted: int = 0
    """Offers the agent accepted (`offer.accepted`), in the interval of the accept."""
    agent_offers_rejected: int = 0
    """Offers the agent declined (`offer.rejected`), in the interval of the reject."""
    agent_offers_missed: int = 0
    """Offers that rang out unanswered (`offer.missed`, RONA), in the interval they rang out."""
    agent_offer_ring_ms: int = 0
    """Sum of the ring times of accepted offers: accept - ringing."""

    def add(self, other: QueueCounts) -> None:
        """Merge `other` into this: sums, except the longest wait (a maximum) and the histogram (per bucket)."""
        for name, mine, theirs in zip(SUM_FIELDS, _sums(self), _sums(other), strict=True):
            setattr(self, name, mine + theirs)
        self.longest_wait_ms = max(self.longest_wait_ms, other.longest_wait_ms)
        for table in KEYED_FIELDS:
            theirs = getattr(other, table)
            if theirs:
                mine = getattr(self, table)
                if mine is None:
                    setattr(self, table, dict(theirs))
                else:
                    for key, n in theirs.items():
                        mine[key] = mine.get(key, 0) + n

    def bump(self, name: str, amount: int) -> None:
        """Apply one increment (see pipeline.state.queues): a sum, the maximum or a histogram bucket."""
        if name in SUMS:  # the hot path: ~10 increments per event
            setattr(self, name, getattr(self, name) + amount)
        elif name == "longest_wait_ms":
            self.longest_wait_ms = max(self.longest_wait_ms, amount)
        else:
            add_keyed(self, *keyed_count(name), amount)

    def copy(self) -> QueueCounts:
        """An independent copy (a provisional record's), several times faster than copy.deepcopy."""
        c = QueueCounts(*_values(self))
        for table in KEYED_FIELDS:
            mine = getattr(self, table)
            if mine is not None:
                setattr(c, table, dict(mine))
        return c

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in COUNT_FIELDS}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QueueCounts:
        return cls(**d).copy()

    def by_segment(self) -> dict[str, QueueCounts]:
        """The outcome counts of each segment, as counts of their own (the service level and the other ratios
        over them are the queue's formulas)."""
        out: dict[str, QueueCounts] = {}
        for key, n in (self.segments or {}).items():
            segment, _, name = key.rpartition(":")
            c = out.get(segment)
            if c is None:
                c = out[segment] = QueueCounts()
            setattr(c, name, n)
        return out


class HandlingCounts(msgspec.Struct, omit_defaults=True, gc=False):
    """An agent's counts over some span: the `QueueCounts` fields counted per agent (each means what the field of
    its name there means), and no others.

    Its own struct because an agent's counts are most of the counts a large center holds (per agent in every open
    interval, hour and day), and a whole `QueueCounts` is 42 fields. Only numbers: never in a reference cycle,
    so the garbage collector does not track it (`gc=False`)."""

    handled: int = 0
    handle_ms: int = 0
    talk_ms: int = 0
    hold_ms: int = 0
    acw_ms: int = 0
    held: int = 0
    transferred_out: int = 0
    chat_first_responses: int = 0
    chat_first_response_ms: int = 0
    chat_responses: int = 0
    chat_response_ms: int = 0
    agent_offers: int = 0
    agent_offers_accepted: int = 0
    agent_offers_rejected: int = 0
    agent_offers_missed: int = 0
    agent_offer_ring_ms: int = 0

    def add(self, other: HandlingCounts) -> None:
        """Merge `other` into this (every field is a sum)."""
        for name, mine, theirs in zip(HANDLING_FIELDS, _handling(self), _handling(other), strict=True):
            setattr(self, name, mine + theirs)

    def copy(self) -> HandlingCounts:
        return HandlingCounts(*_handling(self))


COUNT_FIELDS: tuple[str, ...] = QueueCounts.__struct_fields__
KEYED_FIELDS = ("waits", "segments", "dispositions")  # the maps of counts by key
SUM_FIELDS: tuple[str, ...] = tuple(n for n in COUNT_FIELDS if n not in (*KEYED_FIELDS, "longest_wait_ms"))
SUMS = frozenset(SUM_FIELDS)
_values = operator.attrgetter(*COUNT_FIELDS)
_sums = operator.attrgetter(*SUM_FIELDS)
HANDLING_FIELDS: tuple[str, ...] = HandlingCounts.__struct_fields__
_handling = operator.attrgetter(*HANDLING_FIELDS)


_KEYED: dict[str, tuple[str, str]] = {}  # an increment's name -> (the dict of counts, the key in it)
_KEYED_PREFIXES: tuple[tuple[str, str, int], ...] = (
    ("answered:", "waits", 0),
    ("abandoned:", "waits", 0),
    ("segment:", "segments", 8),
    ("disposition:", "dispositions", 12),
)


def keyed_count(name: str) -> tuple[str, str]:
    """Where an increment that is not a sum goes: the histogram (`answered:<le ms>`), a segment's count
    (`segment:<label>:<count>`) or a wrap-up code's (`disposition:<label>`), as (field, key). Looked up once per name:
    the names come from bounded label sets, several per event."""
    found = _KEYED.get(name)
    if found is None:
        for prefix, table, cut in _KEYED_PREFIXES:
            if name.startswith(prefix):
                found = (table, name[cut:])
                break
        else:
            raise AttributeError(f"no count {name!r}")
        if len(_KEYED) >= 100_000:  # bounded whatever the labels: forgotten all at once
            _KEYED.clear()
        _KEYED[name] = found
    return found


def add_keyed(c: QueueCounts, table: str, key: str, amount: int) -> None:
    """Add to a count kept by key (where `keyed_count` says), making its map at its first count."""
    counts = getattr(c, table)
    if counts is None:
        setattr(c, table, {key: amount})
    else:
        counts[key] = counts.get(key, 0) + amount


def bucket_name(outcome: str, wait_ms: int, bounds_ms: tuple[int, ...]) -> str:
    """The histogram bucket of a wait: the smallest bound at or above it (a wait equal to a bound is in it)."""
    for b in bounds_ms:
        if wait_ms <= b:
            return f"{outcome}:{b}"
    return f"{outcome}:{INF}"


def cumulative(c: QueueCounts, outcome: str, bounds_ms: tuple[int, ...]) -> list[int]:
    """Cumulative counts per bound, then the total (the `+Inf` bucket): Prometheus's histogram layout."""
    out, running, waits = [], 0, c.waits or {}
    for b in bounds_ms:
        running += waits.get(f"{outcome}:{b}", 0)
        out.append(running)
    out.append(running + waits.get(f"{outcome}:{INF}", 0))
    return out


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


# The KPI formulas: each is its definition's `value` (pipeline.kpis.definitions), the one place it is written.


def service_level(c: QueueCounts, variant: Variant = "abandons_against") -> float | None:
    """Share of contacts served within the threshold, in one of the four named variants (docs/kpis.md).

    None when the denominator is zero (nothing to measure).
    """
    try:
        definition = SERVICE_LEVEL[variant]
    except KeyError:
        raise ValueError(f"unknown service level variant {variant!r}; one of {', '.join(VARIANTS)}") from None
    return definition.value(c)


def abandon_rate(c: QueueCounts, *, include_short: bool = True) -> float | None:
    """Abandoned over offered; without short abandons, both sides leave them out."""
    return RATIO["abandon_rate" if include_short else "abandon_rate_without_short"].value(c)


def average_speed_of_answer(c: QueueCounts) -> float | None:
    """Mean queue wait of answered contacts, in seconds."""
    return RATIO["asa"].value(c)


def average_time_to_abandon(c: QueueCounts) -> float | None:
    """Mean wait of abandoned contacts, in seconds."""
    return RATIO["average_time_to_abandon"].value(c)


def average_handle_time(c: QueueCounts | HandlingCounts) -> float | None:
    """Mean of talk + hold + after-contact work over handled contacts, in seconds."""
    return RATIO["aht"].value(c)


def hold_rate(c: QueueCounts | HandlingCounts) -> float | None:
    """Handled contacts put on hold at least once, over handled contacts."""
    return RATIO["hold_rate"].value(c)


def transfer_rate(c: QueueCounts | HandlingCounts) -> float | None:
    """Handled contacts transferred out, over handled contacts."""
    return RATIO["transfer_rate"].value(c)


def first_response_time(c: QueueCounts | HandlingCounts) -> float | None:
    """Mean chat first response time, in seconds."""
    return RATIO["chat_first_response"].value(c)


def average_response_time(c: QueueCounts | HandlingCounts) -> float | None:
    """Mean chat response time, in seconds."""
    return RATIO["chat_response"].value(c)


def average_satisfaction(c: QueueCounts) -> float | None:
    """Mean survey score (1-5)."""
    return RATIO["csat"].value(c)


def satisfied_share(c: QueueCounts) -> float | None:
    """Surveys scoring 4 or 5, over surveys."""
    return RATIO["csat_satisfied"].value(c)


def ivr_containment(c: QueueCounts) -> float | None:
    """IVR sessions that ended in self-service, over IVR sessions."""
    return RATIO["ivr_containment"].value(c)


def forecast_error(actual: float, forecast: float | None) -> float | None:
    """(actual - forecast) / forecast: positive when more came than planned. None without a forecast."""
    return _ratio(actual - forecast, forecast) if forecast is not None else None


@dataclass(slots=True)
class Forecast:
    """The forecast of one interval: an external WFM's wins over the pipeline's own, else the newest by event time."""

    published_at: int  # event time, epoch ms
    offered: float
    aht_seconds: float
    source: str = "wfm"  # "wfm" (an external WFM) or "pipeline" (the pipeline's own forecast)
    # the pipeline's own forecast of the interval, kept beside an external WFM's that won (shown, not compared)
    own_published_at: int = 0
    own_offered: float | None = None
    own_aht_seconds: float | None = None

    def own(self) -> tuple[float, float] | None:
        """The pipeline's own forecast (offered, AHT) of the interval, whether it is the one compared or not."""
        if self.source == "pipeline":
            return self.offered, self.aht_seconds
        if self.own_offered is None or self.own_aht_seconds is None:
            return None
        return self.own_offered, self.own_aht_seconds


@dataclass(slots=True)
class IntervalUpdate:
    """A revision of one interval's counts to publish."""

    queue_id: str
    channel: str
    start: int  # epoch seconds
    revision: int
    final: bool
    counts: QueueCounts
    rules: QueueSettings
    agents: dict[str, HandlingCounts] = field(default_factory=dict)
    forecast: Forecast | None = None
    window: Window = "interval"
    end: int | None = None  # epoch seconds; None: start + the interval length
    # an hour or day: contacts its final intervals were short of the target, by cause (None: an interval)
    causes: dict[str, float] | None = None
