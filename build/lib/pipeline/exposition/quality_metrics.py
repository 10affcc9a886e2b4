"""Prometheus exposition of first contact resolution and repeat contacts, read at scrape time.

One customer's contacts live on one partition of the customer-contacts topic, so the contacts of one queue are
spread over every partition. The counters therefore carry a `partition` label (a bounded set): a partition's
series moves whole from worker to worker on a rebalance, so no worker's counter ever goes down (which
Prometheus would read as a reset). Sum over `partition` in PromQL: `sum by (queue, channel) (...)`.

The totals only grow (see `pipeline.kpis.quality.FcrTotals`). No label ever holds a customer id or its hash.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from pipeline.exposition.described import Described
from pipeline.kpis.quality import FCR_COUNTS

if TYPE_CHECKING:
    from pipeline.processing.fcr import FcrProcessor


class FcrCollector(Described):
    def __init__(self, processor: FcrProcessor) -> None:
        self.processor = processor

    def collect(self) -> Iterator[Metric]:
        parts = sorted(self.processor.partitions.items())
        labels = ["queue", "channel", "partition"]
        for count in FCR_COUNTS:
            fam = CounterMetricFamily(count.metric.removesuffix("_total"), count.help, labels=labels)
            for p, state in parts:
                for (q, ch), t in sorted(state.totals.items()):
                    fam.add_metric([q, ch, str(p)], getattr(t, count.field))
            yield fam
        fam = CounterMetricFamily(
            "cc_pipeline_fcr_late_contacts",
            "Offers that reached the FCR state after its horizon (watermark - allowed lateness); not applied.",
            labels=["queue", "channel"],
        )
        for (q, ch), n in sorted(self.processor.late.items()):
            fam.add_metric([q, ch], n)
        yield fam
        held = GaugeMetricFamily(
            "cc_pipeline_fcr_contacts_held",
            "Contacts the FCR state holds for repeat matching (bounded by the longest window or the contact timeout).",
            labels=["partition"],
        )
        wm = GaugeMetricFamily(
            "cc_pipeline_fcr_watermark_timestamp_seconds",
            "FCR watermark of each owned customer-contacts partition: the lowest watermark "
            "of the contact-event partitions.",
            labels=["partition"],
        )
        for p, state in parts:
            held.add_metric([str(p)], state.contacts_held())
            if state.watermark > 0:
                wm.add_metric([str(p)], state.watermark / 1000)
        yield held
        yield wm
