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


@dataclass(frozen=True)
class Gauge:
    metric: str
    unit: str
    help: str


SURVEY = "the interval in which the survey was completed (`survey.completed`)"
IVR = "the interval in which the IVR session ended (`ivr.session_ended`)"

COUNTS: tuple[Count, ...] = (
    Count("cc_queue_offered_total", "offered", "offered", "contacts", "Contacts that arrived in the queue.", ARRIVAL),
    Count(
        "cc_queue_answered_total",
        "answered",
        "answered",
        "contacts",
        "Arrived contacts that an agent answered.",
        ARRIVAL,
    ),
    Count(
        "cc_queue_abandoned_total",
        "abandoned",
        "abandoned",
        "contacts",
        "Arrived contacts abandoned by the customer before an answer.",
        ARRIVAL,
    ),
    Count(
        "cc_queue_short_abandoned_total",
        "short_abandoned",
        "short_abandoned",
        "contacts",
        "Abandoned contacts whose wait was at most the queue's short-abandon threshold.",
        ARRIVAL,
    ),
    Count(
        "cc_queue_answered_within_threshold_total",
        "answered_within_threshold",
        "answered_within_threshold",
        "contacts",
        "Answered contacts whose queue wait was at most the queue's service level threshold.",
        ARRIVAL,
    ),
    Count(
        "cc_queue_abandoned_within_threshold_total",
        "abandoned_within_threshold",
        "abandoned_within_threshold",
        "contacts",
        "Abandoned contacts whose wait was at most the queue's service level threshold.",
        ARRIVAL,
    ),
    Count(
        "cc_queue_flowed_out_total",
        "flowed_out",
        "flowed_out",
        "contacts",
        "Arrived contacts that routing moved out of the queue unanswered (overflow).",
        ARRIVAL,
    ),
    Count(
        "cc_queue_callbacks_requested_total",
        "callbacks_requested",
        "callbacks_requested",
        "contacts",
        "Arrived contacts that left the queue with a callback request.",
        ARRIVAL,
    ),
    Count(
        "cc_queue_expired_total",
        "expired",
        "expired",
        "contacts",
        "Arrived contacts given up on with no answer or abandon within the contact timeout.",
        ARRIVAL,
    ),
    Count(
        "cc_queue_answer_wait_seconds_total",
        "answer_wait_ms",
        "answer_wait_seconds_sum",
        "seconds",
        "Sum of the queue waits (answered - arrived) of answered contacts.",
        ARRIVAL,
    ),
    Count(
        "cc_queue_abandon_wait_seconds_total",
        "abandon_wait_ms",
        "abandon_wait_seconds_sum",
        "seconds",
        "Sum of the waits (abandoned - arrived) of abandoned contacts.",
        ARRIVAL,
    ),
    Count(
        "cc_queue_handled_total",
        "handled",
        "handled",
        "contacts",
        "Answered contacts whose handling (conversation and after-contact work) completed.",
        COMPLETION,
    ),
    Count(
        "cc_queue_handle_seconds_total",
        "handle_ms",
        "handle_seconds_sum",
        "seconds",
        "Sum of handle times (talk + hold + after-contact work) of handled contacts.",
        COMPLETION,
    ),
    Count(
        "cc_queue_talk_seconds_total",
        "talk_ms",
        "talk_seconds_sum",
        "seconds",
        "Sum of talk times (conversation less hold) of handled contacts.",
        COMPLETION,
    ),
    Count(
        "cc_queue_hold_seconds_total",
        "hold_ms",
        "hold_seconds_sum",
        "seconds",
        "Sum of hold times of handled contacts.",
        COMPLETION,
    ),
    Count(
        "cc_queue_acw_seconds_total",
        "acw_ms",
        "acw_seconds_sum",
        "seconds",
        "Sum of after-contact work times of handled contacts.",
        COMPLETION,
    ),
    Count("cc_queue_held_total", "held", "held", "contacts", "Handled contacts put on hold at least once.", COMPLETION),
    Count(
        "cc_queue_transferred_out_total",
        "transferred_out",
        "transferred_out",
        "contacts",
        "Handled contacts that the agent transferred out instead of ending.",
        COMPLETION,
    ),
    Count(
        "cc_queue_chat_first_responses_total",
        "chat_first_responses",
        "chat_first_responses",
        "chats",
        "Handled chats with a first agent response to a customer message.",
        COMPLETION,
    ),
    Count(
        "cc_queue_chat_first_response_seconds_total",
        "chat_first_response_ms",
        "chat_first_response_seconds_sum",
        "seconds",
        "Sum of chat first response times.",
        COMPLETION,
    ),
    Count(
        "cc_queue_chat_responses_total",
        "chat_responses",
        "chat_responses",
        "responses",
        "Agent responses to runs of customer chat messages.",
        COMPLETION,
    ),
    Count(
        "cc_queue_chat_response_seconds_total",
        "chat_response_ms",
        "chat_response_seconds_sum",
        "seconds",
        "Sum of chat response times.",
        COMPLETION,
    ),
    Count(
        "cc_queue_surveys_total", "surveys", "surveys", "surveys", "Customer satisfaction surveys completed.", SURVEY
    ),
    Count(
        "cc_queue_survey_score_total",
        "survey_score_sum",
        "survey_score_sum",
        "points",
        "Sum of survey scores (1 to 5).",
        SURVEY,
    ),
    Count(
        "cc_queue_surveys_satisfied_total",
        "surveys_satisfied",
        "surveys_satisfied",
        "surveys",
        "Surveys scoring 4 or 5.",
        SURVEY,
    ),
    Count(
        "cc_queue_ivr_sessions_total",
        "ivr_sessions",
        "ivr_sessions",
        "sessions",
        "IVR / self-service sessions that ended.",
        IVR,
    ),
    Count(
        "cc_queue_ivr_contained_total",
        "ivr_contained",
        "ivr_contained",
        "sessions",
        "IVR sessions that ended in self-service.",
        IVR,
    ),
)
# QueueCounts fields that are not counters: the histogram is exported as one, the maximum only in records
NOT_COUNTERS = ("waits", "longest_wait_ms")
WAIT_HISTOGRAM = Gauge(
    "cc_queue_wait_seconds",
    "seconds",
    "Histogram of queue waits by outcome (answered, abandoned); buckets include every queue's "
    "service level and short-abandon thresholds.",
)
AGENT_HANDLING = (
    Count(
        "cc_agent_handled_total",
        "handled",
        "agents[].handled",
        "contacts",
        "Contacts the agent answered whose handling completed.",
        COMPLETION,
    ),
    Count(
        "cc_agent_handle_seconds_total",
        "handle_ms",
        "agents[].handle_seconds_sum",
        "seconds",
        "Sum of the agent's handle times.",
        COMPLETION,
    ),
    Count(
        "cc_agent_talk_seconds_total",
        "talk_ms",
        "agents[].talk_seconds_sum",
        "seconds",
        "Sum of the agent's talk times.",
        COMPLETION,
    ),
    Count(
        "cc_agent_hold_seconds_total",
        "hold_ms",
        "agents[].hold_seconds_sum",
        "seconds",
        "Sum of the agent's hold times.",
        COMPLETION,
    ),
    Count(
        "cc_agent_acw_seconds_total",
        "acw_ms",
        "agents[].acw_seconds_sum",
        "seconds",
        "Sum of the agent's after-contact work times.",
        COMPLETION,
    ),
    Count(
        "cc_agent_transferred_out_total",
        "transferred_out",
        "agents[].transferred_out",
        "contacts",
        "Contacts the agent transferred out.",
        COMPLETION,
    ),
)
COUNT_BY_FIELD = {c.field: c for c in COUNTS}


GAUGES: tuple[Gauge, ...] = (
    Gauge(
        "cc_queue_contacts_waiting",
        "contacts",
        "Contacts in the queue now: arrived, not yet answered, abandoned or expired.",
    ),
    Gauge(
        "cc_queue_oldest_waiting_age_seconds",
        "seconds",
        "Age of the oldest contact waiting now, measured at the partition's watermark (newest event time).",
    ),
    Gauge(
        "cc_queue_service_level_threshold_seconds",
        "seconds",
        "The queue's service level threshold, from the queue configuration (label `queue`).",
    ),
    Gauge(
        "cc_queue_service_level_target_ratio",
        "ratio 0..1",
        "The queue's service level target, from the queue configuration (labels `queue`, `variant`).",
    ),
    Gauge(
        "cc_queue_abandon_rate_target_ratio",
        "ratio 0..1",
        "The queue's highest acceptable abandonment rate, from the queue configuration.",
    ),
    Gauge(
        "cc_queue_asa_target_seconds",
        "seconds",
        "The queue's highest acceptable average speed of answer, from the queue configuration.",
    ),
    Gauge(
        "cc_queue_oldest_wait_target_seconds",
        "seconds",
        "The queue's longest acceptable wait of its oldest contact, from the queue configuration.",
    ),
    Gauge(
        "cc_queue_forecast_offered",
        "contacts",
        "Forecast contacts for the interval that holds the partition's watermark (the current interval).",
    ),
    Gauge("cc_queue_forecast_aht_seconds", "seconds", "Forecast average handle time for the current interval."),
    Gauge(
        "cc_queue_agents_required",
        "agents",
        "Fewest agents on the phones for the queue's headline service level target at the recent traffic "
        "(the newest final interval and what followed): Erlang A with the observed patience when customers "
        "abandon, else Erlang C (docs/staffing.md).",
    ),
    Gauge(
        "cc_queue_agents_staffed",
        "agents",
        "Agents logged in and serving the queue now, as this worker sees them (agent partitions it owns).",
    ),
    Gauge("cc_queue_agents_gap", "agents", "Required minus staffed: positive means understaffed."),
    Gauge(
        "cc_queue_predicted_service_level",
        "ratio 0..1",
        "Headline service level the staffed agents give at the recent traffic (steady state).",
    ),
    Gauge(
        "cc_queue_predicted_asa_seconds",
        "seconds",
        "Average speed of answer the staffed agents give at the recent traffic.",
    ),
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


def _inc(metric: str, window: str = "15m") -> str:
    return f"sum by (queue, channel) (increase({metric}[{window}]))"


def _ratio(num: str, den: str) -> str:
    return f"{num} / {den}"


A, AB, AW = (
    _inc("cc_queue_answered_total"),
    _inc("cc_queue_abandoned_total"),
    _inc("cc_queue_answered_within_threshold_total"),
)
HANDLED = _inc("cc_queue_handled_total")
VENDORS_SL = (
    "Vendors differ: Asterisk's SL ignores abandons; Cisco offers abandons ignored / against / in favour; "
    "Genesys subtracts short abandons (and optionally all abandons) from the denominator; Amazon Connect counts "
    "contacts removed from the queue within T (answered, abandoned or callback) over all queued. All four "
    "variants are in every record; `service_level` is the queue's headline variant (`service_level_variant`)."
)

KPIS: tuple[Kpi, ...] = (
    Kpi(
        "offered",
        "Offered",
        "count of `contact.offered`",
        "contacts",
        ARRIVAL,
        "offered",
        _inc("cc_queue_offered_total"),
        "A transferred or overflowed contact is offered again to the queue it goes to (a new leg there).",
    ),
    Kpi(
        "answered", "Answered", "count of offered contacts with `contact.answered`", "contacts", ARRIVAL, "answered", A
    ),
    Kpi(
        "abandoned",
        "Abandoned",
        "count of offered contacts with `contact.abandoned`",
        "contacts",
        ARRIVAL,
        "abandoned",
        AB,
        "Callbacks and flow-outs are not abandons (as in Amazon Connect).",
    ),
    Kpi(
        "short_abandoned",
        "Short abandons",
        "abandoned with wait <= `short_abandon_seconds` (per queue)",
        "contacts",
        ARRIVAL,
        "short_abandoned",
        _inc("cc_queue_short_abandoned_total"),
        "Misdials and instant hang-ups. The threshold is per queue (default 5 s).",
    ),
    Kpi(
        "flowed_out",
        "Flowed out (overflow)",
        "count of offered contacts with `contact.flowed_out`",
        "contacts",
        ARRIVAL,
        "flowed_out",
        _inc("cc_queue_flowed_out_total"),
        "Not in any service level denominator here; Genesys can add flow-outs to its denominator.",
    ),
    Kpi(
        "callbacks_requested",
        "Callbacks requested",
        "count of `contact.callback_requested`",
        "contacts",
        ARRIVAL,
        "callbacks_requested",
        _inc("cc_queue_callbacks_requested_total"),
    ),
    Kpi(
        "transferred_out",
        "Transferred out",
        "handled contacts that ended with `contact.transferred`",
        "contacts",
        COMPLETION,
        "transferred_out",
        _inc("cc_queue_transferred_out_total"),
    ),
    Kpi(
        "service_level",
        "Service level (headline)",
        "the queue's headline variant, one of the four below",
        "ratio 0..1",
        ARRIVAL,
        "service_level",
        "level:service_level:ratio_rate15m (recording rule)",
        "A wait equal to the threshold counts as within. " + VENDORS_SL,
    ),
    Kpi(
        "service_level_abandons_ignored",
        "Service level, abandons ignored",
        "answered_within_threshold / answered",
        "ratio 0..1",
        ARRIVAL,
        "service_level_abandons_ignored",
        _ratio(AW, A),
        "Asterisk's SL; Cisco's 'abandons ignored' is the short-abandons-excluded variant with "
        "the short-abandon threshold equal to the service level threshold.",
    ),
    Kpi(
        "service_level_abandons_against",
        "Service level, abandons count against",
        "answered_within_threshold / (answered + abandoned)",
        "ratio 0..1",
        ARRIVAL,
        "service_level_abandons_against",
        f"{AW} / ({A} + {AB})",
        "Cisco's 'abandons count against'.",
    ),
    Kpi(
        "service_level_short_abandons_excluded",
        "Service level, short abandons excluded",
        "answered_within_threshold / (answered + abandoned - short_abandoned)",
        "ratio 0..1",
        ARRIVAL,
        "service_level_short_abandons_excluded",
        f"{AW} / ({A} + {AB} - {_inc('cc_queue_short_abandoned_total')})",
        "Genesys with 'exclude short abandons'. With `short_abandon_seconds` = the threshold it is "
        "answered within T / (answered + abandoned after T): Cisco's 'abandons ignored' (70 / 90 = 77.8% in "
        "the UCCE example).",
    ),
    Kpi(
        "service_level_abandons_in_favour",
        "Service level, abandons within the threshold count in favour",
        "(answered_within_threshold + abandoned_within_threshold) / offered",
        "ratio 0..1",
        ARRIVAL,
        "service_level_abandons_in_favour",
        f"({AW} + {_inc('cc_queue_abandoned_within_threshold_total')}) / {_inc('cc_queue_offered_total')}",
        "Amazon Connect's definition (contacts removed from the queue within T over contacts queued; here "
        "callbacks within T are not counted in favour); Cisco's 'abandons count in favour'.",
    ),
    Kpi(
        "asa",
        "Average speed of answer (ASA)",
        "answer_wait_seconds_sum / answered",
        "seconds",
        ARRIVAL,
        "asa_seconds",
        _ratio(_inc("cc_queue_answer_wait_seconds_total"), A),
        "Wait = time of `contact.answered` - time of `contact.offered` in this queue. Abandons not included.",
    ),
    Kpi(
        "average_time_to_abandon",
        "Average time to abandon",
        "abandon_wait_seconds_sum / abandoned",
        "seconds",
        ARRIVAL,
        "average_time_to_abandon_seconds",
        _ratio(_inc("cc_queue_abandon_wait_seconds_total"), AB),
    ),
    Kpi(
        "longest_wait",
        "Longest wait in the interval",
        "max over the interval's contacts with an outcome of (outcome time - arrival time)",
        "seconds",
        ARRIVAL,
        "longest_wait_seconds",
        "histogram_quantile(1, sum by (queue, channel, le) (increase(cc_queue_wait_seconds_bucket[15m])))",
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
        "sum by (queue, channel, outcome, le) (increase(cc_queue_wait_seconds_bucket[15m]))",
        "Buckets: 5 s to 20 min plus every queue's service level and short-abandon thresholds, so the share "
        "within any queue's threshold is exact.",
    ),
    Kpi(
        "abandon_rate",
        "Abandonment rate",
        "abandoned / offered",
        "ratio 0..1",
        ARRIVAL,
        "abandon_rate",
        _ratio(AB, _inc("cc_queue_offered_total")),
    ),
    Kpi(
        "abandon_rate_without_short",
        "Abandonment rate without short abandons",
        "(abandoned - short_abandoned) / (offered - short_abandoned)",
        "ratio 0..1",
        ARRIVAL,
        "abandon_rate_without_short",
        f"({AB} - {_inc('cc_queue_short_abandoned_total')}) / ({_inc('cc_queue_offered_total')} - "
        f"{_inc('cc_queue_short_abandoned_total')})",
    ),
    Kpi(
        "chat_abandon_rate",
        "Chat abandonment before acceptance",
        "abandon_rate of channel `chat`: chats the customer left before an agent accepted / chats offered",
        "ratio 0..1",
        ARRIVAL,
        "abandon_rate (channel chat)",
        'sum by (queue) (increase(cc_queue_abandoned_total{channel="chat"}[15m])) / '
        'sum by (queue) (increase(cc_queue_offered_total{channel="chat"}[15m]))',
    ),
    Kpi(
        "aht",
        "Average handle time (AHT)",
        "handle_seconds_sum / handled, where handle = talk + hold + after-contact work = acw_ended - answered",
        "seconds",
        COMPLETION,
        "aht_seconds",
        _ratio(_inc("cc_queue_handle_seconds_total"), HANDLED),
        "Talk = (ended or transferred - answered) - hold; hold = sum of hold_ended - hold_started; "
        "ACW = acw_ended - ended. Amazon Connect and Genesys also count handling in the interval in which it "
        "completes. Per agent: `agents[]` in the record, `cc_agent_*` metrics.",
    ),
    Kpi(
        "talk_avg",
        "Average talk time",
        "talk_seconds_sum / handled",
        "seconds",
        COMPLETION,
        "talk_seconds_avg",
        _ratio(_inc("cc_queue_talk_seconds_total"), HANDLED),
    ),
    Kpi(
        "hold_avg",
        "Average hold time",
        "hold_seconds_sum / handled (all handled, held or not)",
        "seconds",
        COMPLETION,
        "hold_seconds_avg",
        _ratio(_inc("cc_queue_hold_seconds_total"), HANDLED),
    ),
    Kpi(
        "acw_avg",
        "Average after-contact work",
        "acw_seconds_sum / handled",
        "seconds",
        COMPLETION,
        "acw_seconds_avg",
        _ratio(_inc("cc_queue_acw_seconds_total"), HANDLED),
    ),
    Kpi(
        "hold_rate",
        "Hold rate",
        "held / handled",
        "ratio 0..1",
        COMPLETION,
        "hold_rate",
        _ratio(_inc("cc_queue_held_total"), HANDLED),
    ),
    Kpi(
        "transfer_rate",
        "Transfer rate",
        "transferred_out / handled",
        "ratio 0..1",
        COMPLETION,
        "transfer_rate",
        _ratio(_inc("cc_queue_transferred_out_total"), HANDLED),
        "Per agent in `agents[]`.",
    ),
    Kpi(
        "agent_handled",
        "Contacts handled per agent",
        "handled, grouped by the agent who answered",
        "contacts",
        COMPLETION,
        "agents[].handled",
        "sum by (agent) (increase(cc_agent_handled_total[15m]))",
        "Per-agent AHT and its parts are in `agents[]` too; `PIPELINE_EXPORT_AGENT_METRICS` switches the "
        "`cc_agent_*` series off.",
    ),
    Kpi(
        "chat_first_response",
        "Chat first response time",
        "chat_first_response_seconds_sum / chat_first_responses; a chat's first response time = its agent's first "
        "message - the customer's first message before it",
        "seconds",
        COMPLETION,
        "first_response_seconds",
        _ratio(_inc("cc_queue_chat_first_response_seconds_total"), _inc("cc_queue_chat_first_responses_total")),
        "From `chat.message` events. Zendesk and LivePerson measure from the visitor's first message too; some "
        "tools measure from the acceptance instead (that is ASA + this, roughly). Per agent in `agents[]`.",
    ),
    Kpi(
        "chat_response",
        "Chat average response time",
        "chat_response_seconds_sum / chat_responses; each agent message after a run of customer messages is a "
        "response, timed from the run's first message",
        "seconds",
        COMPLETION,
        "average_response_seconds",
        _ratio(_inc("cc_queue_chat_response_seconds_total"), _inc("cc_queue_chat_responses_total")),
    ),
    Kpi(
        "csat",
        "Customer satisfaction (average score)",
        "survey_score_sum / surveys",
        "score 1..5",
        SURVEY,
        "satisfaction_avg",
        _ratio(_inc("cc_queue_survey_score_total"), _inc("cc_queue_surveys_total")),
    ),
    Kpi(
        "csat_satisfied",
        "Share satisfied",
        "surveys_satisfied / surveys (scores 4 and 5: top-two box)",
        "ratio 0..1",
        SURVEY,
        "satisfied_share",
        _ratio(_inc("cc_queue_surveys_satisfied_total"), _inc("cc_queue_surveys_total")),
    ),
    Kpi(
        "ivr_containment",
        "IVR / self-service containment",
        "ivr_contained / ivr_sessions",
        "ratio 0..1",
        IVR,
        "ivr_containment",
        _ratio(_inc("cc_queue_ivr_contained_total"), _inc("cc_queue_ivr_sessions_total")),
    ),
    Kpi(
        "forecast_offered",
        "Volume vs forecast",
        "(offered - forecast offered) / forecast offered",
        "ratio (+0.1 = 10% more than forecast)",
        ARRIVAL,
        "offered_vs_forecast",
        f"{_inc('cc_queue_offered_total')} / on (queue, channel) cc_queue_forecast_offered - 1",
        "The forecast is the newest `forecast.published` (by event time) for the interval.",
    ),
    Kpi(
        "forecast_aht",
        "AHT vs forecast",
        "(AHT - forecast AHT) / forecast AHT",
        "ratio",
        COMPLETION,
        "aht_vs_forecast",
        f"({_inc('cc_queue_handle_seconds_total')} / {HANDLED}) / on (queue, channel) "
        "cc_queue_forecast_aht_seconds - 1",
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
        "max by (queue, channel) (cc_queue_agents_required)",
        "Gap = required - staffed (`cc_queue_agents_gap`; staffed = agents logged in serving the queue). "
        "Shrinkage and an occupancy cap are options of `python -m pipeline staffing`. See docs/staffing.md.",
    ),
    Kpi(
        "contacts_waiting",
        "Contacts waiting now",
        "contacts offered and not yet answered or abandoned",
        "contacts",
        "real time (now)",
        "-",
        "sum by (queue, channel) (cc_queue_contacts_waiting)",
    ),
    Kpi(
        "oldest_waiting_age",
        "Oldest waiting contact's age",
        "watermark - arrival time of the longest-waiting contact",
        "seconds",
        "real time (now)",
        "-",
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
        "- Each queue also gets `hour` and `day` records (field `window`) in its own time zone (`time_zone` in "
        "the queue file): the sums of its intervals in that local hour or day, final once all of them are. Days "
        "follow the zone's calendar (23 or 25 hours on daylight-saving days). The provisional `day` record is "
        "'today so far'. Exact when the zone's offset is a whole number of intervals (any zone for 15-minute "
        "intervals except the few with 45-minute offsets).",
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
        short = {ARRIVAL: "arrival", COMPLETION: "completion", SURVEY: "survey", IVR: "IVR session end"}[c.attribution]
        out.append(f"| `{c.metric}` | `{c.record_field}` | {c.unit} | {short} | {c.help} |")
    out += [
        "",
        f"Histogram `{WAIT_HISTOGRAM.metric}` (labels `queue`, `channel`, `outcome`, `le`): {WAIT_HISTOGRAM.help}",
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
