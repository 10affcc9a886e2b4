"""The KPI catalogue: every KPI's definition, and every exported count, in one place.

The Prometheus collector takes its metric names from COUNTERS and GAUGES here, and `docs/kpis.md` is generated
from this module (`python -m pipeline catalogue`); a test fails when the committed file differs. So the
documentation cannot drift from what the code exports.
"""

from __future__ import annotations

from dataclasses import dataclass

ARRIVAL = "the interval in which the contact arrived in the queue (`contact.offered`)"
COMPLETION = "the interval in which the contact's after-contact work ended (`contact.acw_ended`)"


@dataclass(frozen=True)
class Count:
    """An additive count, exported as a Prometheus counter per queue and channel and carried by the record."""

    metric: str
    field: str  # pipeline.kpis.counts.QueueCounts field
    record_field: str  # pipeline.kpis.record.KpiRecord field
    unit: str
    help: str
    attribution: str

    @property
    def scale(self) -> float:
        """Factor from the internal count (milliseconds for durations) to the exported unit."""
        return 0.001 if self.field.endswith("_ms") else 1.0


COUNTS: tuple[Count, ...] = (
    Count("cc_queue_offered_total", "offered", "offered", "contacts",
          "Contacts that arrived in the queue.", ARRIVAL),
    Count("cc_queue_answered_total", "answered", "answered", "contacts",
          "Arrived contacts that an agent answered.", ARRIVAL),
    Count("cc_queue_abandoned_total", "abandoned", "abandoned", "contacts",
          "Arrived contacts abandoned by the customer before an answer.", ARRIVAL),
    Count("cc_queue_answered_within_threshold_total", "answered_within_threshold", "answered_within_threshold",
          "contacts", "Answered contacts whose queue wait was at most the queue's service level threshold.",
          ARRIVAL),
    Count("cc_queue_abandoned_within_threshold_total", "abandoned_within_threshold",
          "abandoned_within_threshold", "contacts",
          "Abandoned contacts whose wait was at most the queue's service level threshold.", ARRIVAL),
    Count("cc_queue_expired_total", "expired", "expired", "contacts",
          "Arrived contacts given up on with no answer or abandon within the contact timeout.", ARRIVAL),
    Count("cc_queue_answer_wait_seconds_total", "answer_wait_ms", "answer_wait_seconds_sum", "seconds",
          "Sum of the queue waits (answered - arrived) of answered contacts.", ARRIVAL),
    Count("cc_queue_handled_total", "handled", "handled", "contacts",
          "Answered contacts whose handling (conversation and after-contact work) completed.", COMPLETION),
    Count("cc_queue_handle_seconds_total", "handle_ms", "handle_seconds_sum", "seconds",
          "Sum of handle times (talk + hold + after-contact work) of handled contacts.", COMPLETION),
    Count("cc_queue_hold_seconds_total", "hold_ms", "hold_seconds_sum", "seconds",
          "Sum of hold times of handled contacts.", COMPLETION),
    Count("cc_queue_acw_seconds_total", "acw_ms", "acw_seconds_sum", "seconds",
          "Sum of after-contact work times of handled contacts.", COMPLETION),
    Count("cc_queue_transferred_out_total", "transferred_out", "transferred_out", "contacts",
          "Handled contacts that the agent transferred out instead of ending.", COMPLETION),
)
COUNT_BY_FIELD = {c.field: c for c in COUNTS}


@dataclass(frozen=True)
class Gauge:
    metric: str
    unit: str
    help: str


GAUGES: tuple[Gauge, ...] = (
    Gauge("cc_queue_contacts_waiting", "contacts",
          "Contacts in the queue now: arrived, not yet answered, abandoned or expired."),
    Gauge("cc_queue_oldest_waiting_age_seconds", "seconds",
          "Age of the oldest contact waiting now, measured at the partition's watermark (newest event time)."),
    Gauge("cc_queue_service_level_threshold_seconds", "seconds",
          "The queue's service level threshold, from the queue configuration."),
)
GAUGE = {g.metric: g for g in GAUGES}


@dataclass(frozen=True)
class Kpi:
    """A KPI formed from counts."""

    name: str
    title: str
    formula: str
    unit: str
    attribution: str
    record_field: str
    promql: str
    notes: str = ""


def _sum_increase(metric: str, window: str = "15m") -> str:
    return f"sum by (queue, channel) (increase({metric}[{window}]))"


KPIS: tuple[Kpi, ...] = (
    Kpi(
        "offered", "Offered", "count of `contact.offered`", "contacts", ARRIVAL, "offered",
        _sum_increase("cc_queue_offered_total"),
        "A transferred contact is offered again to the queue it is transferred to (a new leg there).",
    ),
    Kpi(
        "answered", "Answered", "count of offered contacts with `contact.answered`", "contacts", ARRIVAL,
        "answered", _sum_increase("cc_queue_answered_total"),
    ),
    Kpi(
        "abandoned", "Abandoned", "count of offered contacts with `contact.abandoned`", "contacts", ARRIVAL,
        "abandoned", _sum_increase("cc_queue_abandoned_total"),
        "Short abandons are not excluded in this version.",
    ),
    Kpi(
        "service_level", "Service level (abandons count against)",
        "answered_within_threshold / (answered + abandoned); a wait equal to the threshold counts as within",
        "ratio 0..1", ARRIVAL, "service_level",
        f"{_sum_increase('cc_queue_answered_within_threshold_total')} / ({_sum_increase('cc_queue_answered_total')}"
        f" + {_sum_increase('cc_queue_abandoned_total')})",
        "Threshold per queue (`service_level_threshold_seconds` in the queue file, default 20 s). Vendors "
        "differ: Asterisk's SL ignores abandons (answered within T / answered); Amazon Connect counts contacts "
        "removed from the queue within T (answered or abandoned) over all queued; Genesys has switches for "
        "short abandons and flow-outs. This is Cisco's 'abandons count against' variant. Null when nothing "
        "was answered or abandoned.",
    ),
    Kpi(
        "asa", "Average speed of answer (ASA)", "answer_wait_seconds_sum / answered", "seconds", ARRIVAL,
        "asa_seconds",
        f"{_sum_increase('cc_queue_answer_wait_seconds_total')} / {_sum_increase('cc_queue_answered_total')}",
        "Wait = time of `contact.answered` - time of `contact.offered` in this queue. Abandoned contacts are "
        "not included.",
    ),
    Kpi(
        "aht", "Average handle time (AHT)",
        "handle_seconds_sum / handled, where handle = talk + hold + after-contact work "
        "= (acw_ended - answered)", "seconds", COMPLETION, "aht_seconds",
        f"{_sum_increase('cc_queue_handle_seconds_total')} / {_sum_increase('cc_queue_handled_total')}",
        "Talk = (ended or transferred - answered) - hold; hold = sum of hold_ended - hold_started; "
        "ACW = acw_ended - ended. Amazon Connect and Genesys also count a contact's handling in the interval "
        "in which it completes.",
    ),
    Kpi(
        "contacts_waiting", "Contacts waiting now", "contacts offered and not yet answered or abandoned",
        "contacts", "real time (now)", "-", "sum by (queue, channel) (cc_queue_contacts_waiting)",
    ),
    Kpi(
        "oldest_waiting_age", "Oldest waiting contact's age",
        "watermark - arrival time of the longest-waiting contact", "seconds", "real time (now)", "-",
        "max by (queue, channel) (cc_queue_oldest_waiting_age_seconds)",
        "Measured at the partition's watermark (its newest event time), so a replay shows the age as it was.",
    ),
)


def markdown() -> str:
    """The catalogue as Markdown (docs/kpis.md)."""
    out = [
        "# KPI catalogue",
        "",
        "Generated by `python -m pipeline catalogue` from `pipeline/kpis/catalogue.py`; do not edit by hand "
        "(a test fails when this file is stale).",
        "",
        "## Time and intervals",
        "",
        "- Every KPI is computed on **event time** (the `time` of the events, when it happened at the source), "
        "never on arrival time at the pipeline: a replay gives the same numbers as live processing.",
        "- Intervals are 15 minutes by default (`PIPELINE_INTERVAL_MINUTES`: 15, 30 or 60), aligned to the "
        "hour in UTC. Times are taken to the millisecond.",
        "- An interval's KPI record is **provisional** while the interval is open and **final** once the "
        "watermark (the newest event time seen on the partition) has passed the interval's end by the allowed "
        "lateness (`PIPELINE_ALLOWED_LATENESS_SECONDS`, default 120 s) and no contact that arrived in it is "
        "still waiting. Later events that would change a final interval are counted as late, never applied.",
        "- Prometheus counters grow as events are processed; `increase()` over a window therefore follows "
        "processing time. The KPI topic's records are the exact per-interval figures on event time.",
        "",
        "## KPIs",
        "",
    ]
    for kpi in KPIS:
        out += [
            f"### {kpi.title}",
            "",
            f"- **Formula:** {kpi.formula}",
            f"- **Unit:** {kpi.unit}",
            f"- **Attribution:** {kpi.attribution}",
            f"- **KPI record field:** `{kpi.record_field}`",
            f"- **PromQL (last 15 minutes):** `{kpi.promql}`",
        ]
        if kpi.notes:
            out.append(f"- **Notes:** {kpi.notes}")
        out.append("")
    out += [
        "## Exported counts",
        "",
        "Counters carry the labels `queue` and `channel`. The KPI record carries the same counts per interval.",
        "",
        "| Prometheus metric | KPI record field | unit | attribution | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c in COUNTS:
        short = "arrival" if c.attribution == ARRIVAL else "completion"
        out.append(f"| `{c.metric}` | `{c.record_field}` | {c.unit} | {short} | {c.help} |")
    out += ["", "## Real-time gauges", "", "| Prometheus metric | unit | meaning |", "| --- | --- | --- |"]
    for g in GAUGES:
        out.append(f"| `{g.metric}` | {g.unit} | {g.help} |")
    out.append("")
    return "\n".join(out)
