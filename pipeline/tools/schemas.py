"""Writes the JSON Schemas in schemas/ from the contract's own classes (`python -m pipeline schemas`).

The classes in `pipeline.contract.events` and `pipeline.kpis.record` are the source; a test fails when the
committed files differ from what this module generates, and validates every example against them.
"""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypedDict

import msgspec
import orjson

from pipeline.contract import events as ev
from pipeline.core.settings import QueueSettings
from pipeline.kpis.agents import AgentCounts, AgentIntervalUpdate, AgentKpiRecord, build_agent_record
from pipeline.kpis.counts import Forecast, HandlingCounts, IntervalUpdate, QueueCounts
from pipeline.kpis.quality import FcrCounts, FcrRecord, FcrUpdate, build_fcr_record
from pipeline.kpis.record import KpiRecord, build_record
from pipeline.state.repeats import CustomerContact, CustomerContactMessage, SourceWatermark

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
T = datetime(2026, 1, 5, 9, 0, 12, 250000, tzinfo=UTC)


class _Leg(TypedDict):
    """The fields every event of one contact's leg repeats."""

    contact_id: str
    queue_id: str
    channel: Literal["voice", "chat"]


def _examples_contact() -> list[ev.Event]:
    leg: _Leg = {"contact_id": "c-1001", "queue_id": "support", "channel": "voice"}
    return [
        ev.ContactOffered(event_id="e-1", time=T, customer_id="cust-42", **leg),
        ev.ContactAnswered(event_id="e-2", time=T.replace(second=30), agent_id="agent-007", **leg),
        ev.HoldStarted(event_id="e-3", time=T.replace(minute=2), agent_id="agent-007", **leg),
        ev.HoldEnded(event_id="e-4", time=T.replace(minute=3), agent_id="agent-007", **leg),
        ev.ContactEnded(event_id="e-5", time=T.replace(minute=5), agent_id="agent-007", **leg),
        ev.AcwEnded(event_id="e-6", time=T.replace(minute=6), agent_id="agent-007", disposition="resolved", **leg),
        ev.ContactOffered(event_id="e-7", time=T, contact_id="c-1002", queue_id="sales-chat", channel="chat"),
        ev.ContactAbandoned(
            event_id="e-8", time=T.replace(minute=1), contact_id="c-1002", queue_id="sales-chat", channel="chat"
        ),
        ev.ContactTransferred(
            event_id="e-9",
            time=T.replace(minute=4),
            agent_id="agent-003",
            to_queue_id="billing",
            contact_id="c-1003",
            queue_id="sales",
            channel="voice",
        ),
        ev.ContactFlowedOut(
            event_id="e-10",
            time=T.replace(minute=3),
            to_queue_id="support",
            contact_id="c-1004",
            queue_id="sales",
            channel="voice",
        ),
        ev.CallbackRequested(event_id="e-11", time=T.replace(minute=2), **(leg | {"contact_id": "c-1005"})),
        # a callback's lifecycle: promised within the hour, moved, dialled twice, connected on the second attempt
        ev.CallbackRequested(
            event_id="e-16",
            time=T.replace(minute=3),
            promised_by=T.replace(minute=45),
            **(leg | {"contact_id": "c-1006"}),
        ),
        ev.CallbackScheduled(
            event_id="e-17",
            time=T.replace(minute=4),
            promised_by=T.replace(minute=50),
            **(leg | {"contact_id": "c-1006"}),
        ),
        ev.CallbackDialled(
            event_id="e-18",
            time=T.replace(minute=30),
            attempt=1,
            agent_id="agent-007",
            **(leg | {"contact_id": "c-1006"}),
        ),
        ev.CallbackDialled(event_id="e-19", time=T.replace(minute=40), attempt=2, **(leg | {"contact_id": "c-1006"})),
        ev.CallbackConnected(event_id="e-20", time=T.replace(minute=41), attempt=2, **(leg | {"contact_id": "c-1006"})),
        ev.CallbackFailed(event_id="e-21", time=T.replace(hour=11), attempts=3, **(leg | {"contact_id": "c-1005"})),
        # offers of contact c-1001 before agent-007 answered it: agent-003 let it ring out (RONA)
        ev.OfferRinging(event_id="e-22", time=T.replace(second=14), offer_id="o-1", agent_id="agent-003", **leg),
        ev.OfferMissed(event_id="e-23", time=T.replace(second=24), offer_id="o-1", agent_id="agent-003", **leg),
        ev.OfferRinging(event_id="e-24", time=T.replace(second=25), offer_id="o-2", agent_id="agent-009", **leg),
        ev.OfferRejected(event_id="e-25", time=T.replace(second=26), offer_id="o-2", agent_id="agent-009", **leg),
        ev.OfferRinging(event_id="e-26", time=T.replace(second=27), offer_id="o-3", agent_id="agent-007", **leg),
        ev.OfferAccepted(event_id="e-27", time=T.replace(second=30), offer_id="o-3", agent_id="agent-007", **leg),
        ev.ChatMessage(
            event_id="e-15",
            time=T.replace(minute=1),
            sender="agent",
            agent_id="agent-003",
            contact_id="c-1002",
            queue_id="sales-chat",
            channel="chat",
        ),
        ev.SurveyCompleted(event_id="e-12", time=T.replace(minute=8), score=4, **leg),
        ev.IvrSessionEnded(
            event_id="e-13",
            time=T.replace(minute=1),
            session_id="ivr-88",
            queue_id="support",
            channel="voice",
            contained=True,
        ),
        ev.ForecastPublished(
            event_id="e-14",
            time=T.replace(hour=6),
            queue_id="support",
            channel="voice",
            interval_start=T.replace(minute=0, second=0, microsecond=0),
            offered=45.0,
            aht_seconds=300.0,
        ),
        ev.SourceHeartbeat(event_id="hb-1", time=T.replace(minute=10)),
    ]


def _examples_agent() -> list[ev.Event]:
    return [
        ev.AgentLoggedIn(event_id="a-1", time=T, agent_id="agent-007", queue_ids=["support", "billing"]),
        ev.AgentStateChanged(event_id="a-2", time=T.replace(second=5), agent_id="agent-007", state="available"),
        ev.AgentStateChanged(
            event_id="a-3", time=T.replace(minute=30), agent_id="agent-007", state="not_ready", reason_code="break"
        ),
        ev.AgentLoggedOut(event_id="a-4", time=T.replace(hour=17), agent_id="agent-007"),
        ev.AgentStateChanged(
            event_id="a-5", time=T.replace(minute=40), agent_id="agent-012", state="on_contact", active_contacts=2
        ),
        ev.ScheduleActivityPlanned(
            event_id="s-1",
            time=T.replace(hour=6),
            agent_id="agent-007",
            schedule_id="wfm-2026-01-05",
            version=1,
            activity="contact_handling",
            start=T.replace(minute=0, second=0, microsecond=0),
            end=T.replace(hour=12, minute=0, second=0, microsecond=0),
        ),
        ev.ScheduleActivityPlanned(
            event_id="s-2",
            time=T.replace(hour=10),
            agent_id="agent-007",
            schedule_id="wfm-2026-01-05",
            version=2,
            activity="break",
            start=T.replace(hour=10, minute=30, second=0, microsecond=0),
            end=T.replace(hour=10, minute=45, second=0, microsecond=0),
        ),
        ev.SourceHeartbeat(event_id="hb-a-1", time=T.replace(minute=10)),
    ]


def _example_agent_record() -> AgentKpiRecord:
    c = AgentCounts(
        logged_in_ms=900_000,
        available_ms=120_000,
        on_contact_ms=540_000,
        acw_ms=90_000,
        not_ready_ms=150_000,
        contact_ms=720_000,
        scheduled_ms=900_000,
        adherent_ms=840_000,
        not_ready_by_reason_ms={"break": 150_000},
        queues={"support", "billing"},
    )
    return build_agent_record(AgentIntervalUpdate("agent-007", 1767603600, 2, True, c), 900)


def _example_record() -> KpiRecord:
    c = QueueCounts(
        offered=42,
        answered=38,
        abandoned=3,
        short_abandoned=1,
        answered_within_threshold=33,
        abandoned_within_threshold=2,
        answer_wait_ms=304_500,
        abandon_wait_ms=41_000,
        longest_wait_ms=61_250,
        waits={
            "answered:20000": 33,
            "answered:60000": 5,
            "abandoned:5000": 1,
            "abandoned:20000": 1,
            "abandoned:60000": 1,
        },
        handled=2,
        handle_ms=636_000,
        hold_ms=40_000,
        acw_ms=80_000,
        held=1,
        transferred_out=1,
        surveys=1,
        survey_score_sum=4,
        surveys_satisfied=1,
        ivr_sessions=3,
        ivr_contained=1,
    )
    agent = HandlingCounts(handled=1, handle_ms=330_000, hold_ms=40_000, acw_ms=50_000, held=1)
    update = IntervalUpdate(
        "support",
        "voice",
        1767603600,
        3,
        True,
        c,
        QueueSettings(),
        {"agent-007": agent},
        Forecast(1767592800000, 45.0, 300.0),
    )
    return build_record(update, 900, (5000, 20000, 60000))


def _example_fcr_record() -> FcrRecord:
    counts = FcrCounts(eligible=40, unresolved=7, repeats=5, ineligible=2)
    return build_fcr_record(FcrUpdate("support", "voice", 1767603600, 2, True, counts), 900, 24.0)


def _examples_customer_contact() -> list:
    customer = "5a1c0f9e" * 8  # a keyed hash (HMAC-SHA256, hex) of a customer id, never the id itself
    return [
        CustomerContact(
            customer=customer,
            contact_id="c-1001",
            queue_id="support",
            channel="voice",
            time_ms=1767603612250,
            event_id="e-1",
        ),
        CustomerContact(
            customer=None,
            contact_id="c-1002",
            queue_id="sales-chat",
            channel="chat",
            time_ms=1767603612250,
            event_id="e-7",
        ),
        SourceWatermark(partition=0, watermark_ms=1767604212250),
    ]


def _cleaned(node):
    """Descriptions dedented the same way whatever msgspec's version (0.23 started to dedent docstrings itself,
    which made the committed schemas stale on a fresh install)."""
    if isinstance(node, dict):
        return {
            k: inspect.cleandoc(v) if k == "description" and isinstance(v, str) else _cleaned(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_cleaned(v) for v in node]
    return node


def _schema(name: str, title: str, typ, examples) -> dict:
    schema = _cleaned(msgspec.json.schema(typ))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://github.com/cc-kpi-pipeline/schemas/{name}",
        "title": title,
        **schema,
        "examples": [orjson.loads(msgspec.json.encode(x)) for x in examples],
    }


def generate() -> dict[str, str]:
    """File name → content of every generated schema."""
    batch = list[ev.ContactTopicEvent]  # the batching option: a message may be an array of events
    docs = {
        "contact-event.v1.json": _schema(
            "contact-event.v1.json",
            "Contact event (topic <prefix>.contact-events)",
            ev.ContactTopicEvent | batch,
            _examples_contact(),
        ),
        "agent-event.v1.json": _schema(
            "agent-event.v1.json",
            "Agent event (topic <prefix>.agent-events)",
            ev.AgentTopicEvent | list[ev.AgentTopicEvent],
            _examples_agent(),
        ),
        "kpi-record.v1.json": _schema(
            "kpi-record.v1.json", "KPI record (topic <prefix>.kpis)", KpiRecord, [_example_record()]
        ),
        "agent-kpi-record.v1.json": _schema(
            "agent-kpi-record.v1.json",
            "Agent KPI record (topic <prefix>.kpis, kind `agent`)",
            AgentKpiRecord,
            [_example_agent_record()],
        ),
        "fcr-record.v1.json": _schema(
            "fcr-record.v1.json", "FCR record (topic <prefix>.kpis, kind `fcr`)", FcrRecord, [_example_fcr_record()]
        ),
        "customer-contact.v1.json": _schema(
            "customer-contact.v1.json",
            "Customer contact (internal topic <app id>-customer-contacts)",
            CustomerContactMessage,
            _examples_customer_contact(),
        ),
    }
    return {
        name: orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
        for name, doc in docs.items()
    }


def write(directory: Path = SCHEMA_DIR) -> list[Path]:
    paths = []
    for name, text in generate().items():
        path = directory / name
        path.write_text(text)
        paths.append(path)
    return paths
