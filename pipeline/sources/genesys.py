"""Genesys Cloud notifications -> contract events (pure: no I/O).

A notification is `{"topicName": ..., "version": ..., "eventBody": {...}, "metadata": {...}}`
(https://developer.genesys.cloud/notificationsalerts/notifications/); delivered through Amazon EventBridge it is
the `detail` of an EventBridge event, which is unwrapped here. The topics read:

- conversation detail events, `v2.detail.events.conversation.{id}.<kind>` (bodies documented as
  AcdStartEvent, AcdEndEvent, UserEndEvent, AfterCallWorkEvent in the Platform API SDK models, e.g.
  https://github.com/MyPureCloud/platform-client-sdk-java/blob/master/build/docs/AcdEndDetailEventTopicAcdEndEvent.md;
  `eventTime` in epoch milliseconds):
  `acd.start` -> `contact.offered`; `acd.end` -> `contact.answered` (ANSWERED, agent `answeredUserId`),
  `contact.abandoned` (ABANDON) or `contact.flowed_out` (FLOW_OUT); `user.end` -> `contact.transferred` (a
  transfer `disconnectType`) or `contact.ended`, preceded by one hold of `heldDurationMs` ending with the
  conversation (the event gives only the total: hold time is exact, hold moments are not); `acw` ->
  `contact.acw_ended` at `eventTime` (disposition `wrapupCode`). Other kinds (customer.start, user.start, flow.*,
  attributes, ...) are ignored.
- `v2.users.{id}.routingStatus` (`routingStatus.status` since `startTime`): IDLE -> available, INTERACTING and
  COMMUNICATING -> on_contact, NOT_RESPONDING -> not_ready; OFF_QUEUE is left to the presence topic.
- `v2.users.{id}.presence` (`presenceDefinition.systemPresence` since `modifiedDate`): Offline -> logged out,
  On Queue -> left to the routing status, any other presence -> not_ready with the presence as the reason.

Not read, because the documented format does not carry them (docs/sources.md): agent offers (user.end gives a
session's `alertingDurationMs`, but no `disconnectType` is documented as an unanswered or declined alert, and the
NOT_RESPONDING routing status names no contact) and the callback lifecycle (a CALLBACK conversation carries
`callbackScheduledTime`, but no field tells a dial attempt or its outcome; its ACD leg counts as voice, as CHANNELS
says).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from pipeline.contract import events as ev
from pipeline.contract.events import Channel
from pipeline.sources.common import (
    Leg,
    Rejected,
    Translation,
    channel_of,
    epoch_ms_time,
    guarded,
    ignored,
    iso_time,
    obj,
    optional_text,
    text,
)
from pipeline.sources.identity import stable_event_id

SOURCE = "genesys"
CHANNELS: dict[str, Channel] = {"VOICE": "voice", "CALLBACK": "voice", "CHAT": "chat", "MESSAGE": "chat"}
DETAIL_TOPIC = re.compile(r"^v2\.detail\.events\.conversation\.[^.]+\.(?P<kind>[a-z.]+)$")
USER_TOPIC = re.compile(r"^v2\.users\.(?P<user>[^.]+)\.(?P<kind>presence|routingStatus)$")
TRANSFERS = frozenset({"TRANSFER", "CONFERENCE_TRANSFER", "CONSULT_TRANSFER", "FORWARD_TRANSFER"})
ROUTING_STATES = {"IDLE": "available", "INTERACTING": "on_contact", "COMMUNICATING": "on_contact"}


@guarded
def translate(notification: object) -> Translation:
    """One notification (or an EventBridge event carrying one) -> contract events."""
    if not isinstance(notification, dict):
        raise Rejected("not_an_object", "a Genesys notification is a JSON object")
    if "detail" in notification and "topicName" not in notification:
        notification = obj(notification, "detail")  # delivered through Amazon EventBridge
        assert isinstance(notification, dict)
    topic = notification.get("topicName")
    if not isinstance(topic, str):
        raise Rejected("missing_field", "`topicName` is missing")
    body = obj(notification, "eventBody")
    if m := DETAIL_TOPIC.match(topic):
        return _conversation(m["kind"], body)
    if m := USER_TOPIC.match(topic):
        return _user(m["user"], m["kind"], body)
    return ignored("irrelevant_event_type")


def _conversation(kind: str, b: dict[str, Any]) -> Translation:
    if kind not in ("acd.start", "acd.end", "user.end", "acw"):
        return ignored("irrelevant_event_type")
    conversation = text(b, "conversationId", "eventBody.")
    queue = text(b, "queueId", "eventBody.")
    channel = channel_of(b.get("mediaType"), "eventBody.mediaType", CHANNELS)
    if channel is None:
        return ignored("unsupported_channel")
    t = epoch_ms_time(b.get("eventTime"), "eventBody.eventTime")

    def eid(what: str) -> str:
        return stable_event_id(SOURCE, conversation, queue, what)

    common = Leg(contact_id=conversation, queue_id=queue, channel=channel)
    if kind == "acd.start":
        ani = optional_text(b, "ani")
        return Translation((ev.ContactOffered(event_id=eid("offered"), time=t, customer_id=ani, **common),))
    if kind == "acd.end":
        outcome = b.get("acdOutcome")
        if outcome == "ANSWERED":
            agent = text(b, "answeredUserId", "eventBody.")
            return Translation((ev.ContactAnswered(event_id=eid("answered"), time=t, agent_id=agent, **common),))
        if outcome == "ABANDON":
            return Translation((ev.ContactAbandoned(event_id=eid("abandoned"), time=t, **common),))
        if outcome == "FLOW_OUT":
            return Translation((ev.ContactFlowedOut(event_id=eid("flowed_out"), time=t, **common),))
        raise Rejected("bad_value", "`eventBody.acdOutcome` is not ANSWERED, ABANDON or FLOW_OUT")
    agent = text(b, "userId", "eventBody.")
    if kind == "acw":
        code = (optional_text(b, "wrapupCode") or "none")[:64]
        return Translation(
            (ev.AcwEnded(event_id=eid("acw_ended"), time=t, agent_id=agent, disposition=code, **common),)
        )
    out: list[ev.Event] = []
    held = b.get("heldDurationMs") or 0
    # no longer than since the epoch: a hold must begin at a time (a huge one would overflow the date)
    if not isinstance(held, int) or isinstance(held, bool) or not 0 <= held <= t.timestamp() * 1000:
        raise Rejected("bad_value", "`eventBody.heldDurationMs` is not a non-negative integer of milliseconds")
    if held:
        start = t - timedelta(milliseconds=held)
        out.append(ev.HoldStarted(event_id=eid("hold_started"), time=start, agent_id=agent, **common))
        out.append(ev.HoldEnded(event_id=eid("hold_ended"), time=t, agent_id=agent, **common))
    if optional_text(b, "disconnectType") in TRANSFERS:
        out.append(ev.ContactTransferred(event_id=eid("transferred"), time=t, agent_id=agent, **common))
    else:
        out.append(ev.ContactEnded(event_id=eid("ended"), time=t, agent_id=agent, **common))
    return Translation(tuple(out))


def _user(user: str, kind: str, b: dict[str, Any]) -> Translation:
    if len(user) > 128:
        raise Rejected("bad_id", "the user id in `topicName` is longer than 128 characters")
    if kind == "routingStatus":
        status = obj(b, "routingStatus")
        value = status.get("status")
        t = iso_time(status, "startTime", "eventBody.routingStatus.")
        eid = stable_event_id(SOURCE, user, kind, value, t.isoformat())
        if value == "NOT_RESPONDING":
            return Translation(
                (
                    ev.AgentStateChanged(
                        event_id=eid, time=t, agent_id=user, state="not_ready", reason_code="not_responding"
                    ),
                )
            )
        state = ROUTING_STATES.get(value) if isinstance(value, str) else None
        if state is None:
            return ignored("irrelevant_event_type")  # OFF_QUEUE: the presence says why
        return Translation((ev.AgentStateChanged(event_id=eid, time=t, agent_id=user, state=state),))  # type: ignore[arg-type]
    presence = text(obj(b, "presenceDefinition"), "systemPresence", "eventBody.presenceDefinition.")
    t = iso_time(b, "modifiedDate", "eventBody.")
    eid = stable_event_id(SOURCE, user, kind, presence, t.isoformat())
    if presence == "Offline":
        return Translation((ev.AgentLoggedOut(event_id=eid, time=t, agent_id=user),))
    if presence in ("On Queue", "ON_QUEUE"):
        return ignored("irrelevant_event_type")  # the routing status says what the agent does on queue
    return Translation(
        (ev.AgentStateChanged(event_id=eid, time=t, agent_id=user, state="not_ready", reason_code=presence[:64]),)
    )
