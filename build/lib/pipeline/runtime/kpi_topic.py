"""Reading the KPI topic: the one place that turns its messages into typed records (replay, the sinks, tests).

A message is checked as a consumer should check it (docs/consumers.md): a JSON object whose `kind` is one of
`KINDS`, valid against that kind's record class, and whose Kafka key is the record's own key. Anything else is a
`BadRecord` with a reason from `BAD_REASONS`, for the caller to count and log; reading never raises on content.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.core.settings import Settings
from pipeline.kpis.agents import AgentKpiRecord
from pipeline.kpis.quality import FcrRecord
from pipeline.kpis.record import KpiRecord
from pipeline.runtime.broker import bootstrap_servers
from pipeline.runtime.kafka_security import client_options

KINDS: dict[str, type[msgspec.Struct]] = {"queue": KpiRecord, "agent": AgentKpiRecord, "fcr": FcrRecord}
"""The record kinds on the KPI topic and the class of each (`kind` defaults to `queue` in older records)."""

BAD_REASONS = ("empty", "not_json", "unknown_kind", "invalid_record", "key_mismatch")

Record = KpiRecord | AgentKpiRecord | FcrRecord


class BadRecord(Exception):
    """A KPI-topic message that is not a valid record; `reason` is one of `BAD_REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def decode_kpi(key: bytes | None, value: bytes | None) -> Record:
    """The typed record of one KPI-topic message, or `BadRecord`."""
    if not value:
        raise BadRecord("empty", "no value (a tombstone)")
    try:
        raw = msgspec.json.decode(value)
    except msgspec.DecodeError as exc:
        raise BadRecord("not_json", str(exc)) from None
    kind = raw.get("kind", "queue") if isinstance(raw, dict) else None
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise BadRecord("unknown_kind", f"kind {kind!r}, expected one of {', '.join(KINDS)}")
    try:
        record: Record = msgspec.convert(raw, type=cls)  # type: ignore[assignment]  # cls is one of the three
    except msgspec.ValidationError as exc:
        raise BadRecord("invalid_record", str(exc)) from None
    if key is None or key.decode("utf-8", "replace") != record.key:
        raise BadRecord("key_mismatch", f"message key {key!r}, record key {record.key!r}")
    return record


async def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """The topic's end offset per partition (empty when the topic does not exist)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(settings), **client_options(settings))
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not tps:
            await consumer.topics()  # refreshes the metadata
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        return {tp.partition: off for tp, off in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def read_final_records(settings: Settings) -> list[dict[str, Any]]:
    """Every final record on the KPI topic, of every kind (queue, agent, fcr), as JSON objects: the last
    revision of each key, read up to the topic's current end."""
    topic = settings.topic("kpis")
    ends = await end_offsets(settings, topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(settings),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **client_options(settings),  # TLS and SASL
    )
    await consumer.start()
    latest: dict[bytes, dict[str, Any]] = {}
    try:
        tps = [TopicPartition(topic, p) for p, end in ends.items() if end > 0]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        remaining = {tp for tp in tps}
        while remaining:
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, msgs in batches.items():
                for m in msgs:
                    r = orjson.loads(m.value)
                    if m.key not in latest or r["revision"] >= latest[m.key]["revision"]:
                        latest[m.key] = r
                    # the high watermark of the fetch too: Tansu's ListOffsets (`end_offsets`) can answer less
                    if m.offset + 1 >= max(ends[tp.partition], consumer.highwater(tp) or 0):
                        remaining.discard(tp)
    finally:
        await consumer.stop()
    finals = [r for r in latest.values() if r["final"]]
    return sorted(finals, key=lambda r: (r.get("kind", "queue"), r["interval_start"], sorted(r.items()).__repr__()))
