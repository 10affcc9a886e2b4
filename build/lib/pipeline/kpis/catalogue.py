"""The KPI catalogue: every KPI's definition, and every exported count, rendered into docs/kpis.md.

The counts, the ratio KPIs' formulas and the metric names are defined once, in pipeline.kpis.definitions
(re-exported here for the modules that read them from the catalogue); this module adds the KPIs that are not
a ratio of counts and renders the whole. `docs/kpis.md` is generated from it (`python -m pipeline catalogue`); a
test fails when the committed file differs, and every PromQL expression it prints is evaluated by a real
Prometheus in the ops test. So the documentation cannot drift from what the code exports and records.
"""

from __future__ import annotations

import re

from pipeline.kpis.definitions import (
    AGENT_HANDLING,
    ARRIVAL,
    CALLBACK_DIAL,
    CALLBACK_FIRST_DIAL,
    CALLBACK_OUTCOME,
    COMPLETION,
    COUNT,
    COUNTS,
    DISPOSITION_VENDORS,
    DISPOSITIONS,
    GAUGE,
    GAUGES,
    HANDLING_COST,
    HEADLINE_RULE,
    IVR,
    NOT_COUNTERS,
    OFFER_OUTCOME,
    OFFER_RINGING,
    RATIO,
    SEGMENT_COUNTS,
    SEGMENT_RATIOS,
    SEGMENT_VENDORS,
    SERVICE_LEVEL,
    SL_VENDORS,
    SURVEY,
    VARIANTS,
    WAIT_HISTOGRAM,
    WINDOWS,
    Count,
    Gauge,
    Kpi,
    Ratio,
    increase,
    segment_promql,
)

__all__ = [
    "AGENT_HANDLING",
    "ARRIVAL",
    "COMPLETION",
    "COUNTS",
    "GAUGE",
    "GAUGES",
    "IVR",
    "KPIS",
    "NOT_COUNTERS",
    "SURVEY",
    "WAIT_HISTOGRAM",
    "Count",
    "Gauge",
    "Kpi",
    "anchor",
    "markdown",
    "promql_expressions",
]


def _inc(field: str, window: str = "15m") -> str:
    return increase(COUNT[field].metric, window)


def _kpi(r: Ratio) -> Kpi:
    """A ratio KPI's entry, all from its definition."""
    return Kpi(
        r.name,
        r.title,
        r.formula(),
        r.unit,
        r.attribution,
        r.record_field,
        r.promql(),
        r.notes,
        r.vendors,
        tuple(r.recorded(w) for w in WINDOWS) if r.rule else (),
    )


def _count_kpi(field: str, title: str, formula: str, notes: str = "") -> Kpi:
    c = COUNT[field]
    return Kpi(field, title, formula, c.unit, c.attribution, c.record_field, _inc(field), notes)


HEADLINE = Kpi(
    "service_level",
    "Service level (headline)",
    "the queue's headline variant (`service_level_variant`), one of the four below",
    "ratio 0..1",
    ARRIVAL,
    "service_level",
    HEADLINE_RULE.format(window="30m"),
    "All four variants are in every record; `service_level` is the queue's headline variant. The recording rule "
    "picks each queue's variant from the queue file, so the alerts and wallboards show the number its KPI records "
    "show (over a sliding window instead of an interval).",
    SL_VENDORS,
    tuple(HEADLINE_RULE.format(window=w) for w in WINDOWS),
)

_HISTOGRAM_BUCKET = f"{WAIT_HISTOGRAM.metric}_bucket"
_HANDLE, _HANDLED, _OFFERED = _inc("handle_ms"), _inc("handled"), _inc("offered")

COST_NOTES = (
    "Null without the queue's `agent_hour_cost` (docs/reports.md, cost model); `currency` names the money. The queue "
    "worker holds no agent states, so the agents' handling time stands for their hours: idle and not-ready time is "
    "left out, and a chat agent's concurrent chats each count their own handling time. The report's cost per "
    "handled contact counts the logged-in hours of the agents serving the queue (agent records) and is higher by "
    "that time. Prometheus: `cc_queue_handling_cost_total`, the same function over the running totals."
)

KPIS: tuple[Kpi, ...] = (
    _count_kpi(
        "offered",
        "Offered",
        "count of `contact.offered`",
        "A transferred or overflowed contact is offered again to the queue it goes to (a new leg there).",
    ),
    _count_kpi("answered", "Answered", "count of offered contacts with `contact.answered`"),
    _count_kpi(
        "abandoned",
        "Abandoned",
        "count of offered contacts with `contact.abandoned`",
        "Callbacks and flow-outs are not abandons (as in Amazon Connect).",
    ),
    _count_kpi(
        "short_abandoned",
        "Short abandons",
        "abandoned with wait <= `short_abandon_seconds` (per queue)",
        "Misdials and instant hang-ups. The threshold is per queue (default 5 s).",
    ),
    _count_kpi(
        "flowed_out",
        "Flowed out (overflow)",
        "count of offered contacts with `contact.flowed_out`",
        "In the denominator of the abandons-in-favour service level only (as offered); Genesys can add "
        "flow-outs to its denominator.",
    ),
    _count_kpi("callbacks_requested", "Callbacks requested", "count of `contact.callback_requested`"),
    _count_kpi("transferred_out", "Transferred out", "handled contacts that ended with `contact.transferred`"),
    HEADLINE,
    *(_kpi(SERVICE_LEVEL[v]) for v in VARIANTS),
    _kpi(RATIO["asa"]),
    _kpi(RATIO["average_time_to_abandon"]),
    Kpi(
        "longest_wait",
        "Longest wait in the interval",
        "max over the interval's contacts with an outcome of (outcome time - arrival time)",
        "seconds",
        ARRIVAL,
        "longest_wait_seconds",
        f"histogram_quantile(1, sum by (queue, channel, le) (increase({_HISTOGRAM_BUCKET}[15m])))",
        "Exact in the record; from Prometheus only to the bucket bound. Contacts still waiting are in the "
        "oldest-waiting gauge instead.",
    ),
    Kpi(
        "wait_distribution",
        "Wait-time distribution",
        "histogram of waits of answered and of abandoned contacts",
        "contacts per bucket",
        ARRIVAL,
        "wait_histogram",
        f"sum by (queue, channel, outcome, le) (increase({_HISTOGRAM_BUCKET}[15m]))",
        "Buckets: 5 s to 20 min plus every queue's service level and short-abandon thresholds, so the share "
        "within any queue's threshold is exact.",
    ),
    _kpi(RATIO["abandon_rate"]),
    _kpi(RATIO["abandon_rate_without_short"]),
    Kpi(
        "chat_abandon_rate",
        "Chat abandonment before acceptance",
        "abandon_rate of channel `chat`: chats the customer left before an agent accepted / chats offered",
        "ratio 0..1",
        ARRIVAL,
        "abandon_rate (channel chat)",
        RATIO["abandon_rate"].promql(selector='channel="chat"'),
    ),
    _kpi(RATIO["aht"]),
    _kpi(RATIO["talk_avg"]),
    _kpi(RATIO["hold_avg"]),
    _kpi(RATIO["acw_avg"]),
    _kpi(RATIO["hold_rate"]),
    _kpi(RATIO["transfer_rate"]),
    Kpi(
        "agent_handled",
        "Contacts handled per agent",
        "handled, grouped by the agent who answered",
        "contacts",
        COMPLETION,
        "agents[].handled",
        f"sum by (agent) (increase({AGENT_HANDLING[0].metric}[15m]))",
        "Per-agent AHT and its parts are in `agents[]` too; `PIPELINE_EXPORT_AGENT_METRICS` switches the "
        "`cc_agent_*` series off.",
    ),
    _kpi(RATIO["chat_first_response"]),
    _kpi(RATIO["chat_response"]),
    _kpi(RATIO["csat"]),
    _kpi(RATIO["csat_satisfied"]),
    _kpi(RATIO["ivr_containment"]),
    # callbacks (`callback.*` events)
    _count_kpi("callback_dials", "Callback dials", "count of `callback.dialled`"),
    _count_kpi("callbacks_connected", "Callbacks connected", "count of `callback.connected`"),
    _count_kpi("callbacks_failed", "Callbacks failed", "count of `callback.failed`"),
    _count_kpi(
        "callbacks_dialled_promised",
        "Callbacks dialled with a promise",
        "count of first dials (`callback.dialled` attempt 1) of callbacks with a promised time",
    ),
    _count_kpi(
        "callbacks_dialled_within_promise",
        "Callbacks dialled within the promise",
        "of those, the first dials at or before the promise in force then",
    ),
    _count_kpi(
        "callback_attempts",
        "Callback attempts",
        "sum of `attempt` of `callback.connected` and `attempts` of `callback.failed`",
    ),
    _kpi(RATIO["callback_service_level"]),
    _kpi(RATIO["callback_attempts_avg"]),
    _kpi(RATIO["callback_connect_rate"]),
    Kpi(
        "callbacks_waiting",
        "Callbacks waiting now",
        "callbacks with a promised time or a `callback.*` event, neither connected nor failed",
        "callbacks",
        "real time (now)",
        "-",
        f"sum by (queue, channel) ({GAUGE['cc_queue_callbacks_waiting'].metric})",
        "A request without a promise that no `callback.*` event follows (sources that report only "
        "`contact.callback_requested`) is counted in `callbacks_requested`, not here. A callback with no outcome "
        "is given up three days after its newest event or promise (`cc_pipeline_expired_contacts`, reason "
        "`callback_no_outcome`).",
    ),
    Kpi(
        "callback_oldest_promise",
        "Oldest promised callback",
        "queue's clock - the earliest promised time of the callbacks waiting and not dialled yet",
        "seconds (positive: overdue; negative: time left)",
        "real time (now)",
        "-",
        f"max by (queue, channel) ({GAUGE['cc_queue_callback_oldest_promise_overdue_seconds'].metric})",
        "The promise is the newest `callback.scheduled`, else the request's `promised_by`. A callback dialled "
        "and waiting for its next attempt is not in it (its first dial was measured against the promise).",
    ),
    # agent offers (`offer.*` events)
    _count_kpi("agent_offers", "Agent offers", "count of `offer.ringing`"),
    _count_kpi("agent_offers_accepted", "Accepted offers", "count of `offer.accepted` whose ringing is known"),
    _count_kpi("agent_offers_rejected", "Rejected offers", "count of `offer.rejected` whose ringing is known"),
    _count_kpi(
        "agent_offers_missed",
        "Missed offers (RONA)",
        "count of `offer.missed` (ring no answer) whose ringing is known",
        "Per agent: `cc_agent_offers_missed_total` and `agents[].agent_offers_missed`.",
    ),
    _kpi(RATIO["ring_time"]),
    _kpi(RATIO["offers_per_answer"]),
    _kpi(RATIO["missed_offer_rate"]),
    Kpi(
        "forecast_offered",
        "Volume vs forecast",
        "(offered - forecast offered) / forecast offered",
        "ratio (+0.1 = 10% more than forecast)",
        ARRIVAL,
        "offered_vs_forecast",
        f"{_OFFERED} / on (queue, channel) {GAUGE['cc_queue_forecast_offered'].metric} - 1",
        "The forecast is the newest `forecast.published` (by event time) for the interval.",
    ),
    Kpi(
        "forecast_aht",
        "AHT vs forecast",
        "(AHT - forecast AHT) / forecast AHT",
        "ratio",
        COMPLETION,
        "aht_vs_forecast",
        f"({_HANDLE} / {_HANDLED}) / on (queue, channel) {GAUGE['cc_queue_forecast_aht_seconds'].metric} - 1",
    ),
    Kpi(
        "agents_required",
        "Required agents (and the staffing gap)",
        "fewest agents n with predicted headline service level >= target, from the arrival rate (offered / span), "
        "AHT (handle / handled) and, when customers abandon, patience (total wait / abandons): Erlang A, else "
        "Erlang C",
        "agents",
        "per interval from its own traffic; live from the newest final interval and what followed",
        "agents_required",
        f"max by (queue, channel) ({GAUGE['cc_queue_agents_required'].metric})",
        "Gap = required - staffed, over all workers (recording rule `queue_channel:cc_queue_agents_gap:sum`); "
        "staffed = agents able to take the queue's contacts now (available, on a contact, in ACW), an agent "
        "serving k queues counting 1/k in each; chat: agents = Erlang servers / the queue's `chat_concurrency`. "
        "The occupancy cap is the queue's `max_occupancy`. See docs/staffing.md.",
    ),
    Kpi(
        "miss_causes",
        "Causes of a missed service level target",
        "per hour or day below the headline target: each final interval's contacts short (target x denominator - "
        "within threshold) split between volume above forecast, AHT above plan, fewer agents than required and "
        "backlog by the agents each took away (Erlang C); summed per cause, as shares of the sum",
        "contacts and share 0..1 per cause",
        "the hour or day in the queue's time zone, from its final intervals",
        "miss_causes",
        "",
        "The method is docs/reports.md's (one code: `pipeline/kpis/reporting/causes.py`). The queue worker holds no "
        "agent states: agents available are estimated as the agents busy on the queue's contacts (handle time over "
        "the interval), and a not-ready spike is counted as fewer agents (`absence`); the report, which reads the "
        "agent records, splits it off. A provisional day has the causes of its final intervals only. Not a "
        "Prometheus series (a list per day).",
    ),
    Kpi(
        "handling_cost",
        "Handling cost",
        "handle_seconds_sum / 3600 x `agent_hour_cost` + (answer_wait_seconds_sum + abandon_wait_seconds_sum + "
        "talk_seconds_sum + hold_seconds_sum) / 60 x `telephony_cost_per_minute` (voice only), prices from the "
        "queue file",
        "money (`currency`)",
        f"{COMPLETION} (agents); {ARRIVAL} (queue wait)",
        "handling_cost",
        increase(HANDLING_COST.metric),
        COST_NOTES,
    ),
    Kpi(
        "handling_cost_per_handled",
        "Handling cost per handled contact",
        "handling_cost / handled",
        "money (`currency`) per contact",
        COMPLETION,
        "handling_cost_per_handled",
        f"{increase(HANDLING_COST.metric)} / {_HANDLED}",
        COST_NOTES,
    ),
    Kpi(
        "contacts_waiting",
        "Contacts waiting now",
        "contacts offered and not yet answered or abandoned",
        "contacts",
        "real time (now)",
        "-",
        f"sum by (queue, channel) ({GAUGE['cc_queue_contacts_waiting'].metric})",
    ),
    Kpi(
        "oldest_waiting_age",
        "Oldest waiting contact's age",
        "queue's clock - arrival time of the longest-waiting contact",
        "seconds",
        "real time (now)",
        "-",
        f"max by (queue, channel) ({GAUGE['cc_queue_oldest_waiting_age_seconds'].metric})",
        "Measured at the queue's clock (its newest event time, or heartbeat), so a replay shows the age as it was.",
    ),
)


def anchor(title: str) -> str:
    """The docs/kpis.md anchor of a KPI's heading, as GitHub and most Markdown renderers make it."""
    return re.sub(r"[^a-z0-9 _-]", "", title.lower()).replace(" ", "-")


# ---- per segment, and dispositions: bounded labels from the queue file ---------------------------------------

SEGMENT_NOTES = (
    "The same definition over the counts of the contacts whose `contact.offered` named a segment, per segment: one "
    "the queue configures (`segments`), else `other`; contacts without a segment are in no segment, so the "
    "segments need not add up to the queue. `segments[].service_level` is the queue's headline variant. Series: "
    "(configured segments + 1) per queue and channel for each `cc_queue_segment_*` counter."
)
_first_segment = anchor(f"{SEGMENT_RATIOS[0].title} per segment")
SEGMENT_KPIS: tuple[Kpi, ...] = tuple(
    Kpi(
        f"{r.name}_per_segment",
        f"{r.title} per segment",
        f"{r.formula()}, over one segment's counts",
        r.unit,
        r.attribution,
        f"segments[].{r.record_field}",
        segment_promql(r),
        SEGMENT_NOTES if i == 0 else f"Segments as in [{SEGMENT_RATIOS[0].title} per segment](#{_first_segment}).",
        SEGMENT_VENDORS if i == 0 else "",
    )
    for i, r in enumerate(SEGMENT_RATIOS)
)
DISPOSITION_KPI = Kpi(
    "dispositions",
    "Dispositions (wrap-up codes)",
    "count of handled contacts by the `disposition` of their `contact.acw_ended`",
    "contacts",
    COMPLETION,
    "dispositions[].contacts",
    f"sum by (queue, channel, disposition) (increase({DISPOSITIONS.metric}[15m]))",
    "Codes outside the queue's `dispositions` list count as `other`, so a queue has at most (configured codes + 1) "
    "series per channel. Counted with `handled`: a contact's code counts once its handling completes.",
    DISPOSITION_VENDORS,
)
KPIS = (*KPIS, *SEGMENT_KPIS, DISPOSITION_KPI)


def promql_expressions(kpis: tuple[Kpi, ...] | None = None) -> list[tuple[str, str]]:
    """(KPI name, PromQL) of every expression the catalogue prints: each KPI's, per queue and recorded ones."""
    if kpis is None:
        from pipeline.kpis.agents import AGENT_KPIS
        from pipeline.kpis.quality import FCR_KPIS

        kpis = (*KPIS, *AGENT_KPIS, *FCR_KPIS)
    out = []
    for k in kpis:
        out += [(k.name, e) for e in (k.promql, k.promql_per_queue, *k.rules) if e]
    return out


ATTRIBUTION_SHORT = {
    ARRIVAL: "arrival",
    COMPLETION: "completion",
    SURVEY: "survey",
    IVR: "IVR session end",
    CALLBACK_DIAL: "callback dial",
    CALLBACK_FIRST_DIAL: "callback's first dial",
    CALLBACK_OUTCOME: "callback outcome",
    OFFER_RINGING: "offer ringing",
    OFFER_OUTCOME: "offer outcome",
}
"""How the exported counts table names each attribution."""


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
        "- Each queue also gets `hour` and `day` records (field `window`) in its own time zone (`time_zone` in "
        "the queue file): the sums of its intervals in that local hour or day, final once all of them are. Days "
        "follow the zone's calendar (23 or 25 hours on daylight-saving days). The provisional `day` record is "
        "'today so far'. Exact when the zone's offset is a whole number of intervals (any zone for 15-minute "
        "intervals except the few with 45-minute offsets).",
        "- An interval's KPI record is **provisional** while the interval is open and **final** once the "
        "queue's clock has passed the interval's end by the allowed lateness "
        "(`PIPELINE_ALLOWED_LATENESS_SECONDS`, default 120 s) and no contact that arrived in it is still "
        "waiting. Later events that would change a final interval are counted as late, never applied.",
        "- **Each queue has its own clock**: the newest event time of its own events, or of the source's "
        "`source.heartbeat` on its partition if that is later. So a source whose clock runs ahead, or events of "
        "a made-up queue stamped later than the real traffic, close only their own queue's intervals, never "
        "another queue's (queues share partitions). A quiet queue's interval closes at its next event or at the "
        "next heartbeat: sources send heartbeats to every partition while they are idle (the simulator and "
        "`replay` do). Events more than `PIPELINE_MAX_CLOCK_SKEW_SECONDS` ahead of the worker's clock are "
        "rejected (`future_event_time`).",
        "- **Each agent has its own clock** in the same way (its own presence events, or the heartbeat on its "
        "partition): a desktop whose clock runs ahead closes only that agent's intervals. An idle agent's "
        "interval closes at its next event or at the next heartbeat. A schedule entry's publication time moves "
        "no agent's clock.",
        "- **FCR windows** close on the time up to which the contact partitions are complete: for each partition, "
        "the slowest clock among its queues heard from within `PIPELINE_MAX_CLOCK_SKEW_SECONDS` of its newest "
        "event (a quiet queue is not waited for), or its heartbeat if later; the FCR side takes the lowest over "
        "the partitions. A queue stamped ahead by more than that skew (possible only when replaying history: "
        "live, such events are rejected against the worker's clock) would still move it.",
        "- **Channels**: every queue KPI is per queue and channel (`voice`, `chat`, `email`, `task`, `messaging`), "
        "each channel with its own service level threshold, short-abandon threshold, headline variant and targets "
        "where the queue file says so (docs/settings.md#channels); alerts, the target series and the dashboards' "
        "colours compare each queue and channel with its own target. With `service_level_clock = business_hours` the "
        "wait compared with the threshold counts only the queue's opening hours (the record's "
        "`service_level_clock` says which), as help-desk tools measure e-mail SLAs (Zendesk's SLA policies and "
        "Salesforce's entitlements run on business or calendar hours); ASA and the waits stay elapsed time.",
        "- Prometheus counters grow as events are processed; `increase()` over a window therefore follows "
        "processing time. The KPI topic's records are the exact per-interval figures on event time.",
        "- Ratio KPIs are defined once, as a sum of counts over a sum of counts (`pipeline/kpis/definitions.py`): "
        "the record's field, the PromQL below and the recording rules are all formed from that one definition "
        "(sum the counts, then divide; never average a ratio), and a test checks that Prometheus gives the "
        "record's number on the same counts. The PromQL shown is over the last 15 minutes unless it says "
        "otherwise; the recording rules (5m, 30m, 1h) drop windows whose denominator is 0.",
        "",
        "## KPIs",
        "",
    ]
    from pipeline.kpis.agents import AGENT_COUNTS, AGENT_GAUGES, AGENT_KPIS, QUEUE_ADHERENCE_COUNTS
    from pipeline.kpis.quality import FCR_COUNTS, FCR_KPIS

    for kpi in (*KPIS, *AGENT_KPIS, *FCR_KPIS):
        out += [
            f"### {kpi.title}",
            "",
            f"- **Formula:** {kpi.formula}",
            f"- **Unit:** {kpi.unit}",
            f"- **Attribution:** {kpi.attribution}",
            f"- **KPI record field:** `{kpi.record_field}`",
            f"- **PromQL:** `{kpi.promql}`" if kpi.promql else "- **PromQL:** none (see the notes)",
        ]
        if kpi.promql_per_queue:
            out.append(f"- **PromQL per queue:** `{kpi.promql_per_queue}`")
        if kpi.rules:
            out.append("- **Recording rules:** " + ", ".join(f"`{r}`" for r in kpi.rules))
        if kpi.notes:
            out.append(f"- **Notes:** {kpi.notes}")
        if kpi.vendors:
            out.append(f"- **Where vendors differ:** {kpi.vendors}")
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
        short = ATTRIBUTION_SHORT[c.attribution]
        out.append(f"| `{c.metric}` | `{c.record_field}` | {c.unit} | {short} | {c.help} |")
    out += [
        "",
        f"Histogram `{WAIT_HISTOGRAM.metric}` (labels `queue`, `channel`, `outcome`, `le`): {WAIT_HISTOGRAM.help}",
        "",
        "## Segment and disposition counters",
        "",
        "Labels `queue`, `channel` and `segment` (or `disposition`), from the bounded sets of the queue file.",
        "",
        "| Prometheus metric | KPI record field | unit | meaning |",
        "| --- | --- | --- | --- |",
        *(f"| `{c.metric}` | `{c.record_field}` | {c.unit} | {c.help} |" for c in (*SEGMENT_COUNTS, DISPOSITIONS)),
        "",
        "## Per-agent handling counters",
        "",
        "Label `agent`; the KPI record carries the same per agent in `agents[]`.",
        "",
        "| Prometheus metric | KPI record field | unit | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for c in AGENT_HANDLING:
        out.append(f"| `{c.metric}` | `{c.record_field}` | {c.unit} | {c.help} |")
    for title, counts, record in (
        ("Agent counters (agent topic)", AGENT_COUNTS, "agent record (`kind` agent)"),
        ("Queue adherence counters", QUEUE_ADHERENCE_COUNTS, "agent record"),
        ("First contact resolution counters", FCR_COUNTS, "FCR record (`kind` fcr)"),
    ):
        out += [
            "",
            f"## {title}",
            "",
            f"| Prometheus metric | {record} field | unit | meaning |",
            "| --- | --- | --- | --- |",
        ]
        out += [f"| `{c.metric}` | `{c.record_field}` | {c.unit} | {c.help} |" for c in counts]
    out += ["", "## Real-time gauges", "", "| Prometheus metric | unit | meaning |", "| --- | --- | --- |"]
    for g in (*GAUGES, *AGENT_GAUGES):
        out.append(f"| `{g.metric}` | {g.unit} | {g.help} |")
    out.append("")
    return "\n".join(out)
