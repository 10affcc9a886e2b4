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


def _messages() -> dict[str, list[Message]]:
    """An hour of a small simulated center, as the worker reads it, by topic."""
    settings = load_settings()
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
    return by_topic


def _registry():
    """The worker's KPI and agent collectors over `_messages`."""
    settings, stats = load_settings(), PipelineStats()
    contact, agent = ContactProcessor(settings, QueueConfig(), stats), AgentProcessor(settings, stats)
    by_topic = _messages()
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


async def test_a_scrapes_queue_counts_are_of_one_moment_though_a_batch_is_applied_between_its_families():
    settings, stats = load_settings(), PipelineStats()
    contact = ContactProcessor(settings, QueueConfig(), stats)
    events = _messages()["contact-events"]
    half = len(events) // 2
    contact.process(events[:half])
    registry = build_registry(contact, stats)

    def queue_counts(page: bytes) -> list[bytes]:
        return [line for line in page.splitlines() if line.startswith(b"cc_queue_") and b"_total{" in line]

    before = queue_counts(exposition(registry))

    async def apply_the_rest() -> None:  # at the scrape's first turn, as the worker's loop would
        contact.process(events[half:])

    task = asyncio.create_task(apply_the_rest())
    page = await exposition_in_steps(registry)
    await task
    after = queue_counts(exposition(registry))
    assert after != before  # the second half did change the counts ...
    assert queue_counts(page) == before  # ... but not within the scrape that had begun
