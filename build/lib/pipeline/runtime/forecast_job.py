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

from pipeline.core.settings import Settings
from pipeline.runtime.broker import bootstrap_servers
from pipeline.runtime.kpi_topic import read_final_records
from pipeline.runtime.producer import EventWriter

log = logging.getLogger(__name__)


async def read_queue_records(settings: Settings) -> list[dict[str, Any]]:
    """The newest revision of every final queue interval record on the KPI topic, read up to its current end."""
    return [
        r
        for r in await read_final_records(settings)
        if r.get("kind", "queue") == "queue" and r.get("window", "interval") == "interval"
    ]


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
