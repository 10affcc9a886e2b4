"""The simulated center's contract events written in a vendor's own format: Amazon Connect, Twilio TaskRouter,
Genesys Cloud (`simulate --format connect|taskrouter|genesys`).

Each writer produces the records that vendor would have sent for the same day, in time order, following the
formats the adapters in `pipeline.sources` read (their docstrings cite the documents). What a format cannot carry
is left out (docs/sources.md lists it): chat messages, surveys, IVR sessions, forecasts, schedules and callback
requests in all three; hold in TaskRouter; transfers in Connect's contact events.
A writer keeps the little state a vendor keeps (a contact's agent and times, an agent's snapshot).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from pipeline.contract import events as ev
from pipeline.sources.identity import stable_event_id

FORMATS = ("connect", "taskrouter", "genesys")
INSTANCE = "arn:aws:connect:us-east-1:111122223333:instance/aaaaaaaa-bbbb-cccc-dddd-111111111111"
ACCOUNT = "AC00000000000000000000000000000001"
WORKSPACE = "WS00000000000000000000000000000001"


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _ms(t: datetime) -> int:
    return round(t.timestamp() * 1000)


def _queue_arn(queue: str) -> str:
    return f"{INSTANCE}/queue/{queue}"


def _agent_arn(agent: str) -> str:
    return f"{INSTANCE}/agent/{agent}"


# ---- Amazon Connect ----------------------------------------------------------------------------------------


@dataclass
class _ConnectLeg:
    agent: str | None = None
    answered: datetime | None = None
    disconnected: datetime | None = None


@dataclass
class _ConnectAgent:
    status: dict[str, Any] = field(default_factory=lambda: {"Name": "Offline", "Type": "OFFLINE"})
    queues: list[str] = field(default_factory=list)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def snapshot(self, agent: str) -> dict[str, Any]:
        return {
            "AgentStatus": {"ARN": f"{INSTANCE}/agent-state/{self.status['Name']}", **self.status},
            "Configuration": {
                "Username": agent,
                "RoutingProfile": {
                    "ARN": f"{INSTANCE}/routing-profile/default",
                    "Name": "default",
                    "InboundQueues": [{"ARN": _queue_arn(q), "Name": q} for q in self.queues]
                    + [{"ARN": f"{INSTANCE}/queue/agent/{agent}", "Name": None}],
                },
            },
            "Contacts": [dict(c) for c in self.contacts.values()],
        }


def to_connect(events: Iterable[ev.Event]) -> Iterator[dict[str, Any]]:
    """EventBridge contact events and agent event stream records, as Connect would send them for these events."""
    legs: dict[tuple[str, str], _ConnectLeg] = {}
    agents: dict[str, _ConnectAgent] = {}
    # Connect gives a transferred contact a new ContactId; the simulator keeps one id per contact across queues
    contact_ids: dict[tuple[str, str], str] = {}
    seen: set[str] = set()

    def cid(e: ev.ContactEvent) -> str:
        key = (e.queue_id, e.contact_id)
        if key not in contact_ids:
            contact_ids[key] = f"{e.contact_id}.{e.queue_id}" if e.contact_id in seen else e.contact_id
            seen.add(e.contact_id)
        return contact_ids[key]

    def contact_event(kind: str, e: ev.ContactEvent, **detail: Any) -> dict[str, Any]:
        body = {
            "eventType": kind,
            "contactId": cid(e),
            "channel": e.channel.upper(),
            "instanceArn": INSTANCE,
            "initiationMethod": "INBOUND",
            "queueInfo": {"queueArn": _queue_arn(e.queue_id), "queueType": "STANDARD"},
            **detail,
        }
        return {
            "version": "0",
            "id": stable_event_id("connect-writer", e.event_id, kind),
            "detail-type": "Amazon Connect Contact Event",
            "source": "aws.connect",
            "account": "111122223333",
            "time": e.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": "us-east-1",
            "resources": [f"{INSTANCE}/contact/{cid(e)}"],
            "detail": body,
        }

    def agent_record(kind: str, agent: str, t: datetime, key: str, change: Any = None) -> dict[str, Any]:
        a = agents.setdefault(agent, _ConnectAgent())
        for gone in [k for k, c in a.contacts.items() if c["State"] in ("MISSED", "REJECTED")]:
            del a.contacts[gone]  # a missed or rejected offer is shown once, then cleared
        previous = a.snapshot(agent)
        if change is not None:
            change(a)
        return {
            "AWSAccountId": "111122223333",
            "AgentARN": _agent_arn(agent),
            "EventId": stable_event_id("connect-writer", key),
            "EventTimestamp": _iso(t),
            "EventType": kind,
            "InstanceARN": INSTANCE,
            "PreviousAgentSnapshot": previous,
            "CurrentAgentSnapshot": a.snapshot(agent),
            "Version": "2017-10-01",
        }

    def set_contact(e: ev.ContactEvent, agent: str, state: str | None) -> Any:
        def change(a: _ConnectAgent) -> None:
            if state is None:
                a.contacts.pop(cid(e), None)
                return
            c = a.contacts.setdefault(
                cid(e),
                {
                    "ContactId": cid(e),
                    "Channel": e.channel.upper(),
                    "InitiationMethod": "INBOUND",
                    "Queue": {"ARN": _queue_arn(e.queue_id), "Name": e.queue_id},
                },
            )
            if state == "CONNECTED":
                c.setdefault("ConnectedToAgentTimestamp", _iso(e.time))
            c["State"] = state
            c["StateStartTimestamp"] = _iso(e.time)

        return change

    for e in events:
        if isinstance(e, ev.ContactEvent):
            leg = legs.setdefault((e.queue_id, e.contact_id), _ConnectLeg())
        if isinstance(e, ev.ContactOffered):
            detail: dict[str, Any] = {"initiationTimestamp": _iso(e.time)}
            if e.customer_id:
                detail["customerEndpoint"] = {"address": e.customer_id, "type": "TELEPHONE_NUMBER"}
            record = contact_event("QUEUED", e, **detail)
            record["detail"]["queueInfo"]["enqueueTimestamp"] = _iso(e.time)
            yield record
        elif isinstance(e, ev.ContactAnswered):
            leg.agent, leg.answered = e.agent_id, e.time
            info: dict[str, Any] = {"agentArn": _agent_arn(e.agent_id), "connectedToAgentTimestamp": _iso(e.time)}
            yield contact_event("CONNECTED_TO_AGENT", e, agentInfo=info)
            yield agent_record("STATE_CHANGE", e.agent_id, e.time, e.event_id, set_contact(e, e.agent_id, "CONNECTED"))
        elif isinstance(e, ev.OfferRinging | ev.OfferMissed | ev.OfferRejected):  # accepted: the answer's CONNECTED
            state = {ev.OfferRinging: "CONNECTING", ev.OfferMissed: "MISSED", ev.OfferRejected: "REJECTED"}[type(e)]
            yield agent_record("STATE_CHANGE", e.agent_id, e.time, e.event_id, set_contact(e, e.agent_id, state))
        elif isinstance(e, ev.ContactAbandoned):
            yield contact_event("DISCONNECTED", e, disconnectTimestamp=_iso(e.time))
            yield contact_event("COMPLETED", e, disconnectTimestamp=_iso(e.time))  # no ACW: published at once
        elif isinstance(e, ev.HoldStarted | ev.HoldEnded):
            state = "CONNECTED_ONHOLD" if isinstance(e, ev.HoldStarted) else "CONNECTED"
            yield agent_record("STATE_CHANGE", e.agent_id, e.time, e.event_id, set_contact(e, e.agent_id, state))
        elif isinstance(e, ev.ContactEnded | ev.ContactTransferred) and leg.answered is not None:
            leg.disconnected = e.time
            info = {"agentArn": _agent_arn(e.agent_id), "connectedToAgentTimestamp": _iso(leg.answered)}
            yield contact_event("DISCONNECTED", e, agentInfo=info, disconnectTimestamp=_iso(e.time))
            yield agent_record("STATE_CHANGE", e.agent_id, e.time, e.event_id, set_contact(e, e.agent_id, "ENDED"))
        elif isinstance(e, ev.AcwEnded) and leg.answered is not None and leg.disconnected is not None:
            info = {
                "agentArn": _agent_arn(e.agent_id),
                "connectedToAgentTimestamp": _iso(leg.answered),
                "afterContactWorkStartTimestamp": _iso(leg.disconnected),
                "afterContactWorkEndTimestamp": _iso(e.time),
                "afterContactWorkDuration": _ms(e.time) - _ms(leg.disconnected),
            }
            yield contact_event("COMPLETED", e, agentInfo=info, disconnectTimestamp=_iso(leg.disconnected))
            yield agent_record("STATE_CHANGE", e.agent_id, e.time, e.event_id, set_contact(e, e.agent_id, None))
        elif isinstance(e, ev.AgentLoggedIn):

            def login(a: _ConnectAgent, queues: list[str] = e.queue_ids, t: datetime = e.time) -> None:
                a.queues = list(queues)
                a.status = {"Name": "Available", "Type": "ROUTABLE", "StartTimestamp": _iso(t)}

            yield agent_record("LOGIN", e.agent_id, e.time, e.event_id, login)
        elif isinstance(e, ev.AgentLoggedOut):

            def logout(a: _ConnectAgent, t: datetime = e.time) -> None:
                a.status = {"Name": "Offline", "Type": "OFFLINE", "StartTimestamp": _iso(t)}
                a.contacts.clear()

            yield agent_record("LOGOUT", e.agent_id, e.time, e.event_id, logout)
        elif isinstance(e, ev.AgentStateChanged) and e.state in ("available", "not_ready"):
            status = (
                {"Name": "Available", "Type": "ROUTABLE"}
                if e.state == "available"
                else {"Name": e.reason_code or "Break", "Type": "CUSTOM"}
            )

            def set_status(a: _ConnectAgent, s: dict[str, Any] = status, t: datetime = e.time) -> None:
                a.status = {**s, "StartTimestamp": _iso(t)}

            yield agent_record("STATE_CHANGE", e.agent_id, e.time, e.event_id, set_status)


# ---- Twilio TaskRouter -------------------------------------------------------------------------------------


def to_taskrouter(events: Iterable[ev.Event]) -> Iterator[dict[str, str]]:
    """TaskRouter event callbacks (form fields) for these events."""

    def callback(kind: str, t: datetime, resource: str, sid: str, **fields: str) -> dict[str, str]:
        return {
            "EventType": kind,
            "AccountSid": ACCOUNT,
            "WorkspaceSid": WORKSPACE,
            "WorkspaceName": "Simulated center",
            "EventDescription": kind,
            "ResourceType": resource,
            "ResourceSid": sid,
            "Timestamp": str(_ms(t) // 1000),
            "TimestampMs": str(_ms(t)),
            **fields,
        }

    def task(e: ev.ContactEvent) -> dict[str, str]:
        return {
            "TaskSid": e.contact_id,
            "TaskQueueName": e.queue_id,
            "TaskQueueSid": "WQ" + stable_event_id("taskrouter-writer", e.queue_id).replace("-", ""),
            "TaskChannelUniqueName": e.channel,
        }

    accepted: dict[tuple[str, str], str] = {}  # (queue, contact) -> the reservation its answer accepts
    reservation_events = {
        ev.OfferRinging: "reservation.created",
        ev.OfferRejected: "reservation.rejected",
        ev.OfferMissed: "reservation.timeout",
    }
    for e in events:
        if isinstance(e, ev.ContactOffered):
            attributes = json.dumps({"from": e.customer_id} if e.customer_id else {})
            yield callback("task-queue.entered", e.time, "Task", e.contact_id, TaskAttributes=attributes, **task(e))
        elif isinstance(e, ev.OfferRinging | ev.OfferRejected | ev.OfferMissed):  # a reservation is an offer
            kind = reservation_events[type(e)]
            yield callback(
                kind, e.time, "Reservation", e.offer_id, WorkerSid=e.agent_id, ReservationSid=e.offer_id, **task(e)
            )
        elif isinstance(e, ev.OfferAccepted):  # told by the reservation.accepted of the answer, at the same time
            accepted[(e.queue_id, e.contact_id)] = e.offer_id
        elif isinstance(e, ev.ContactAnswered):
            reservation = accepted.pop((e.queue_id, e.contact_id), None)
            sid = {"ReservationSid": reservation} if reservation else {}
            yield callback(
                "reservation.accepted",
                e.time,
                "Reservation",
                reservation or e.event_id,
                WorkerSid=e.agent_id,
                **sid,
                **task(e),
            )
        elif isinstance(e, ev.ContactAbandoned):
            yield callback("task.canceled", e.time, "Task", e.contact_id, TaskCanceledReason="hangup", **task(e))
        elif isinstance(e, ev.ContactEnded):
            yield callback("reservation.wrapup", e.time, "Reservation", e.event_id, WorkerSid=e.agent_id, **task(e))
        elif isinstance(e, ev.ContactTransferred):
            target = (
                {"TransferType": "QUEUE", "TransferTo": e.to_queue_id} if e.to_queue_id else {"TransferType": "WORKER"}
            )
            yield callback(
                "task.transfer-initiated",
                e.time,
                "Task",
                e.contact_id,
                TransferringWorkerSid=e.agent_id,
                **target,
                **task(e),
            )
        elif isinstance(e, ev.AcwEnded):
            yield callback(
                "reservation.completed",
                e.time,
                "Reservation",
                e.event_id,
                WorkerSid=e.agent_id,
                TaskCompletedReason=e.disposition,
                **task(e),
            )
        elif isinstance(e, ev.AgentLoggedOut) or (
            isinstance(e, ev.AgentStateChanged) and e.state in ("available", "not_ready")
        ):
            activity = (
                "Offline"
                if isinstance(e, ev.AgentLoggedOut)
                else ("Available" if e.state == "available" else e.reason_code or "Break")
            )
            yield callback(
                "worker.activity.update",
                e.time,
                "Worker",
                e.agent_id,
                WorkerSid=e.agent_id,
                WorkerActivityName=activity,
            )


# ---- Genesys Cloud -----------------------------------------------------------------------------------------

GENESYS_MEDIA = {"voice": "VOICE", "chat": "CHAT"}


def to_genesys(events: Iterable[ev.Event]) -> Iterator[dict[str, Any]]:
    """Genesys Cloud notifications (conversation detail events, routing status, presence) for these events."""
    held: dict[tuple[str, str], int] = {}
    hold_since: dict[tuple[str, str], int] = {}
    answered_at: dict[tuple[str, str], int] = {}
    ended_at: dict[tuple[str, str], int] = {}

    def detail(kind: str, e: ev.ContactEvent, **body: Any) -> dict[str, Any]:
        return {
            "topicName": f"v2.detail.events.conversation.{e.contact_id}.{kind}",
            "version": "2",
            "eventBody": {
                "eventTime": _ms(e.time),
                "conversationId": e.contact_id,
                "participantId": stable_event_id("genesys-writer", e.contact_id, "participant"),
                "sessionId": stable_event_id("genesys-writer", e.contact_id, e.queue_id),
                "mediaType": GENESYS_MEDIA[e.channel],
                "direction": "INBOUND",
                "queueId": e.queue_id,
                **body,
            },
            "metadata": {"CorrelationId": stable_event_id("genesys-writer", e.event_id)},
        }

    def user(agent: str, kind: str, body: dict[str, Any], key: str) -> dict[str, Any]:
        return {
            "topicName": f"v2.users.{agent}.{kind}",
            "version": "2",
            "eventBody": body,
            "metadata": {"CorrelationId": stable_event_id("genesys-writer", key)},
        }

    for e in events:
        leg = (e.queue_id, e.contact_id) if isinstance(e, ev.ContactEvent) else ("", "")
        if isinstance(e, ev.ContactOffered):
            body: dict[str, Any] = {"ani": e.customer_id} if e.customer_id else {}
            yield detail("acd.start", e, **body)
        elif isinstance(e, ev.ContactAnswered):
            answered_at[leg] = _ms(e.time)
            yield detail("acd.end", e, acdOutcome="ANSWERED", answeredUserId=e.agent_id)
        elif isinstance(e, ev.ContactAbandoned):
            yield detail("acd.end", e, acdOutcome="ABANDON", disconnectType="PEER")
        elif isinstance(e, ev.ContactFlowedOut):
            yield detail("acd.end", e, acdOutcome="FLOW_OUT")
        elif isinstance(e, ev.HoldStarted):
            hold_since[leg] = _ms(e.time)
        elif isinstance(e, ev.HoldEnded) and leg in hold_since:
            held[leg] = held.get(leg, 0) + _ms(e.time) - hold_since.pop(leg)
        elif isinstance(e, ev.ContactEnded | ev.ContactTransferred) and leg in answered_at:
            ended_at[leg] = _ms(e.time)
            yield detail(
                "user.end",
                e,
                userId=e.agent_id,
                disconnectType="TRANSFER" if isinstance(e, ev.ContactTransferred) else "CLIENT",
                interactingDurationMs=_ms(e.time) - answered_at[leg],
                heldDurationMs=held.pop(leg, 0),
            )
        elif isinstance(e, ev.AcwEnded) and leg in ended_at:
            yield detail(
                "acw",
                e,
                userId=e.agent_id,
                wrapupCode=e.disposition,
                wrapupDurationMs=_ms(e.time) - ended_at.pop(leg),
            )
        elif isinstance(e, ev.AgentStateChanged):
            if e.state == "not_ready":
                presence = {"systemPresence": e.reason_code or "Break", "id": "break"}
                yield user(
                    e.agent_id, "presence", {"presenceDefinition": presence, "modifiedDate": _iso(e.time)}, e.event_id
                )
            else:
                status = "IDLE" if e.state == "available" else "INTERACTING"
                body = {"routingStatus": {"userId": e.agent_id, "status": status, "startTime": _iso(e.time)}}
                yield user(e.agent_id, "routingStatus", body, e.event_id)
        elif isinstance(e, ev.AgentLoggedIn | ev.AgentLoggedOut):
            presence = {"systemPresence": "On Queue" if isinstance(e, ev.AgentLoggedIn) else "Offline", "id": "p"}
            yield user(
                e.agent_id, "presence", {"presenceDefinition": presence, "modifiedDate": _iso(e.time)}, e.event_id
            )


WRITERS = {"connect": to_connect, "taskrouter": to_taskrouter, "genesys": to_genesys}


def write_vendor_jsonl(fmt: str, events: Iterable[ev.Event], path: str | Path) -> int:
    """Write the vendor records of these events to `path`, one JSON object a line; return how many."""
    count = 0
    with open(path, "wb") as out:
        for record in WRITERS[fmt](events):
            out.write(orjson.dumps(record))
            out.write(b"\n")
            count += 1
    return count
