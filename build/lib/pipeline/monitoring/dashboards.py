"""Grafana dashboards as code (grafana-foundation-sdk), generated into `grafana/dashboards/*.json`.

Queries are kept apart from layout: each dashboard is a list of `PanelSpec` (title, description, unit, PromQL,
the KPI catalogue anchor it explains), and one builder turns a spec into a panel with the shared defaults
(datasource, catalogue link, per-queue target colours). Targets come from the queue configuration: the
wallboard colours each queue's service level, abandonment, ASA and oldest wait (queue detail: the callbacks') against
that queue and channel's own target, the one its alerts compare with, by field overrides per queue and channel. UIDs are fixed; the JSON is written with sorted keys so diffs stay
small, and a test fails when the committed files are stale (`python -m pipeline ops-config`).

The PromQL uses the recording rules of `pipeline.monitoring.alerting` where one exists, so the wallboard and the
alerts show the same number. This module must not talk to Grafana or Prometheus.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from grafana_foundation_sdk.builders import bargauge, dashboard, heatmap, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as prometheus_models

from pipeline.core.settings import QueueConfig
from pipeline.kpis import definitions as kd
from pipeline.kpis.catalogue import HEADLINE, anchor
from pipeline.monitoring import alerting as al

ROOT = Path(__file__).resolve().parent.parent.parent / "grafana" / "dashboards"
DATASOURCE_UID = "cc-prometheus"  # the provisioned data source (deploy/grafana/provisioning/datasources)
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
CATALOGUE = "docs/kpis.md"  # the KPI catalogue every panel links to (relative to the repository)
Q = 'queue=~"$queue", channel=~"$channel"'  # the template variables' selector
QUEUE = 'queue=~"$queue"'


@dataclass(frozen=True)
class PanelSpec:
    title: str
    description: str
    unit: str
    queries: tuple[tuple[str, str], ...]  # (PromQL, legend)
    kind: str = "timeseries"  # stat | timeseries | bargauge | heatmap
    anchor: str = ""  # docs/kpis.md anchor
    target: str = ""  # a QueueSettings target: colour each queue against its own
    higher_is_better: bool = False
    thresholds: tuple[tuple[float | None, str], ...] = ()
    width: int = 8
    height: int = 8
    interval: str = ""  # e.g. 15m for per-interval bars


@dataclass(frozen=True)
class DashboardSpec:
    uid: str
    title: str
    description: str
    panels: tuple[PanelSpec, ...]
    variables: tuple[str, ...] = ("queue", "channel")
    tags: tuple[str, ...] = field(default=("contact-center",))


def _above(limit: float) -> float:
    """The threshold step that is red exactly when the value is above `limit`, as an alert's `> limit`: Grafana
    colours a value at or above a step (gaps are fractional: an agent serving k queues counts 1/k in each)."""
    return math.nextafter(limit, math.inf)


def _sl(window: str) -> str:
    return f"{al.service_level(window)}{{{Q}}}"


def _count(field: str, window: str, selector: str = Q) -> str:
    """A QueueCounts field's exported counter, increased over `window` and summed by queue and channel."""
    return kd.increase(kd.COUNT[field].metric, window, selector)


def _mean(name: str, window: str) -> str:
    """A ratio KPI over the window, from its one definition (sums first, then the division)."""
    return kd.RATIO[name].promql(window, Q, guard=True)


SL_ANCHOR = anchor(HEADLINE.title)
SEGMENT_SL = kd.SERVICE_LEVEL[
    "abandons_against"
]  # the panel shows one variant: a queue's headline is not in the labels
SEGMENT_SL_NAME = "abandons count against"


def _segment_count(field: str, window: str) -> str:
    """A count per segment, increased over `window` and summed by queue, channel and segment."""
    return f"sum by (queue, channel, segment) (increase({kd.SEGMENT_COUNT[field].metric}{{{Q}}}[{window}]))"


VARIANTS_ANCHOR = anchor(kd.SERVICE_LEVEL["abandons_ignored"].title)  # the first variant: the others follow it


WALLBOARD = DashboardSpec(
    "cc-wallboard",
    "Contact center: operations wallboard",
    "Big numbers per queue for the operations room, each coloured against that queue's own target.",
    (
        PanelSpec(
            "Service level (30 min)",
            "Headline service level of each queue (its configured variant) over the "
            "last 30 minutes; red below the queue's target.",
            "percentunit",
            ((_sl("30m"), "{{queue}} {{channel}}"),),
            "stat",
            SL_ANCHOR,
            "service_level_target",
            True,
            width=24,
            height=6,
        ),
        PanelSpec(
            "Service level today",
            "Headline service level of each queue today so far, in the queue's time zone (from midnight local "
            "time, at the queue's clock); red below the queue's target.",
            "percentunit",
            ((f"{al.TODAY_SERVICE_LEVEL}{{{Q}}}", "{{queue}} {{channel}}"),),
            "stat",
            SL_ANCHOR,
            "service_level_target",
            True,
            width=24,
            height=6,
        ),
        PanelSpec(
            "Offered today",
            "Contacts offered to each queue today so far, in the queue's time zone.",
            "short",
            ((f"{al.TODAY_OFFERED}{{{Q}}}", "{{queue}} {{channel}}"),),
            "stat",
            "offered",
            thresholds=((None, "blue"),),
            width=8,
            height=5,
        ),
        PanelSpec(
            "Abandonment today",
            "Abandoned over offered today so far, in the queue's time zone; red above the queue's target.",
            "percentunit",
            ((f"{kd.RATIO['abandon_rate'].recorded('_today')}{{{Q}}}", "{{queue}} {{channel}}"),),
            "stat",
            "abandonment-rate",
            "abandon_rate_target",
            width=8,
            height=5,
        ),
        PanelSpec(
            "ASA today",
            "Average speed of answer today so far, in the queue's time zone; red above the queue's target.",
            "s",
            ((f"{kd.RATIO['asa'].recorded('_today')}{{{Q}}}", "{{queue}} {{channel}}"),),
            "stat",
            "average-speed-of-answer-asa",
            "asa_target_seconds",
            width=8,
            height=5,
        ),
        PanelSpec(
            "Contacts waiting now",
            "Contacts in the queue now, not yet answered or abandoned.",
            "short",
            ((f"sum by (queue, channel) (cc_queue_contacts_waiting{{{Q}}})", "{{queue}} {{channel}}"),),
            "stat",
            "contacts-waiting-now",
            thresholds=((None, "green"), (5, "orange"), (15, "red")),
            width=12,
            height=5,
        ),
        PanelSpec(
            "Oldest wait now",
            "Age of the oldest contact waiting now; red above the queue's limit.",
            "s",
            ((f"max by (queue, channel) (cc_queue_oldest_waiting_age_seconds{{{Q}}})", "{{queue}} {{channel}}"),),
            "stat",
            "oldest-waiting-contacts-age",
            "oldest_wait_target_seconds",
            width=12,
            height=5,
        ),
        PanelSpec(
            "Agents available now",
            "Agents logged in and available for a contact of the queue now.",
            "short",
            (('sum by (queue) (cc_queue_agents{queue=~"$queue", state="available"})', "{{queue}}"),),
            "stat",
            "agents-by-state-now",
            thresholds=((None, "red"), (1, "green")),
            width=8,
            height=5,
        ),
        PanelSpec(
            "Abandonment (30 min)",
            "Abandoned over offered in the last 30 minutes; red above the queue's target.",
            "percentunit",
            ((f"{al.abandon_rate('30m')}{{{Q}}}", "{{queue}} {{channel}}"),),
            "stat",
            "abandoned",
            "abandon_rate_target",
            width=8,
            height=5,
        ),
        PanelSpec(
            "ASA (30 min)",
            "Average speed of answer over the last 30 minutes; red above the queue's target.",
            "s",
            ((f"{al.asa('30m')}{{{Q}}}", "{{queue}} {{channel}}"),),
            "stat",
            "average-speed-of-answer-asa",
            "asa_target_seconds",
            width=8,
            height=5,
        ),
        PanelSpec(
            "Service level vs target (5 min)",
            "Headline service level over 5 minutes, against the target of each queue and channel (the one its "
            "alerts compare with).",
            "percentunit",
            (
                (_sl("5m"), "{{queue}} {{channel}}"),
                (al.target_of("service_level", _sl("5m"), Q), "target {{queue}} {{channel}}"),
            ),
            anchor=SL_ANCHOR,
            width=24,
        ),
    ),
)

QUEUE_DETAIL = DashboardSpec(
    "cc-queue-detail",
    "Contact center: queue detail",
    "Per-interval volumes and speed of service of the selected queues over the day, the wait distribution, "
    "and forecast against actual.",
    (
        PanelSpec(
            "Offered, answered, abandoned per interval",
            "Contacts per 15-minute interval (by processing time; the KPI topic has the exact event-time intervals).",
            "short",
            tuple(
                (_count(m, "15m"), f"{m} {{{{queue}}}} {{{{channel}}}}") for m in ("offered", "answered", "abandoned")
            ),
            kind="bargauge",
            anchor="offered",
            interval="15m",
            width=24,
        ),
        PanelSpec(
            "Service level: 5 min, 30 min, 1 h",
            "Headline service level over three sliding windows.",
            "percentunit",
            tuple((_sl(w), f"{w} {{{{queue}}}} {{{{channel}}}}") for w in al.WINDOWS),
            anchor=SL_ANCHOR,
            width=12,
        ),
        PanelSpec(
            "Service level variants (30 min)",
            "The four service-level definitions side by side.",
            "percentunit",
            tuple((f"{al.service_level('30m', v)}{{{Q}}}", f"{v} {{{{queue}}}} {{{{channel}}}}") for v in al.VARIANTS),
            anchor=VARIANTS_ANCHOR,
            width=12,
        ),
        PanelSpec(
            "ASA and AHT",
            "Average speed of answer (30 min) and average handle time (30 min).",
            "s",
            (
                (f"{al.asa('30m')}{{{Q}}}", "ASA {{queue}} {{channel}}"),
                (_mean("aht", "30m"), "AHT {{queue}} {{channel}}"),
            ),
            anchor="average-handle-time-aht",
            width=12,
        ),
        PanelSpec(
            "Wait distribution",
            "Queue waits of answered contacts, by bucket of the wait histogram.",
            "s",
            (
                (
                    f'sum by (le) (increase(cc_queue_wait_seconds_bucket{{{Q}, outcome="answered"}}[$__rate_interval]))',
                    "{{le}}",
                ),
            ),
            kind="heatmap",
            anchor="average-speed-of-answer-asa",
            width=12,
        ),
        PanelSpec(
            "Wait percentiles (answered)",
            "50th and 90th percentile of the queue wait of answered contacts.",
            "s",
            tuple(
                (
                    f"histogram_quantile({p}, sum by (le, queue, channel) (rate(cc_queue_wait_seconds_bucket"
                    f'{{{Q}, outcome="answered"}}[$__rate_interval])))',
                    f"p{int(p * 100)} {{{{queue}}}}",
                )
                for p in (0.5, 0.9)
            ),
            anchor="average-speed-of-answer-asa",
            width=12,
        ),
        # callbacks (issue 18): their own lifecycle after the request left the queue
        PanelSpec(
            "Callback service level (1 h)",
            "Promised callbacks first dialled at or before the promised time, over the last hour; red below the "
            "queue's callback target.",
            "percentunit",
            ((f"{kd.RATIO['callback_service_level'].recorded('1h')}{{{Q}}}", "{{queue}} {{channel}}"),),
            anchor="callback-service-level",
            target="callback_service_level_target",
            higher_is_better=True,
            width=12,
        ),
        PanelSpec(
            "Oldest promised callback past due",
            "How far the queue's clock is past the earliest promise of the callbacks not dialled yet (negative: time "
            "left); red past the queue's limit, where the callback page fires.",
            "s",
            (
                (
                    f"max by (queue, channel) (cc_queue_callback_oldest_promise_overdue_seconds{{{Q}}})",
                    "{{queue}} {{channel}}",
                ),
            ),
            anchor="oldest-promised-callback",
            target="callback_overdue_seconds",
            width=12,
        ),
        # segments and wrap-up codes (issue 18): bounded label sets from the queue file, others as `other`
        PanelSpec(
            "Offered by segment (30 min)",
            "Contacts offered in the last 30 minutes per customer segment of the offer (the queue's configured "
            "segments, others as `other`; contacts without a segment are in none).",
            "short",
            ((_segment_count("offered", "30m"), "{{segment}} {{queue}} {{channel}}"),),
            anchor=anchor(f"{SEGMENT_SL.title} per segment"),
            width=12,
        ),
        PanelSpec(
            f"Service level by segment (30 min, {SEGMENT_SL_NAME})",
            f"Service level per customer segment over the last 30 minutes, {SEGMENT_SL_NAME} (the default variant; "
            "each segment's four variants are in the KPI records).",
            "percentunit",
            ((kd.segment_promql(SEGMENT_SL, "30m", True, Q), "{{segment}} {{queue}} {{channel}}"),),
            anchor=anchor(f"{SEGMENT_SL.title} per segment"),
            width=12,
        ),
        PanelSpec(
            "ASA by segment (30 min)",
            "Average speed of answer per customer segment over the last 30 minutes.",
            "s",
            ((kd.segment_promql(kd.RATIO["asa"], "30m", True, Q), "{{segment}} {{queue}} {{channel}}"),),
            anchor=anchor(f"{kd.RATIO['asa'].title} per segment"),
            width=12,
        ),
        PanelSpec(
            "Abandonment rate by segment (30 min)",
            "Abandoned over offered per customer segment over the last 30 minutes.",
            "percentunit",
            ((kd.segment_promql(kd.RATIO["abandon_rate"], "30m", True, Q), "{{segment}} {{queue}} {{channel}}"),),
            anchor=anchor(f"{kd.RATIO['abandon_rate'].title} per segment"),
            width=12,
        ),
        PanelSpec(
            "Wrap-up codes per interval",
            "Handled contacts per wrap-up code (disposition) per 15-minute interval, by processing time (the queue's "
            "configured codes, others as `other`); the codes of an interval add up to its handled contacts.",
            "short",
            (
                (
                    f"sum by (queue, channel, disposition) (increase({kd.DISPOSITIONS.metric}{{{Q}}}[15m]))",
                    "{{disposition}} {{queue}} {{channel}}",
                ),
            ),
            kind="bargauge",
            anchor=anchor("Dispositions (wrap-up codes)"),
            interval="15m",
            width=12,
        ),
        PanelSpec(
            "Forecast vs actual: offered",
            "Contacts forecast for the current interval (an external WFM's when there is one, and the pipeline's own "
            "beside it) against those offered in the last 15 minutes.",
            "short",
            (
                (f"sum by (queue, channel) (cc_queue_forecast_offered{{{Q}}})", "forecast {{queue}} {{channel}}"),
                (
                    f"sum by (queue, channel) (cc_queue_own_forecast_offered{{{Q}}})",
                    "pipeline forecast {{queue}} {{channel}}",
                ),
                (_count("offered", "15m"), "actual {{queue}} {{channel}}"),
            ),
            anchor="offered",
            width=12,
        ),
        PanelSpec(
            "Forecast vs actual: AHT",
            "Forecast handle time for the current interval against the AHT of the last 15 minutes.",
            "s",
            (
                (f"max by (queue, channel) (cc_queue_forecast_aht_seconds{{{Q}}})", "forecast {{queue}} {{channel}}"),
                (
                    f"max by (queue, channel) (cc_queue_own_forecast_aht_seconds{{{Q}}})",
                    "pipeline forecast {{queue}} {{channel}}",
                ),
                (_mean("aht", "15m"), "actual {{queue}} {{channel}}"),
            ),
            anchor="average-handle-time-aht",
            width=12,
        ),
    ),
)

AGENTS = DashboardSpec(
    "cc-agents",
    "Contact center: agents",
    "Agents by state now, occupancy, schedule adherence and handle time per agent.",
    (
        PanelSpec(
            "Agents by state now",
            "Agents of the selected queues by state (an agent with several skills counts in each of its queues).",
            "short",
            ((f"sum by (state) (cc_queue_agents{{{QUEUE}}})", "{{state}}"),),
            "bargauge",
            "agents-by-state-now",
            width=12,
        ),
        PanelSpec(
            "Occupancy per agent",
            "Time handling contacts over handling + available time.",
            "percentunit",
            (
                (
                    'sum by (agent) (rate(cc_agent_state_seconds_total{state=~"on_contact|after_contact_work"}'
                    "[$__rate_interval]))\n/\n(sum by (agent) (rate(cc_agent_state_seconds_total"
                    '{state=~"available|on_contact|after_contact_work"}[$__rate_interval])) > 0)',
                    "{{agent}}",
                ),
            ),
            anchor="occupancy",
            width=12,
        ),
        PanelSpec(
            "Schedule adherence per agent",
            "Time in the scheduled activity over scheduled time.",
            "percentunit",
            (
                (
                    "sum by (agent) (increase(cc_agent_adherent_seconds_total[1h]))\n/\n"
                    "(sum by (agent) (increase(cc_agent_scheduled_seconds_total[1h])) > 0)",
                    "{{agent}}",
                ),
            ),
            anchor="schedule-adherence",
            thresholds=((None, "red"), (0.9, "green")),
            width=12,
        ),
        PanelSpec(
            "AHT per agent",
            "Average handle time (talk + hold + ACW) per agent over the last hour.",
            "s",
            (
                (
                    "sum by (agent) (increase(cc_agent_handle_seconds_total[1h]))\n/\n"
                    "(sum by (agent) (increase(cc_agent_handled_total[1h])) > 0)",
                    "{{agent}}",
                ),
            ),
            anchor="average-handle-time-aht",
            width=12,
        ),
    ),
    variables=("queue",),
)

STAFFING = DashboardSpec(
    "cc-staffing",
    "Contact center: staffing",
    "Required agents for each queue's service level target (Erlang) against the agents staffed.",
    (
        PanelSpec(
            "Required vs staffed",
            "Agents required for the queue's target at the current arrival rate and AHT, against those able to "
            "take its contacts now (over all workers; a multi-skilled agent shared between its queues), and the "
            "logged-in agents not ready beside them.",
            "short",
            (
                (f"queue_channel:cc_queue_agents_required:max{{{Q}}}", "required {{queue}} {{channel}}"),
                (f"queue:cc_queue_agents_staffed:sum{{{Q}}}", "staffed {{queue}}"),
                (f"queue:cc_queue_agents_not_ready:sum{{{Q}}}", "not ready {{queue}}"),
            ),
            anchor="required-agents",
            width=24,
        ),
        PanelSpec(
            "Staffing gap now",
            "Required minus staffed agents; above zero the queue is short.",
            "short",
            ((f"queue_channel:cc_queue_agents_gap:sum{{{Q}}}", "{{queue}} {{channel}}"),),
            "stat",
            "required-agents",
            thresholds=((None, "green"), (_above(0), "red")),  # CCQueueStaffingGap's condition
            width=12,
        ),
        PanelSpec(
            "Plan vs forecast, next hour",
            "In the worst interval of the next hour: agents the forecast needs (with the queue's shrinkage) minus "
            "agents the published schedule plans for contacts; above zero the schedule is short "
            "(docs/staffing.md, CCQueueUnderstaffedNextHour).",
            "short",
            ((f"queue_channel:cc_queue_agents_plan_gap_next_hour:max{{{Q}}}", "{{queue}} {{channel}}"),),
            "stat",
            "required-agents",
            thresholds=((None, "green"), (_above(al.THRESHOLDS.plan_gap_margin), "red")),  # the alert's condition
            width=12,
        ),
        PanelSpec(
            "Predicted service level",
            "Service level the staffed agents are predicted to reach; red below the queue's target.",
            "percentunit",
            ((f"max by (queue, channel) (cc_queue_predicted_service_level{{{Q}}})", "{{queue}} {{channel}}"),),
            "stat",
            "required-agents",
            "service_level_target",
            True,
            width=12,
        ),
    ),
)

PIPELINE = DashboardSpec(
    "cc-pipeline",
    "Contact center: pipeline health",
    "The KPI pipeline itself: events in, rejects, late events, consumer lag, latency, workers up.",
    (
        PanelSpec(
            "Workers up",
            "Workers Prometheus scrapes successfully.",
            "short",
            ((f'sum(up{{job="{al.JOB}"}})', "up"),),
            "stat",
            thresholds=((None, "red"), (1, "green")),
            width=6,
        ),
        PanelSpec(
            "Event-time delay",
            "Wall clock minus the newest event time processed (per partition).",
            "s",
            (("time() - max by (partition) (cc_pipeline_watermark_timestamp_seconds)", "partition {{partition}}"),),
            "stat",
            thresholds=((None, "green"), (300, "red")),
            width=6,
        ),
        PanelSpec(
            "Owned partitions",
            "Partitions of the contact-event topic the workers hold state for.",
            "short",
            (("sum(cc_pipeline_owned_partitions)", "partitions"),),
            "stat",
            width=6,
        ),
        PanelSpec(
            "Last batch",
            "Processing time of each worker's last batch.",
            "s",
            (("max(cc_pipeline_last_batch_seconds)", "last batch"),),
            "stat",
            width=6,
        ),
        PanelSpec(
            "Events in",
            "Valid events decoded per second, by type.",
            "ops",
            (("sum by (type) (rate(cc_pipeline_events_total[$__rate_interval]))", "{{type}}"),),
            width=12,
        ),
        PanelSpec(
            "Dead letters",
            "Events rejected to the dead-letter topic per second, by reason.",
            "ops",
            (("sum by (reason) (rate(cc_pipeline_rejected_events_total[$__rate_interval]))", "{{reason}}"),),
            width=12,
        ),
        PanelSpec(
            "Late events",
            "Events later than the allowed lateness (counted, not applied) per second.",
            "ops",
            (
                (
                    "sum by (queue, channel) (rate(cc_pipeline_late_events_total[$__rate_interval]))",
                    "{{queue}} {{channel}}",
                ),
            ),
            width=12,
        ),
        PanelSpec(
            "Consumer lag",
            "Messages the workers are behind, per topic.",
            "short",
            (("sum by (topic) (cc_pipeline_consumer_lag_messages)", "{{topic}}"),),
            width=12,
        ),
        PanelSpec(
            "Processing latency",
            "95th percentile of the time from an event's arrival in Kafka to its metrics being updated.",
            "s",
            (
                (
                    "histogram_quantile(0.95, sum by (le) (rate(cc_pipeline_processing_latency_seconds_bucket"
                    "[$__rate_interval])))",
                    "p95",
                ),
            ),
            width=12,
        ),
        PanelSpec(
            "Duplicates dropped",
            "Events dropped as duplicates per second.",
            "ops",
            (("sum by (topic) (rate(cc_pipeline_duplicate_events_total[$__rate_interval]))", "{{topic}}"),),
            width=12,
        ),
        PanelSpec(
            "Checkpoint time",
            "Share of the workers' time spent taking and writing state checkpoints (nothing "
            "is processed meanwhile), by input topic.",
            "percentunit",
            (("sum by (topic) (rate(cc_pipeline_checkpoint_seconds_total[$__rate_interval]))", "{{topic}}"),),
            width=12,
        ),
    ),
    variables=(),
)

DASHBOARDS = (WALLBOARD, QUEUE_DETAIL, AGENTS, STAFFING, PIPELINE)


def _steps(steps) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


def _target_steps(target: float, higher_is_better: bool) -> list[tuple[float | None, str]]:
    return [(None, "red"), (target, "green")] if higher_is_better else [(None, "green"), (target, "red")]


def _targets(config: QueueConfig, field: str) -> list[tuple[str, float]]:
    """(series name pattern, target) overrides, in order: series are named "<queue> <channel>" (the legend) and a
    later override wins in Grafana, so each queue and channel is coloured against `config.rules(queue, channel)`:
    the defaults' channel tables (queues the file does not name), then each queue's own target, then its channel
    tables (which include the defaults')."""
    out = [
        (f"^\\S+ {re.escape(channel)}$", getattr(own, field))
        for channel, own in sorted(config.defaults.channels.items())
        if getattr(own, field) is not None
    ]
    for queue, s in sorted(config.queues.items()):
        out.append((f"^{re.escape(queue)} \\S+$", getattr(s, field)))
        out += [
            (f"^{re.escape(queue)} {re.escape(channel)}$", getattr(own, field))
            for channel, own in sorted(s.channels.items())
            if getattr(own, field) is not None
        ]
    return out


PanelBuilder = stat.Panel | timeseries.Panel | bargauge.Panel | heatmap.Panel


def _panel(spec: PanelSpec, config: QueueConfig) -> PanelBuilder:
    kinds: dict[str, type[PanelBuilder]] = {
        "stat": stat.Panel,
        "timeseries": timeseries.Panel,
        "bargauge": bargauge.Panel,
        "heatmap": heatmap.Panel,
    }
    builder = kinds[spec.kind]()
    link = f"{CATALOGUE}#{spec.anchor}" if spec.anchor else f"{CATALOGUE}"
    p = (
        builder.title(spec.title)
        .description(f"{spec.description} Definition: {link}")
        .unit(spec.unit)
        .datasource(DATASOURCE)
        .span(spec.width)
        .height(spec.height)
        .links([dashboard.DashboardLink("KPI catalogue").type(dm.DashboardLinkType.LINK).url(link).target_blank(True)])
    )
    for i, (expr, legend) in enumerate(spec.queries):
        q = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + i))
        if spec.kind == "heatmap":  # Prometheus buckets are cumulative: Grafana takes them apart with this format
            q = q.format(prometheus_models.PromQueryFormat.HEATMAP)
        p = p.with_target(q.instant() if spec.kind == "stat" else q.range())
    if isinstance(p, heatmap.Panel):  # spec.kind == "heatmap": the unit is the buckets' axis, cells are counts
        p = (
            p.calculate(False)
            .y_axis(heatmap.YAxisConfig().unit(spec.unit))
            .cell_values(heatmap.CellValues().unit("short"))
            .show_tooltip()  # the options' own default hides it
        )
    if spec.interval:
        p = p.interval(spec.interval)
    if spec.target:
        p = p.thresholds(_steps(_target_steps(getattr(config.defaults, spec.target), spec.higher_is_better)))
        for pattern, target in _targets(config, spec.target):
            p = p.override_by_regexp(
                pattern,
                [dm.DynamicConfigValue("thresholds", _steps(_target_steps(target, spec.higher_is_better)).build())],
            )
    elif spec.thresholds:
        p = p.thresholds(_steps(spec.thresholds))
    if isinstance(p, stat.Panel):  # spec.kind == "stat"
        p = p.color_mode(common.BigValueColorMode.BACKGROUND)
    return p


def _variables(spec: DashboardSpec) -> list:
    out = []
    for name in spec.variables:
        query = (
            "label_values(cc_queue_offered_total, queue)"
            if name == "queue"
            else 'label_values(cc_queue_offered_total{queue=~"$queue"}, channel)'
        )
        out.append(
            dashboard.QueryVariable(name)
            .label(name.capitalize())
            .datasource(DATASOURCE)
            .query(query)
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
            .description(f"Queues' {name}s, from the exported counters")
        )
    return out


def build(spec: DashboardSpec, config: QueueConfig) -> dict:
    d = (
        dashboard.Dashboard(spec.title)
        .uid(spec.uid)
        .description(spec.description)
        .tags(list(spec.tags))
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .editable()
        .link(
            dashboard.DashboardLink("Contact center")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(["contact-center"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
    for v in _variables(spec):
        d = d.with_variable(v)
    for panel in spec.panels:
        d = d.with_panel(_panel(panel, config))
    return json.loads(json.dumps(d.build(), cls=JSONEncoder))


def rendered(config: QueueConfig) -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {f"{s.uid}.json": json.dumps(build(s, config), indent=2, sort_keys=True) + "\n" for s in DASHBOARDS}


def all_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, PromQL) of every panel query and template variable."""
    out = []
    for s in DASHBOARDS:
        for p in s.panels:
            out += [(s.uid, p.title, expr) for expr, _ in p.queries]
    return out


def write(config: QueueConfig, root: Path = ROOT) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in rendered(config).items():
        (root / name).write_text(text)
        paths.append(root / name)
    return paths
