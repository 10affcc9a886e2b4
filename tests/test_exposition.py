"""The /metrics page a family at a time: the same bytes as prometheus_client renders of the whole registry, and
the worker's event loop gets a turn between families (a page of tens of thousands of agents takes seconds)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

import msgspec
from prometheus_client import generate_latest

from pipeline.contract.partitioner import partition_of
from pipeline.core.settings import QueueConfig, load_settings
from pipeline.exposition.metrics import build_registry, exposition, exposition_in_steps
from pipeline.processing.processor import AgentProcessor, ContactProcessor, Message, PipelineStats
from pipeline.runtime.producer import route
from pipeline.tools.simulate import CenterConfig, simulate


def _registry():
    """The worker's KPI and agent collectors over an hour of a small simulated center."""
    settings = load_settings()
    stats = PipelineStats()
    contact, agent = ContactProcessor(settings, QueueConfig(), stats), AgentProcessor(settings, stats)
    by_topic: dict[str, list[Message]] = {"contact-events": [], "agent-events": []}
    offsets: Counter[tuple[str, int]] = Counter()
    config = CenterConfig(agents=30, duration_hours=1.0, start=datetime(2026, 1, 5, 9, tzinfo=UTC))
    for e in simulate(config, 2):
        try:
            topic, key = route(e)
        except ValueError:  # heartbeats
            continue
        p = partition_of(key, settings.partitions)
        by_topic[topic].append(Message(topic, p, offsets[topic, p], key, msgspec.json.encode(e)))
        offsets[topic, p] += 1
    contact.process(by_topic["contact-events"])
    agent.process(by_topic["agent-events"])
    return build_registry(contact, stats, agent)


def test_the_page_family_by_family_is_the_librarys_whole_page():
    registry = _registry()
    page = exposition(registry)
    assert b"cc_agent_state_seconds_total{" in page and b"cc_queue_offered_total{" in page
    assert page == generate_latest(registry)
    names = ["cc_queue_offered_total", "cc_agent_state_seconds_total"]
    assert exposition(registry, names) == generate_latest(registry.restricted_registry(names))


async def test_the_event_loop_gets_a_turn_between_families():
    registry = _registry()
    families = sum(1 for _ in registry.collect())
    turns = 0

    async def other_work() -> None:  # what the worker's loop does beside a scrape: batches, health probes
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    before = turns
    page = await exposition_in_steps(registry)
    task.cancel()
    assert page == exposition(registry)
    assert turns - before >= families - 1 > 50
