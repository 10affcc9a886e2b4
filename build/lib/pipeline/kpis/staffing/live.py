"""Live staffing: required agents per queue from the observed traffic, and what the staffed agents give.

Pure: takes queue counts and the queue's settings, returns the Erlang figures (docs/staffing.md).
- arrival rate = contacts offered / the span observed (seconds);
- AHT = handle time / handled over the same span (no handled contacts: no estimate);
- patience (Erlang A) = total time contacts spent waiting / abandons: the maximum-likelihood estimate of an
  exponential patience when answered contacts' waits are censored observations. No abandons: Erlang C.
- chat: an agent handles `chat_concurrency` contacts at once, so it is that many Erlang servers: required
  agents = servers / concurrency, rounded up; the agents staffed give staffed x concurrency servers.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.settings import QueueSettings
from pipeline.kpis.counts import QueueCounts
from pipeline.kpis.staffing.erlang import Prediction, Staffing, predict, required_agents


@dataclass(frozen=True, slots=True)
class Traffic:
    """What the counts say about the queue's traffic."""

    rate_per_second: float
    aht: float
    patience: float | None


def observed_traffic(c: QueueCounts, span_seconds: float) -> Traffic | None:
    """The traffic over a span of counts, or None when there is not enough to estimate it."""
    if span_seconds <= 0 or c.handled == 0 or c.handle_ms <= 0:
        return None
    waited = (c.answer_wait_ms + c.abandon_wait_ms) / 1000
    patience = waited / c.abandoned if c.abandoned and waited > 0 else None
    return Traffic(c.offered / span_seconds, c.handle_ms / 1000 / c.handled, patience)


def requirement(t: Traffic, rules: QueueSettings) -> Staffing:
    """The fewest Erlang servers meeting the queue's headline service level target (Erlang A when customers
    abandon) under its occupancy cap. For agents, see `agents_needed` (chat concurrency)."""
    return required_agents(
        t.rate_per_second,
        t.aht,
        rules.service_level_threshold_seconds,
        min(rules.service_level_target, 0.999),
        patience=t.patience,
        max_occupancy=rules.max_occupancy,
        variant=rules.service_level_variant,
        short_abandon_seconds=rules.short_abandon_seconds,
    )


def agents_needed(servers: int, rules: QueueSettings) -> int:
    """Agents giving `servers` Erlang servers: each handles `chat_concurrency` contacts at once."""
    return -(-servers // rules.chat_concurrency)


def prediction(t: Traffic, rules: QueueSettings, staffed: float) -> Prediction | None:
    """Service level and ASA that `staffed` agents (a share may be fractional) give at this traffic: their whole
    Erlang servers, staffed x concurrency rounded down (None without a server)."""
    servers = int(staffed * rules.chat_concurrency + 1e-9)
    if servers <= 0:
        return None
    return predict(
        servers,
        t.rate_per_second,
        t.aht,
        rules.service_level_threshold_seconds,
        patience=t.patience,
        variant=rules.service_level_variant,
        short_abandon_seconds=rules.short_abandon_seconds,
    )
