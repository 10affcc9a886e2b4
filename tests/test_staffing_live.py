"""Live staffing: required agents from the recent traffic, staffed agents from the agent state, the gap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from eventlog import keyed_messages
from prometheus_client.parser import text_string_to_metric_families

from pipeline.contract import events as ev
from pipeline.core.settings import QueueConfig, QueueSettings, load_settings
from pipeline.exposition.metrics import build_registry, exposition
from pipeline.kpis.counts import QueueCounts
from pipeline.kpis.staffing import predict, required_agents
from pipeline.kpis.staffing.live import observed_traffic
from pipeline.processing.processor import AgentProcessor, ContactProcessor, PipelineStats

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_observed_traffic_estimates_rate_aht_and_exponential_patience():
    c = QueueCounts(
        offered=120,
        answered=100,
        abandoned=20,
        answer_wait_ms=1_000_000,
        abandon_wait_ms=200_000,
        handled=90,
        handle_ms=90 * 240_000,
    )
    t = observed_traffic(c, 1800)
    assert t.rate_per_second == pytest.approx(120 / 1800) and t.aht == pytest.approx(240)
    assert t.patience == pytest.approx((1000 + 200) / 20)  # time exposed to abandoning / abandons
    assert observed_traffic(QueueCounts(offered=3), 900) is None  # nothing handled: no AHT yet


def contact_stream() -> list[ev.Event]:
    """Two quarter hours of 'sales': 30 contacts each, answered after 10 s, 200 s talk, 40 s wrap-up."""
    out: list[ev.Event] = []
    for i in range(60):
        t = T0 + timedelta(seconds=30 * i)
        ids = dict(contact_id=f"c{i}", queue_id="sales", channel="voice")
        out += [
            ev.ContactOffered(event_id=f"{i}o", time=t, **ids),
            ev.ContactAnswered(event_id=f"{i}a", time=t + timedelta(seconds=10), agent_id="a1", **ids),
            ev.ContactEnded(event_id=f"{i}e", time=t + timedelta(seconds=210), agent_id="a1", **ids),
            ev.AcwEnded(event_id=f"{i}w", time=t + timedelta(seconds=250), agent_id="a1", disposition="x", **ids),
        ]
    out.sort(key=lambda e: e.time)
    return out + [ev.SourceHeartbeat(event_id="hb", time=T0 + timedelta(minutes=20))]


def test_collector_exports_required_staffed_and_prediction():
    settings = load_settings(broker_url="x:1")
    stats = PipelineStats()
    contacts = ContactProcessor(settings, QueueConfig(), stats)
    agents = AgentProcessor(settings, stats)
    events = contact_stream()
    contacts.process(keyed_messages("c", events, settings.partitions), lambda p: None)
    logins = [ev.AgentLoggedIn(event_id=f"l{n}", time=T0, agent_id=f"ag{n}", queue_ids=["sales"]) for n in range(4)]
    ready = [ev.AgentStateChanged(event_id=f"r{n}", time=T0, agent_id=f"ag{n}", state="available") for n in range(3)]
    heartbeat = ev.SourceHeartbeat(event_id="hb", time=T0)  # on every agent partition: this worker holds them all
    agents.process(keyed_messages("a", [*logins, *ready, heartbeat], settings.partitions))
    text = exposition(build_registry(contacts, stats, agents)).decode()
    values = {
        (s.name, s.labels.get("queue")): s.value for fam in text_string_to_metric_families(text) for s in fam.samples
    }

    # independent: events run to 09:33:40 (the last wrap-up), so 09:15-09:30 is the newest final interval;
    # recent = it and what follows: 30 arrivals, and the 38 wrap-ups ending from 09:15 on (contacts 22..59)
    state = contacts.partitions[0]
    ((_, _, recent, span),) = list(state.recent())
    assert span == (33 * 60 + 40) - 15 * 60
    assert recent.offered == 30 and recent.handled == 38
    rules = QueueSettings()
    need = required_agents(30 / span, 250.0, rules.service_level_threshold_seconds, rules.service_level_target)
    assert values[("cc_queue_agents_required", "sales")] == need.agents
    assert values[("cc_queue_agents_staffed", "sales")] == 3  # ag3 is logged in but not ready
    assert ("cc_queue_agents_gap", "sales") not in values  # the gap is a recording rule over all workers
    p = predict(3, 30 / span, 250.0, rules.service_level_threshold_seconds)
    assert values[("cc_queue_predicted_service_level", "sales")] == pytest.approx(p.service_level)
