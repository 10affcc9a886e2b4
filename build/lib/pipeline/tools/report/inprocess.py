"""KPI records from a file of events without a broker: the processors the worker runs, fed in this process.

For reports of simulated or exported days (`python -m pipeline report --events FILE`), the sample report in docs/
and the report tests. One partition; the final queue (interval, hour, day) and agent records, as JSON objects like
those `python -m pipeline replay --kpi-out` writes. FCR records need the customer-contacts topic and are made by
`replay` only.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import msgspec
import orjson

from pipeline.contract import events as ev
from pipeline.core.settings import QueueConfig, Settings, load_settings
from pipeline.processing.processor import AgentProcessor, ContactProcessor, Message, PipelineStats
from pipeline.runtime.producer import route

BATCH = 5000


def records_from_events(
    events: Iterable[ev.Event], queues: QueueConfig, settings: Settings | None = None, progress: bool = False
) -> list[dict[str, Any]]:
    """The final KPI records (last revision of each key) the worker would publish for these events."""
    settings = settings or load_settings(broker_url="in-process:0", partitions=1, max_clock_skew_seconds=7 * 86400)
    if settings.partitions != 1:
        settings = settings.model_copy(update={"partitions": 1})
    stats = PipelineStats()
    contact, agent = ContactProcessor(settings, queues, stats), AgentProcessor(settings, stats)
    batches: dict[str, list[Message]] = {"contact-events": [], "agent-events": []}
    offsets = {"contact-events": 0, "agent-events": 0}
    latest: dict[str, Any] = {}
    last = None
    count = 0

    def flush(name: str) -> None:
        processor = contact if name == "contact-events" else agent
        for r in processor.process(batches[name], wall_now=0.0).records:
            if r.final:
                latest[r.key] = r
        batches[name] = []

    def add(name: str, key: bytes, value: bytes) -> None:
        batches[name].append(Message(settings.topic(name), 0, offsets[name], key, value))
        offsets[name] += 1
        if len(batches[name]) >= BATCH:
            flush(name)

    for e in events:
        name, key = route(e)
        add(name, key, msgspec.json.encode(e))
        last = e.time if last is None or e.time > last else last
        count += 1
        if progress and count % 100_000 == 0:
            print(f"\r  {count:,} events applied", end="", file=sys.stderr, flush=True)
    if last is not None:
        longest = max(settings.contact_timeout_seconds, 86400.0)
        closing = last + timedelta(seconds=2 * settings.interval_seconds + settings.allowed_lateness_seconds + longest)
        beat = msgspec.json.encode(ev.SourceHeartbeat(event_id="in-process-close", time=closing))
        for name in batches:
            add(name, b"", beat)
    for name in batches:
        flush(name)
    if progress:
        print(f"\r  {count:,} events applied: {len(latest):,} final records", file=sys.stderr)
    return [orjson.loads(msgspec.json.encode(r)) for _, r in sorted(latest.items())]
