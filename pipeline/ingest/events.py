"""The event contract, version 1: what the ACD/CTI and chat adapters write to Kafka.

These classes are the single source of truth for the contract. `schemas/*.json` is generated from them
(`python -m pipeline schemas`) and a test fails when the committed files are stale.

Two topics carry events:
- contact events (`contact.*`, `source.heartbeat`), keyed by `queue_id` so that every event of a queue
  reaches the same partition and worker;
- agent events (`agent.*`), keyed by `agent_id`.

A Kafka message holds one event (a JSON object) or, for producers that batch, a JSON array of events of
the same key. This module only describes and decodes; it must not know about state or KPIs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Id = Annotated[str, Meta(min_length=1, max_length=128, description="An identifier from the source system.")]
EventTime = Annotated[
    datetime,
    Meta(tz=True, description="When it happened at the source (RFC 3339 with a UTC offset): the event time."),
]
Channel = Annotated[Literal["voice", "chat"], Meta(description="The contact's channel.")]
AgentState = Literal["available", "on_contact", "acw", "not_ready"]


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Fields every event carries."""

    event_id: Annotated[str, Meta(min_length=1, max_length=128, description="Unique id of this event.")]
    time: EventTime
    v: Annotated[Literal[1], Meta(description="Contract version.")] = 1


class ContactEvent(Event, frozen=True, kw_only=True):
    """A step in one contact's life in one queue (a queue *leg*)."""

    contact_id: Id
    queue_id: Id
    channel: Channel


class ContactOffered(ContactEvent, frozen=True, kw_only=True, tag="contact.offered"):
    """The contact arrived in the queue and starts waiting."""

    customer_id: (
        Annotated[str, Meta(max_length=128, description="The customer, where known. Used for repeat contacts; never exported.")]
        | None
    ) = None


class ContactAnswered(ContactEvent, frozen=True, kw_only=True, tag="contact.answered"):
    """An agent accepted the contact: its wait in the queue ends."""

    agent_id: Id


class ContactAbandoned(ContactEvent, frozen=True, kw_only=True, tag="contact.abandoned"):
    """The customer left (hung up, closed the chat) before an agent answered."""


class HoldStarted(ContactEvent, frozen=True, kw_only=True, tag="contact.hold_started"):
    """The agent put the customer on hold."""

    agent_id: Id


class HoldEnded(ContactEvent, frozen=True, kw_only=True, tag="contact.hold_ended"):
    """The customer came back from hold."""

    agent_id: Id


class ContactTransferred(ContactEvent, frozen=True, kw_only=True, tag="contact.transferred"):
    """The agent handed the contact on; the agent's conversation on this leg ends here (ACW may follow).

    A transfer to another queue is followed by a `contact.offered` of the same contact to that queue.
    """

    agent_id: Id
    to_queue_id: Annotated[str, Meta(max_length=128, description="Target queue, if any.")] | None = None


class ContactEnded(ContactEvent, frozen=True, kw_only=True, tag="contact.ended"):
    """The conversation with the customer ended; the agent goes into after-contact work (ACW)."""

    agent_id: Id


class AcwEnded(ContactEvent, frozen=True, kw_only=True, tag="contact.acw_ended"):
    """The agent finished after-contact work; the handling of this leg is complete."""

    agent_id: Id
    disposition: Annotated[str, Meta(min_length=1, max_length=64, description="Wrap-up / outcome code.")]


class SourceHeartbeat(Event, frozen=True, kw_only=True, tag="source.heartbeat"):
    """The source's clock: no event older than `time` is still to come from this source, partition by partition.

    Adapters send one to every partition when they are idle, so that quiet partitions still close intervals.
    """


class AgentEvent(Event, frozen=True, kw_only=True):
    """A change in an agent's presence or state."""

    agent_id: Id


class AgentLoggedIn(AgentEvent, frozen=True, kw_only=True, tag="agent.logged_in"):
    """The agent logged in, serving the given queues (skills)."""

    queue_ids: Annotated[list[Id], Meta(description="Queues this agent serves in this session.")] = []


class AgentLoggedOut(AgentEvent, frozen=True, kw_only=True, tag="agent.logged_out"):
    """The agent logged out."""


class AgentStateChanged(AgentEvent, frozen=True, kw_only=True, tag="agent.state_changed"):
    """The agent's state changed."""

    state: Annotated[AgentState, Meta(description="available, on_contact, acw (after-contact work) or not_ready.")]
    reason_code: Annotated[str, Meta(max_length=64, description="Why the agent is not ready (break, lunch, ...).")] | None = None


ContactTopicEvent = (
    ContactOffered
    | ContactAnswered
    | ContactAbandoned
    | HoldStarted
    | HoldEnded
    | ContactTransferred
    | ContactEnded
    | AcwEnded
    | SourceHeartbeat
)
AgentTopicEvent = AgentLoggedIn | AgentLoggedOut | AgentStateChanged

CONTACT_EVENT_TYPES: tuple[type[Event], ...] = ContactTopicEvent.__args__  # type: ignore[attr-defined]
AGENT_EVENT_TYPES: tuple[type[Event], ...] = AgentTopicEvent.__args__  # type: ignore[attr-defined]


def event_type(cls: type[Event]) -> str:
    """The `type` tag of an event class."""
    return cls.__struct_config__.tag  # type: ignore[return-value]


def encode(event: Event) -> bytes:
    """Serialize one event the way producers must write it."""
    return msgspec.json.encode(event)
