"""Why an interval missed its service level target: the method of docs/reports.md, in agents.

Pure: numbers in, numbers out. For an interval whose headline service level is below the target, the miss is
measured in contacts (`shortfall` = target x denominator - contacts within the threshold) and split between causes
by how many agents each cause took away, on the Erlang C requirement R(rate, AHT) (continuous: interpolated
between the whole numbers of agents around the target):

- volume above forecast   = R(rate, planned AHT) - R(forecast rate, planned AHT)
- AHT above plan          = R(rate, AHT) - R(rate, planned AHT)
- agents short of the plan = R(forecast rate, planned AHT) - agents able to take contacts
  - of which a not-ready spike = the not-ready agents above the usual not-ready share (at most the shortfall),
  - and the rest fewer agents logged in than required (absence).

Only the positive parts explain a miss; each cause's share is its part over their sum. When no part is positive
(by Erlang C the interval had enough agents for its traffic), the miss is put down to a backlog or a few long
waits: contacts carried over from the interval before, or a run of arrivals shorter than the interval.
Without a forecast, the rate and AHT are their own plan, so volume and AHT cannot be told apart from staffing.

The report passes the agents of the agent records (`figures`); the queue worker, which holds none, estimates them
from its own counts (`worker_miss`) for the `miss_causes` of its hour and day records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.core.settings import QueueSettings
from pipeline.kpis.counts import Forecast, QueueCounts
from pipeline.kpis.definitions import RATIO, SERVICE_LEVEL, Ratio
from pipeline.kpis.staffing.erlang import service_level

CAUSES: dict[str, str] = {
    "volume": "volume above forecast",
    "aht": "AHT above plan",
    "absence": "fewer agents than required",
    "not_ready": "not-ready spike",
    "backlog": "backlog or a few long waits (enough agents by Erlang C)",
}
MAX_TARGET = 0.999  # Erlang C never reaches 100% within a finite threshold


def agents_needed(rate_per_second: float, aht: float, threshold: float, target: float) -> float:
    """The Erlang C agents for `target` within `threshold`, as a continuous number: interpolated between the
    fewest whole agents n that meet the target and n - 1 (service level 0 at or below the load)."""
    load = rate_per_second * aht
    if load <= 0 or aht <= 0:
        return 0.0
    target = min(target, MAX_TARGET)
    n = math.floor(load) + 1
    below = 0.0
    while True:
        sl = service_level(n, load, aht, threshold)
        if sl >= target:
            return n - 1 + (target - below) / (sl - below) if sl > below else float(n)
        below = sl
        n += 1


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the records say about one queue, channel and interval."""

    interval_seconds: float
    threshold: float
    target: float
    offered: int
    aht: float | None  # None: nothing handled
    forecast_offered: float | None
    forecast_aht: float | None
    agents_available: float  # agent-equivalents able to take contacts (logged in and not not-ready)
    not_ready_excess: float  # not-ready agent-equivalents above the usual share


def contributions(e: Evidence) -> dict[str, float]:
    """Each cause's part of the miss in agents (positive parts only; see the module docstring)."""
    span = e.interval_seconds
    rate = e.offered / span
    aht = e.aht if e.aht else e.forecast_aht
    if not aht:
        return {"backlog": 1.0}
    plan_rate = e.forecast_offered / span if e.forecast_offered is not None else rate
    plan_aht = e.forecast_aht if e.forecast_aht else aht

    def need(r: float, h: float) -> float:
        return agents_needed(r, h, e.threshold, e.target)

    planned = need(plan_rate, plan_aht)
    at_volume = need(rate, plan_aht)
    actual = need(rate, aht)
    short = planned - e.agents_available
    not_ready = min(max(e.not_ready_excess, 0.0), max(short, 0.0))
    parts = {
        "volume": at_volume - planned,
        "aht": actual - at_volume,
        "not_ready": not_ready,
        "absence": short - not_ready,
    }
    positive = {c: v for c, v in parts.items() if v > 1e-9}
    return positive or {"backlog": 1.0}


def shares(parts: dict[str, float]) -> dict[str, float]:
    """Parts as shares of their sum, largest first."""
    total = sum(parts.values())
    if total <= 0:
        return {}
    return dict(sorted(((c, v / total) for c, v in parts.items()), key=lambda cv: -cv[1]))


def _terms(c: QueueCounts, terms: tuple[str, ...]) -> int:
    """A side of a ratio definition ('-field' subtracts), as the definition's own `value` adds it."""
    return sum(-getattr(c, t[1:]) if t.startswith("-") else getattr(c, t) for t in terms)


def shortfall(c: QueueCounts, definition: Ratio, target: float) -> float:
    """Contacts short of the target: target x denominator - numerator (0 when met)."""
    return max(0.0, target * _terms(c, definition.denominator) - _terms(c, definition.numerator))


def headline_shortfall(c: QueueCounts, rules: QueueSettings) -> float:
    """Contacts short of the queue's headline service level target."""
    return shortfall(c, SERVICE_LEVEL[rules.service_level_variant], rules.service_level_target)


def worker_miss(
    c: QueueCounts, rules: QueueSettings, span_seconds: float, forecast: Forecast | None
) -> dict[str, float]:
    """For the queue worker's records: the contacts a final interval was short of its target, split by cause
    (shortfall x share; empty when met). The worker holds no agent states (they are on the agent topic), so the
    agents available are estimated as the agents busy on the queue's contacts (handle time over the interval: in
    an interval that missed, contacts waited, so agents able to take them were busy; low by their idle time), and
    a not-ready spike cannot be told from absence: both are `absence` here. The report, which reads the agent
    records, gives the fuller split."""
    short = headline_shortfall(c, rules)
    if short <= 0:
        return {}
    evidence = Evidence(
        interval_seconds=span_seconds,
        threshold=rules.service_level_threshold_seconds,
        target=rules.service_level_target,
        offered=c.offered,
        aht=RATIO["aht"].value(c),
        forecast_offered=forecast.offered if forecast else None,
        forecast_aht=forecast.aht_seconds if forecast else None,
        agents_available=c.handle_ms / 1000 / span_seconds,
        not_ready_excess=0.0,
    )
    return {cause: short * share for cause, share in shares(contributions(evidence)).items()}
