"""The KPI record: one per (queue, channel, interval) and revision, published on the KPI topic.

The topic is keyed by `queue_id|channel|interval_start` so that a compacted topic keeps the latest revision.
Records carry the additive counts as well as the ratios, so consumers can re-aggregate (sum the counts, then
divide) over queues or longer spans. `schemas/kpi-record.v1.json` is generated from this class.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from pipeline.kpis import counts as k
from pipeline.state.intervals import as_datetime
from pipeline.state.queues import IntervalUpdate

Seconds = Annotated[float, Meta(ge=0, description="Seconds.")]


class KpiRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Queue KPIs of one queue and channel over one interval (see docs/kpis.md for every definition)."""

    queue_id: str
    channel: str
    interval_start: Annotated[datetime, Meta(description="Start of the interval (UTC).")]
    interval_end: Annotated[datetime, Meta(description="End of the interval (UTC), exclusive.")]
    revision: Annotated[int, Meta(ge=1, description="Grows by one with each record published for this key.")]
    final: Annotated[bool, Meta(description="True when the interval is closed: no later revision will come.")]
    service_level_threshold_seconds: Seconds
    offered: int
    answered: int
    abandoned: int
    answered_within_threshold: int
    abandoned_within_threshold: int
    expired: int
    answer_wait_seconds_sum: Seconds
    handled: int
    handle_seconds_sum: Seconds
    talk_seconds_sum: Seconds
    hold_seconds_sum: Seconds
    acw_seconds_sum: Seconds
    transferred_out: int
    service_level: Annotated[float | None, Meta(description="Ratio 0..1; null with nothing to measure.")]
    asa_seconds: Annotated[float | None, Meta(description="Average speed of answer; null if none answered.")]
    aht_seconds: Annotated[float | None, Meta(description="Average handle time; null if none handled.")]

    @property
    def key(self) -> str:
        return record_key(self.queue_id, self.channel, self.interval_start)


def record_key(queue_id: str, channel: str, start: datetime) -> str:
    return f"{queue_id}|{channel}|{start.isoformat()}"


def build_record(u: IntervalUpdate, interval_seconds: int) -> KpiRecord:
    c = u.counts
    return KpiRecord(
        queue_id=u.queue_id,
        channel=u.channel,
        interval_start=as_datetime(u.start),
        interval_end=as_datetime(u.start + interval_seconds),
        revision=u.revision,
        final=u.final,
        service_level_threshold_seconds=u.threshold_seconds,
        offered=c.offered,
        answered=c.answered,
        abandoned=c.abandoned,
        answered_within_threshold=c.answered_within_threshold,
        abandoned_within_threshold=c.abandoned_within_threshold,
        expired=c.expired,
        answer_wait_seconds_sum=c.answer_wait_ms / 1000,
        handled=c.handled,
        handle_seconds_sum=c.handle_ms / 1000,
        talk_seconds_sum=k.talk_ms(c) / 1000,
        hold_seconds_sum=c.hold_ms / 1000,
        acw_seconds_sum=c.acw_ms / 1000,
        transferred_out=c.transferred_out,
        service_level=k.service_level(c),
        asa_seconds=k.average_speed_of_answer(c),
        aht_seconds=k.average_handle_time(c),
    )


def encode_record(r: KpiRecord) -> bytes:
    return msgspec.json.encode(r)


def decode_record(b: bytes) -> KpiRecord:
    return msgspec.json.decode(b, type=KpiRecord)
