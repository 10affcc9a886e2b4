"""Benchmark phase "scrape": what one full `/metrics` scrape costs the worker at a given size of center
(`--phases scrape`).

The worker renders /metrics on its event loop (a family at a time, with turns for its batches between), so a
scrape is CPU the worker does not spend applying events. This phase feeds `--scrape-hours` of a simulated
`--agents` x `--queues` center (from 09:00) through the contact, agent and FCR processors in this process, as the
worker applies them (no Kafka, no Faust: quick to A/B a change of the exposition), registers the worker's
collectors, and times the whole exposition `--scrape-repeats` times, then each collector on its own. Opt-in: the
state takes minutes to build at thousands of agents.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from collections.abc import Iterator

import msgspec
from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from pipeline.contract.partitioner import partition_of
from pipeline.core.settings import QueueConfig, load_settings
from pipeline.exposition.agent_metrics import AgentCollector
from pipeline.exposition.board_metrics import AdherenceCollector, TodayCollector
from pipeline.exposition.metrics import KpiCollector, exposition
from pipeline.exposition.quality_metrics import FcrCollector
from pipeline.processing.fcr import CustomerContactForwarder, FcrProcessor, hash_key
from pipeline.processing.processor import AgentProcessor, ContactProcessor, Message, PipelineStats
from pipeline.runtime.producer import route
from pipeline.tools.replay import Rate

BATCH = 5_000  # events applied per batch, a quarter of a second of wall clock each (provisional records as live)


def _collectors(contact: ContactProcessor, agent: AgentProcessor, fcr: FcrProcessor) -> dict[str, Collector]:
    """The worker's collectors (`pipeline.runtime.app` and `.fcr`) but its health one, by name."""
    parts: dict[str, Collector] = {
        f"kpi {p.collect.__name__.strip('_')}": p for p in KpiCollector(contact, contact.stats, agent).parts()
    }
    return parts | {
        "agents": AgentCollector(agent),
        "today": TodayCollector(contact),
        "adherence": AdherenceCollector(agent, contact.queues),
        "fcr": FcrCollector(fcr),
    }


def scrape(opts: argparse.Namespace) -> dict:
    from pipeline.tools.bench import _say, _series, center
    from pipeline.tools.simulate import simulate

    settings = load_settings()
    stats, queues = PipelineStats(), QueueConfig()
    contact, agent = ContactProcessor(settings, queues, stats), AgentProcessor(settings, stats)
    fcr = FcrProcessor(settings, queues, stats)
    forwarder = CustomerContactForwarder(hash_key(settings), settings.partitions, settings.max_message_bytes)
    offsets: Counter[tuple[str, int]] = Counter()
    _say(f"scrape: feeding {opts.scrape_hours:g} h of a {opts.agents:,}-agent, {opts.queues:,}-queue center")
    pending: dict[str, list[Message]] = {"contact-events": [], "agent-events": []}
    wall, applied, rate, last_note = 0.0, 0, Rate(), time.monotonic()

    def apply() -> None:
        nonlocal wall
        wall += 0.25
        for topic, messages in pending.items():
            if topic == "contact-events":
                offered = contact.process(messages, wall_now=wall).offered
                watermarks = {p: s.watermark for p, s in contact.partitions.items()}
                fcr.process(list(_offers(forwarder.messages(offered, watermarks), fcr.topic, offsets)), wall_now=wall)
            else:
                agent.process(messages, wall_now=wall)
            messages.clear()

    encode = msgspec.json.Encoder().encode
    for e in simulate(center(opts.agents, opts.scrape_hours, opts.queues), opts.seed):
        try:
            topic, key = route(e)
        except ValueError:  # heartbeats go to every partition: the processors' clocks do without them here
            continue
        p = partition_of(key, settings.partitions)
        pending[topic].append(Message(topic, p, offsets[topic, p], key, encode(e)))
        offsets[topic, p] += 1
        applied += 1
        if applied % BATCH == 0:
            apply()
            now = time.monotonic()
            per_second = rate.add(now, applied)
            if now - last_note >= 10:
                last_note = now
                _say(f"    scrape: {applied:,} events applied ({per_second or 0:,.0f}/s)")
    apply()
    collectors = _collectors(contact, agent, fcr)
    registry = CollectorRegistry(auto_describe=False)
    for c in collectors.values():
        registry.register(c)
    seconds, text = [], b""
    for i in range(opts.scrape_repeats):
        started = time.perf_counter()
        text = exposition(registry)
        seconds.append(time.perf_counter() - started)
        _say(f"    scrape: full exposition {i + 1}/{opts.scrape_repeats}: {seconds[-1]:.2f} s")
    by_collector = {}
    for name, c in collectors.items():
        alone = CollectorRegistry(auto_describe=False)
        alone.register(c)
        times = []
        for _ in range(opts.scrape_repeats):
            started = time.perf_counter()
            part = exposition(alone)
            times.append(time.perf_counter() - started)
        by_collector[name] = {"seconds": statistics.median(times), "series": _series(part.decode())}
    out = {
        "agents": opts.agents,
        "queues": opts.queues,
        "hours": opts.scrape_hours,
        "events": applied,
        "series": _series(text.decode()),
        "exposition_bytes": len(text),
        "seconds": {"median": statistics.median(seconds), "min": min(seconds), "max": max(seconds)},
        "by_collector": by_collector,
    }
    _say(
        f"scrape: {out['series']:,} series ({len(text) / 1e6:.1f} MB) in {out['seconds']['median']:.2f} s "
        f"(median of {len(seconds)}, {out['seconds']['min']:.2f}-{out['seconds']['max']:.2f})"
    )
    return out


def _offers(messages, topic: str, offsets: Counter[tuple[str, int]]) -> Iterator[Message]:  # noqa: ANN001
    for o in messages:
        yield Message(topic, o.partition, offsets[topic, o.partition], o.key, o.value)
        offsets[topic, o.partition] += 1


def figure_rows(result: dict, row) -> None:  # noqa: ANN001 (bench.figures' row function)
    what = f"{result['agents']:,} agents, {result['queues']:,} queues, {result['hours']:g} h"
    s = result["seconds"]
    row(
        f"scrape: full /metrics exposition in process, {what} ({result['series']:,} series), median "
        f"({s['min']:.2f}-{s['max']:.2f})",
        s["median"],
        "s",
    )
    for name, c in sorted(result["by_collector"].items(), key=lambda kv: -kv[1]["seconds"]):
        row(f"  scrape: {name} ({c['series']:,} series), median", c["seconds"], "s")
