"""The pipeline's own forecast as a periodic job of the worker (`PIPELINE_FORECAST_EVERY_MINUTES`, 0: off).

Every so often, the consumer group's leader reads the final queue interval records on the KPI topic, forecasts
(pipeline.kpis.forecast: the rest of today, reforecast by how it runs, and the next `PIPELINE_FORECAST_DAYS`
days) in a thread, so the worker's event loop keeps consuming, and publishes the `forecast.published` events
(`source: "pipeline"`) to the contact-event topic, where the worker holds them like any forecast.
`python -m pipeline forecast --from-topic --publish` does the same once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.core.settings import Settings
from pipeline.runtime.broker import bootstrap_servers
from pipeline.runtime.producer import EventWriter

log = logging.getLogger(__name__)


async def read_queue_records(settings: Settings) -> list[dict[str, Any]]:
    """The newest revision of every final queue interval record on the KPI topic, read up to its current end."""
    topic = settings.topic("kpis")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(settings), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    latest: dict[bytes | None, dict[str, Any]] = {}
    try:
        await consumer.topics()  # refreshes the metadata
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        ends = {tp: off for tp, off in (await consumer.end_offsets(tps)).items() if off > 0}
        consumer.assign(list(ends))
        for tp in ends:
            consumer.seek(tp, 0)
        remaining = set(ends)
        quiet = 0
        while remaining and quiet < 5:  # 5 s without a message: the end offsets over-counted (transaction markers)
            batches = await consumer.getmany(timeout_ms=1000)
            quiet = 0 if batches else quiet + 1
            for tp, msgs in batches.items():
                for m in msgs:
                    r = orjson.loads(m.value)
                    if (
                        r.get("kind", "queue") == "queue"
                        and r.get("window", "interval") == "interval"
                        and r.get("final")
                    ):
                        if m.key not in latest or r["revision"] >= latest[m.key]["revision"]:
                            latest[m.key] = r
                    if m.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
    finally:
        await consumer.stop()
    return list(latest.values())


def _events(records: list[dict[str, Any]], days: int) -> tuple[list[Any], list[tuple[str, str]]]:
    from pipeline.kpis.forecast import forecast_events, histories_from_records  # statsmodels: only when it runs

    return forecast_events(histories_from_records(records), days)


async def publish_own_forecast(settings: Settings) -> int:
    """Read, forecast, publish; returns the number of intervals published (0 when there is no history yet)."""
    started = time.monotonic()
    records = await read_queue_records(settings)
    if not records:
        log.info("own forecast: no final interval record on the KPI topic yet")
        return 0
    events, skipped = await asyncio.to_thread(_events, records, settings.forecast_days)
    async with EventWriter(settings, bootstrap_servers(settings)) as writer:
        await writer.write(events)
    log.info(
        "own forecast: %d intervals of %d queues published in %.1f s (%d skipped: nothing handled yet)",
        len(events),
        len({(e.queue_id, e.channel) for e in events}),
        time.monotonic() - started,
        len(skipped),
    )
    return len(events)
