"""Amazon Connect records -> contract events (pure: no I/O).

Two documented formats, told apart by their fields:

- **Contact events** on EventBridge (`"detail-type": "Amazon Connect Contact Event"`, the `detail` object of
  https://docs.aws.amazon.com/connect/latest/adminguide/contact-events.html): the queue side of a contact.
  QUEUED -> `contact.offered` (at `queueInfo.enqueueTimestamp`); CONNECTED_TO_AGENT -> `contact.answered`
  (`agentInfo.connectedToAgentTimestamp`); DISCONNECTED -> `contact.ended` when an agent was connected, else
  `contact.abandoned` (at `disconnectTimestamp`; a contact never queued is ignored); COMPLETED ->
  `contact.acw_ended` at `agentInfo.afterContactWorkEndTimestamp`, or, for a contact without ACW, at the
  disconnect (a zero-length ACW, explicitly). INITIATED, CONTACT_DATA_UPDATED, CONNECTED_TO_SYSTEM (but a
  callback's, below) and the rest are ignored.
- **Agent event stream** records on Kinesis (`EventType`, `AgentARN`, the Previous and Current agent snapshots of
  https://docs.aws.amazon.com/connect/latest/adminguide/agent-event-stream-model.html): LOGIN ->
  `agent.logged_in` (queues of the routing profile) and the state its snapshot gives; LOGOUT -> `agent.logged_out`; STATE_CHANGE ->
  `agent.state_changed` when the agent's state as the contract sees it differs between the two snapshots, and
  `contact.hold_started` / `hold_ended` when a contact went CONNECTED <-> CONNECTED_ONHOLD
  (https://docs.aws.amazon.com/connect/latest/adminguide/about-contact-states.html); HEART_BEAT is ignored.
  Agent offers from the same contact states: a contact that became CONNECTING ("being offered to the agent (it's
  ringing)") -> `offer.ringing` at its `StateStartTimestamp`; from CONNECTING to CONNECTED ("the agent has
  accepted the contact") -> `offer.accepted`, to MISSED -> `offer.missed`, to REJECTED -> `offer.rejected`, each
  at the new state's start. Connect's REJECTED is also "the customer abandoned the contact when it was connecting
  to the agent": such a hang-up counts as a rejected offer (and, from the contact event, an abandon). The offer is
  the contact's ring at that agent since that CONNECTING (its id: contact, agent, ring start). Queued callbacks
  (`InitiationMethod` CALLBACK: presented as INCOMING, then dialled) are not read as offers.

Queued callbacks, from the contact events of the callback contact (`initiationMethod` CALLBACK): Connect makes the
callback a contact of its own, queued in the callback queue after the flow's initial delay
(https://docs.aws.amazon.com/connect/latest/adminguide/queued-callback-example.html), and "removes the callback
from the queue when it's connected to the agent. At that time, Amazon Connect starts dialing the customer"
(https://docs.aws.amazon.com/connect/latest/adminguide/failed-callback-attempt.html). Besides its queue leg (offered,
answered, ended in the callback queue, as Connect's own queue metrics count it), the callback contact gives the
contract's callback lifecycle, keyed by (callback queue, callback contact): CONNECTED_TO_AGENT -> `callback.dialled`
(attempt 1, by that agent) at `agentInfo.connectedToAgentTimestamp`; CONNECTED_TO_SYSTEM ("the contact has
established media (for example, it was answered by a person or by voicemail)", contact-events.html) ->
`callback.connected` at `connectedToSystemTimestamp`; DISCONNECTED -> the same `callback.connected` (same event id:
counted once) when it carries `connectedToSystemTimestamp`, else `callback.failed` at the disconnect: after one dial
when an agent had taken it ("an agent accepts a callback but then something goes wrong", failed-callback-attempt),
after none when it left the queue without an agent. What Connect does not tell: a promised time (its initial delay is
a minimum wait, not a deadline), so no `callback.scheduled`; the attempt number (each retry is a contact of its own,
with its own enqueued time), so each Connect callback contact is one callback of one dial; and, on the inbound
contact, that its customer chose a callback (that leg's disconnect stays an abandon, as before).

Each record is translated on its own (the agent stream's two snapshots say what changed), so records may come
in any order and any number of times: event ids are stable (`pipeline.sources.identity`).
Ids: queues and agents are the ids at the end of their ARNs; contacts are `contactId`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.contract import events as ev
from pipeline.contract.events import AgentState
from pipeline.sources.common import (
    Leg,
    Rejected,
    Translation,
    channel_of,
    guarded,
    ignored,
    iso_time,
    last_segment,
    obj,
    optional_text,
    text,
)
from pipeline.sources.identity import stable_event_id

SOURCE = "connect"
CONTACT_EVENT = "Amazon Connect Contact Event"
# Contact event types documented but not bearing on a KPI here (ignored, counted as such, never rejected).
IRRELEVANT_CONTACT_EVENTS = frozenset(
    {"INITIATED", "CONTACT_DATA_UPDATED", "AMD_DISABLED", "AMD_ERROR", "AMD_DETECTED"}
)
CALLBACK = "CALLBACK"  # `initiationMethod` of a queued callback's own contact
ON_CONTACT_STATES = frozenset({"CONNECTED", "CONNECTED_ONHOLD"})
RINGING_STATE = "CONNECTING"
OfferFact = type[ev.OfferRinging] | type[ev.OfferAccepted] | type[ev.OfferRejected] | type[ev.OfferMissed]
OFFER_OUTCOMES: dict[str, OfferFact] = {
    "CONNECTED": ev.OfferAccepted,
    "MISSED": ev.OfferMissed,
    "REJECTED": ev.OfferRejected,
}
ACW_STATE = "ENDED"  # "The conversation has ended, and the agent has started doing ACW for that contact."


@guarded
def translate(record: object) -> Translation:
    """One Connect record (an EventBridge contact event or an agent event stream record) -> contract events."""
    if not isinstance(record, dict):
        raise Rejected("not_an_object", "a Connect record is a JSON object")
    if "detail-type" in record:
        if record["detail-type"] != CONTACT_EVENT:
            return ignored("irrelevant_event_type")
        return _contact_event(obj(record, "detail"))
    if "EventType" in record and "AgentARN" in record:
        return _agent_event(record)
    raise Rejected("unknown_record", "neither an EventBridge contact event nor an agent event stream record")


def _contact_event(d: dict[str, Any]) -> Translation:
    kind = d.get("eventType")
    if not isinstance(kind, str):
        raise Rejected("missing_field", "`detail.eventType` is missing")
    if kind in IRRELEVANT_CONTACT_EVENTS:
        return ignored("irrelevant_event_type")
    if kind not in ("QUEUED", "CONNECTED_TO_AGENT", "CONNECTED_TO_SYSTEM", "DISCONNECTED", "COMPLETED"):
        return ignored("unknown_event_type")
    callback = d.get("initiationMethod") == CALLBACK
    if kind == "CONNECTED_TO_SYSTEM" and not callback:  # the dialled customer answered: only a callback's counts
        return ignored("irrelevant_event_type")
    contact = text(d, "contactId", "detail.")
    channel = channel_of(d.get("channel"), "detail.channel")
    if channel is None:
        return ignored("unsupported_channel")  # TASK, EMAIL: the contract carries voice and chat
    queue_info = d.get("queueInfo")
    if not isinstance(queue_info, dict) or "queueArn" not in queue_info:
        return ignored("not_queued")  # IVR-only and outbound contacts have no queue leg
    queue = last_segment(text(queue_info, "queueArn", "detail.queueInfo."), "detail.queueInfo.queueArn")
    agent_info = d.get("agentInfo") if isinstance(d.get("agentInfo"), dict) else None

    def eid(what: str) -> str:
        return stable_event_id(SOURCE, contact, queue, what)

    common = Leg(contact_id=contact, queue_id=queue, channel=channel)
    if kind == "CONNECTED_TO_SYSTEM":
        return Translation((_callback_connected(d, eid, common),))
    if kind == "QUEUED":
        endpoint = d.get("customerEndpoint")
        customer = optional_text(endpoint, "address") if isinstance(endpoint, dict) else None
        t = iso_time(queue_info, "enqueueTimestamp", "detail.queueInfo.")
        return Translation((ev.ContactOffered(event_id=eid("offered"), time=t, customer_id=customer, **common),))
    answered = agent_info is not None and "connectedToAgentTimestamp" in agent_info
    if kind == "CONNECTED_TO_AGENT":
        if agent_info is None:
            raise Rejected("missing_field", "`detail.agentInfo` is missing")
        agent = last_segment(text(agent_info, "agentArn", "detail.agentInfo."), "detail.agentInfo.agentArn")
        t = iso_time(agent_info, "connectedToAgentTimestamp", "detail.agentInfo.")
        answer = ev.ContactAnswered(event_id=eid("answered"), time=t, agent_id=agent, **common)
        if not callback:
            return Translation((answer,))
        # the agent took the callback: Connect dials the customer now
        dial = ev.CallbackDialled(event_id=eid("callback_dialled"), time=t, attempt=1, agent_id=agent, **common)
        return Translation((answer, dial))
    disconnected = iso_time(d, "disconnectTimestamp", "detail.")
    if kind == "DISCONNECTED":
        if not answered:
            gone = ev.ContactAbandoned(event_id=eid("abandoned"), time=disconnected, **common)
            if not callback:
                return Translation((gone,))
            # left the callback queue without an agent: never dialled
            failed = ev.CallbackFailed(event_id=eid("callback_failed"), time=disconnected, attempts=0, **common)
            return Translation((gone, failed))
        assert agent_info is not None
        agent = last_segment(text(agent_info, "agentArn", "detail.agentInfo."), "detail.agentInfo.agentArn")
        ended = ev.ContactEnded(event_id=eid("ended"), time=disconnected, agent_id=agent, **common)
        if not callback:
            return Translation((ended,))
        if "connectedToSystemTimestamp" in d:
            return Translation((ended, _callback_connected(d, eid, common)))
        failed = ev.CallbackFailed(event_id=eid("callback_failed"), time=disconnected, attempts=1, **common)
        return Translation((ended, failed))
    # COMPLETED: the contact is over, after-contact work included
    if not answered:
        return ignored("no_agent")
    assert agent_info is not None
    agent = last_segment(text(agent_info, "agentArn", "detail.agentInfo."), "detail.agentInfo.agentArn")
    t = (
        iso_time(agent_info, "afterContactWorkEndTimestamp", "detail.agentInfo.")
        if "afterContactWorkEndTimestamp" in agent_info
        else disconnected  # no ACW: zero length, said explicitly
    )
    return Translation(
        (ev.AcwEnded(event_id=eid("acw_ended"), time=t, agent_id=agent, disposition="completed", **common),)
    )


def _callback_connected(d: dict[str, Any], eid: Callable[[str], str], common: Leg) -> ev.CallbackConnected:
    """The dialled callback reached the customer (a person or a voicemail: Connect does not tell them apart)."""
    t = iso_time(d, "connectedToSystemTimestamp", "detail.")
    return ev.CallbackConnected(event_id=eid("callback_connected"), time=t, attempt=1, **common)


def _agent_event(r: dict[str, Any]) -> Translation:
    kind = r["EventType"]
    if kind == "HEART_BEAT":
        return ignored("heartbeat")
    if kind not in ("LOGIN", "LOGOUT", "STATE_CHANGE"):
        return ignored("unknown_event_type")
    agent = last_segment(text(r, "AgentARN"), "AgentARN")
    record_id = text(r, "EventId")
    t = iso_time(r, "EventTimestamp")
    if kind == "LOGOUT":
        return Translation((ev.AgentLoggedOut(event_id=stable_event_id(SOURCE, record_id), time=t, agent_id=agent),))
    current = obj(r, "CurrentAgentSnapshot")
    if kind == "LOGIN":  # logged in, in the status the snapshot gives
        queues = _inbound_queues(current)
        state, reason, active = _presence(current)
        return Translation(
            (
                ev.AgentLoggedIn(event_id=stable_event_id(SOURCE, record_id), time=t, agent_id=agent, queue_ids=queues),
                ev.AgentStateChanged(
                    event_id=stable_event_id(SOURCE, record_id, "state"),
                    time=t,
                    agent_id=agent,
                    state=state,
                    reason_code=reason,
                    active_contacts=active,
                ),
            )
        )
    previous = r.get("PreviousAgentSnapshot")
    out: list[ev.Event] = []
    before = _contacts(previous) if isinstance(previous, dict) else {}
    for contact_id, c in _contacts(current).items():
        prior = before.get(contact_id, {})
        was = prior.get("State")
        now = c.get("State")
        offer: tuple[OfferFact, dict[str, Any]] | None = None  # the fact, the snapshot of its ring
        if c.get("InitiationMethod") != "CALLBACK":
            if now == RINGING_STATE and was != RINGING_STATE:
                offer = ev.OfferRinging, c
            elif was == RINGING_STATE and now in OFFER_OUTCOMES:
                offer = OFFER_OUTCOMES[now], prior
        if offer is None and {was, now} != {"CONNECTED", "CONNECTED_ONHOLD"}:
            continue
        channel = channel_of(c.get("Channel"), "Contacts.Channel")
        if channel is None:
            continue
        queue = last_segment(text(obj(c, "Queue"), "ARN", "Contacts.Queue."), "Contacts.Queue.ARN")
        leg = Leg(contact_id=contact_id, queue_id=queue, channel=channel)
        t_state = iso_time(c, "StateStartTimestamp", "Contacts.")
        if offer is None:
            cls = ev.HoldStarted if now == "CONNECTED_ONHOLD" else ev.HoldEnded
            out.append(
                cls(event_id=stable_event_id(SOURCE, record_id, contact_id, now), time=t_state, agent_id=agent, **leg)
            )
            continue
        kind, ring = offer
        iso_time(ring, "StateStartTimestamp", "Contacts.")  # the ring's start names the offer: it must be a time
        offer_id = stable_event_id(SOURCE, contact_id, agent, ring["StateStartTimestamp"])
        out.append(
            kind(
                event_id=stable_event_id(SOURCE, record_id, contact_id, "offer", now),
                time=t_state,
                offer_id=offer_id,
                agent_id=agent,
                **leg,
            )
        )
    state_now = _presence(current)
    if state_now != (_presence(previous) if isinstance(previous, dict) else None):
        state, reason, active = state_now
        out.append(
            ev.AgentStateChanged(
                event_id=stable_event_id(SOURCE, record_id, "state"),
                time=t,
                agent_id=agent,
                state=state,
                reason_code=reason,
                active_contacts=active,
            )
        )
    return Translation(tuple(out)) if out else ignored("no_change")


def _inbound_queues(snapshot: dict[str, Any]) -> list[str]:
    profile = obj(obj(snapshot, "Configuration"), "RoutingProfile")
    queues = profile.get("InboundQueues") or []
    if not isinstance(queues, list):
        raise Rejected("missing_field", "`RoutingProfile.InboundQueues` must be a list")
    out = []
    for q in queues:
        arn = text(obj(q, ""), "ARN", "InboundQueues.")
        if "/queue/agent/" not in arn:  # every agent's own queue is listed too; it is not a service queue
            out.append(last_segment(arn, "InboundQueues.ARN"))
    return out


def _contacts(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    contacts = snapshot.get("Contacts") or []
    if not isinstance(contacts, list):
        raise Rejected("missing_field", "`Contacts` must be a list")
    out = {}
    for c in contacts:
        out[text(obj(c, ""), "ContactId", "Contacts.")] = c
        if not isinstance(c.get("State", ""), str):  # compared with the states below
            raise Rejected("bad_value", "`Contacts.State` must be a string")
    return out


def _presence(snapshot: dict[str, Any]) -> tuple[AgentState, str | None, int]:
    """The contract's view of an agent snapshot: state, not-ready reason, contacts in hand (talk or ACW)."""
    states = [c.get("State") for c in _contacts(snapshot).values()]
    active = sum(1 for s in states if s in ON_CONTACT_STATES or s == ACW_STATE)
    if any(s in ON_CONTACT_STATES for s in states):
        return "on_contact", None, active
    if ACW_STATE in states:
        return "acw", None, active
    status = obj(snapshot, "AgentStatus")
    if status.get("Type") == "ROUTABLE":
        return "available", None, 0
    name = status.get("Name")
    return "not_ready", name[:64] if isinstance(name, str) and name else None, 0
