"""The worker's HTTP pages: /metrics, /health/live, /health/ready and /progress. Only these are served
(`pipeline.runtime.transport` leaves Faust's own views out)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from pipeline.core.time import NO_TIME
from pipeline.exposition.metrics import exposition_in_steps
from pipeline.processing.fcr import FcrProcessor
from pipeline.processing.processor import ContactProcessor, PipelineStats
from pipeline.runtime.health import Health, HealthReport, Throughput
from pipeline.runtime.transport import App


def add_pages(app: App, registry: CollectorRegistry, health: Health, progress: Callable[[], dict[str, Any]]) -> None:
    @app.page("/metrics")
    async def metrics(web, request):  # noqa: ANN001
        names = request.query.getall("name[]", [])  # Prometheus' own filter: only these metrics
        body = await exposition_in_steps(registry, names)
        return web.bytes(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/health/live")
    async def live(web, request):  # noqa: ANN001
        return _health_response(web, health.live())

    @app.page("/health/ready")
    async def ready(web, request):  # noqa: ANN001
        return _health_response(web, health.ready())

    @app.page("/progress")
    async def progress_page(web, request):  # noqa: ANN001
        return web.json(progress())


def progress(
    contacts: ContactProcessor, fcr: FcrProcessor, stats: PipelineStats, throughput: Throughput
) -> dict[str, Any]:
    """Per owned partition: last offset applied, watermark, open intervals, hour/day rollups and legs, and the
    FCR partitions' open intervals (replay waits on them)."""
    return {
        "partitions": {
            str(p): {
                "offset": s.offset,
                "watermark_ms": s.watermark,
                "watermark": _readable(s.watermark),  # the same, for a person
                "open_intervals": len(s.intervals),
                "open_rollups": len(s.rollups),
                "legs": len(s.legs),
            }
            for p, s in sorted(contacts.partitions.items())
        },
        # those that have applied something: `replay` and the fault tests take an entry for "offers arrived"
        "fcr_partitions": {
            str(p): {"offset": s.offset, "open_intervals": len(s.intervals)}
            for p, s in sorted(fcr.partitions.items())
            if s.offset >= 0
        },
        "messages": dict(stats.messages),
        "source_messages": throughput.messages,
        "first_batch": throughput.first_batch,
        "last_batch_monotonic": throughput.last_batch_monotonic,  # the machine's clock: for the benchmark
        "batches_cpu": [throughput.first_batch_cpu, throughput.last_batch_cpu],  # the process's CPU seconds, as well
        "last_batch_seconds_ago": (
            round(time.monotonic() - throughput.last_batch_monotonic, 3) if throughput.last_batch_monotonic else None
        ),
        "batches": stats.batches,
        "rejected": {f"{topic}|{reason}": n for (topic, reason), n in stats.rejected.items()},
        "duplicates": sum(stats.duplicates.values()),
        "late": sum(stats.late.values()),
    }


def _readable(epoch_ms: int) -> str | None:
    """An event time in epoch ms as RFC 3339 UTC (None before any event)."""
    if epoch_ms == NO_TIME:
        return None
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _health_response(web, report: HealthReport):  # noqa: ANN001
    return web.json({"ok": report.ok, **report.checks}, status=200 if report.ok else 503)
