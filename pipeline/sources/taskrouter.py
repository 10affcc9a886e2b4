"""Twilio TaskRouter event callbacks -> contract events (pure: no I/O, no signature check; the receiver checks it).

TaskRouter POSTs one form-encoded event to the Workspace's EventCallbackUrl each time something happens
(https://www.twilio.com/docs/taskrouter/api/event/reference): `EventType`, `Timestamp` (seconds) and, with the
millisecond schema, `TimestampMs`, plus the Task, Reservation, Worker and TaskQueue fields of that event type.
A task is a contact; its queue leg is the TaskQueue it entered.

- `task-queue.entered` -> `contact.offered` (queue: `TaskQueueName`; customer: the task attribute `from`);
- `reservation.accepted` -> `contact.answered` (agent: `WorkerSid`) and, with its `ReservationSid`, the accepted
  offer `offer.accepted`;
- agent offers: a reservation is TaskRouter's offer of a task to a worker ("A task is assigned to a worker"; if the
  worker does not answer it within the Workflow's TaskReservationTimeout "the Reservation will timeout and the
  Task will be available for other workers", https://www.twilio.com/docs/taskrouter/api/reservations), keyed by
  `ReservationSid`: `reservation.created` -> `offer.ringing`, `reservation.rejected` -> `offer.rejected`,
  `reservation.timeout` -> `offer.missed` (RONA). `reservation.canceled` (the task was cancelled while reserved)
  and `reservation.rescinded` (another worker took it, with multi-reservation) end an offer in no outcome the
  contract has: ignored (`offer_withdrawn`), the ringing stays an offer without an outcome;
- `task.canceled` -> `contact.abandoned` (cancelled in a queue: the caller hung up or the task timed out);
- `reservation.wrapup` -> `contact.ended` (the conversation is over, wrap-up starts);
- `task.transfer-initiated` -> `contact.transferred` (the initiating worker `TransferringWorkerSid`; the queue
  `TransferTo` when `TransferType` is `QUEUE`; field names after TaskRouter's Transfer object,
  https://twilio.github.io/twilio-taskrouter.js/OutgoingTransfer.html);
- `reservation.completed` -> `contact.acw_ended` (disposition: `TaskCompletedReason`);
- `worker.activity.update` -> `agent.state_changed` (`Available` -> available, `Offline` -> logged out, any other
  activity -> not_ready with the activity's name as the reason).

Every other event type (task.created, workflow.*, ...) is ignored. TaskRouter has no
hold events: hold time is not carried (docs/sources.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from pipeline.contract import events as ev
from pipeline.contract.events import Channel
from pipeline.sources.common import (
    Rejected,
    Stamped,
    Translation,
    channel_of,
    epoch_ms_time,
    guarded,
    ignored,
    optional_text,
    text,
)
from pipeline.sources.identity import stable_event_id

SOURCE = "taskrouter"
# Task channels as TaskRouter names them (`TaskChannelUniqueName`): voice, chat, sms, email, video, default.
CHANNELS: dict[str, Channel] = {"VOICE": "voice", "CHAT": "chat", "SMS": "chat"}
OfferFact = type[ev.OfferRinging] | type[ev.OfferAccepted] | type[ev.OfferRejected] | type[ev.OfferMissed]
OFFER_EVENTS: dict[str, OfferFact] = {
    "reservation.created": ev.OfferRinging,
    "reservation.rejected": ev.OfferRejected,
    "reservation.timeout": ev.OfferMissed,
}
WITHDRAWN = frozenset({"reservation.canceled", "reservation.rescinded"})
CONTACT_EVENTS = frozenset(
    {
        *OFFER_EVENTS,
        "task-queue.entered",
        "reservation.accepted",
        "task.canceled",
        "reservation.wrapup",
        "task.transfer-initiated",
        "reservation.completed",
    }
)


@guarded
def translate(form: Mapping[str, str]) -> Translation:
    """One event callback (its form fields) -> contract events."""
    fields = dict(form)
    kind = fields.get("EventType")
    if not kind:
        raise Rejected("missing_field", "`EventType` is missing")
    if kind == "worker.activity.update":
        return _worker(fields)
    if kind in WITHDRAWN:
        return ignored("offer_withdrawn")
    if kind not in CONTACT_EVENTS:
        return ignored("irrelevant_event_type")
    task = text(fields, "TaskSid")
    channel = channel_of(fields.get("TaskChannelUniqueName"), "TaskChannelUniqueName", CHANNELS)
    if channel is None:
        return ignored("unsupported_channel")
    queue = text(fields, "TaskQueueName")
    t = _time(fields)
    eid = stable_event_id(SOURCE, task, queue, kind)
    common = Stamped(event_id=eid, time=t, contact_id=task, queue_id=queue, channel=channel)
    if kind == "task-queue.entered":
        return Translation((ev.ContactOffered(customer_id=_customer(fields), **common),))
    if kind == "task.canceled":
        return Translation((ev.ContactAbandoned(**common),))
    if kind == "task.transfer-initiated":
        agent = text(fields, "TransferringWorkerSid")
        to = fields.get("TransferTo") if fields.get("TransferType", "").upper() == "QUEUE" else None
        return Translation((ev.ContactTransferred(agent_id=agent, to_queue_id=to[:128] if to else None, **common),))
    agent = text(fields, "WorkerSid")
    if kind in OFFER_EVENTS:
        return Translation((_offer(OFFER_EVENTS[kind], text(fields, "ReservationSid"), agent, common),))
    if kind == "reservation.accepted":
        answered = ev.ContactAnswered(agent_id=agent, **common)
        reservation = fields.get("ReservationSid")
        if not reservation:  # an answer all the same; the offer needs its reservation
            return Translation((answered,))
        return Translation((answered, _offer(ev.OfferAccepted, text(fields, "ReservationSid"), agent, common)))
    if kind == "reservation.wrapup":
        return Translation((ev.ContactEnded(agent_id=agent, **common),))
    reason = (fields.get("TaskCompletedReason") or "completed")[:64]
    return Translation((ev.AcwEnded(agent_id=agent, disposition=reason, **common),))


def _offer(cls: OfferFact, reservation: str, agent: str, common: Stamped) -> ev.Event:
    """One fact of the offer that is the reservation: its id apart from the answer's (same callback, other event)."""
    contact, queue = common["contact_id"], common["queue_id"]
    return cls(
        event_id=stable_event_id(SOURCE, contact, queue, cls.__name__, reservation),
        time=common["time"],
        contact_id=contact,
        queue_id=queue,
        channel=common["channel"],
        offer_id=reservation,
        agent_id=agent,
    )


def _worker(fields: dict[str, str]) -> Translation:
    agent = text(fields, "WorkerSid")
    activity = text(fields, "WorkerActivityName")
    t = _time(fields)
    eid = stable_event_id(SOURCE, agent, "worker.activity.update", fields.get("TimestampMs") or fields.get("Timestamp"))
    if activity == "Offline":
        return Translation((ev.AgentLoggedOut(event_id=eid, time=t, agent_id=agent),))
    if activity == "Available":
        return Translation((ev.AgentStateChanged(event_id=eid, time=t, agent_id=agent, state="available"),))
    return Translation(
        (ev.AgentStateChanged(event_id=eid, time=t, agent_id=agent, state="not_ready", reason_code=activity[:64]),)
    )


def _time(fields: dict[str, str]) -> datetime:
    if fields.get("TimestampMs"):
        return epoch_ms_time(fields["TimestampMs"], "TimestampMs")
    seconds = fields.get("Timestamp", "")
    if not seconds.isdigit():
        raise Rejected("bad_time", "`TimestampMs` and `Timestamp` are missing or not numbers")
    return epoch_ms_time(int(seconds) * 1000, "Timestamp")


def _customer(fields: dict[str, str]) -> str | None:
    raw = fields.get("TaskAttributes")
    if not raw:
        return None
    try:
        attributes = json.loads(raw)
    except ValueError:
        raise Rejected("malformed_json", "`TaskAttributes` is not JSON") from None
    if not isinstance(attributes, dict):
        return None
    customer = optional_text(attributes, "from")
    return customer[:128] if customer else None
