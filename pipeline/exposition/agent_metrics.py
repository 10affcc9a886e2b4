"""Prometheus exposition of the agent KPIs, built at scrape time from the agent partitions this worker owns.

Per queue, always: agents by state now (`cc_queue_agents`) and the scheduled and adherent time of the agents
serving the queue. Per agent, unless `PIPELINE_EXPORT_AGENT_METRICS=false`: time by state, not-ready time by
reason, logged-in, contact, scheduled and adherent time (docs/guide.md: "Per-agent series and cardinality").

Agents are partitioned by agent, so a queue's agents are spread over partitions and workers: per-queue values
are summed over this worker's partitions here, and over workers in PromQL (`sum by (queue, ...)`). So is the
live staffing capacity `cc_queue_agents_staffed` (the capacity rule: `AgentState.capacity_by_queue`); the
recording rule `queue_channel:cc_queue_agents_gap:sum` subtracts its sum over workers from the required agents
the queue's owner exports. The
per-agent counters hold final intervals only, so they never go down; they trail event time by up to one
interval plus the allowed lateness. Nothing is updated per event.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from pipeline.core.time import NO_TIME, interval_start
from pipeline.exposition.described import Described
from pipeline.kpis.agents import AGENT_COUNTS, AGENT_GAUGES, QUEUE_ADHERENCE_COUNTS, STATE_LABEL, STATES, AgentCounts
from pipeline.kpis.catalogue import GAUGE
from pipeline.kpis.staffing.plan import Entry, ahead_intervals, scheduled_agents
from pipeline.processing.processor import AgentProcessor
from pipeline.state.agents import NOW_STATES

_HELP = {c.metric: c.help for c in AGENT_COUNTS} | {c.metric: c.help for c in QUEUE_ADHERENCE_COUNTS}
_STATE_HELP = "Time the agent spent in each state (label state: available, on_contact, after_contact_work, not_ready)."
_NOW_LABEL = {**STATE_LABEL, "logged_in": "logged_in"}


def _counter(metric: str, labels: list[str], help_text: str | None = None) -> CounterMetricFamily:
    return CounterMetricFamily(metric.removesuffix("_total"), help_text or _HELP[metric], labels=labels)


class AgentCollector(Described):
    def __init__(self, processor: AgentProcessor) -> None:
        self.processor = processor

    def collect(self) -> Iterator[Metric]:
        states = list(self.processor.partitions.values())
        yield from self._queue_metrics(states)
        if self.processor.settings.export_agent_metrics:
            yield from self._agent_metrics(states)
        late = CounterMetricFamily(
            "cc_pipeline_late_agent_events",
            "Agent-topic events that would change a final interval; not applied.",
            labels=["type"],
        )
        for etype, n in sorted(self.processor.late.items()):
            late.add_metric([etype], n)
        yield late

    def _queue_metrics(self, states) -> Iterator[Metric]:
        now: dict[str, dict[str, int]] = {}
        scheduled: dict[str, int] = {}
        adherent: dict[str, int] = {}
        capacity: dict[str, float] = {}
        for state in states:
            for q, c in state.capacity_by_queue().items():
                capacity[q] = capacity.get(q, 0.0) + c.staffed
            for q, counts in state.agents_by_state().items():
                row = now.setdefault(q, dict.fromkeys(NOW_STATES, 0))
                for s, n in counts.items():
                    row[s] += n
            for q, x in state.queue_totals.items():
                scheduled[q] = scheduled.get(q, 0) + x.scheduled_ms
                adherent[q] = adherent.get(q, 0) + x.adherent_ms
        gauge = AGENT_GAUGES[0]
        agents = GaugeMetricFamily(gauge.metric, gauge.help, labels=["queue", "state"])
        for q in sorted(now.keys() | scheduled.keys()):  # queues with nobody logged in here show zeros
            row = now.get(q, dict.fromkeys(NOW_STATES, 0))
            for s in NOW_STATES:
                agents.add_metric([q, _NOW_LABEL[s]], row[s])
        yield agents
        staffed = GaugeMetricFamily("cc_queue_agents_staffed", GAUGE["cc_queue_agents_staffed"].help, labels=["queue"])
        for q, v in sorted(capacity.items()):
            staffed.add_metric([q], round(v, 6))  # a sum of 1/k shares: no float noise in the exposition
        yield staffed
        yield self._scheduled_ahead(states)
        for count, values in zip(QUEUE_ADHERENCE_COUNTS, (scheduled, adherent), strict=True):
            fam = _counter(count.metric, ["queue"])
            for q, v in sorted(values.items()):
                fam.add_metric([q], v * count.scale)
            yield fam

    def _scheduled_ahead(self, states) -> Metric:
        """Agents planned for contact handling in each interval of the next hour after the current one (the
        partition's watermark), shared between an agent's queues: the plan's rule (pipeline.kpis.staffing.plan)."""
        fam = GaugeMetricFamily(
            "cc_queue_agents_scheduled_ahead", GAUGE["cc_queue_agents_scheduled_ahead"].help, labels=["queue", "ahead"]
        )
        step = self.processor.settings.interval_seconds
        ahead = ahead_intervals(step)
        totals: dict[tuple[str, int], float] = {}
        for state in states:
            if state.watermark == NO_TIME:
                continue
            now = interval_start(state.watermark, step * 1000) // 1000
            lo, hi = now + step, now + (ahead + 1) * step
            entries = [
                Entry(agent, p.activity, p.start / 1000, p.end / 1000, p.version, p.event_id)
                for agent, track in state.agents.items()
                for p in track.plan
                if p.end > lo * 1000 and p.start < hi * 1000
            ]
            queues_of = {agent: track.now.queues for agent, track in state.agents.items()}
            for (q, start), n in scheduled_agents(entries, queues_of, step, (lo, hi)).items():
                k = (start - now) // step
                totals[(q, k)] = totals.get((q, k), 0.0) + n
        for (q, k), n in sorted(totals.items()):
            fam.add_metric([q, str(k)], round(n, 6))
        return fam

    def _agent_metrics(self, states) -> Iterator[Metric]:
        totals: dict[str, AgentCounts] = {}
        for state in states:
            totals.update(state.totals)  # an agent lives on exactly one partition
        by_state = _counter("cc_agent_state_seconds_total", ["agent", "state"], _STATE_HELP)
        reasons = _counter("cc_agent_not_ready_seconds_total", ["agent", "reason"])
        plain = {
            c.metric: _counter(c.metric, ["agent"])
            for c in AGENT_COUNTS
            if c.metric not in ("cc_agent_state_seconds_total", "cc_agent_not_ready_seconds_total")
        }
        fields = {c.metric: c.field for c in AGENT_COUNTS if c.metric in plain}
        for agent, c in sorted(totals.items()):
            for s in STATES:
                by_state.add_metric([agent, STATE_LABEL[s]], getattr(c, f"{s}_ms") / 1000)
            for reason, ms in sorted(c.not_ready_by_reason_ms.items()):
                reasons.add_metric([agent, reason], ms / 1000)
            for metric, fam in plain.items():
                fam.add_metric([agent], getattr(c, fields[metric]) / 1000)
        yield by_state
        yield reasons
        yield from plain.values()
