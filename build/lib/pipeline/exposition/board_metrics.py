"""Prometheus gauges the boards' figures are made of, for Prometheus too: real-time adherence per queue
(`cc_queue_agents_out_of_adherence`, `cc_queue_agents_adherence_exceptions`: the agent board's, counted per queue),
and today so far per queue and channel (`cc_queue_today_*`, `pipeline.kpis.definitions.
TODAY_FIELDS`): the counts every service level variant, ASA and abandonment of "today" are formed from, in each
queue's own time zone, built at scrape time from the state this worker owns (the day's final intervals and the
open ones, as the wallboard's "today": `pipeline.exposition.boards.queue_figures`).

Gauges, not counters: they start again at local midnight, which `increase()` would take for a counter reset.
A queue lives on one partition, so summing over workers counts nothing twice. Nothing is updated per event.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from pipeline.core.settings import QueueConfig
from pipeline.exposition.boards import adherence_by_queue, queue_figures
from pipeline.exposition.described import Described
from pipeline.kpis.agents import AGENT_GAUGES
from pipeline.kpis.definitions import COUNT, GAUGE, TODAY_FIELDS, today_metric
from pipeline.processing.processor import AgentProcessor, ContactProcessor


class TodayCollector(Described):
    def __init__(self, processor: ContactProcessor) -> None:
        self.processor = processor

    def collect(self) -> Iterator[Metric]:
        days = {}
        for state in list(self.processor.partitions.values()):
            for qc, (_interval, day, *_) in queue_figures(state, self.processor.queues).items():
                days[qc] = day
        for field in TODAY_FIELDS:
            name = today_metric(field)
            fam = GaugeMetricFamily(name, GAUGE[name].help, labels=["queue", "channel"])
            for (q, ch), day in sorted(days.items()):
                fam.add_metric([q, ch], getattr(day, field) * COUNT[field].scale)
            yield fam


class AdherenceCollector(Described):
    """Agents out of adherence now, and adherence exceptions, per queue, over this worker's agent partitions."""

    def __init__(self, processor: AgentProcessor, queues: QueueConfig) -> None:
        self.processor = processor
        self.queues = queues

    def collect(self) -> Iterator[Metric]:
        by_queue = adherence_by_queue(list(self.processor.partitions.values()), self.queues)
        helps = {g.metric: g.help for g in AGENT_GAUGES}
        for i, name in enumerate(("cc_queue_agents_out_of_adherence", "cc_queue_agents_adherence_exceptions")):
            fam = GaugeMetricFamily(name, helps[name], labels=["queue"])
            for q, counts in sorted(by_queue.items()):
                fam.add_metric([q], counts[i])
            yield fam
