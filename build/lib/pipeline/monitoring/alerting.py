"""Prometheus recording and alert rules, the Prometheus configuration and the Alertmanager configuration,
generated from the one queue configuration (`QueueConfig`).

Targets (service level, abandonment, ASA, oldest wait, callbacks: per queue, and per channel where a channel
table sets one), teams, time zones and business hours are typed once, in the queue file; this module turns them into rule files (`python -m pipeline ops-config` writes them under
`deploy/`, and a test fails when the committed files are stale). It must not compute KPIs itself: every rule is
PromQL over the counters the pipeline exports (docs/kpis.md), summing numerators and denominators before
dividing, never averaging ratios.

Naming follows `level:metric:operations` (kubernetes-mixin): `queue_channel:cc_queue_offered:increase5m` is
the increase of `cc_queue_offered_total` over 5 minutes, summed by queue and channel. Alerts are CamelCase with
the `CC` prefix, a `severity` (critical pages, warning opens a ticket), a `team` (from the queue file; pipeline
alerts go to `PIPELINE_TEAM`), a fixed `summary`, a templated `description` and a `runbook_url` pointing at the
alert's anchor in docs/runbook.md (an absolute URL: `PIPELINE_RUNBOOK_URL`).

`Timing.scale` shrinks every window and `for:` (not the rule names) so that an end-to-end test can watch an
alert fire and resolve within a minute or two of wall-clock time; the deployed files use scale 1.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from pipeline.core.settings import RUNBOOK_URL, QueueConfig, QueueSettings
from pipeline.kpis import definitions as kd

JOB = "cc-kpi-pipeline"
"""Prometheus job name of the pipeline's workers (the scrape config and the `up` alerts share it)."""
PIPELINE_TEAM = "platform"
"""Team that answers for the pipeline itself (not a queue): pipeline alerts carry `team="platform"`."""
RUNBOOK = RUNBOOK_URL
"""Default base of `runbook_url` (the setting's default); `ops-config` writes the files with `PIPELINE_RUNBOOK_URL`."""
WINDOWS = {"5m": 300, "30m": 1800, "1h": 3600}
"""Sliding windows of the recording rules: nominal name -> seconds (the names are the KPI definitions')."""
assert tuple(WINDOWS) == kd.WINDOWS

VARIANTS = kd.VARIANTS
"""The service level variants; their formulas are pipeline.kpis.definitions.SERVICE_LEVEL, not retyped here."""


def _recorded_counts() -> tuple[str, ...]:
    """QueueCounts fields whose increases are recorded: those the recorded ratios read, and the volumes the
    alerts' minimums read."""
    fields = ["offered", "answered", "abandoned"]
    for r in kd.RECORDED:
        fields += [f.lstrip("-") for f in (*r.numerator, *r.denominator)]
    return tuple(dict.fromkeys(fields))


COUNTS = _recorded_counts()


@dataclass(frozen=True)
class Thresholds:
    """Thresholds that are not per queue: minimum volumes (a 1-contact window says nothing) and the pipeline's."""

    sl_min_contacts_fast: int = 10  # answered + abandoned in the 5m window before a fast service-level page
    sl_min_contacts_slow: int = 20  # ... in the 1h window before a slow service-level ticket
    abandon_min_offered: int = 10  # offered in the 30m window before an abandonment ticket
    consumer_lag_messages: int = 10_000  # lag on a topic that is also still growing
    no_contacts_window: int = 1800  # seconds without any offered contact during business hours
    plan_gap_margin: float = 2.0  # agents short of the forecast's need in an interval of the next hour
    # callbacks (their target and overdue limit are per queue and channel, in the queue file)
    callback_min_dialled: int = 5  # promised callbacks first dialled in the hour before a ticket


THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class Timing:
    """How rule windows and `for:` durations map to wall-clock time. `scale < 1` only in tests."""

    scale: float = 1.0

    def dur(self, seconds: float) -> str:
        s = max(1, round(seconds * self.scale))
        out = ""
        for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
            if s >= size:
                out += f"{s // size}{unit}"
                s %= size
        return out

    def window(self, name: str) -> str:
        return self.dur(WINDOWS[name])


DEPLOYED = Timing()


# ---------------------------------------------------------------------------------------------------- helpers


def _queue_regex(names: list[str]) -> str:
    """An RE2 alternation inside a PromQL string: metacharacters escaped with a backslash, itself escaped."""
    return "|".join(re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\\\1", n) for n in sorted(names))


def _configured(config: QueueConfig) -> list[tuple[str, QueueSettings]]:
    return sorted(config.queues.items())


def _teams(config: QueueConfig) -> list[str]:
    return sorted({config.defaults.team, PIPELINE_TEAM, *(q.team for q in config.queues.values())})


def _others(config: QueueConfig) -> str:
    """Selector of the queues that the file does not name: they take `[defaults]`."""
    names = [q for q, _ in _configured(config)]
    return f'{{queue!~"{_queue_regex(names)}"}}' if names else ""


def _utc_offset(t: datetime, tz: ZoneInfo) -> int:
    offset = t.astimezone(tz).utcoffset()
    assert offset is not None  # a ZoneInfo has one at every instant
    return int(offset.total_seconds())


@cache
def _offsets(zone: str, first_year: int = 2025, last_year: int = 2036) -> tuple[tuple[int, int], ...]:
    """(utc_offset_seconds, valid_from_unix_seconds) of a zone, at hour precision, over the given years.

    PromQL's hour()/day_of_week() are UTC only, so local time is UTC plus an offset picked by time(); the table
    covers the years above (regenerate the rules before 2036). Before the first change the first offset holds.
    """
    tz = ZoneInfo(zone)
    t = datetime(first_year, 1, 1, tzinfo=UTC)
    end = datetime(last_year + 1, 1, 1, tzinfo=UTC)
    out = [(_utc_offset(t, tz), 0)]
    while t < end:
        t += timedelta(hours=1)
        off = _utc_offset(t, tz)
        if off != out[-1][0]:
            out.append((off, int(t.timestamp())))
    return tuple(out)


def _offset_expr(zone: str) -> str:
    offsets = _offsets(zone)
    if len(offsets) == 1:
        return f"vector({offsets[0][0]})"
    parts = []
    for i, (off, since) in enumerate(offsets):
        until = offsets[i + 1][1] if i + 1 < len(offsets) else None
        cond = "vector(time())" + (f" >= {since}" if since else "") + (f" < {until}" if until else "")
        parts.append(f"(vector({off}) and on() ({cond}))")
    return "\n  or ".join(parts)


_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # PromQL day_of_week(): 0 = Sunday


def _open_expr(queues: list[str], s: QueueSettings) -> str:
    """1 when the local time of these queues (which share opening hours) is within them, else 0."""
    local = f'queue:cc_queue_local_time:seconds{{queue=~"{_queue_regex(queues)}"}}'
    conds = []
    if set(s.open_days) != set(_DAYS):
        days = sorted(_DAYS.index(d) for d in s.open_days)
        if days == list(range(days[0], days[-1] + 1)):
            conds.append(f"day_of_week({local}) >= {days[0]} <= {days[-1]}")
        else:
            conds.append("(" + " or ".join(f"day_of_week({local}) == {d}" for d in days) + ")")
    minute_of_day = f"(hour({local}) * 60 + minute({local}))"  # to the minute: opening times have no seconds
    opens, closes = s.opens.hour * 60 + s.opens.minute, s.closes_minute
    conds += [f"{minute_of_day} >= {opens}", f"{minute_of_day} < {closes}"]
    return "(\n  " + "\n  and ".join(conds) + f"\n) * 0 + 1\nor {local} * 0"


# ---------------------------------------------------------------------------------------------- recording rules


TODAY_SERVICE_LEVEL = kd.HEADLINE_RULE.format(window="_today")
"""Recording rule of each queue's headline service level today so far, in its time zone."""
TODAY_OFFERED = "queue_channel:cc_queue_offered:today"
"""Recording rule of the contacts offered today so far, summed over workers."""


def inc(name: str, window: str) -> str:
    """Name of the recorded increase of `cc_queue_<name>_total` by queue and channel."""
    return f"queue_channel:cc_queue_{name}:increase{window}"


def _inc_of(field: str, window: str) -> str:
    """The recorded increase of a QueueCounts field's counter."""
    return inc(kd.COUNT[field].metric.removeprefix("cc_queue_").removesuffix("_total"), window)


def service_level(window: str, variant: str | None = None) -> str:
    """The recorded headline service level, or one variant's."""
    if variant is None:
        return kd.HEADLINE_RULE.format(window=window)
    return kd.SERVICE_LEVEL[variant].recorded(window)  # type: ignore[index]


def abandon_rate(window: str) -> str:
    return kd.RATIO["abandon_rate"].recorded(window)


def asa(window: str) -> str:
    return kd.RATIO["asa"].recorded(window)


TARGETS = {
    # recorded target series of each queue: (rule name, QueueSettings field); a channel's own target where the
    # queue file sets one is recorded beside it as `queue_channel:...` (`channel_target`)
    "service_level": ("queue:cc_queue_service_level_target:ratio", "service_level_target"),
    "abandon_rate": ("queue:cc_queue_abandon_rate_target:ratio", "abandon_rate_target"),
    "asa": ("queue:cc_queue_asa_target:seconds", "asa_target_seconds"),
    "oldest_wait": ("queue:cc_queue_oldest_wait_target:seconds", "oldest_wait_target_seconds"),
    "callback_service_level": ("queue:cc_queue_callback_service_level_target:ratio", "callback_service_level_target"),
    "callback_overdue": ("queue:cc_queue_callback_overdue_limit:seconds", "callback_overdue_seconds"),
}


def channel_target(kind: str) -> str:
    """The recorded series of the channels' own targets of one kind (`[queues.X.channels.<ch>]`)."""
    return TARGETS[kind][0].replace("queue:", "queue_channel:", 1)


def _ratio_rule(definition: kd.Ratio, window: str) -> dict:
    return {"record": definition.recorded(window), "expr": definition.expr(lambda f: _inc_of(f, window), guard=True)}


def recording_groups(config: QueueConfig, timing: Timing = DEPLOYED) -> list[dict]:
    counts_rules: list[dict] = []
    for w in WINDOWS:
        for field in COUNTS:
            counts_rules.append(
                {"record": _inc_of(field, w), "expr": kd.increase(kd.COUNT[field].metric, timing.window(w))}
            )
        counts_rules.append(
            {"record": inc("answered_or_abandoned", w), "expr": f"{inc('answered', w)} + {inc('abandoned', w)}"}
        )
    ratio_rules: list[dict] = []
    for w in WINDOWS:
        for variant in VARIANTS:
            # Ratios of summed counts, never averages of ratios; `> 0` drops a window with no contacts
            # (no data rather than NaN). The formula is the KPI record's, from the one definition.
            ratio_rules.append(_ratio_rule(kd.SERVICE_LEVEL[variant], w))
        # The headline service level of each queue is its configured variant; unnamed queues take [defaults].
        by_variant: dict[str, list[str]] = {}
        for queue, s in _configured(config):
            by_variant.setdefault(s.service_level_variant, []).append(queue)
        parts = [f'{service_level(w, v)}{{queue=~"{_queue_regex(qs)}"}}' for v, qs in sorted(by_variant.items())]
        parts.append(f"{service_level(w, config.defaults.service_level_variant)}{_others(config)}")
        ratio_rules.append({"record": service_level(w), "expr": "\nor ".join(parts)})
        for definition in kd.RECORDED:
            if definition not in kd.SERVICE_LEVEL.values():  # abandonment rate, ASA
                ratio_rules.append(_ratio_rule(definition, w))

    # Today so far, in each queue's time zone: the workers' `cc_queue_today_*` gauges (which start again at local
    # midnight) summed over workers, then divided; each queue its headline variant, as above.
    def today(selector: str) -> Callable[[str], str]:
        return lambda f: f"sum by (queue, channel) ({kd.today_metric(f)}{selector})"

    by_variant_today: dict[str, list[str]] = {}
    for queue, s in _configured(config):
        by_variant_today.setdefault(s.service_level_variant, []).append(queue)
    today_parts = [
        kd.SERVICE_LEVEL[v].expr(today(f'{{queue=~"{_queue_regex(qs)}"}}'), guard=True)  # type: ignore[index]
        for v, qs in sorted(by_variant_today.items())
    ]
    today_parts.append(kd.SERVICE_LEVEL[config.defaults.service_level_variant].expr(today(_others(config)), guard=True))
    ratio_rules.append({"record": TODAY_SERVICE_LEVEL, "expr": "\nor\n".join(f"({p})" for p in today_parts)})
    ratio_rules.append({"record": TODAY_OFFERED, "expr": today("")("offered")})
    for definition in (kd.RATIO["abandon_rate"], kd.RATIO["asa"]):
        ratio_rules.append({"record": definition.recorded("_today"), "expr": definition.expr(today(""), guard=True)})

    target_rules: list[dict] = []
    for kind, (record, field) in TARGETS.items():
        for queue, s in _configured(config):
            target_rules.append(
                {"record": record, "expr": f"vector({getattr(s, field)})", "labels": {"queue": queue, "team": s.team}}
            )
        # Queues the file does not name: the defaults, for every queue the pipeline reports a threshold for.
        unnamed = f"0 * group by (queue) (cc_queue_service_level_threshold_seconds{_others(config)})"
        target_rules.append(
            {
                "record": record,
                "expr": f"{unnamed} + {getattr(config.defaults, field)}",
                "labels": {"team": config.defaults.team},
            }
        )
        # The channels' own targets (a named queue's tables include those of [defaults.channels]); the alerts take
        # the queue's for every other channel (`target_of`).
        for queue, s in _configured(config):
            for channel, own in sorted(s.channels.items()):
                if getattr(own, field) is not None:
                    target_rules.append(
                        {
                            "record": channel_target(kind),
                            "expr": f"vector({getattr(own, field)})",
                            "labels": {"queue": queue, "channel": channel, "team": s.team},
                        }
                    )
        for channel, own in sorted(config.defaults.channels.items()):
            if getattr(own, field) is not None:
                target_rules.append(
                    {
                        "record": channel_target(kind),
                        "expr": f"{unnamed} + {getattr(own, field)}",
                        "labels": {"channel": channel, "team": config.defaults.team},
                    }
                )

    hours_rules: list[dict] = []
    schedules: dict[tuple, list[str]] = {}
    for queue, s in _configured(config):
        # PromQL's hour() and day_of_week() read UTC: the local wall clock is UTC plus the zone's offset then.
        hours_rules.append(
            {
                "record": "queue:cc_queue_local_time:seconds",
                "expr": f"time() + (\n  {_offset_expr(s.time_zone)}\n)",
                "labels": {"queue": queue, "team": s.team},
            }
        )
        schedules.setdefault((s.open_days, s.opens, s.closes), []).append(queue)
    if schedules:  # 1 within the queue's business hours (in its time zone), 0 outside them
        hours_rules.append(
            {
                "record": "queue:cc_queue_open:bool",
                "expr": "\nor\n".join(
                    f"({_open_expr(queues, config.queues[queues[0]])})" for _, queues in sorted(schedules.items())
                ),
            }
        )

    return [
        {"name": "cc-queue-counts", "rules": counts_rules},
        {"name": "cc-queue-ratios", "rules": ratio_rules},
        {"name": "cc-queue-targets", "rules": target_rules},
        {"name": "cc-queue-business-hours", "rules": hours_rules},
        # rules of one group run in order: the gap reads the sums recorded before it in the same evaluation
        {"name": "cc-queue-staffing", "rules": [{"record": r.record, "expr": r.expr} for r in kd.STAFFING_RULES]},
    ]


# -------------------------------------------------------------------------------------------------- alert rules


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    expr: str
    for_seconds: float
    summary: str
    description: str
    probe: str  # the signal the alert compares: must return data when the pipeline runs (end-to-end test)
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def anchor(self) -> str:
        return self.name.lower()


def _target(kind: str) -> str:
    return TARGETS[kind][0]


def target_of(kind: str, signal: str, selector: str = "") -> str:
    """The target of each queue and channel of `signal` (a vector by queue and channel), labelled with the
    queue's team: the channel's own where the queue file sets one, else the queue's. For a queue without channel
    tables this is the queue's target, as before channels had targets of their own. One series per series of
    `signal` (`selector`: label matchers of the channels' own, e.g. a dashboard's; `signal` carries its own)."""
    own = f"{channel_target(kind)}{{{selector}}}" if selector else channel_target(kind)
    return (
        f"(\n    {own} and on (queue, channel) {signal}\n  or on (queue, channel)\n"
        f"    (0 * {signal} + on (queue) group_left (team) {_target(kind)})\n  )"
    )


OLDEST_WAIT = "max by (queue, channel) (cc_queue_oldest_waiting_age_seconds)"
STAFFING_GAP = "queue_channel:cc_queue_agents_gap:sum"  # over all workers (kd.STAFFING_RULES)
PLAN_GAP = "queue_channel:cc_queue_agents_plan_gap_next_hour:max"  # needed by the forecast - scheduled


def queue_alerts(t: Thresholds = THRESHOLDS) -> list[Alert]:
    sl_target = _target("service_level")
    return [
        Alert(
            "CCQueueServiceLevelBelowTargetFast",
            "critical",
            f"(\n  {service_level('5m')}\n  < on (queue, channel) group_left (team) "
            f"{target_of('service_level', service_level('5m'))}\n)\n"
            f"and on (queue, channel)\n  (\n  {service_level('30m')}\n  < on (queue, channel) "
            f"{target_of('service_level', service_level('30m'))}\n  )\n"
            f"and on (queue, channel)\n  ({inc('answered_or_abandoned', '5m')} >= {t.sl_min_contacts_fast})",
            300,
            "Service level dropped sharply below the queue's target.",
            "Service level of queue {{ $labels.queue }} ({{ $labels.channel }}) is {{ $value | humanizePercentage }} "
            "over the last 5 minutes, and below target over 30 minutes too.",
            service_level("5m"),
        ),
        Alert(
            "CCQueueServiceLevelBelowTargetSlow",
            "warning",
            f"(\n  {service_level('1h')}\n  < on (queue, channel) group_left (team) "
            f"{target_of('service_level', service_level('1h'))}\n)\n"
            f"and on (queue, channel)\n  ({inc('answered_or_abandoned', '1h')} >= {t.sl_min_contacts_slow})",
            1800,
            "Service level has been below the queue's target for the last hour.",
            "Service level of queue {{ $labels.queue }} ({{ $labels.channel }}) is {{ $value | humanizePercentage }} "
            "over the last hour.",
            service_level("1h"),
        ),
        Alert(
            "CCQueueAbandonRateAboveTarget",
            "warning",
            f"(\n  {abandon_rate('30m')}\n  > on (queue, channel) group_left (team) "
            f"{target_of('abandon_rate', abandon_rate('30m'))}\n)\n"
            f"and on (queue, channel)\n  ({inc('offered', '30m')} >= {t.abandon_min_offered})",
            900,
            "Abandonment rate is above the queue's target.",
            "{{ $value | humanizePercentage }} of the contacts offered to queue {{ $labels.queue }} "
            "({{ $labels.channel }}) in the last 30 minutes abandoned.",
            abandon_rate("30m"),
        ),
        Alert(
            "CCQueueOldestWaitAboveLimit",
            "critical",
            f"{OLDEST_WAIT}\n> on (queue, channel) group_left (team) {target_of('oldest_wait', OLDEST_WAIT)}",
            180,
            "A contact has been waiting longer than the queue's limit.",
            "The oldest contact waiting in queue {{ $labels.queue }} ({{ $labels.channel }}) has waited "
            "{{ $value | humanizeDuration }}.",
            OLDEST_WAIT,
        ),
        Alert(
            "CCQueueStaffingGap",
            "warning",
            f"{STAFFING_GAP}\n> on (queue) group_left (team) (0 * {sl_target})",
            900,
            "Fewer agents are staffed than the queue needs for its service level target.",
            "Queue {{ $labels.queue }} ({{ $labels.channel }}) needs {{ $value | humanize }} more agents than are "
            "able to take its contacts to meet its service level target.",
            STAFFING_GAP,
        ),
        Alert(
            "CCQueueUnderstaffedNextHour",
            "warning",
            f"{PLAN_GAP}\n> on (queue) group_left (team) (0 * {sl_target} + {t.plan_gap_margin:g})",
            600,
            "The schedule plans too few agents for the queue's forecast in the next hour.",
            "Queue {{ $labels.queue }} ({{ $labels.channel }}) is short of {{ $value | humanize }} agents in an "
            f"interval of the next hour (more than {t.plan_gap_margin:g}): the schedule plans fewer agents for "
            "contacts than its forecast needs.",
            PLAN_GAP,
        ),
        Alert(
            "CCQueueAdherenceExceptions",
            "warning",
            # each agent's exception threshold is the queue's (adherence_exception_seconds), applied by the worker
            f"sum by (queue) (cc_queue_agents_adherence_exceptions)\n> on (queue) group_left (team) (0 * {sl_target})",
            300,
            "Agents of the queue are out of adherence longer than the queue allows.",
            "{{ $value }} agents of queue {{ $labels.queue }} have been out of adherence (their state against "
            "their scheduled activity) for longer than the queue's exception threshold.",
            "sum by (queue) (cc_queue_agents_adherence_exceptions)",
        ),
        *callback_alerts(t),
        Alert(
            "CCQueueNoContacts",
            "warning",
            # min_over_time: open for the whole window, so the first minutes after opening do not count.
            "min_over_time(queue:cc_queue_open:bool[{no_contacts}]) == 1\n"
            "unless on (queue)\n  sum by (queue) (increase(cc_queue_offered_total[{no_contacts}])) > 0",
            900,
            "A queue that should be busy has received no contacts.",
            "Queue {{ $labels.queue }} is within its business hours and has received no contacts for "
            f"{t.no_contacts_window // 60} minutes.",
            "queue:cc_queue_open:bool",
        ),
    ]


CALLBACK_OVERDUE = "max by (queue, channel) (cc_queue_callback_oldest_promise_overdue_seconds)"


def callback_alerts(t: Thresholds = THRESHOLDS) -> list[Alert]:
    """A customer promised a call back and not called is the callback's page; a late hour, its ticket. Each queue
    and channel against its own limit and target (`callback_overdue_seconds`, `callback_service_level_target`)."""
    callback_sl = kd.RATIO["callback_service_level"].recorded("1h")
    return [
        Alert(
            "CCQueueCallbackPromiseOverdue",
            "critical",
            f"{CALLBACK_OVERDUE}\n> on (queue, channel) group_left (team) "
            f"{target_of('callback_overdue', CALLBACK_OVERDUE)}",
            300,
            "A customer promised a callback has not been called by the promised time.",
            "The earliest promised callback of queue {{ $labels.queue }} ({{ $labels.channel }}) not yet dialled "
            "is {{ $value | humanizeDuration }} past its promised time.",
            CALLBACK_OVERDUE,
        ),
        Alert(
            "CCQueueCallbackServiceLevelBelowTarget",
            "warning",
            f"(\n  {callback_sl}\n  < on (queue, channel) group_left (team) "
            f"{target_of('callback_service_level', callback_sl)}\n)\n"
            f"and on (queue, channel)\n  ({_inc_of('callbacks_dialled_promised', '1h')} >= {t.callback_min_dialled})",
            900,
            "Callbacks are dialled later than promised.",
            "Over the last hour {{ $value | humanizePercentage }} of the promised callbacks of queue "
            "{{ $labels.queue }} ({{ $labels.channel }}) were first dialled within the promised time, below its "
            "target (`callback_service_level_target`).",
            callback_sl,
        ),
    ]


def pipeline_alerts(t: Thresholds = THRESHOLDS) -> list[Alert]:
    team = (("team", PIPELINE_TEAM),)
    return [
        Alert(
            "CCPipelineDown",
            "critical",
            f'sum(up{{job="{JOB}"}}) == 0',
            120,
            "No worker of the KPI pipeline answers Prometheus's scrapes.",
            "Every scrape target of job " + JOB + " is down: no KPI is computed or exported.",
            f'sum(up{{job="{JOB}"}})',
            team,
        ),
        Alert(
            "CCPipelineNotScraped",
            "critical",
            f'absent(up{{job="{JOB}"}})',
            300,
            "Prometheus has no scrape target for the KPI pipeline.",
            "Prometheus has no target of job " + JOB + ": its configuration or service discovery lost the workers.",
            f'count(up{{job="{JOB}"}})',
            team,
        ),
        Alert(
            "CCPipelineConsumerLagRising",
            "warning",
            f"sum by (topic) (cc_pipeline_consumer_lag_messages) > {t.consumer_lag_messages}\n"
            "and on (topic)\n  sum by (topic) (delta(cc_pipeline_consumer_lag_messages[{lag_window}])) > 0",
            600,
            "The pipeline's consumer lag is high and still growing.",
            "The workers are {{ $value }} messages behind on topic {{ $labels.topic }}, and falling further behind.",
            "sum by (topic) (cc_pipeline_consumer_lag_messages)",
            team,
        ),
        Alert(
            "CCPipelineDeadLettersRising",
            "warning",
            "sum by (topic, reason) (increase(cc_pipeline_rejected_events_total[{rejected_window}])) > 0",
            60,
            "Events are being rejected to the dead-letter topic.",
            "Events from topic {{ $labels.topic }} were dead-lettered in the last 10 minutes "
            "(reason {{ $labels.reason }}); the dead-letter topic has each one with its reason.",
            "sum by (topic, reason) (cc_pipeline_rejected_events_total)",
            team,
        ),
        Alert(
            "CCPipelineLateEventsRising",
            "warning",
            "sum by (queue, channel) (increase(cc_pipeline_late_events_total[{late_window}])) > 0",
            60,
            "Events arrive after their interval was final.",
            "Events of queue {{ $labels.queue }} ({{ $labels.channel }}) arrived too late to be applied in the "
            "last 10 minutes; the late-events topic has each one.",
            "sum by (queue, channel) (cc_pipeline_late_events_total)",
            team,
        ),
        Alert(
            "CCPipelineInputSkipped",
            "critical",
            "sum by (topic) (increase(cc_pipeline_skipped_offsets_total[{late_window}])) > 0",
            0,
            "Source messages were never delivered to the worker: KPIs miss them.",
            "{{ $value }} offsets of topic {{ $labels.topic }} after the last one applied were never delivered in the "
            "last 10 minutes; the KPI records of their intervals miss those events.",
            "sum by (topic) (cc_pipeline_skipped_offsets_total)",
            team,
        ),
    ]


def all_alerts() -> list[Alert]:
    return queue_alerts() + pipeline_alerts()


def _alert_rule(a: Alert, timing: Timing, runbook: str) -> dict:
    expr = a.expr
    for name, seconds in (
        ("no_contacts", THRESHOLDS.no_contacts_window),
        ("lag_window", 600),
        ("rejected_window", 600),
        ("late_window", 600),
    ):
        expr = expr.replace("{" + name + "}", timing.dur(seconds))
    return {
        "alert": a.name,
        "expr": expr,
        "for": timing.dur(a.for_seconds),
        "labels": {"severity": a.severity, **dict(a.labels)},
        "annotations": {"summary": a.summary, "description": a.description, "runbook_url": f"{runbook}#{a.anchor}"},
    }


def alert_groups(timing: Timing = DEPLOYED, runbook: str = RUNBOOK) -> list[dict]:
    return [
        {"name": "cc-queue-alerts", "rules": [_alert_rule(a, timing, runbook) for a in queue_alerts()]},
        {"name": "cc-pipeline-alerts", "rules": [_alert_rule(a, timing, runbook) for a in pipeline_alerts()]},
    ]


def alert_probes(timing: Timing = DEPLOYED) -> dict[str, str]:
    """alert name -> the expression of the signal it compares (what the end-to-end test requires data for)."""
    return {a.name: a.probe for a in all_alerts()}


# ---------------------------------------------------------------------------------------- Prometheus, Alertmanager


def prometheus_config(
    targets: list[str],
    alertmanagers: list[str],
    rule_files: list[str],
    scrape_interval: str = "15s",
    evaluation_interval: str = "15s",
    basic_auth: dict[str, str] | None = None,
    tls_config: dict[str, str] | None = None,
) -> dict:
    """`basic_auth` and `tls_config` (HTTPS) as Prometheus takes them: the workers' web config asks for them."""
    scrape: dict = {"job_name": JOB, "metrics_path": "/metrics", "static_configs": [{"targets": targets}]}
    if basic_auth:
        scrape["basic_auth"] = basic_auth
    if tls_config is not None:
        scrape["scheme"] = "https"
        scrape["tls_config"] = tls_config
    return {
        "global": {
            "scrape_interval": scrape_interval,
            "evaluation_interval": evaluation_interval,
            "external_labels": {"monitor": "cc-kpi"},
        },
        "rule_files": rule_files,
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": alertmanagers}]}]},
        "scrape_configs": [scrape],
    }


SERVICE_LEVEL_ALERTS = (
    "CCQueueServiceLevelBelowTargetFast",
    "CCQueueServiceLevelBelowTargetSlow",
    "CCQueueAbandonRateAboveTarget",
    "CCQueueNoContacts",
)
"""Alerts that a pipeline outage would cause by itself (no counts move): inhibited while it is down."""


def alertmanager_config(
    config: QueueConfig,
    webhook_base: str,
    group_wait: str = "30s",
    group_interval: str = "5m",
    repeat_interval: str = "4h",
) -> dict:
    """Routes: by team (from the queue file; `platform` for the pipeline), then by severity: critical to the
    team's paging receiver, warning to its ticket receiver, anything else nowhere."""
    teams = _teams(config)
    routes = []
    for team in teams:
        routes.append(
            {
                "matchers": [f'team="{team}"'],
                "receiver": f"{team}-ticket",
                "routes": [
                    {"matchers": ['severity="critical"'], "receiver": f"{team}-page"},
                    {"matchers": ['severity="warning"'], "receiver": f"{team}-ticket"},
                    {"matchers": ['severity!~"critical|warning"'], "receiver": "nowhere"},
                ],
            }
        )
    receivers: list[dict[str, object]] = [{"name": "nowhere"}]
    for team in teams:
        for kind in ("page", "ticket"):
            receivers.append(
                {
                    "name": f"{team}-{kind}",
                    "webhook_configs": [{"url": f"{webhook_base.rstrip('/')}/{kind}/{team}", "send_resolved": True}],
                }
            )
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            # Unknown teams still reach a person: the default team's tickets (its pages for critical).
            "receiver": f"{config.defaults.team}-ticket",
            "group_by": ["alertname", "team", "queue", "channel"],
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
            "routes": [*routes, {"matchers": ['severity="critical"'], "receiver": f"{config.defaults.team}-page"}],
        },
        "inhibit_rules": [
            {  # a pipeline outage would make every queue look silent or slow: say it once
                "source_matchers": ['alertname=~"CCPipelineDown|CCPipelineNotScraped"'],
                "target_matchers": [f'alertname=~"{"|".join(SERVICE_LEVEL_ALERTS)}"'],
            },
            {  # the page says it already; no ticket for the same queue on top
                "source_matchers": ['alertname="CCQueueServiceLevelBelowTargetFast"'],
                "target_matchers": ['alertname="CCQueueServiceLevelBelowTargetSlow"'],
                "equal": ["queue", "channel"],
            },
        ],
        "receivers": receivers,
    }


# ------------------------------------------------------------------------------------------------------- files

DEPLOY = Path(__file__).resolve().parent.parent.parent / "deploy"
HEADER = "# Generated by `python -m pipeline ops-config` from {source}; do not edit (a test fails when stale).\n"


def dump(data: dict, source: str = "deploy/queues.toml") -> str:
    class _Dumper(yaml.SafeDumper):
        pass

    def _str(dumper, value: str):  # multi-line PromQL as literal blocks: readable and diff-friendly
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    _Dumper.add_representer(str, _str)
    return HEADER.format(source=source) + yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True
    )


def generated_files(
    config: QueueConfig,
    runbook: str = RUNBOOK,
    webhook_base: str = "http://oncall-webhook:9095",
    timing: Timing = DEPLOYED,
) -> dict[str, str]:
    """Relative path under deploy/ -> content, for the production-shaped stack (compose service names)."""
    return {
        "prometheus/rules/recording.rules.yml": dump({"groups": recording_groups(config, timing)}),
        "prometheus/rules/alerts.rules.yml": dump({"groups": alert_groups(timing, runbook)}),
        "prometheus/prometheus.yml": dump(
            prometheus_config(
                ["worker-1:6066", "worker-2:6066", "worker-3:6066"],
                ["alertmanager:9093"],
                ["/etc/prometheus/rules/*.rules.yml"],
                # the workers' /metrics ask for credentials (their web config); the password is a compose secret
                basic_auth={"username": "prometheus", "password_file": "/run/secrets/scrape_password"},
            )
        ),
        "alertmanager/alertmanager.yml": dump(alertmanager_config(config, webhook_base)),
    }


def write(config: QueueConfig, root: Path = DEPLOY, runbook: str = RUNBOOK) -> list[Path]:
    written = []
    for rel, text in generated_files(config, runbook).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
