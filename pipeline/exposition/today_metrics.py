"""Prometheus gauges of today so far per queue and channel (`cc_queue_today_*`, `pipeline.kpis.definitions.
TODAY_FIELDS`): the counts every service level variant, ASA and abandonment of "today" are formed from, in each
queue's own time zone, built at scrape time from the state this worker owns (the day's final intervals and the
open ones, as the wallboard's "today": `pipeline.exposition.boards.queue_figures`).

Gauges, not counters: they start again at local midnight, which `increase()` would take for a counter reset.
A queue lives on one partition, so summing over workers counts nothing twice. Nothing is updated per event.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from pipeline.exposition.boards import queue_figures
from pipeline.exposition.described import Described
from pipeline.kpis.definitions import COUNT, GAUGE, TODAY_FIELDS, today_metric
from pipeline.processing.processor import ContactProcessor


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
