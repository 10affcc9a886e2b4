"""Prometheus exposition, built at scrape time from the state this worker owns now.

Nothing is updated per event: the collector reads the per-partition totals and the pipeline's own counts
when Prometheus scrapes. Series of partitions this worker no longer owns simply stop being produced, so the
sum over workers never counts a queue twice. Metric names come from the KPI catalogue.
"""

from __future__ import annotations

import asyncio
import gc
import operator
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from pipeline.core.settings import QueueSettings
from pipeline.core.time import interval_start
from pipeline.exposition.agent_metrics import AgentCollector
from pipeline.exposition.described import Part
from pipeline.kpis.catalogue import AGENT_HANDLING, COUNTS, GAUGE, WAIT_HISTOGRAM
from pipeline.kpis.counts import Forecast, QueueCounts, cumulative
from pipeline.kpis.definitions import DISPOSITIONS, HANDLING_COST, SEGMENT_COUNTS
from pipeline.kpis.reporting.cost import handling_cost
from pipeline.kpis.staffing.live import agents_needed, observed_traffic, prediction, requirement
from pipeline.kpis.staffing.plan import Demand, ahead_intervals, required_for
from pipeline.processing.processor import CLAMP_REASONS, AgentProcessor, ContactProcessor, PipelineStats


class KpiCollector:
    """Queue KPIs, per-agent handling, live staffing and the pipeline's own counts, each registered as a `Part`."""

    def __init__(self, processor: ContactProcessor, stats: PipelineStats, agents: AgentProcessor | None = None) -> None:
        self.processor = processor
        self.stats = stats
        self.agents = agents  # for the staffed agents per queue

    def parts(self) -> list[Part]:
        return [Part(f) for f in (self._queue_metrics, self._agent_handling, self._staffing, self._pipeline_metrics)]

    def _queue_metrics(self) -> Iterator[Metric]:
        labels = ["queue", "channel"]
        totals: dict[tuple[str, str], QueueCounts] = {}
        current: dict[tuple[str, str], Forecast] = {}
        waiting = _gauge("cc_queue_contacts_waiting", labels)
        oldest = _gauge("cc_queue_oldest_waiting_age_seconds", labels)
        for state in list(self.processor.partitions.values()):
            # Copies (a queue lives on exactly one partition): the families are rendered across turns of the loop
            # in which batches change the live counts, and one scrape's families must agree (none answered more
            # than offered).
            totals.update((key, counts.copy()) for key, counts in state.totals.items())
            for (q, ch), of_queue in state.forecasts.items():
                now = interval_start(state.clock(q), state.interval_ms)
                if now in of_queue:
                    current[(q, ch)] = of_queue[now]
            for q, ch, n, age in state.waiting():
                waiting.add_metric([q, ch], n)
                oldest.add_metric([q, ch], age)
        for count in COUNTS:
            fam = CounterMetricFamily(count.metric.removesuffix("_total"), count.help, labels=labels)
            for (q, ch), c in sorted(totals.items()):
                fam.add_metric([q, ch], getattr(c, count.field) * count.scale)
            yield fam
        yield from _segments_and_dispositions(totals)
        yield self._wait_histogram(totals)
        yield self._handling_cost(totals)
        with_waiting = {(s.labels["queue"], s.labels["channel"]) for s in waiting.samples}
        for q, ch in sorted(totals.keys() - with_waiting):  # queues with nothing waiting show 0 rather than no series
            waiting.add_metric([q, ch], 0)
            oldest.add_metric([q, ch], 0)
        yield waiting
        yield oldest
        yield from self._callbacks_waiting(sorted(totals))
        forecast_offered = _gauge("cc_queue_forecast_offered", labels)
        forecast_aht = _gauge("cc_queue_forecast_aht_seconds", labels)
        own_offered = _gauge("cc_queue_own_forecast_offered", labels)
        own_aht = _gauge("cc_queue_own_forecast_aht_seconds", labels)
        for (q, ch), fc in sorted(current.items()):
            forecast_offered.add_metric([q, ch], fc.offered)
            forecast_aht.add_metric([q, ch], fc.aht_seconds)
            own = fc.own()
            if own is not None:
                own_offered.add_metric([q, ch], own[0])
                own_aht.add_metric([q, ch], own[1])
        yield from (forecast_offered, forecast_aht, own_offered, own_aht)
        yield from self._targets(sorted(totals))

    def _callbacks_waiting(self, queues: list[tuple[str, str]]) -> Iterator[Metric]:
        """Callbacks waiting (0 for every queue with counts), and how far the earliest promise is past."""
        labels = ["queue", "channel"]
        waiting = _gauge("cc_queue_callbacks_waiting", labels)
        overdue = _gauge("cc_queue_callback_oldest_promise_overdue_seconds", labels)
        seen = set()
        for state in list(self.processor.partitions.values()):
            for q, ch, n, past in state.callbacks_waiting():
                seen.add((q, ch))
                waiting.add_metric([q, ch], n)
                if past is not None:
                    overdue.add_metric([q, ch], past)
        for q, ch in queues:
            if (q, ch) not in seen:
                waiting.add_metric([q, ch], 0)
        yield waiting
        yield overdue

    def _agent_handling(self) -> Iterator[Metric]:
        """Per-agent handling (talk, hold, ACW, transfers) from the contact events, unless turned off."""
        if not self.processor.settings.export_agent_metrics:
            return
        # agent -> the exported fields summed (an agent may serve queues on several partitions): these fields only,
        # not whole counts, since there can be tens of thousands of agents
        fields = operator.attrgetter(*(count.field for count in AGENT_HANDLING))
        agents: dict[str, list[int]] = {}
        for state in list(self.processor.partitions.values()):
            for agent, c in state.agent_totals.items():
                mine = agents.get(agent)
                if mine is None:
                    agents[agent] = list(fields(c))
                else:
                    mine[:] = map(operator.add, mine, fields(c))
        rows = sorted(agents.items())
        for i, count in enumerate(AGENT_HANDLING):
            fam = CounterMetricFamily(count.metric.removesuffix("_total"), count.help, labels=["agent"])
            for agent, values in rows:
                fam.add_metric([agent], values[i] * count.scale)
            yield fam

    def _handling_cost(self, totals: dict[tuple[str, str], QueueCounts]) -> Metric:
        """The records' handling cost over the running totals (the same function): a counter while prices hold."""
        fam = CounterMetricFamily(
            HANDLING_COST.metric.removesuffix("_total"), HANDLING_COST.help, labels=["queue", "channel"]
        )
        for (q, ch), c in sorted(totals.items()):
            spent = handling_cost(c, ch, self.processor.queues.rules(q, ch))
            if spent is not None:
                fam.add_metric([q, ch], spent.assisted)
        return fam

    def _wait_histogram(self, totals: dict[tuple[str, str], QueueCounts]) -> Metric:
        bounds = self.processor.wait_bounds_ms
        fam = HistogramMetricFamily(WAIT_HISTOGRAM.metric, WAIT_HISTOGRAM.help, labels=["queue", "channel", "outcome"])
        les = [f"{b / 1000:g}" for b in bounds] + ["+Inf"]
        for (q, ch), c in sorted(totals.items()):
            for outcome, wait_sum in (("answered", c.answer_wait_ms), ("abandoned", c.abandon_wait_ms)):
                buckets = list(zip(les, cumulative(c, outcome, bounds), strict=True))
                fam.add_metric([q, ch, outcome], buckets, wait_sum / 1000)
        return fam

    def _staffing(self) -> Iterator[Metric]:
        """Required agents from the recent traffic, by the queue's owner (the contact partition). Staffed agents are
        the agent collector's (summed over workers by a recording rule); the predicted service level needs them all,
        so it is exported only by a worker that holds every agent partition (a single worker)."""
        labels = ["queue", "channel"]
        required = _gauge("cc_queue_agents_required", labels)
        predicted_sl, predicted_asa = (
            _gauge(m, labels) for m in ("cc_queue_predicted_service_level", "cc_queue_predicted_asa_seconds")
        )
        staffed = self._all_staffed()
        ahead = _gauge("cc_queue_agents_needed_ahead", [*labels, "ahead"])
        for state in list(self.processor.partitions.values()):
            patience: dict[tuple[str, str], float | None] = {}
            for q, ch, counts, span in state.recent():
                traffic = observed_traffic(counts, span)
                if traffic is None:
                    continue
                patience[(q, ch)] = traffic.patience
                rules = self.processor.queues.rules(q, ch)
                required.add_metric([q, ch], agents_needed(requirement(traffic, rules).agents, rules))
                if staffed is None:
                    continue
                p = prediction(traffic, rules, staffed.get(q, 0.0))
                if p is not None:
                    predicted_sl.add_metric([q, ch], p.service_level)
                    predicted_asa.add_metric([q, ch], min(p.asa, 1e9))
            self._needed_ahead(state, patience, ahead)
        yield from (required, predicted_sl, predicted_asa, ahead)

    def _needed_ahead(self, state, patience: dict[tuple[str, str], float | None], fam: GaugeMetricFamily) -> None:
        """Agents to schedule for the forecast intervals of the next hour after the current one (the plan's rule)."""
        step = state.interval_ms
        for (q, ch), of_queue in sorted(state.forecasts.items()):
            now = interval_start(state.clock(q), step)
            rules = self.processor.queues.rules(q, ch)
            for k in range(1, ahead_intervals(step // 1000) + 1):
                fc = of_queue.get(now + k * step)
                if fc is None:
                    continue
                fam.add_metric([q, ch, str(k)], _needed(rules, fc.offered, fc.aht_seconds, patience.get((q, ch)), step))

    def _all_staffed(self) -> dict[str, float] | None:
        """Staffed agents per queue when this worker holds every agent partition, else None (it cannot know)."""
        if self.agents is None or len(self.agents.partitions) < self.agents.settings.partitions:
            return None
        out: dict[str, float] = {}
        for state in list(self.agents.partitions.values()):
            for q, c in state.capacity_by_queue().items():
                out[q] = out.get(q, 0.0) + c.staffed
        return out

    def _targets(self, queues: list[tuple[str, str]]) -> Iterator[Metric]:
        """The queue configuration's thresholds and targets of each queue and channel (a channel's own where the
        queue file sets one), for dashboards and people to compare with; the alert rules read the same file."""
        rules = {qc: self.processor.queues.rules(*qc) for qc in queues}
        for metric, value in (
            ("cc_queue_service_level_threshold_seconds", lambda r: r.service_level_threshold_seconds),
            ("cc_queue_abandon_rate_target_ratio", lambda r: r.abandon_rate_target),
            ("cc_queue_asa_target_seconds", lambda r: r.asa_target_seconds),
            ("cc_queue_oldest_wait_target_seconds", lambda r: r.oldest_wait_target_seconds),
            ("cc_queue_callback_service_level_target_ratio", lambda r: r.callback_service_level_target),
            ("cc_queue_callback_overdue_limit_seconds", lambda r: r.callback_overdue_seconds),
        ):
            fam = _gauge(metric, ["queue", "channel"])
            for (q, ch), r in rules.items():
                fam.add_metric([q, ch], value(r))
            yield fam
        fam = _gauge("cc_queue_service_level_target_ratio", ["queue", "channel", "variant"])
        for (q, ch), r in rules.items():
            fam.add_metric([q, ch, r.service_level_variant], r.service_level_target)
        yield fam

    def _pipeline_metrics(self) -> Iterator[Metric]:
        s = self.stats
        fam = CounterMetricFamily("cc_pipeline_messages", "Kafka messages consumed.", labels=["topic"])
        for topic, n in sorted(s.messages.items()):
            fam.add_metric([topic], n)
        yield fam
        fam = CounterMetricFamily("cc_pipeline_events", "Valid events decoded, by type.", labels=["topic", "type"])
        for (topic, etype), n in sorted(s.events.items()):
            fam.add_metric([topic, etype], n)
        yield fam
        fam = CounterMetricFamily(
            "cc_pipeline_rejected_events", "Events rejected and dead-lettered, by reason.", labels=["topic", "reason"]
        )
        for (topic, reason), n in sorted(s.rejected.items()):
            fam.add_metric([topic, reason], n)
        yield fam
        fam = CounterMetricFamily(
            "cc_pipeline_duplicate_events", "Events dropped as duplicates (same event_id).", labels=["topic"]
        )
        for topic, n in sorted(s.duplicates.items()):
            fam.add_metric([topic], n)
        yield fam
        fam = CounterMetricFamily(
            "cc_pipeline_skipped_offsets",
            "Source offsets that could not be read again after they were not delivered (retention deleted them, or "
            "a producer writes transactionally): input the KPIs miss (docs/reliability.md).",
            labels=["topic"],
        )
        # every source topic from the start: an alert's rate over a series that appears later misses its first
        sources = {self.processor.topic, *([self.agents.topic] if self.agents is not None else [])}
        for topic in sorted(sources | set(s.skipped_offsets)):
            fam.add_metric([topic], s.skipped_offsets[topic])
        yield fam
        fam = CounterMetricFamily(
            "cc_pipeline_clamped_events",
            "Outcomes stamped before their offer within PIPELINE_CLAMP_SKEW_SECONDS, moved to the offer time.",
            labels=["reason"],
        )
        for reason in sorted(CLAMP_REASONS):  # every reason from the start: a rate over a new series misses its first
            fam.add_metric([reason], s.clamped[reason])
        yield fam
        fam = CounterMetricFamily(
            "cc_pipeline_late_events",
            "Events that arrived after their interval was final; not applied.",
            labels=["queue", "channel"],
        )
        for (q, ch), n in sorted(s.late.items()):
            fam.add_metric([q, ch], n)
        yield fam
        fam = CounterMetricFamily(
            "cc_pipeline_expired_contacts",
            "Contacts given up on after the contact timeout, by what was missing.",
            labels=["queue", "channel", "reason"],
        )
        for state in list(self.processor.partitions.values()):
            for (q, ch, reason), n in sorted(state.expired.items()):
                fam.add_metric([q, ch, reason], n)
        yield fam
        fam = CounterMetricFamily(
            "cc_pipeline_kpi_records_published", "KPI records published on the KPI topic.", labels=["final"]
        )
        for final, n in sorted(s.records_published.items()):
            fam.add_metric([final], n)
        yield fam
        wm = GaugeMetricFamily(
            "cc_pipeline_watermark_timestamp_seconds",
            "Newest event time seen on each owned partition of the contact-event topic.",
            labels=["partition"],
        )
        owned = GaugeMetricFamily(
            "cc_pipeline_owned_partitions", "Partitions of the contact-event topic this worker holds state for."
        )
        owned.add_metric([], len(self.processor.partitions))
        for p, state in sorted(self.processor.partitions.items()):
            if state.watermark > 0:
                wm.add_metric([str(p)], state.watermark / 1000)
        yield wm
        yield owned
        held = GaugeMetricFamily(
            "cc_pipeline_state_entries",
            "What the worker holds for its partitions, by kind: contacts in progress or "
            "recently ended (legs), open intervals, open hour and day rollups, interval "
            "forecasts, agents. Level from day to day: what can change nothing is dropped.",
            labels=["kind"],
        )
        queues = list(self.processor.partitions.values())
        agents = list(self.agents.partitions.values()) if self.agents is not None else []
        for kind, n in (
            ("contact_legs", sum(len(q.legs) for q in queues)),
            ("open_intervals", sum(len(q.intervals) for q in queues)),
            ("open_rollups", sum(len(q.rollups) for q in queues)),
            ("forecasts", sum(len(f) for q in queues for f in q.forecasts.values())),
            ("agents", sum(len(a.agents) for a in agents)),
        ):
            held.add_metric([kind], n)
        yield held
        yield GaugeMetricFamily(
            "cc_pipeline_last_batch_seconds", "Processing time of the last batch.", value=s.last_batch_seconds
        )
        counts: Mapping[str, float]
        for name, help_text, counts in (
            ("cc_pipeline_checkpoints", "Partition state checkpoints written, by input topic.", s.checkpoints),
            (
                "cc_pipeline_checkpoint_bytes",
                "Bytes of state checkpoints written (compressed), by input topic.",
                s.checkpoint_bytes,
            ),
            (
                "cc_pipeline_checkpoint_seconds",
                "Time spent taking and writing state checkpoints (the worker "
                "processes nothing meanwhile), by input topic.",
                s.checkpoint_seconds,
            ),
        ):
            fam = CounterMetricFamily(name, help_text, labels=["topic"])
            for topic, amount in sorted(counts.items()):
                fam.add_metric([topic], amount)
            yield fam


def _needed(rules: QueueSettings, offered: float, aht: float, patience: float | None, step_ms: int) -> int:
    """Agents to schedule for one forecast interval. The patience is rounded to a whole second so that the answers
    of the next hour's intervals are cached from scrape to scrape (it moves with every abandon)."""
    return _needed_cached(rules, offered, aht, None if patience is None else round(patience), step_ms // 1000)


@lru_cache(maxsize=8192)
def _needed_cached(rules: QueueSettings, offered: float, aht: float, patience: float | None, step: int) -> int:
    return required_for(Demand("", "", 0, offered, aht, patience), rules, step)[1]


def _segments_and_dispositions(totals: Mapping[tuple[str, str], QueueCounts]) -> Iterator[Metric]:
    """Outcome counters per segment and handled contacts per wrap-up code: bounded labels (the queue file's sets,
    else `other`)."""
    by_segment = {qc: c.by_segment() for qc, c in sorted(totals.items())}
    for count in SEGMENT_COUNTS:
        fam = CounterMetricFamily(
            count.metric.removesuffix("_total"), count.help, labels=["queue", "channel", "segment"]
        )
        for (q, ch), segments in by_segment.items():
            for segment, c in sorted(segments.items()):
                fam.add_metric([q, ch, segment], getattr(c, count.field) * count.scale)
        yield fam
    fam = CounterMetricFamily(
        DISPOSITIONS.metric.removesuffix("_total"), DISPOSITIONS.help, labels=["queue", "channel", "disposition"]
    )
    for (q, ch), c in sorted(totals.items()):
        for code, n in sorted((c.dispositions or {}).items()):
            fam.add_metric([q, ch, code], n)
    yield fam


def _gauge(metric: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(metric, GAUGE[metric].help, labels=labels)


def build_registry(
    processor: ContactProcessor, stats: PipelineStats, agents: AgentProcessor | None = None
) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    for part in KpiCollector(processor, stats, agents).parts():
        registry.register(part)
    if agents is not None:
        registry.register(AgentCollector(agents))
    return registry


def exposition(registry: CollectorRegistry, names: Iterable[str] = ()) -> bytes:
    """The text exposition; with `names` (the `name[]` query parameters), only those metrics: a cheap scrape of
    a few headline series, e.g. for a fast Prometheus job on the service level beside the full scrape."""
    return b"".join(families(registry, names))


async def exposition_in_steps(registry: CollectorRegistry, names: Iterable[str] = ()) -> bytes:
    """`exposition`, giving the event loop a turn after each metric family: the worker renders /metrics on its
    loop, and a whole page of tens of thousands of agents takes seconds, in which no batch would be applied and
    no health probe answered. The collectors hold no iteration over live state across a family."""
    out = []
    for text in families(registry, names):
        out.append(text)
        await asyncio.sleep(0)
    return b"".join(out)


def families(registry: CollectorRegistry, names: Iterable[str] = ()) -> Iterator[bytes]:
    """The exposition a metric family at a time (prometheus_client's text format, family by family)."""
    names = list(names)
    collected = iter((registry.restricted_registry(names) if names else registry).collect())
    while True:
        # A scrape allocates a sample (a tuple and a dict) per series and drops them soon after; with the collector
        # on, those allocations set off full collections of the whole state, which grows with the agents
        # (docs/performance.md). None of it forms a cycle: refcounting frees it. Off for one family at a time, not
        # across the loop's turns between them.
        collecting = gc.isenabled()
        gc.disable()
        try:
            family = next(collected, None)
            if family is None:
                return
            text = generate_latest(_Family(family))
        finally:
            if collecting:
                gc.enable()
        yield text


class _Family:
    """One collected family, as prometheus_client's formatter takes it (anything with `collect`)."""

    def __init__(self, family: Metric) -> None:
        self.family = family

    def collect(self) -> Iterable[Metric]:
        return (self.family,)
