"""The one table of queue KPI definitions: the exported counts, and every ratio KPI as numerator and denominator
over those counts, with its unit, KPI record field, metric names, description and where vendors differ.

Everything else takes names and formulas from here instead of typing them again: the KPI record's ratios
(`Ratio.value`, through pipeline.kpis.counts), the Prometheus collector's metric names, the recording rules'
PromQL and names (pipeline.monitoring.alerting), the dashboards' queries, the staffing model's and the settings'
variant names, and the catalogue (docs/kpis.md). A promtool test evaluates each ratio's PromQL on given counts
and compares it with `Ratio.value` on the same counts.

Pure: imports nothing of this project (no state, outputs, settings, Faust or Prometheus client), so any layer
may import it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipeline.contract.records import VARIANTS as VARIANTS  # the names are the records' contract, re-exported
from pipeline.contract.records import Variant as Variant

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
    """A metric that is not a counter (a gauge, or the wait histogram): its name, unit and help text."""

    metric: str
    unit: str
    help: str


@dataclass(frozen=True)
class Kpi:
    """A KPI as the catalogue shows it (agent and FCR KPIs are written this way in their own modules)."""

    name: str
    title: str
    formula: str
    unit: str
    attribution: str
    record_field: str
    promql: str
    notes: str = ""
    vendors: str = ""
    rules: tuple[str, ...] = ()  # recording rule series that hold it
    promql_per_queue: str = ""


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

# ---- callbacks (`callback.*` events; docs/kpis.md "Callbacks") ---------------------------------------------------
CALLBACK_DIAL = "the interval of the dial (`callback.dialled`)"
CALLBACK_FIRST_DIAL = "the interval of the callback's first dial (`callback.dialled` attempt 1)"
CALLBACK_OUTCOME = "the interval in which the callback connected or failed (`callback.connected` / `callback.failed`)"
CALLBACK_COUNTS: tuple[Count, ...] = (
    Count(
        "cc_queue_callback_dials_total",
        "callback_dials",
        "callback_dials",
        "dials",
        "Callback dial attempts.",
        CALLBACK_DIAL,
    ),
    Count(
        "cc_queue_callbacks_dialled_promised_total",
        "callbacks_dialled_promised",
        "callbacks_dialled_promised",
        "callbacks",
        "Callbacks with a promised time, first dialled.",
        CALLBACK_FIRST_DIAL,
    ),
    Count(
        "cc_queue_callbacks_dialled_within_promise_total",
        "callbacks_dialled_within_promise",
        "callbacks_dialled_within_promise",
        "callbacks",
        "Callbacks first dialled at or before the time promised to the customer.",
        CALLBACK_FIRST_DIAL,
    ),
    Count(
        "cc_queue_callbacks_connected_total",
        "callbacks_connected",
        "callbacks_connected",
        "callbacks",
        "Callbacks that reached the customer.",
        CALLBACK_OUTCOME,
    ),
    Count(
        "cc_queue_callbacks_failed_total",
        "callbacks_failed",
        "callbacks_failed",
        "callbacks",
        "Callbacks given up without reaching the customer.",
        CALLBACK_OUTCOME,
    ),
    Count(
        "cc_queue_callback_attempts_total",
        "callback_attempts",
        "callback_attempts",
        "dials",
        "Dial attempts of the callbacks that connected or failed.",
        CALLBACK_OUTCOME,
    ),
)
COUNTS += CALLBACK_COUNTS
CALLBACK_GAUGES: tuple[Gauge, ...] = (
    Gauge(
        "cc_queue_callbacks_waiting",
        "callbacks",
        "Callbacks known to their lifecycle (a promised time or a `callback.*` event) neither connected nor failed.",
    ),
    Gauge(
        "cc_queue_callback_oldest_promise_overdue_seconds",
        "seconds",
        "Of the callbacks waiting and not dialled yet, how far the queue's clock is past the earliest promised time "
        "(negative: the time still left); no series when none of them has a promise.",
    ),
)

# ---- agent offers (`offer.*` events; docs/kpis.md "Agent offers") -------------------------------------------------
OFFER_RINGING = "the interval in which the offer rang (`offer.ringing`)"
OFFER_OUTCOME = (
    "the interval of the offer's outcome (`offer.accepted`, `offer.rejected`, `offer.missed`), counted once its "
    "ringing is known"
)
_OFFER_COUNTS = (  # (field, unit, help, attribution)
    ("agent_offers", "offers", "Offers of a waiting contact to an agent (ringing).", OFFER_RINGING),
    ("agent_offers_accepted", "offers", "Offers the agent accepted.", OFFER_OUTCOME),
    ("agent_offers_rejected", "offers", "Offers the agent declined.", OFFER_OUTCOME),
    ("agent_offers_missed", "offers", "Offers that rang out unanswered (RONA).", OFFER_OUTCOME),
    ("agent_offer_ring_ms", "seconds", "Sum of the ring times (accept - ringing) of accepted offers.", OFFER_OUTCOME),
)


def _offer_metric(field: str) -> str:
    return field.removeprefix("agent_").replace("_ms", "_seconds") + "_total"


OFFER_COUNTS: tuple[Count, ...] = tuple(
    Count("cc_queue_" + _offer_metric(f), f, f.replace("_ms", "_seconds_sum"), unit, help_ + " Per queue.", attribution)
    for f, unit, help_, attribution in _OFFER_COUNTS
)
COUNTS += OFFER_COUNTS
AGENT_OFFERS: tuple[Count, ...] = tuple(
    Count(
        "cc_agent_" + _offer_metric(f),
        f,
        "agents[]." + f.replace("_ms", "_seconds_sum"),
        unit,
        help_ + " Per agent, all queues.",
        attribution,
    )
    for f, unit, help_, attribution in _OFFER_COUNTS
)

# QueueCounts fields that are not counters: the histogram is exported as one, the maximum only in records
# (segments and dispositions are exported with their own label: SEGMENT_COUNTS and DISPOSITIONS below)
NOT_COUNTERS = ("waits", "longest_wait_ms", "segments", "dispositions")
WAIT_HISTOGRAM = Gauge(
    "cc_queue_wait_seconds",
    "seconds",
    "Histogram of queue waits by outcome (answered, abandoned); buckets include every queue's "
    "service level and short-abandon thresholds.",
)
AGENT_HANDLING: tuple[Count, ...] = (
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
AGENT_HANDLING += AGENT_OFFERS
COUNT: dict[str, Count] = {c.field: c for c in COUNTS}
"""QueueCounts field -> its exported count."""


HANDLING_COST = Gauge(
    "cc_queue_handling_cost_total",
    "money (the queue's `currency`)",
    "Counter: the handling cost of the queue's contacts so far, from the exported counts at the queue file's prices "
    "(the KPI records' `handling_cost`); only queues with `agent_hour_cost`. Restarts with the counts when the "
    "prices change.",
)
GAUGES: tuple[Gauge, ...] = (
    HANDLING_COST,
    Gauge(
        "cc_queue_contacts_waiting",
        "contacts",
        "Contacts in the queue now: arrived, not yet answered, abandoned or expired.",
    ),
    Gauge(
        "cc_queue_oldest_waiting_age_seconds",
        "seconds",
        "Age of the oldest contact waiting now, measured at the queue's clock (its newest event or heartbeat time).",
    ),
    Gauge(
        "cc_queue_service_level_threshold_seconds",
        "seconds",
        "The service level threshold of the queue's channel, from the queue configuration (labels `queue`, `channel`).",
    ),
    Gauge(
        "cc_queue_service_level_target_ratio",
        "ratio 0..1",
        "The service level target of the queue's channel, from the queue configuration (labels `queue`, `channel`, "
        "`variant`).",
    ),
    Gauge(
        "cc_queue_abandon_rate_target_ratio",
        "ratio 0..1",
        "The highest acceptable abandonment rate of the queue's channel, from the queue configuration.",
    ),
    Gauge(
        "cc_queue_asa_target_seconds",
        "seconds",
        "The highest acceptable average speed of answer of the queue's channel, from the queue configuration.",
    ),
    Gauge(
        "cc_queue_oldest_wait_target_seconds",
        "seconds",
        "The longest acceptable wait of the oldest contact of the queue's channel, from the queue configuration.",
    ),
    Gauge(
        "cc_queue_callback_service_level_target_ratio",
        "ratio 0..1",
        "The callback service level target of the queue's channel, from the queue configuration.",
    ),
    Gauge(
        "cc_queue_callback_overdue_limit_seconds",
        "seconds",
        "How long past its promise a callback of the queue's channel may wait undialled before a page, from the "
        "queue configuration.",
    ),
    Gauge(
        "cc_queue_forecast_offered",
        "contacts",
        "Forecast contacts for the interval that holds the partition's watermark (the current interval).",
    ),
    Gauge("cc_queue_forecast_aht_seconds", "seconds", "Forecast average handle time for the current interval."),
    Gauge(
        "cc_queue_own_forecast_offered",
        "contacts",
        "The pipeline's own forecast (`python -m pipeline forecast`) of the current interval's contacts, shown "
        "beside `cc_queue_forecast_offered`, which is an external WFM's when there is one.",
    ),
    Gauge(
        "cc_queue_own_forecast_aht_seconds",
        "seconds",
        "The pipeline's own forecast average handle time for the current interval.",
    ),
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
        "This worker's agents able to take the queue's contacts now (available, on a contact, in ACW), an agent "
        "serving k queues counting 1/k in each (label `queue`); summed over workers by "
        "`queue:cc_queue_agents_staffed:sum`.",
    ),
    Gauge(
        "cc_queue_agents_needed_ahead",
        "agents",
        "Agents to schedule (required / (1 - shrinkage)) for the forecast of the interval `ahead` intervals after "
        "the current one (1 .. an hour), exported by the queue's owner from the forecasts it holds (Erlang A with "
        "the recent observed patience, else C; docs/staffing.md).",
    ),
    Gauge(
        "cc_queue_agents_scheduled_ahead",
        "agents",
        "This worker's agents planned for contact handling in the interval `ahead` intervals after the current one "
        "(share of the interval; an agent serving k queues counts 1/k in each; labels `queue`, `ahead`); summed "
        "over workers by `queue_channel_ahead:cc_queue_agents_plan_gap:sum`.",
    ),
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
TODAY_FIELDS: tuple[str, ...] = (
    "offered",
    "answered",
    "abandoned",
    "short_abandoned",
    "answered_within_threshold",
    "abandoned_within_threshold",
    "answer_wait_ms",
)
"""The counts exported for "today" too: what every service level variant, ASA and abandonment are formed from."""


def today_metric(field: str) -> str:
    """The gauge of a count's today-so-far value: `cc_queue_offered_total` -> `cc_queue_today_offered`."""
    return "cc_queue_today_" + COUNT[field].metric.removeprefix("cc_queue_").removesuffix("_total")


GAUGES += CALLBACK_GAUGES
GAUGES += tuple(
    Gauge(
        today_metric(f),
        COUNT[f].unit,
        f"{COUNT[f].help.rstrip('.')}, today so far: the local day in the queue's time zone that holds the queue's "
        "clock (it starts again at local midnight).",
    )
    for f in TODAY_FIELDS
)
GAUGE = {g.metric: g for g in GAUGES}


@dataclass(frozen=True)
class Rule:
    """A recording rule over the exported gauges (`level:metric:operations`), and why it is written so."""

    record: str
    expr: str
    why: str


STAFFING_RULES: tuple[Rule, ...] = (
    Rule(
        "queue:cc_queue_agents_staffed:sum",
        "sum by (queue) (cc_queue_agents_staffed)",
        "Each worker exports the capacity of the agents of its agent partitions; a queue's agents are spread over "
        "them, so the queue's staffed agents are the sum over workers.",
    ),
    Rule(
        "queue:cc_queue_agents_not_ready:sum",
        'sum by (queue) (cc_queue_agents{state="not_ready"})',
        "Logged-in agents not ready, shown beside the staffed ones (counted in each of their queues).",
    ),
    Rule(
        "queue_channel:cc_queue_agents_required:max",
        "max by (queue, channel) (cc_queue_agents_required)",
        "Only the worker owning the queue's contact partition exports it; max, not sum, so that the old and the "
        "new owner both exporting for a scrape during a rebalance do not double it.",
    ),
    Rule(
        "queue_channel:cc_queue_agents_gap:sum",
        "queue_channel:cc_queue_agents_required:max\n- on (queue) group_left ()\n(\n"
        "  queue:cc_queue_agents_staffed:sum\n"
        "  or on (queue) 0 * group by (queue) (queue_channel:cc_queue_agents_required:max)\n)",
        "Required minus staffed (positive: understaffed). A queue nobody serves has no staffed series: it counts "
        "0 staffed (`or`), so its gap is all of its required agents. Staffed is per queue, required per queue "
        "and channel: a queue's agents serve each of its channels.",
    ),
    Rule(
        "queue_channel_ahead:cc_queue_agents_plan_gap:sum",
        "max by (queue, channel, ahead) (cc_queue_agents_needed_ahead)\n- on (queue, ahead) group_left ()\n(\n"
        "  sum by (queue, ahead) (cc_queue_agents_scheduled_ahead)\n"
        "  or on (queue, ahead) 0 * group by (queue, ahead) (cc_queue_agents_needed_ahead)\n)",
        "Planned vs needed for each interval of the next hour: the owner's needed agents minus the scheduled agents "
        "summed over workers (none scheduled: 0).",
    ),
    Rule(
        "queue_channel:cc_queue_agents_plan_gap_next_hour:max",
        "max by (queue, channel) (queue_channel_ahead:cc_queue_agents_plan_gap:sum)",
        "The worst interval of the next hour.",
    ),
)
"""The live staffing gap over all workers (docs/staffing.md: "The live gap"), and the plan's for the next hour."""


# ---- ratio KPIs ----------------------------------------------------------------------------------------------

WINDOWS: tuple[str, ...] = ("5m", "30m", "1h")
"""The sliding windows the recording rules record each `Ratio.rule` over."""
HEADLINE_RULE = "queue_channel:cc_queue_service_level:ratio{window}"
"""Recording rule of each queue's headline service level: the variant its queue settings name."""


def increase(metric: str, window: str = "15m", selector: str = "") -> str:
    """A counter's increase over `window`, summed by queue and channel (over workers and partitions)."""
    return f"sum by (queue, channel) (increase({metric}{'{' + selector + '}' if selector else ''}[{window}]))"


def _side(terms: tuple[str, ...], term: Callable[[str], str]) -> str:
    """'answered', '-short_abandoned' -> '(a - s)': a sum of counts, in parentheses when more than one."""
    out = term(terms[0])
    for t in terms[1:]:
        out += f" - {term(t[1:])}" if t.startswith("-") else f" + {term(t)}"
    return f"({out})" if len(terms) > 1 else out


@dataclass(frozen=True)
class Ratio:
    """A KPI that is one sum of counts over another: `numerator` / `denominator`, each a tuple of QueueCounts
    fields that are added ('-field' subtracts). Durations are counted in milliseconds and exported in seconds:
    a numerator of `_ms` fields is divided by 1000, so `value` and the PromQL give seconds alike."""

    name: str
    title: str
    numerator: tuple[str, ...]
    denominator: tuple[str, ...]
    unit: str
    record_field: str  # pipeline.kpis.record.KpiRecord field
    notes: str = ""
    vendors: str = ""  # where vendors define it differently
    where: str = ""  # more of the formula, appended to it in the catalogue
    rule: str = ""  # recording rule name with `{window}`: recorded over WINDOWS; alerts and dashboards read it

    def __post_init__(self) -> None:
        unknown = [f for f in (*self.numerator, *self.denominator) if f.lstrip("-") not in COUNT]
        if unknown:
            raise ValueError(f"{self.name}: not exported counts {unknown}; counts are {', '.join(COUNT)}")
        if len({f.lstrip("-").endswith("_ms") for f in self.numerator}) != 1 or any(
            f.endswith("_ms") for f in self.denominator
        ):
            raise ValueError(f"{self.name}: a numerator is all durations or all counts; a denominator all counts")

    @property
    def attribution(self) -> str:
        return COUNT[self.numerator[0].lstrip("-")].attribution

    def value(self, c: object) -> float | None:
        """The KPI from counts (a QueueCounts); None when the denominator is zero (nothing to measure)."""
        num: float = _sum(c, self.numerator)
        den = _sum(c, self.denominator)
        if self.numerator[0].endswith("_ms"):
            num = num / 1000  # divided, not multiplied by 0.001: the records' floats stay as they were
        return num / den if den else None

    def formula(self) -> str:
        """In KPI record field names, e.g. `answered_within_threshold / (answered + abandoned)`."""

        def field(f: str) -> str:
            return COUNT[f].record_field

        return f"{_side(self.numerator, field)} / {_side(self.denominator, field)}{self.where}"

    def expr(self, term: Callable[[str], str], guard: bool = False) -> str:
        """PromQL with `term(field)` for each count; `guard` drops a zero denominator (no data rather than NaN)."""
        num, den = _side(self.numerator, term), _side(self.denominator, term)
        return f"{num}\n/\n({den} > 0)" if guard else f"{num} / {den}"

    def promql(self, window: str = "15m", selector: str = "", guard: bool = False) -> str:
        """Over the exported counters: the sums of their increases, then the division (never an average)."""
        return self.expr(lambda f: increase(COUNT[f].metric, window, selector), guard)

    def recorded(self, window: str) -> str:
        """The recording rule's series over `window` (only for ratios with a `rule`)."""
        if not self.rule:
            raise ValueError(f"{self.name} has no recording rule")
        return self.rule.format(window=window)


def _sum(c: object, terms: tuple[str, ...]) -> int:
    total = 0
    for t in terms:
        if t.startswith("-"):
            total -= getattr(c, t[1:])
        else:
            total += getattr(c, t)
    return total


SL_VENDORS = (
    "Vendors give one name to different formulas, so the four variants are named apart. "
    "Asterisk's SL ignores abandons; Cisco offers abandons ignored / against / in favour; Genesys subtracts "
    "short abandons (and optionally all abandons) from the denominator; Amazon Connect counts contacts removed "
    "from the queue within T (answered, abandoned or callback) over all queued."
)

SERVICE_LEVEL: dict[Variant, Ratio] = {
    "abandons_ignored": Ratio(
        "service_level_abandons_ignored",
        "Service level, abandons ignored",
        ("answered_within_threshold",),
        ("answered",),
        "ratio 0..1",
        "service_level_abandons_ignored",
        "A wait equal to the threshold counts as within.",
        "Asterisk's SL. Cisco's 'abandons ignored' also leaves out only the abandons within T: that is the "
        "short-abandons-excluded variant with the short-abandon threshold equal to the service level threshold "
        "(both give 70 / 90 = 77.8% in Cisco's example, where every abandon is within T).",
        rule="queue_channel:cc_queue_service_level_abandons_ignored:ratio{window}",
    ),
    "abandons_against": Ratio(
        "service_level_abandons_against",
        "Service level, abandons count against",
        ("answered_within_threshold",),
        ("answered", "abandoned"),
        "ratio 0..1",
        "service_level_abandons_against",
        "A wait equal to the threshold counts as within.",
        "Cisco's 'abandons count against' (70 / 100 = 70% in its example).",
        rule="queue_channel:cc_queue_service_level_abandons_against:ratio{window}",
    ),
    "short_abandons_excluded": Ratio(
        "service_level_short_abandons_excluded",
        "Service level, short abandons excluded",
        ("answered_within_threshold",),
        ("answered", "abandoned", "-short_abandoned"),
        "ratio 0..1",
        "service_level_short_abandons_excluded",
        "A wait equal to the threshold counts as within. With `short_abandon_seconds` equal to the threshold it "
        "is answered within T / (answered + abandoned after T).",
        "Genesys with 'exclude short abandons'; Cisco's 'abandons ignored' when the short-abandon threshold is "
        "the service level threshold (70 / 90 = 77.8% in Cisco's example).",
        rule="queue_channel:cc_queue_service_level_short_abandons_excluded:ratio{window}",
    ),
    "abandons_in_favour": Ratio(
        "service_level_abandons_in_favour",
        "Service level, abandons within the threshold count in favour",
        ("answered_within_threshold", "abandoned_within_threshold"),
        ("offered",),
        "ratio 0..1",
        "service_level_abandons_in_favour",
        "Over all offered: contacts that flowed out, asked for a callback, expired or (in a sliding window) are "
        "still waiting count in the denominator and not in favour. Changed: the recording rules (and so the "
        "headline series, the alerts and the variants panel) used to divide by answered + abandoned while the "
        "KPI record divided by offered; both now divide by offered, as defined here once.",
        "Amazon Connect's definition (contacts removed from the queue within T over contacts queued; here "
        "callbacks within T are not counted in favour); Cisco's 'abandons count in favour' ((70 + 10) / 100 = "
        "80% in its example).",
        rule="queue_channel:cc_queue_service_level_abandons_in_favour:ratio{window}",
    ),
}
assert tuple(SERVICE_LEVEL) == VARIANTS, "one service level definition per variant, in the Variant order"

RATIOS: tuple[Ratio, ...] = (
    *SERVICE_LEVEL.values(),
    Ratio(
        "asa",
        "Average speed of answer (ASA)",
        ("answer_wait_ms",),
        ("answered",),
        "seconds",
        "asa_seconds",
        "Wait = time of `contact.answered` - time of `contact.offered` in this queue. Abandons not included.",
        rule="queue_channel:cc_queue_asa_seconds:mean{window}",
    ),
    Ratio(
        "average_time_to_abandon",
        "Average time to abandon",
        ("abandon_wait_ms",),
        ("abandoned",),
        "seconds",
        "average_time_to_abandon_seconds",
    ),
    Ratio(
        "abandon_rate",
        "Abandonment rate",
        ("abandoned",),
        ("offered",),
        "ratio 0..1",
        "abandon_rate",
        rule="queue_channel:cc_queue_abandon_rate:ratio{window}",
    ),
    Ratio(
        "abandon_rate_without_short",
        "Abandonment rate without short abandons",
        ("abandoned", "-short_abandoned"),
        ("offered", "-short_abandoned"),
        "ratio 0..1",
        "abandon_rate_without_short",
    ),
    Ratio(
        "aht",
        "Average handle time (AHT)",
        ("handle_ms",),
        ("handled",),
        "seconds",
        "aht_seconds",
        "Talk = (ended or transferred - answered) - hold; hold = sum of hold_ended - hold_started; "
        "ACW = acw_ended - ended. Per agent: `agents[]` in the record, `cc_agent_*` metrics.",
        "Amazon Connect and Genesys also count handling in the interval in which it completes.",
        where=", where handle = talk + hold + after-contact work = acw_ended - answered",
    ),
    Ratio("talk_avg", "Average talk time", ("talk_ms",), ("handled",), "seconds", "talk_seconds_avg"),
    Ratio(
        "hold_avg",
        "Average hold time",
        ("hold_ms",),
        ("handled",),
        "seconds",
        "hold_seconds_avg",
        where=" (all handled, held or not)",
    ),
    Ratio("acw_avg", "Average after-contact work", ("acw_ms",), ("handled",), "seconds", "acw_seconds_avg"),
    Ratio("hold_rate", "Hold rate", ("held",), ("handled",), "ratio 0..1", "hold_rate"),
    Ratio(
        "transfer_rate",
        "Transfer rate",
        ("transferred_out",),
        ("handled",),
        "ratio 0..1",
        "transfer_rate",
        "Per agent in `agents[]`.",
    ),
    Ratio(
        "chat_first_response",
        "Chat first response time",
        ("chat_first_response_ms",),
        ("chat_first_responses",),
        "seconds",
        "first_response_seconds",
        "From `chat.message` events. Per agent in `agents[]`.",
        "Zendesk and LivePerson measure from the visitor's first message too; some tools measure from the "
        "acceptance instead (that is ASA + this, roughly).",
        where="; a chat's first response time = its agent's first message - the customer's first message before it",
    ),
    Ratio(
        "chat_response",
        "Chat average response time",
        ("chat_response_ms",),
        ("chat_responses",),
        "seconds",
        "average_response_seconds",
        where="; each agent message after a run of customer messages is a response, timed from the run's first message",
    ),
    Ratio(
        "csat",
        "Customer satisfaction (average score)",
        ("survey_score_sum",),
        ("surveys",),
        "score 1..5",
        "satisfaction_avg",
    ),
    Ratio(
        "csat_satisfied",
        "Share satisfied",
        ("surveys_satisfied",),
        ("surveys",),
        "ratio 0..1",
        "satisfied_share",
        where=" (scores 4 and 5: top-two box)",
    ),
    Ratio(
        "ivr_containment",
        "IVR / self-service containment",
        ("ivr_contained",),
        ("ivr_sessions",),
        "ratio 0..1",
        "ivr_containment",
    ),
)
CALLBACK_VENDORS = (
    "Amazon Connect makes a queued callback a new contact in a queue after an initial delay "
    "(`InitialCallDelaySeconds`, at most three days), retried up to `MaximumConnectionAttempts` times "
    "`RetryDelaySeconds` apart; it shows as in queue in the real-time metrics until an agent takes it, and "
    "`CALLBACK_CONTACTS_HANDLED` counts the callbacks handled (its metric list also has callback attempts). Its "
    "delay is a minimum wait before routing, not a deadline promised to the customer. Read from its contact events "
    "(docs/sources.md), each Connect callback contact is one callback of one dial: Connect starts dialling when an "
    "agent accepts the callback (https://docs.aws.amazon.com/connect/latest/adminguide/failed-callback-attempt.html), "
    "so a dial here is that acceptance, and connected is its CONNECTED_TO_SYSTEM, which a voicemail gives too "
    "(https://docs.aws.amazon.com/connect/latest/adminguide/contact-events.html); a retry is a contact of its own, "
    "so attempts per callback is 1 and the connect rate is per dial; and with no promised time its callbacks are "
    "in no callback service level. Genesys Cloud carries a `callbackScheduledTime` on the callback "
    "communication, and its conversation aggregates name `nCallbackScheduled`, `nCallbackAttempts`, "
    "`tCallbackConnect`, `tCallbackNotReached`, `tCallbackAbandon`, `nCallbackOverSla` and `oCallbackServiceLevel` "
    "(the metric list of the Platform API's ConversationAggregationQuery, "
    "https://github.com/MyPureCloud/platform-client-sdk-java/blob/master/build/docs/ConversationAggregationQuery.md, "
    "which names them without defining them: whether Genesys' callback service level is against the scheduled "
    "time, as here against the promise, is not said there). NICE CXone's callback widget splits callbacks into "
    "successful, in queue and failed (here connected, waiting and failed). Here a callback request leaves the "
    "queue (not an abandon, as in Amazon Connect) and its service level is against the time promised to the "
    "customer."
)
RATIOS += (
    Ratio(
        "callback_service_level",
        "Callback service level",
        ("callbacks_dialled_within_promise",),
        ("callbacks_dialled_promised",),
        "ratio 0..1",
        "callback_service_level",
        "The promise is the newest `callback.scheduled` at or before the first dial, else the request's "
        "`promised_by`; callbacks without a promise are not in it. A callback not dialled yet is not in it either: "
        "`cc_queue_callback_oldest_promise_overdue_seconds` shows it while it waits.",
        CALLBACK_VENDORS,
        where=" (first dial at or before the promised time; a dial at the promised time counts as within)",
        rule="queue_channel:cc_queue_callback_service_level:ratio{window}",
    ),
    Ratio(
        "callback_attempts_avg",
        "Attempts per callback",
        ("callback_attempts",),
        ("callbacks_connected", "callbacks_failed"),
        "dials per callback",
        "callback_attempts_avg",
        "Over the callbacks that connected or failed in the interval (their attempt counts); every dial of the "
        "interval is `callback_dials`.",
        CALLBACK_VENDORS,
    ),
    Ratio(
        "callback_connect_rate",
        "Callback connect rate",
        ("callbacks_connected",),
        ("callbacks_connected", "callbacks_failed"),
        "ratio 0..1",
        "callback_connect_rate",
        "Callbacks waiting are in neither side.",
    ),
)
OFFER_VENDORS = (
    "Amazon Connect counts offers an agent did not answer as `CONTACTS_MISSED` (shown as 'Agent non-response', "
    "with a variant that leaves out contacts the customer abandoned while ringing); here a reject is counted apart "
    "from a ring-out, and an offer the customer abandoned while it rang is neither (send no outcome, or `missed`). "
    "8x8's Work Analytics reports accepted, missed and rejected interactions per agent and per queue apart, as "
    "here, with an agent's average time to answer (here the ring time). Genesys Cloud's conversation aggregates "
    "name `tAlert` (time alerting: the ring time), `tAnswered` and `tNotResponding` (an alert the agent did not "
    "respond to: RONA), and its agents have a NOT_RESPONDING routing status; the metric names are those of the "
    "Platform API's ConversationAggregationQuery "
    "(https://github.com/MyPureCloud/platform-client-sdk-java/blob/master/build/docs/ConversationAggregationQuery.md), "
    "which lists them without definitions, so they are matched here by name only. Its analytics detail events give "
    "an agent session's `alertingDurationMs` on user.end, but no documented outcome tells a declined or unanswered "
    "alert from an answered one: Genesys offers are not read (docs/sources.md)."
)
RATIOS += (
    Ratio(
        "ring_time",
        "Average ring time",
        ("agent_offer_ring_ms",),
        ("agent_offers_accepted",),
        "seconds",
        "ring_time_avg_seconds",
        "Per agent in `agents[]` and the `cc_agent_*` offer counters.",
        OFFER_VENDORS,
        where="; ring time = `offer.accepted` - `offer.ringing` of the same offer",
    ),
    Ratio(
        "offers_per_answer",
        "Offers per answer",
        ("agent_offers",),
        ("agent_offers_accepted",),
        "offers per accepted offer",
        "offers_per_answer",
        "1 when every contact is accepted at its first offer; each RONA or reject adds an offer.",
        OFFER_VENDORS,
    ),
    Ratio(
        "missed_offer_rate",
        "Missed offers (RONA) rate",
        ("agent_offers_missed",),
        ("agent_offers",),
        "ratio 0..1",
        "missed_offer_rate",
        "Rejected offers are `agent_offers_rejected`, apart.",
        OFFER_VENDORS,
    ),
)
RATIO: dict[str, Ratio] = {r.name: r for r in RATIOS}


def ratios_over(counts: tuple[Count, ...]) -> tuple[Ratio, ...]:
    """The ratio KPIs formed from these counts alone (the record carries them beside the counts)."""
    fields = {c.field for c in counts}
    return tuple(r for r in RATIOS if all(f.lstrip("-") in fields for f in (*r.numerator, *r.denominator)))


CALLBACK_RATIOS = ratios_over(CALLBACK_COUNTS)
OFFER_RATIOS = ratios_over(OFFER_COUNTS)
RECORDED: tuple[Ratio, ...] = tuple(r for r in RATIOS if r.rule)
"""The ratios the recording rules record (per queue and channel, over each of WINDOWS)."""


# ---- segments and dispositions -------------------------------------------------------------------------------
# Both are bounded label sets configured per queue (`segments`, `dispositions` in the queue file); any other value
# is counted as `other`, so a queue has at most (configured + 1) series of each per channel.

SEGMENT_FIELDS: tuple[str, ...] = (*TODAY_FIELDS, "abandon_wait_ms")
"""The counts kept per segment of the offer: what every service level variant, ASA and abandonment are formed from."""
SEGMENT_COUNTS: tuple[Count, ...] = tuple(
    Count(
        COUNT[f].metric.replace("cc_queue_", "cc_queue_segment_", 1),
        f,
        f"segments[].{COUNT[f].record_field}",
        COUNT[f].unit,
        f"{COUNT[f].help.rstrip('.')}, per segment of the offer (label `segment`).",
        ARRIVAL,
    )
    for f in SEGMENT_FIELDS
)
SEGMENT_COUNT: dict[str, Count] = {c.field: c for c in SEGMENT_COUNTS}
SEGMENT_RATIOS: tuple[Ratio, ...] = ratios_over(SEGMENT_COUNTS)
"""The ratio KPIs formed per segment too (every service level variant, ASA, abandonment): the same definitions over
the segment's counts."""
SEGMENT_VENDORS = (
    "Genesys Cloud and Amazon Connect report service level per queue (and, in Genesys, per routing priority or "
    "skill requirement); a customer segment is usually a contact attribute the flow sets and a custom report "
    "filters on. Here the source puts it on `contact.offered` and every outcome count is kept per segment."
)


def segment_promql(ratio: Ratio, window: str = "15m", guard: bool = False, selector: str = "") -> str:
    """A ratio per queue, channel and segment over the segment counters: sums of increases, then the division
    (`selector`: label matchers, e.g. a dashboard's queue and channel)."""
    matchers = f"{{{selector}}}" if selector else ""
    return ratio.expr(
        lambda f: f"sum by (queue, channel, segment) (increase({SEGMENT_COUNT[f].metric}{matchers}[{window}]))", guard
    )


DISPOSITIONS = Count(
    "cc_queue_dispositions_total",
    "dispositions",
    "dispositions[].contacts",
    "contacts",
    "Handled contacts by wrap-up code of their `contact.acw_ended` (label `disposition`: the queue's configured "
    "codes, else `other`).",
    COMPLETION,
)
DISPOSITION_VENDORS = (
    "Genesys Cloud calls them wrap-up codes (one per agent participant; a transferred contact can carry several, "
    "one per queue leg as here); in Amazon Connect, Twilio Flex and Asterisk centers commonly record it as a contact "
    "attribute or task attribute of their own design, so the adapter names the field that carries it. Here one code per queue leg, "
    "counted when its handling completes, so the codes of an interval add up to its `handled`."
)
