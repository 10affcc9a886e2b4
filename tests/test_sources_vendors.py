"""The vendor adapters (pipeline/sources/connect.py, taskrouter.py, genesys.py): records written from each vendor's
documented format, rejections with a reason, stable ids, and a simulated day that gives the same queue KPIs
through the vendor's format as in the contract (the batch reference computation, tests/batch_kpis.py)."""

from __future__ import annotations

import copy
import functools
import operator
from dataclasses import replace
from datetime import UTC, datetime

import batch_agents
import msgspec
import orjson
import pytest
from batch_kpis import compute
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.contract import events as ev
from pipeline.kpis.counts import QueueCounts
from pipeline.sources import connect, genesys, taskrouter
from pipeline.sources.common import Rejected, Tally, guarded
from pipeline.tools.simulate import CenterConfig, main_simulate, simulate
from pipeline.tools.simulate.vendor_formats import WRITERS

INSTANCE = "arn:aws:connect:us-east-1:012345678901:instance/aaaaaaaa-bbbb-cccc-dddd-111111111111"
TRANSLATE = {"connect": connect.translate, "taskrouter": taskrouter.translate, "genesys": genesys.translate}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# ---- Amazon Connect ----------------------------------------------------------------------------------------
# Contact events: https://docs.aws.amazon.com/connect/latest/adminguide/contact-events.html (the EventBridge event
# with detail-type "Amazon Connect Contact Event"; detail.eventType, contactId, channel, queueInfo, agentInfo,
# disconnectTimestamp).


def connect_contact(event_type: str, **detail: object) -> dict:
    return {
        "version": "0",
        "id": "1f5d6ee2-4e4e-2e2b-1a94-2a4c30d2d6f1",
        "detail-type": "Amazon Connect Contact Event",
        "source": "aws.connect",
        "account": "012345678901",
        "time": "2021-03-05T15:31:00Z",
        "region": "us-east-1",
        "resources": [f"{INSTANCE}/contact/c-1"],
        "detail": {
            "eventType": event_type,
            "contactId": "c-1",
            "channel": "VOICE",
            "instanceArn": INSTANCE,
            "initiationMethod": "INBOUND",
            "queueInfo": {
                "queueArn": f"{INSTANCE}/queue/q-sales",
                "enqueueTimestamp": "2021-03-05T15:30:10.120Z",
                "queueType": "STANDARD",
            },
            **detail,
        },
    }


AGENT_INFO = {"agentArn": f"{INSTANCE}/agent/a-7", "connectedToAgentTimestamp": "2021-03-05T15:30:31.500Z"}


def test_connect_contact_lifecycle_becomes_a_queue_leg():
    customer = {"customerEndpoint": {"address": "+15550100", "type": "TELEPHONE_NUMBER"}}
    offered = connect.translate(connect_contact("QUEUED", **customer)).events
    assert offered == (
        ev.ContactOffered(
            event_id=offered[0].event_id,
            time=at("2021-03-05T15:30:10.120Z"),
            contact_id="c-1",
            queue_id="q-sales",
            channel="voice",
            customer_id="+15550100",
        ),
    )
    (answered,) = connect.translate(connect_contact("CONNECTED_TO_AGENT", agentInfo=AGENT_INFO)).events
    assert isinstance(answered, ev.ContactAnswered) and answered.agent_id == "a-7"
    assert answered.time == at("2021-03-05T15:30:31.500Z")
    (ended,) = connect.translate(
        connect_contact("DISCONNECTED", agentInfo=AGENT_INFO, disconnectTimestamp="2021-03-05T15:35:00.000Z")
    ).events
    assert isinstance(ended, ev.ContactEnded) and ended.time == at("2021-03-05T15:35:00Z")
    acw = {**AGENT_INFO, "afterContactWorkEndTimestamp": "2021-03-05T15:36:00.250Z"}
    (done,) = connect.translate(
        connect_contact("COMPLETED", agentInfo=acw, disconnectTimestamp="2021-03-05T15:35:00.000Z")
    ).events
    assert isinstance(done, ev.AcwEnded) and done.time == at("2021-03-05T15:36:00.250Z")
    # without ACW fields the after-contact work is explicitly zero long: it ends at the disconnect
    (no_acw,) = connect.translate(
        connect_contact("COMPLETED", agentInfo=AGENT_INFO, disconnectTimestamp="2021-03-05T15:35:00.000Z")
    ).events
    assert no_acw.time == at("2021-03-05T15:35:00Z")


def test_connect_disconnect_without_agent_is_an_abandon_and_irrelevant_types_are_ignored():
    (gone,) = connect.translate(connect_contact("DISCONNECTED", disconnectTimestamp="2021-03-05T15:30:40Z")).events
    assert isinstance(gone, ev.ContactAbandoned)
    assert connect.translate(connect_contact("INITIATED")).ignored == "irrelevant_event_type"
    assert connect.translate(connect_contact("SOMETHING_NEW")).ignored == "unknown_event_type"
    assert connect.translate(connect_contact("QUEUED", channel="TASK")).ignored == "unsupported_channel"
    ivr_only = connect_contact("DISCONNECTED", disconnectTimestamp="2021-03-05T15:30:40Z")
    del ivr_only["detail"]["queueInfo"]
    assert connect.translate(ivr_only).ignored == "not_queued"


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"detail-type": "Amazon Connect Contact Event", "detail": {"eventType": "QUEUED"}}, "missing_field"),
        (connect_contact("QUEUED", contactId=""), "missing_field"),
        (connect_contact("DISCONNECTED", disconnectTimestamp="yesterday"), "bad_time"),
        (connect_contact("DISCONNECTED", disconnectTimestamp="2021-03-05T15:30:40"), "bad_time"),
        ({"hello": "world"}, "unknown_record"),
        ([1, 2], "not_an_object"),
    ],
)
def test_connect_malformed_records_are_rejected_with_a_reason(record, reason):
    with pytest.raises(Rejected) as info:
        connect.translate(record)
    assert info.value.reason == reason


# Queued callbacks: https://docs.aws.amazon.com/connect/latest/adminguide/queued-callback-example.html (John's
# callback contact: initiated 11:37, in CallbackQueue at 11:38:39 after the 99 s initial delay, accepted by an agent
# at 11:39:00, John called at 11:39:10) and failed-callback-attempt.html ("Amazon Connect removes the callback from
# the queue when it's connected to the agent. At that time, Amazon Connect starts dialing the customer"; a failed
# attempt: "an agent accepts a callback but then something goes wrong"). The contact events are those of
# contact-events.html, with `initiationMethod` CALLBACK; CONNECTED_TO_SYSTEM: "the contact has established media".


def connect_callback(event_type: str, **detail: object) -> dict:
    record = connect_contact(event_type, contactId="cb-1", initiationMethod="CALLBACK", **detail)
    record["detail"]["previousContactId"] = "c-1"  # John's inbound contact
    record["detail"]["initiationTimestamp"] = "2021-03-05T11:37:00Z"
    record["detail"]["queueInfo"] = {
        "queueArn": f"{INSTANCE}/queue/q-callbacks",
        "enqueueTimestamp": "2021-03-05T11:38:39Z",
        "queueType": "STANDARD",
    }
    return record


CALLBACK_AGENT = {"agentArn": f"{INSTANCE}/agent/a-7", "connectedToAgentTimestamp": "2021-03-05T11:39:00Z"}


def test_connect_queued_callback_is_a_callback_lifecycle_beside_its_leg():
    leg = {"contact_id": "cb-1", "queue_id": "q-callbacks", "channel": "voice"}
    (queued,) = connect.translate(connect_callback("QUEUED")).events
    assert isinstance(queued, ev.ContactOffered) and queued.time == at("2021-03-05T11:38:39Z")  # no promise
    answered, dialled = connect.translate(connect_callback("CONNECTED_TO_AGENT", agentInfo=CALLBACK_AGENT)).events
    assert isinstance(answered, ev.ContactAnswered)
    assert dialled == ev.CallbackDialled(
        event_id=dialled.event_id, time=at("2021-03-05T11:39:00Z"), attempt=1, agent_id="a-7", **leg
    )
    picked_up = "2021-03-05T11:39:14Z"  # after the 11:39:10 dial; the example gives no exact pick-up time
    (connected,) = connect.translate(
        connect_callback("CONNECTED_TO_SYSTEM", connectedToSystemTimestamp=picked_up)
    ).events
    assert connected == ev.CallbackConnected(event_id=connected.event_id, time=at(picked_up), attempt=1, **leg)
    hung_up = {"connectedToSystemTimestamp": picked_up, "disconnectTimestamp": "2021-03-05T11:45:00Z"}
    ended, connected_again = connect.translate(
        connect_callback("DISCONNECTED", agentInfo=CALLBACK_AGENT, **hung_up)
    ).events
    assert isinstance(ended, ev.ContactEnded)
    assert connected_again == connected  # the same fact from both events: the same id, counted once
    # the callback's KPIs as the batch computation counts them: one dial, connected at its first attempt
    records = [
        connect_callback("QUEUED"),
        connect_callback("CONNECTED_TO_AGENT", agentInfo=CALLBACK_AGENT),
        connect_callback("CONNECTED_TO_SYSTEM", connectedToSystemTimestamp=picked_up),
        connect_callback("DISCONNECTED", agentInfo=CALLBACK_AGENT, **hung_up),
    ]
    tally = Tally()
    for r in records:
        tally.add(connect.translate(r))
    _, totals = compute(tally.events, 900, lambda q: 20.0)
    counts = totals["q-callbacks", "voice"]
    assert (counts.callback_dials, counts.callbacks_connected, counts.callbacks_failed) == (1, 1, 0)
    assert counts.callback_attempts == 1 and counts.callbacks_dialled_promised == 0  # Connect promises no time
    # an inbound contact's CONNECTED_TO_SYSTEM is no callback's
    assert connect.translate(connect_contact("CONNECTED_TO_SYSTEM")).ignored == "irrelevant_event_type"


def test_connect_callback_that_never_reached_the_customer_fails():
    # an agent took it (Connect dialled) but the customer was never connected: a failed attempt
    _, failed = connect.translate(
        connect_callback("DISCONNECTED", agentInfo=CALLBACK_AGENT, disconnectTimestamp="2021-03-05T11:40:00Z")
    ).events
    assert isinstance(failed, ev.CallbackFailed) and failed.attempts == 1
    assert failed.time == at("2021-03-05T11:40:00Z")
    # it left the callback queue without an agent: never dialled
    _, dropped = connect.translate(connect_callback("DISCONNECTED", disconnectTimestamp="2021-03-05T11:50:00Z")).events
    assert isinstance(dropped, ev.CallbackFailed) and dropped.attempts == 0
    # the pick-up time of a callback's CONNECTED_TO_SYSTEM is its fact: without it the record is rejected
    with pytest.raises(Rejected) as info:
        connect.translate(connect_callback("CONNECTED_TO_SYSTEM"))
    assert info.value.reason == "missing_field"
    tally = Tally()
    tally.add(connect.translate(connect_callback("CONNECTED_TO_AGENT", agentInfo=CALLBACK_AGENT)))
    tally.add(
        connect.translate(
            connect_callback("DISCONNECTED", agentInfo=CALLBACK_AGENT, disconnectTimestamp="2021-03-05T11:40:00Z")
        )
    )
    _, totals = compute(tally.events, 900, lambda q: 20.0)
    counts = totals["q-callbacks", "voice"]
    assert (counts.callback_dials, counts.callbacks_connected, counts.callbacks_failed) == (1, 0, 1)


# Agent event stream: https://docs.aws.amazon.com/connect/latest/adminguide/agent-event-stream-model.html (AgentEvent
# with Previous/CurrentAgentSnapshot: AgentStatus, Configuration.RoutingProfile, Contacts[].State);
# contact states: https://docs.aws.amazon.com/connect/latest/adminguide/about-contact-states.html


def agent_snapshot(status: str, status_type: str, contact_state: str | None) -> dict:
    contacts = []
    if contact_state:
        contacts.append(
            {
                "Channel": "VOICE",
                "ConnectedToAgentTimestamp": "2019-05-25T18:52:50.000Z",
                "ContactId": "c-9",
                "InitiationMethod": "INBOUND",
                "Queue": {"ARN": f"{INSTANCE}/queue/q-support", "Name": "Support"},
                "QueueTimestamp": "2019-05-25T18:52:40.000Z",
                "State": contact_state,
                "StateStartTimestamp": "2019-05-25T18:55:27.017Z",
            }
        )
    return {
        "AgentStatus": {"ARN": f"{INSTANCE}/agent-state/x", "Name": status, "Type": status_type},
        "Configuration": {
            "Username": "agent1",
            "RoutingProfile": {
                "InboundQueues": [
                    {"ARN": f"{INSTANCE}/queue/q-support", "Name": "Support"},
                    {"ARN": f"{INSTANCE}/queue/agent/a-1", "Name": None},
                ]
            },
        },
        "Contacts": contacts,
    }


def agent_event(kind: str, previous: dict | None, current: dict) -> dict:
    return {
        "AWSAccountId": "012345678901",
        "AgentARN": f"{INSTANCE}/agent/a-1",
        "CurrentAgentSnapshot": current,
        "EventId": "477f2c4f-cd1a-4785-b1a8-c450f78d1ba1",
        "EventTimestamp": "2019-05-25T18:55:27.017Z",
        "EventType": kind,
        "InstanceARN": INSTANCE,
        "PreviousAgentSnapshot": previous,
        "Version": "2017-10-01",
    }


def test_connect_agent_stream_login_hold_and_states():
    login, state = connect.translate(agent_event("LOGIN", None, agent_snapshot("Available", "ROUTABLE", None))).events
    assert login == ev.AgentLoggedIn(
        event_id=login.event_id, time=at("2019-05-25T18:55:27.017Z"), agent_id="a-1", queue_ids=["q-support"]
    )
    assert isinstance(state, ev.AgentStateChanged) and state.state == "available" and state.time == login.time
    talking = agent_snapshot("Available", "ROUTABLE", "CONNECTED")
    on_hold = agent_snapshot("Available", "ROUTABLE", "CONNECTED_ONHOLD")
    hold = connect.translate(agent_event("STATE_CHANGE", talking, on_hold)).events
    assert [type(e) for e in hold] == [ev.HoldStarted]  # still on_contact: no state change
    assert hold[0].queue_id == "q-support" and hold[0].agent_id == "a-1" and hold[0].contact_id == "c-9"
    (back,) = connect.translate(agent_event("STATE_CHANGE", on_hold, talking)).events
    assert isinstance(back, ev.HoldEnded)
    (acw,) = connect.translate(
        agent_event("STATE_CHANGE", talking, agent_snapshot("Available", "ROUTABLE", "ENDED"))
    ).events
    assert isinstance(acw, ev.AgentStateChanged) and (acw.state, acw.active_contacts) == ("acw", 1)
    (brk,) = connect.translate(
        agent_event(
            "STATE_CHANGE", agent_snapshot("Available", "ROUTABLE", None), agent_snapshot("Lunch", "CUSTOM", None)
        )
    ).events
    assert (brk.state, brk.reason_code) == ("not_ready", "Lunch")
    assert connect.translate(agent_event("HEART_BEAT", talking, talking)).ignored == "heartbeat"
    (out,) = connect.translate(agent_event("LOGOUT", talking, agent_snapshot("Offline", "OFFLINE", None))).events
    assert isinstance(out, ev.AgentLoggedOut)


def test_connect_agent_stream_contact_states_are_offers():
    """about-contact-states: CONNECTING "An inbound contact is being offered to the agent (it's ringing)", CONNECTED
    "The agent has accepted the contact", MISSED "The contact was missed by the agent", REJECTED "rejected by the
    agent, or the customer abandoned the contact when it was connecting to the agent"."""

    def snap(state: str | None, start: str, method: str = "INBOUND") -> dict:
        s = agent_snapshot("Available", "ROUTABLE", state)
        for c in s["Contacts"]:
            c["StateStartTimestamp"], c["InitiationMethod"] = start, method
            if state == "CONNECTING":
                del c["ConnectedToAgentTimestamp"]  # not connected yet
        return s

    idle = agent_snapshot("Available", "ROUTABLE", None)
    ring = snap("CONNECTING", "2019-05-25T18:55:20.011Z")
    (ringing,) = connect.translate(agent_event("STATE_CHANGE", idle, ring)).events
    assert isinstance(ringing, ev.OfferRinging) and ringing.time == at("2019-05-25T18:55:20.011Z")
    assert (ringing.contact_id, ringing.queue_id, ringing.channel, ringing.agent_id) == (
        "c-9",
        "q-support",
        "voice",
        "a-1",
    )
    outcomes = {"CONNECTED": ev.OfferAccepted, "MISSED": ev.OfferMissed, "REJECTED": ev.OfferRejected}
    for state, cls in outcomes.items():
        events = connect.translate(agent_event("STATE_CHANGE", ring, snap(state, "2019-05-25T18:55:27.017Z"))).events
        (end,) = [e for e in events if isinstance(e, cls)]
        assert end.offer_id == ringing.offer_id and end.agent_id == "a-1" and end.time == at("2019-05-25T18:55:27.017Z")
        assert sum(isinstance(e, ev.OfferAccepted | ev.OfferMissed | ev.OfferRejected) for e in events) == 1
    # the accept: ring time 7.006 s, counted as the batch computation counts offers
    accept = connect.translate(agent_event("STATE_CHANGE", ring, snap("CONNECTED", "2019-05-25T18:55:27.017Z")))
    _, totals = compute([ringing, *accept.events], 900, lambda q: 20.0)
    (c,) = totals.values()
    assert (c.agent_offers, c.agent_offers_accepted, c.agent_offer_ring_ms) == (1, 1, 7006)
    # the same contact ringing again later is another offer; a queued callback (INCOMING, then dialled) is none
    again = snap("CONNECTING", "2019-05-25T18:56:00.000Z")
    (second,) = connect.translate(agent_event("STATE_CHANGE", idle, again)).events
    assert second.offer_id != ringing.offer_id
    callback = snap("CONNECTING", "2019-05-25T18:55:20.011Z", method="CALLBACK")
    assert connect.translate(agent_event("STATE_CHANGE", idle, callback)).ignored == "no_change"
    # a contact that connects without a ring in the stream (CONNECTING never seen) is no offer
    assert not any(
        isinstance(e, ev.OfferAccepted)
        for e in connect.translate(
            agent_event("STATE_CHANGE", idle, snap("CONNECTED", "2019-05-25T18:55:27.017Z"))
        ).events
    )
    with pytest.raises(Rejected) as info:
        connect.translate(agent_event("STATE_CHANGE", idle, snap("CONNECTING", "soon")))
    assert info.value.reason == "bad_time"


# ---- Twilio TaskRouter -------------------------------------------------------------------------------------
# Event callbacks: https://www.twilio.com/docs/taskrouter/api/event/reference (form parameters EventType, AccountSid,
# WorkspaceSid, ResourceType, ResourceSid, Timestamp, plus the Task / Reservation / Worker / TaskQueue fields).


def taskrouter_callback(event_type: str, **extra: str) -> dict[str, str]:
    return {
        "EventType": event_type,
        "AccountSid": "AC00000000000000000000000000000001",
        "WorkspaceSid": "WS00000000000000000000000000000001",
        "WorkspaceName": "Support",
        "EventDescription": "Task WT1 entered TaskQueue Support",
        "ResourceType": "Task",
        "ResourceSid": "WT0000000000000000000000000000001",
        "Timestamp": "1735689600",
        "TimestampMs": "1735689600123",
        "TaskSid": "WT0000000000000000000000000000001",
        "TaskAttributes": '{"from": "+15550100", "type": "inbound"}',
        "TaskQueueSid": "WQ00000000000000000000000000000001",
        "TaskQueueName": "Support",
        "TaskChannelUniqueName": "voice",
        **extra,
    }


def test_taskrouter_task_lifecycle():
    (offered,) = taskrouter.translate(taskrouter_callback("task-queue.entered")).events
    assert offered == ev.ContactOffered(
        event_id=offered.event_id,
        time=datetime(2025, 1, 1, 0, 0, 0, 123000, UTC),
        contact_id="WT0000000000000000000000000000001",
        queue_id="Support",
        channel="voice",
        customer_id="+15550100",
    )
    worker = {"WorkerSid": "WK00000000000000000000000000000007", "ReservationSid": "WR1"}
    kinds = {
        "reservation.accepted": ev.ContactAnswered,
        "task.canceled": ev.ContactAbandoned,
        "reservation.wrapup": ev.ContactEnded,
        "reservation.completed": ev.AcwEnded,
    }
    for kind, cls in kinds.items():
        e = taskrouter.translate(taskrouter_callback(kind, **worker)).events[0]
        assert type(e) is cls, kind
    (moved,) = taskrouter.translate(
        taskrouter_callback(
            "task.transfer-initiated", TransferringWorkerSid="WK7", TransferType="QUEUE", TransferTo="Billing"
        )
    ).events
    assert isinstance(moved, ev.ContactTransferred) and moved.to_queue_id == "Billing" and moved.agent_id == "WK7"
    # seconds only (older schema): still read
    (e,) = taskrouter.translate({**taskrouter_callback("task.canceled"), "TimestampMs": ""}).events
    assert e.time == datetime(2025, 1, 1, tzinfo=UTC)


def test_taskrouter_reservations_are_offers_to_workers():
    """The Events reference lists reservation.created ("A task is assigned to a worker"), .accepted, .rejected,
    .timeout, .canceled and .rescinded, each with the Task, Worker, TaskQueueSid and ReservationSid; the Reservation
    resource (https://www.twilio.com/docs/taskrouter/api/reservations): a reservation not answered within the
    Workflow's TaskReservationTimeout times out and the task goes to other workers (RONA)."""

    def at(kind: str, ms: int, worker: str, reservation: str) -> list[ev.Event]:
        fields = {"TimestampMs": str(ms), "WorkerSid": worker, "ReservationSid": reservation}
        return list(taskrouter.translate(taskrouter_callback(kind, ResourceType="Reservation", **fields)).events)

    t0 = 1735689600000
    events = taskrouter.translate(taskrouter_callback("task-queue.entered", TimestampMs=str(t0))).events
    events += (
        *at("reservation.created", t0 + 1000, "WK1", "WR1"),
        *at("reservation.timeout", t0 + 16000, "WK1", "WR1"),
    )
    events += (
        *at("reservation.created", t0 + 16500, "WK2", "WR2"),
        *at("reservation.rejected", t0 + 19000, "WK2", "WR2"),
    )
    events += (
        *at("reservation.created", t0 + 20000, "WK3", "WR3"),
        *at("reservation.accepted", t0 + 24000, "WK3", "WR3"),
    )
    offers = [
        e for e in events if isinstance(e, ev.OfferRinging | ev.OfferMissed | ev.OfferRejected | ev.OfferAccepted)
    ]
    assert [(type(e).__name__, e.offer_id, e.agent_id) for e in offers] == [
        ("OfferRinging", "WR1", "WK1"),
        ("OfferMissed", "WR1", "WK1"),
        ("OfferRinging", "WR2", "WK2"),
        ("OfferRejected", "WR2", "WK2"),
        ("OfferRinging", "WR3", "WK3"),
        ("OfferAccepted", "WR3", "WK3"),
    ]
    answered = next(e for e in events if isinstance(e, ev.ContactAnswered))
    assert answered.agent_id == "WK3" and answered.time == offers[-1].time
    assert len({e.event_id for e in events}) == len(events)
    _, totals = compute(events, 900, lambda q: 20.0)
    (c,) = totals.values()
    assert (c.agent_offers, c.agent_offers_missed, c.agent_offers_rejected, c.agent_offers_accepted) == (3, 1, 1, 1)
    assert c.agent_offer_ring_ms == 4000 and c.answered == 1
    for kind in ("reservation.canceled", "reservation.rescinded"):
        assert taskrouter.translate(taskrouter_callback(kind, WorkerSid="WK1", ReservationSid="WR9")).ignored == (
            "offer_withdrawn"
        )
    with pytest.raises(Rejected) as info:
        taskrouter.translate(taskrouter_callback("reservation.timeout", WorkerSid="WK1"))  # no ReservationSid
    assert info.value.reason == "missing_field"
    # an accept without its reservation is still the answer
    (only,) = taskrouter.translate(taskrouter_callback("reservation.accepted", WorkerSid="WK1")).events
    assert isinstance(only, ev.ContactAnswered)


def test_taskrouter_workers_ignored_types_and_rejections():
    base = {"EventType": "worker.activity.update", "WorkerSid": "WK7", "TimestampMs": "1735689600000"}
    (brk,) = taskrouter.translate({**base, "WorkerActivityName": "Break"}).events
    assert (brk.state, brk.reason_code) == ("not_ready", "Break")
    (ok,) = taskrouter.translate({**base, "WorkerActivityName": "Available"}).events
    assert ok.state == "available"
    (off,) = taskrouter.translate({**base, "WorkerActivityName": "Offline"}).events
    assert isinstance(off, ev.AgentLoggedOut)
    assert taskrouter.translate(taskrouter_callback("task.created")).ignored == "irrelevant_event_type"
    assert (
        taskrouter.translate(taskrouter_callback("task-queue.entered", TaskChannelUniqueName="email")).ignored
        == "unsupported_channel"
    )
    for bad, reason in [
        ({"AccountSid": "AC1"}, "missing_field"),
        (taskrouter_callback("task.canceled", TimestampMs="soon", Timestamp=""), "bad_time"),
        (taskrouter_callback("task-queue.entered", TaskAttributes="{not json"), "malformed_json"),
        (taskrouter_callback("reservation.accepted"), "missing_field"),  # no WorkerSid
    ]:
        with pytest.raises(Rejected) as info:
            taskrouter.translate(bad)
        assert info.value.reason == reason


# ---- Genesys Cloud -----------------------------------------------------------------------------------------
# Notification envelope: https://developer.genesys.cloud/notificationsalerts/notifications/ ; detail event bodies:
# platform-client-sdk models AcdStartDetailEventTopicAcdStartEvent, AcdEndDetailEventTopicAcdEndEvent,
# UserEndDetailEventTopicUserEndEvent, AcwDetailEventTopicAfterCallWorkEvent (eventTime in epoch ms).


def genesys_detail(kind: str, **body: object) -> dict:
    return {
        "topicName": f"v2.detail.events.conversation.6b6d2e67-0000-4000-8000-000000000001.{kind}",
        "version": "2",
        "eventBody": {
            "eventTime": 1735689600500,
            "conversationId": "6b6d2e67-0000-4000-8000-000000000001",
            "participantId": "p-1",
            "sessionId": "s-1",
            "mediaType": "VOICE",
            "direction": "INBOUND",
            "queueId": "0f8e1b2a-queue",
            **body,
        },
        "metadata": {"CorrelationId": "corr-1"},
    }


def test_genesys_conversation_detail_events():
    (offered,) = genesys.translate(genesys_detail("acd.start", ani="tel:+15550100")).events
    assert isinstance(offered, ev.ContactOffered) and offered.queue_id == "0f8e1b2a-queue"
    assert offered.time == datetime(2025, 1, 1, 0, 0, 0, 500000, UTC) and offered.customer_id == "tel:+15550100"
    outcomes = {"ANSWERED": ev.ContactAnswered, "ABANDON": ev.ContactAbandoned, "FLOW_OUT": ev.ContactFlowedOut}
    for outcome, cls in outcomes.items():
        (e,) = genesys.translate(genesys_detail("acd.end", acdOutcome=outcome, answeredUserId="u-1")).events
        assert type(e) is cls
    hold, unhold, end = genesys.translate(
        genesys_detail("user.end", userId="u-1", disconnectType="CLIENT", heldDurationMs=30_000)
    ).events
    assert isinstance(hold, ev.HoldStarted) and isinstance(unhold, ev.HoldEnded) and isinstance(end, ev.ContactEnded)
    assert (unhold.time - hold.time).total_seconds() == 30 and unhold.time == end.time
    (moved,) = genesys.translate(genesys_detail("user.end", userId="u-1", disconnectType="TRANSFER")).events
    assert isinstance(moved, ev.ContactTransferred)
    (acw,) = genesys.translate(genesys_detail("acw", userId="u-1", wrapupCode="sale", wrapupDurationMs=4000)).events
    assert isinstance(acw, ev.AcwEnded) and acw.disposition == "sale"
    # delivered through EventBridge: the notification is the event's detail
    wrapped = {"version": "0", "detail-type": "v2.detail.events...", "detail": genesys_detail("acd.start")}
    assert genesys.translate(wrapped).events[0].event_id == offered.event_id


def test_genesys_user_topics_ignored_and_rejected():
    def routing(status: str) -> dict:
        body = {"routingStatus": {"userId": "u-1", "status": status, "startTime": "2025-01-01T08:00:00.000Z"}}
        return {"topicName": "v2.users.u-1.routingStatus", "version": "2", "eventBody": body}

    def presence(name: str) -> dict:
        body = {"presenceDefinition": {"id": "x", "systemPresence": name}, "modifiedDate": "2025-01-01T08:00:00Z"}
        return {"topicName": "v2.users.u-1.presence", "version": "2", "eventBody": body}

    assert genesys.translate(routing("IDLE")).events[0].state == "available"
    assert genesys.translate(routing("INTERACTING")).events[0].state == "on_contact"
    assert genesys.translate(routing("OFF_QUEUE")).ignored == "irrelevant_event_type"
    assert genesys.translate(presence("Meal")).events[0].reason_code == "Meal"
    assert isinstance(genesys.translate(presence("Offline")).events[0], ev.AgentLoggedOut)
    assert genesys.translate(genesys_detail("customer.start")).ignored == "irrelevant_event_type"
    assert genesys.translate({"topicName": "v2.users.u-1.geolocation", "eventBody": {}}).ignored
    for bad, reason in [
        ({"eventBody": {}}, "missing_field"),
        (genesys_detail("acd.end", acdOutcome="MAYBE"), "bad_value"),
        (genesys_detail("acd.start", eventTime="noon"), "bad_time"),
        (genesys_detail("acd.start", queueId="bad\u202equeue"), "bad_id"),
    ]:
        with pytest.raises(Rejected) as info:
            genesys.translate(bad)
        assert info.value.reason == reason


# ---- A simulated day through each vendor's format ----------------------------------------------------------

# What each format cannot carry (docs/sources.md), as contract event types and as the queue-count fields they feed.
NOT_CARRIED_TYPES = {ev.ChatMessage, ev.SurveyCompleted, ev.IvrSessionEnded, ev.CallbackRequested}
NOT_CARRIED_TYPES |= {ev.CallbackScheduled, ev.CallbackDialled, ev.CallbackConnected, ev.CallbackFailed}
NOT_CARRIED_FIELDS = {
    "chat_first_responses",
    "chat_first_response_ms",
    "chat_responses",
    "chat_response_ms",
    "surveys",
    "survey_score_sum",
    "surveys_satisfied",
    "ivr_sessions",
    "ivr_contained",
    "callbacks_requested",
    "longest_wait_ms",  # only through the waits of callback requests
    "segments",  # the simulated vendor records carry no customer segment
    # callbacks' lifecycles: Connect's come from callback contacts, which the simulated records do not write
    "callback_dials",
    "callbacks_dialled_promised",
    "callbacks_dialled_within_promise",
    "callbacks_connected",
    "callbacks_failed",
    "callback_attempts",
}
OFFERS = {ev.OfferRinging, ev.OfferAccepted, ev.OfferRejected, ev.OfferMissed}
OFFER_FIELDS = {"agent_offers", "agent_offers_accepted", "agent_offers_rejected", "agent_offers_missed"}
OFFER_FIELDS |= {"agent_offer_ring_ms"}
EXTRA = {
    "connect": ({ev.ContactTransferred}, {"transferred_out"}),  # ended, not transferred
    "taskrouter": ({ev.HoldStarted, ev.HoldEnded}, {"talk_ms", "hold_ms", "held"}),  # hold counted as talk
    "genesys": (OFFERS, OFFER_FIELDS),
}


def carried(events: list[ev.Event], fmt: str) -> list[ev.Event]:
    """The day as the format can tell it: uncarried events dropped, a Connect transfer told as an end, offers
    without their segment."""
    drop = NOT_CARRIED_TYPES | EXTRA[fmt][0]
    out = []
    for e in events:
        if fmt == "connect" and isinstance(e, ev.ContactTransferred):
            e = ev.ContactEnded(**{f: getattr(e, f) for f in ev.ContactEnded.__struct_fields__})
        elif isinstance(e, ev.ContactOffered):
            e = msgspec.structs.replace(e, segment=None)
        elif type(e) in drop:
            continue
        out.append(e)
    return out


def differing(a: dict, b: dict) -> set[str]:
    return {
        name
        for k in set(a) | set(b)
        for name in QueueCounts.__struct_fields__
        if getattr(a.get(k, QueueCounts()), name) != getattr(b.get(k, QueueCounts()), name)
    }


@pytest.fixture(scope="module")
def day() -> list[ev.Event]:
    return list(simulate(replace(CenterConfig(), duration_hours=8.0, agents=30), 7))


@pytest.mark.parametrize("fmt", ["connect", "taskrouter", "genesys"])
def test_a_day_in_the_vendor_format_gives_the_same_queue_kpis(day, fmt):
    tally = Tally()
    for record in WRITERS[fmt](day):
        tally.add(TRANSLATE[fmt](record))
    adapted, _ = compute(tally.events, 900, lambda q: 20.0)
    original, _ = compute(day, 900, lambda q: 20.0)
    # 1. every field equal to the day as the format can tell it, interval by interval
    told, _ = compute(carried(day, fmt), 900, lambda q: 20.0)
    assert differing(adapted, told) == set()
    # 2. against the day itself, only the fields the format cannot carry differ (docs/sources.md)
    assert differing(adapted, original) <= NOT_CARRIED_FIELDS | EXTRA[fmt][1]
    total = QueueCounts()
    for c in adapted.values():
        total.add(c)
    assert total.offered > 300 and total.answered > 250 and total.abandoned > 0 and total.handled > 250
    if fmt != "taskrouter":
        assert total.held > 0
    if fmt != "genesys":  # every answer an accepted offer, and missed (RONA) and rejected ones before some
        assert total.agent_offers_accepted == total.answered and total.agent_offers > total.answered
        assert total.agent_offers_missed > 0 and total.agent_offers_rejected > 0
    # 3. reading the same records again gives the same event ids (a re-delivery counts nothing twice)
    again = Tally()
    for record in WRITERS[fmt](day):
        again.add(TRANSLATE[fmt](record))
    assert [e.event_id for e in again.events] == [e.event_id for e in tally.events]
    assert len({e.event_id for e in tally.events}) == len(tally.events)


@pytest.mark.parametrize("fmt", ["connect", "taskrouter", "genesys"])
def test_simulate_writes_each_format_from_the_command_line(tmp_path, fmt, capsys):
    out = tmp_path / f"{fmt}.jsonl"
    assert main_simulate(["--out", str(out), "--hours", "1", "--agents", "5", "--format", fmt]) == 0
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    tally = Tally()
    for record in records:
        tally.add(TRANSLATE[fmt](record))  # every record readable: none rejected
    assert len(records) > 50 and any(isinstance(e, ev.ContactOffered) for e in tally.events)
    assert f"{len(records):,} {fmt} records" in capsys.readouterr().err


def test_a_day_through_connect_gives_the_same_agent_kpis(day):
    """Agent KPIs (tests/batch_agents.py) through Connect's agent event stream: equal, field by field, once the
    concurrency is set aside on both sides (the simulator's chat agents send `active_contacts`, but the simulated
    Connect records do not carry it; Connect's snapshot lists every chat in hand). Schedules are not carried: they
    are left out of both sides."""
    tally = Tally()
    for record in WRITERS["connect"](day):
        tally.add(connect.translate(record))
    until = max(round(e.time.timestamp() * 1000) for e in day) + 1

    def default_concurrency(events: list[ev.Event]) -> list[ev.Event]:
        return [
            msgspec.structs.replace(e, active_contacts=None) if isinstance(e, ev.AgentStateChanged) else e
            for e in events
        ]

    contract = [e for e in day if not isinstance(e, ev.ScheduleActivityPlanned)]
    assert any(isinstance(e, ev.AgentStateChanged) and e.active_contacts for e in contract)
    expected = batch_agents.compute(default_concurrency(contract), 900, until)[0]
    adapted = batch_agents.compute(tally.events, 900, until)[0]
    assert batch_agents.compute(default_concurrency(tally.events), 900, until)[0] == expected
    assert adapted.keys() == expected.keys() and len(expected) > 100
    assert all(adapted[k].contact_ms >= expected[k].contact_ms for k in expected)
    assert any(adapted[k].contact_ms > expected[k].contact_ms for k in expected)  # chats in parallel, counted


# ---- hostile values in any field ---------------------------------------------------------------------------
# The documents give each field's type; a record can still carry any JSON value anywhere. What the adapter cannot
# read is rejected with a reason (a dead letter); it never raises anything else (which would stop an `ingest` run
# or answer a webhook with a 500), and never reaches the guard's `processing_error`, kept for the adapters' bugs.


def test_values_of_the_wrong_type_where_a_state_or_a_code_is_compared_are_rejected():
    state_list = agent_snapshot("Available", "ROUTABLE", "CONNECTED")
    state_list["Contacts"][0]["State"] = ["CONNECTED"]
    for kind in ("LOGIN", "STATE_CHANGE"):
        with pytest.raises(Rejected) as caught:
            connect.translate(agent_event(kind, agent_snapshot("Available", "ROUTABLE", None), state_list))
        assert caught.value.reason == "bad_value"
    # an object where Genesys gives a string is read as no transfer, as an absent `disconnectType` is
    (end,) = genesys.translate(genesys_detail("user.end", userId="u-1", disconnectType={"type": "TRANSFER"})).events
    assert isinstance(end, ev.ContactEnded)
    for held in (2**70, 10**17, -1, True, 1.5):  # 2**70 ms overflowed the date; True is not a duration
        with pytest.raises(Rejected) as caught:
            genesys.translate(genesys_detail("user.end", userId="u-1", heldDurationMs=held))
        assert caught.value.reason == "bad_value"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _paths(value: object, at: tuple = ()) -> list[tuple]:
    out = [at] if at else []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        out += _paths(v, (*at, k))
    return out


@pytest.fixture(scope="module")
def vendor_records() -> dict[str, list]:
    events = list(simulate(replace(CenterConfig(), duration_hours=1.0, agents=8), 3))
    return {fmt: list(write(events)) for fmt, write in WRITERS.items()}


@pytest.mark.parametrize("fmt", ["connect", "taskrouter", "genesys"])
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_value_in_any_field_is_translated_or_rejected_with_a_reason(vendor_records, fmt, data):
    record = copy.deepcopy(data.draw(st.sampled_from(vendor_records[fmt])))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(record)))
        parent = functools.reduce(operator.getitem, path[:-1], record)
        if data.draw(st.booleans()) and isinstance(parent, dict):
            parent.pop(path[-1], None)
        elif fmt == "taskrouter":  # a form: every value a string
            parent[path[-1]] = data.draw(st.text(max_size=40) | st.integers().map(str))
        else:
            parent[path[-1]] = data.draw(JSON_VALUES)
    try:
        TRANSLATE[fmt](record)
    except Rejected as exc:
        assert exc.reason != "processing_error", exc.detail
    except ValueError:
        pass  # a value the contract refuses (its validation): the callers dead-letter it as `invalid`


def test_an_adapter_failing_on_a_record_costs_the_record_and_logs_no_value(caplog):
    @guarded
    def translate(record: dict) -> list:
        return record["+15550100"]  # a KeyError that quotes a caller's number

    with pytest.raises(Rejected) as caught:
        translate({})
    assert caught.value.reason == "processing_error" and "KeyError" in caught.value.detail
    assert "KeyError" in caplog.text and "15550100" not in caplog.text + caught.value.detail
    with pytest.raises(Rejected) as refused:  # a rejection passes through as it is
        guarded(connect.translate)([])
    assert refused.value.reason == "not_an_object"
