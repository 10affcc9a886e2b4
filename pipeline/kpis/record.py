"""The queue KPI record: one per (queue, channel, interval) and revision, published on the KPI topic.

The topic is keyed by `queue_id|channel|interval_start` so that a compacted topic keeps the latest revision.
Records carry the additive counts as well as the ratios, so consumers can re-aggregate (sum the counts, then
divide) over queues or longer spans. `schemas/kpi-record.v1.json` is generated from this class; every field is
defined in docs/kpis.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from pipeline.contract.records import RecordVersion, ServiceLevelClock
from pipeline.core.settings import QueueSettings
from pipeline.core.time import REVISION, as_datetime
from pipeline.kpis import counts as k
from pipeline.kpis.counts import HandlingCounts, IntervalUpdate, QueueCounts, Window
from pipeline.kpis.definitions import (
    CALLBACK_COUNTS,
    CALLBACK_RATIOS,
    OFFER_COUNTS,
    OFFER_RATIOS,
    RATIO,
    SEGMENT_COUNTS,
    SEGMENT_RATIOS,
    SERVICE_LEVEL,
    VARIANTS,
    Count,
    Variant,
)
from pipeline.kpis.definitions import Ratio as RatioKpi
from pipeline.kpis.reporting.causes import headline_shortfall
from pipeline.kpis.reporting.cost import handling_cost
from pipeline.kpis.staffing.live import agents_needed, observed_traffic, requirement

Seconds = Annotated[float, Meta(ge=0, description="Seconds.")]
Ratio = Annotated[float | None, Meta(description="Ratio 0..1; null when there is nothing to measure.")]
Average = Annotated[float | None, Meta(description="Seconds; null when there is nothing to average.")]


class Handling(msgspec.Struct, frozen=True, kw_only=True):
    """Handling counts and averages of one group (the queue, or one agent in it)."""

    handled: int
    handle_seconds_sum: Seconds
    talk_seconds_sum: Seconds
    hold_seconds_sum: Seconds
    acw_seconds_sum: Seconds
    held: int
    transferred_out: int
    aht_seconds: Average
    talk_seconds_avg: Average
    hold_seconds_avg: Average
    acw_seconds_avg: Average
    hold_rate: Ratio
    transfer_rate: Ratio
    chat_first_responses: int
    chat_first_response_seconds_sum: Seconds
    chat_responses: int
    chat_response_seconds_sum: Seconds
    first_response_seconds: Average
    average_response_seconds: Average


class AgentHandling(Handling, frozen=True, kw_only=True):
    """One agent's handling of this queue's contacts that completed in the interval, and the offers to it."""

    agent_id: str
    agent_offers: int = 0
    agent_offers_accepted: int = 0
    agent_offers_rejected: int = 0
    agent_offers_missed: int = 0
    agent_offer_ring_seconds_sum: Seconds = 0.0


class WaitBucket(msgspec.Struct, frozen=True, kw_only=True):
    """Contacts that waited at most `le_seconds` (cumulative; the last bucket, `le_seconds` null, is all)."""

    le_seconds: float | None
    answered: int
    abandoned: int


class MissCause(msgspec.Struct, frozen=True, kw_only=True):
    """One cause of a missed service level target, as docs/reports.md states the method."""

    cause: Annotated[str, Meta(description="volume, aht, absence or backlog (docs/reports.md).")]
    contacts: Annotated[float, Meta(ge=0, description="Contacts short of the target put down to it.")]
    share: Annotated[float, Meta(ge=0, le=1, description="Its share of the contacts short.")]


class SegmentKpis(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome counts and speed-of-service KPIs of one customer segment of the queue (arrival interval)."""

    segment: Annotated[
        str, Meta(description="A segment the queue configures (`segments` in the queue file), or `other`.")
    ]
    offered: int
    answered: int
    abandoned: int
    short_abandoned: int
    answered_within_threshold: int
    abandoned_within_threshold: int
    answer_wait_seconds_sum: Seconds
    abandon_wait_seconds_sum: Seconds
    service_level: Ratio
    service_level_abandons_ignored: Ratio
    service_level_abandons_against: Ratio
    service_level_short_abandons_excluded: Ratio
    service_level_abandons_in_favour: Ratio
    asa_seconds: Average
    average_time_to_abandon_seconds: Average
    abandon_rate: Ratio
    abandon_rate_without_short: Ratio


class DispositionCount(msgspec.Struct, frozen=True, kw_only=True):
    """Handled contacts with one wrap-up code (completion interval)."""

    disposition: Annotated[
        str, Meta(description="A code the queue configures (`dispositions` in the queue file), or `other`.")
    ]
    contacts: int


class KpiRecord(Handling, frozen=True, kw_only=True):
    """Queue KPIs of one queue and channel over one interval (see docs/kpis.md for every definition).

    The handling fields (inherited from `Handling`) belong to the completion interval.
    """

    kind: Annotated[str, Meta(description="Record kind: `queue`.")] = "queue"
    v: RecordVersion = 1
    queue_id: str
    channel: str
    window: Annotated[
        Window,
        Meta(
            description="`interval` (15/30/60 min, aligned in UTC), or the `hour` or `day` in the queue's time zone: "
            "the sum of the intervals in it. A provisional `day` record is 'today so far'."
        ),
    ] = "interval"
    interval_start: Annotated[datetime, Meta(description="Start of the interval (UTC).")]
    interval_end: Annotated[datetime, Meta(description="End of the interval (UTC), exclusive.")]
    revision: Annotated[int, Meta(ge=1, description=REVISION)]
    final: Annotated[bool, Meta(description="True when the interval is closed: no later revision will come.")]
    service_level_threshold_seconds: Seconds
    short_abandon_seconds: Seconds
    service_level_variant: Annotated[Variant, Meta(description="The queue's headline variant.")]
    service_level_clock: Annotated[
        ServiceLevelClock,
        Meta(
            description="How waits were measured against the threshold: `elapsed`, or `business_hours` (the queue's "
            "opening hours only; ASA and waits stay elapsed)."
        ),
    ] = "elapsed"
    # volume and outcome (arrival interval)
    offered: int
    answered: int
    abandoned: int
    short_abandoned: int
    answered_within_threshold: int
    abandoned_within_threshold: int
    flowed_out: int
    callbacks_requested: int
    expired: int
    answer_wait_seconds_sum: Seconds
    abandon_wait_seconds_sum: Seconds
    longest_wait_seconds: Seconds
    wait_histogram: list[WaitBucket]
    # speed of service
    service_level: Ratio
    service_level_abandons_ignored: Ratio
    service_level_abandons_against: Ratio
    service_level_short_abandons_excluded: Ratio
    service_level_abandons_in_favour: Ratio
    asa_seconds: Average
    average_time_to_abandon_seconds: Average
    abandon_rate: Ratio
    abandon_rate_without_short: Ratio
    agents: Annotated[
        list[AgentHandling],
        Meta(
            description=(
                "Handling per agent (completion interval), in final records; empty in provisional ones (a queue's "
                "provisional day would list every agent who handled it, every few seconds)."
            )
        ),
    ]
    # quality
    surveys: int
    survey_score_sum: int
    surveys_satisfied: int
    satisfaction_avg: Annotated[float | None, Meta(description="Mean score 1-5; null without surveys.")]
    satisfied_share: Ratio
    ivr_sessions: int
    ivr_contained: int
    ivr_containment: Ratio
    # callbacks (`callback.*` events): each count in the interval of the event it comes from (docs/kpis.md);
    # added in 1.x, so defaulted: records written before them stay valid (schemas/README.md)
    callback_dials: int = 0
    callbacks_dialled_promised: int = 0
    callbacks_dialled_within_promise: int = 0
    callbacks_connected: int = 0
    callbacks_failed: int = 0
    callback_attempts: int = 0
    callback_service_level: Ratio = None
    callback_attempts_avg: Annotated[float | None, Meta(description="Dials per callback; null without any done.")] = (
        None
    )
    callback_connect_rate: Ratio = None
    # agent offers (`offer.*` events): ringing in its interval, outcomes in theirs; per agent in `agents[]`
    agent_offers: int = 0
    agent_offers_accepted: int = 0
    agent_offers_rejected: int = 0
    agent_offers_missed: int = 0
    agent_offer_ring_seconds_sum: Seconds = 0.0
    ring_time_avg_seconds: Average = None
    offers_per_answer: Annotated[float | None, Meta(description="Offers per accepted offer; null without accepts.")] = (
        None
    )
    missed_offer_rate: Ratio = None
    # planning
    forecast_offered: Annotated[float | None, Meta(description="Forecast contacts; null without a forecast.")]
    forecast_aht_seconds: Average
    offered_vs_forecast: Annotated[float | None, Meta(description="(offered - forecast) / forecast.")]
    agents_required: Annotated[
        int | None,
        Meta(
            description=(
                "Fewest agents for the headline target at this interval's observed traffic (Erlang A/C); null "
                "without handled contacts, and for hour and day records."
            )
        ),
    ]
    aht_vs_forecast: Annotated[float | None, Meta(description="(AHT - forecast AHT) / forecast AHT.")]
    # why a target was missed (docs/reports.md)
    miss_causes: Annotated[
        list[MissCause] | None,
        Meta(
            description=(
                "Hour and day records below the headline target: the likely causes, largest first, from the final "
                "intervals that missed (each interval's contacts short split by the method of docs/reports.md). "
                "The worker holds no agent states: agents available are estimated as the agents busy on the "
                "queue's contacts, and a not-ready spike is counted as `absence`. Null when the target was met "
                "and in interval records."
            )
        ),
    ] = None
    # cost (the queue file's cost model, docs/reports.md): null without the queue's `agent_hour_cost`
    currency: Annotated[str | None, Meta(description="ISO 4217 code of the cost fields; null without a cost.")] = None
    handling_cost: Annotated[
        float | None,
        Meta(
            description=(
                "Agents' handling time (handle_seconds_sum) in hours x `agent_hour_cost` + voice line minutes (queue "
                "wait of answered and abandoned, talk, hold) x `telephony_cost_per_minute`; additive. Idle and "
                "not-ready time is not in it (the report's cost counts logged-in hours). Null without `agent_hour_cost`."
            )
        ),
    ] = None
    handling_cost_per_handled: Annotated[
        float | None,
        Meta(description="handling_cost / handled; null without `agent_hour_cost` or without handled contacts."),
    ] = None
    # segments and dispositions: bounded sets from the queue file (others as `other`)
    segments: Annotated[
        list[SegmentKpis],
        Meta(description="Per segment of the offers that named one (arrival interval), by segment; empty without."),
    ] = []
    dispositions: Annotated[
        list[DispositionCount],
        Meta(description="Handled contacts per wrap-up code (completion interval), by code; they add up to `handled`."),
    ] = []

    @property
    def key(self) -> str:
        return record_key(self.queue_id, self.channel, self.interval_start, self.window)


def record_key(queue_id: str, channel: str, start: datetime, window: str = "interval") -> str:
    """The KPI topic's key: one compacted entry per queue, channel, window and start."""
    if window == "interval":
        return f"{queue_id}|{channel}|{start.isoformat()}"
    return f"{queue_id}|{channel}|{window}|{start.isoformat()}"


def handling(c: QueueCounts | HandlingCounts) -> dict[str, Any]:
    """The handling fields of a record, from a queue's or an agent's counts (keyword arguments of KpiRecord and
    AgentHandling)."""
    talk = c.talk_ms
    return dict(
        handled=c.handled,
        handle_seconds_sum=c.handle_ms / 1000,
        talk_seconds_sum=talk / 1000,
        hold_seconds_sum=c.hold_ms / 1000,
        acw_seconds_sum=c.acw_ms / 1000,
        held=c.held,
        transferred_out=c.transferred_out,
        aht_seconds=k.average_handle_time(c),
        talk_seconds_avg=RATIO["talk_avg"].value(c),
        hold_seconds_avg=RATIO["hold_avg"].value(c),
        acw_seconds_avg=RATIO["acw_avg"].value(c),
        hold_rate=k.hold_rate(c),
        transfer_rate=k.transfer_rate(c),
        chat_first_responses=c.chat_first_responses,
        chat_first_response_seconds_sum=c.chat_first_response_ms / 1000,
        chat_responses=c.chat_responses,
        chat_response_seconds_sum=c.chat_response_ms / 1000,
        first_response_seconds=k.first_response_time(c),
        average_response_seconds=k.average_response_time(c),
    )


def wait_histogram(c: QueueCounts, bounds_ms: tuple[int, ...]) -> list[WaitBucket]:
    answered = k.cumulative(c, "answered", bounds_ms)
    abandoned = k.cumulative(c, "abandoned", bounds_ms)
    les = [b / 1000 for b in bounds_ms] + [None]
    return [
        WaitBucket(le_seconds=le, answered=a, abandoned=b) for le, a, b in zip(les, answered, abandoned, strict=True)
    ]


def build_record(u: IntervalUpdate, interval_seconds: int, wait_bounds_ms: tuple[int, ...] = ()) -> KpiRecord:
    c, rules, fc = u.counts, u.rules, u.forecast
    aht = k.average_handle_time(c)
    # keyword arguments (service_level_<variant>: float | None); mypy cannot tell the keys of a dict
    variants: dict[str, Any] = {f"service_level_{v}": k.service_level(c, v) for v in VARIANTS}
    return KpiRecord(
        queue_id=u.queue_id,
        channel=u.channel,
        window=u.window,
        interval_start=as_datetime(u.start),
        interval_end=as_datetime(u.end if u.end is not None else u.start + interval_seconds),
        revision=u.revision,
        final=u.final,
        service_level_threshold_seconds=rules.service_level_threshold_seconds,
        short_abandon_seconds=rules.short_abandon_seconds,
        service_level_variant=rules.service_level_variant,
        service_level_clock=rules.service_level_clock,
        offered=c.offered,
        answered=c.answered,
        abandoned=c.abandoned,
        short_abandoned=c.short_abandoned,
        answered_within_threshold=c.answered_within_threshold,
        abandoned_within_threshold=c.abandoned_within_threshold,
        flowed_out=c.flowed_out,
        callbacks_requested=c.callbacks_requested,
        expired=c.expired,
        answer_wait_seconds_sum=c.answer_wait_ms / 1000,
        abandon_wait_seconds_sum=c.abandon_wait_ms / 1000,
        longest_wait_seconds=c.longest_wait_ms / 1000,
        wait_histogram=wait_histogram(c, wait_bounds_ms),
        service_level=variants[f"service_level_{rules.service_level_variant}"],
        **variants,
        asa_seconds=k.average_speed_of_answer(c),
        average_time_to_abandon_seconds=k.average_time_to_abandon(c),
        abandon_rate=k.abandon_rate(c),
        abandon_rate_without_short=k.abandon_rate(c, include_short=False),
        **handling(c),
        agents=[
            AgentHandling(agent_id=a, **handling(ac), **_counts(ac, OFFER_COUNTS)) for a, ac in sorted(u.agents.items())
        ],
        surveys=c.surveys,
        survey_score_sum=c.survey_score_sum,
        surveys_satisfied=c.surveys_satisfied,
        satisfaction_avg=k.average_satisfaction(c),
        satisfied_share=k.satisfied_share(c),
        ivr_sessions=c.ivr_sessions,
        ivr_contained=c.ivr_contained,
        ivr_containment=k.ivr_containment(c),
        **_counts(c, CALLBACK_COUNTS),
        **_ratios(c, CALLBACK_RATIOS),
        **_counts(c, OFFER_COUNTS),
        **_ratios(c, OFFER_RATIOS),
        forecast_offered=fc.offered if fc else None,
        forecast_aht_seconds=fc.aht_seconds if fc else None,
        offered_vs_forecast=k.forecast_error(c.offered, fc.offered if fc else None),
        aht_vs_forecast=k.forecast_error(aht, fc.aht_seconds if fc else None) if aht is not None else None,
        agents_required=_required(c, interval_seconds, rules) if u.window == "interval" else None,
        **_cost(c, u.channel, rules),
        miss_causes=_miss_causes(c, rules, u.causes),
        segments=[segment_kpis(name, sc, rules.service_level_variant) for name, sc in sorted(c.by_segment().items())],
        dispositions=[DispositionCount(disposition=d, contacts=n) for d, n in sorted((c.dispositions or {}).items())],
    )


def segment_kpis(segment: str, c: QueueCounts, variant: Variant) -> SegmentKpis:
    """One segment's record entry: its counts and the table's ratios over them (`SEGMENT_RATIOS`)."""
    fields: dict[str, Any] = {
        n.record_field.removeprefix("segments[]."): _exported(getattr(c, n.field), n.field) for n in SEGMENT_COUNTS
    }
    fields |= {r.record_field: r.value(c) for r in SEGMENT_RATIOS}
    return SegmentKpis(segment=segment, service_level=SERVICE_LEVEL[variant].value(c), **fields)


def _exported(value: int, field: str) -> float | int:
    """A count as the record carries it: durations (integer ms) in seconds, counts as integers."""
    return value / 1000 if field.endswith("_ms") else value


def _counts(c: QueueCounts | HandlingCounts, counts: tuple[Count, ...]) -> dict[str, Any]:
    """The record fields of the table's counts, each as its definition names it (durations in seconds)."""
    return {n.record_field: _exported(getattr(c, n.field), n.field) for n in counts}


def _ratios(c: QueueCounts, ratios: tuple[RatioKpi, ...]) -> dict[str, Any]:
    """The record fields of the table's ratios, each its definition's value over the counts."""
    return {r.record_field: r.value(c) for r in ratios}


def _miss_causes(c: QueueCounts, rules: QueueSettings, causes: dict[str, float] | None) -> list[MissCause] | None:
    """An hour's or day's causes, when it missed its target (`causes`: its missed intervals' contacts by cause)."""
    if causes is None or headline_shortfall(c, rules) <= 0:
        return None
    total = sum(causes.values())
    ranked = sorted(causes.items(), key=lambda cw: -cw[1])
    return [MissCause(cause=k, contacts=w, share=w / total) for k, w in ranked] if total > 0 else []


def _cost(c: QueueCounts, channel: str, rules: QueueSettings) -> dict[str, Any]:
    spent = handling_cost(c, channel, rules)
    if spent is None:
        return {}
    return dict(currency=spent.currency, handling_cost=spent.assisted, handling_cost_per_handled=spent.per_handled)


def _required(c: QueueCounts, span_seconds: float, rules: QueueSettings) -> int | None:
    traffic = observed_traffic(c, span_seconds)
    return agents_needed(requirement(traffic, rules).agents, rules) if traffic else None


def decode_record(b: bytes) -> KpiRecord:
    return msgspec.json.decode(b, type=KpiRecord)
