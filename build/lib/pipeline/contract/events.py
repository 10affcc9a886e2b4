"""The event contract, version 1: what the ACD/CTI and chat adapters write to Kafka.

These classes are the single source of truth for the contract. `schemas/*.json` is generated from them
(`python -m pipeline schemas`) and a test fails when the committed files are stale.

Two topics carry events:
- contact events (`contact.*`, `source.heartbeat`), keyed by `queue_id` so that every event of a queue
  reaches the same partition and worker;
- agent events (`agent.*`), keyed by `agent_id`.

A Kafka message holds one event (a JSON object) or, for producers that batch, a JSON array of events whose
keys all map to the message's partition (schemas/README.md). This module only describes and decodes; it must
not know about state or KPIs.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal, get_args

import msgspec
from msgspec import Meta

# Ids become metric labels and are shown on screens: control characters (NUL, newline, ...), Unicode format and
# direction marks (zero-width, RTL override, ...) are refused. Checked by the worker once per distinct value
# (`label_safe`), not by a schema pattern, which would cost more than the rest of decoding.
FORBIDDEN_ID_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
Id = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=128,
        description="An identifier from the source system: no control characters, Unicode format or direction marks.",
    ),
]


def label_safe(value: str) -> bool:
    """True when an id holds none of `FORBIDDEN_ID_CHARACTERS`."""
    return FORBIDDEN_ID_CHARACTERS.search(value) is None


EventTime = Annotated[
    datetime,
    Meta(tz=True, description="When it happened at the source (RFC 3339 with a UTC offset): the event time."),
]
ChannelName = Literal["voice", "chat", "email", "task", "messaging"]
"""Channels, in the order they were added to version 1 (`email`, `task`, `messaging` in 1.1: new values only)."""
CHANNELS: tuple[str, ...] = get_args(ChannelName)
Channel = Annotated[
    ChannelName,
    Meta(
        description="The contact's channel: voice, chat, email, task (back-office work item) or messaging "
        "(SMS, WhatsApp, social)."
    ),
]
SegmentName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        description="The customer segment or priority class (e.g. `gold`); queues count the ones they configure.",
    ),
]
AgentState = Literal["available", "on_contact", "acw", "not_ready"]


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Fields every event carries."""

    event_id: Annotated[str, Meta(min_length=1, max_length=128, description="Unique id of this event.")]
    time: EventTime
    v: Annotated[
        Literal[1],
        Meta(
            description="Contract version (the major version; optional, 1 when absent). Minor versions add optional "
            "fields, event types and channel values without changing it (schemas/README.md)."
        ),
    ] = 1


class ContactEvent(Event, frozen=True, kw_only=True):
    """A step in one contact's life in one queue (a queue *leg*)."""

    contact_id: Id
    queue_id: Id
    channel: Channel


class ContactOffered(ContactEvent, frozen=True, kw_only=True, tag="contact.offered"):
    """The contact arrived in the queue and starts waiting."""

    customer_id: (
        Annotated[
            str,
            Meta(max_length=128, description="The customer, where known. Used for repeat contacts; never exported."),
        ]
        | None
    ) = None
    segment: SegmentName | None = None


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


class ChatMessage(ContactEvent, frozen=True, kw_only=True, tag="chat.message"):
    """A message in a chat, from the customer (also while waiting) or from the agent who accepted it."""

    sender: Annotated[Literal["customer", "agent"], Meta(description="Who wrote it.")]
    agent_id: Id | None = None


class ContactFlowedOut(ContactEvent, frozen=True, kw_only=True, tag="contact.flowed_out"):
    """Routing moved the waiting contact out of this queue unanswered (overflow to another queue or target).

    A flow to another queue is followed by a `contact.offered` of the same contact there.
    """

    to_queue_id: Annotated[str, Meta(max_length=128, description="Target queue, if any.")] | None = None


class CallbackRequested(ContactEvent, frozen=True, kw_only=True, tag="contact.callback_requested"):
    """The waiting customer chose to be called back instead of waiting: the contact leaves the queue.

    It also starts the callback's own lifecycle (the `callback.*` events below) in the same queue."""

    promised_by: (
        Annotated[
            datetime,
            Meta(
                tz=True,
                description="When the customer was promised the call back at the latest, if a time was promised. "
                "A later `callback.scheduled` replaces it.",
            ),
        ]
        | None
    ) = None


# ---- Callbacks (contact topic, keyed by queue_id) --------------------------------------------------------------
# A callback's lifecycle after `contact.callback_requested`, in the queue the customer left (so on the same
# partition as the request): requested -> scheduled (optional, repeatable) -> dialled (attempt 1, 2, ...) ->
# connected or failed. `contact_id` is the requesting contact's. A callback created without a queue wait (from a
# web form, say) may start at `callback.scheduled` or `callback.dialled` with its own contact id.

CallbackAttempt = Annotated[int, Meta(ge=1, le=100, description="The dial attempt, from 1.")]


class CallbackScheduled(ContactEvent, frozen=True, kw_only=True, tag="callback.scheduled"):
    """The callback was given (or moved to) a time: the customer is promised a dial by `promised_by`."""

    promised_by: Annotated[
        datetime,
        Meta(tz=True, description="The latest time the customer was promised the dial (RFC 3339 with offset)."),
    ]


class CallbackDialled(ContactEvent, frozen=True, kw_only=True, tag="callback.dialled"):
    """The callback's number was dialled (attempt n)."""

    attempt: CallbackAttempt
    agent_id: Id | None = None


class CallbackConnected(ContactEvent, frozen=True, kw_only=True, tag="callback.connected"):
    """The dialled callback reached the customer: the callback is done (its conversation, if counted, is a new leg)."""

    attempt: CallbackAttempt


class CallbackFailed(ContactEvent, frozen=True, kw_only=True, tag="callback.failed"):
    """The callback was given up (attempts exhausted, cancelled, expired): the callback is done, not connected."""

    attempts: Annotated[int, Meta(ge=0, le=100, description="Dial attempts made in all (0: never dialled).")]


# ---- Agent offers (contact topic, keyed by queue_id) ----------------------------------------------------------
# Routing offers a waiting contact to an agent: it rings (is presented) until the agent accepts or rejects it, or
# rings out unanswered (RONA, "ring no answer") and is offered again, to the same agent or another. On the contact
# topic, keyed by the queue the contact waits in: the queue's offers and its per-agent figures are counted where
# its legs are (per agent summed over partitions, as the handling per agent is); `contact.answered` still ends
# the wait, an accept does not replace it.

OfferId = Annotated[
    str, Meta(min_length=1, max_length=128, description="The offer: the same on its ringing and on its outcome.")
]


class OfferRinging(ContactEvent, frozen=True, kw_only=True, tag="offer.ringing"):
    """The waiting contact was offered to (is ringing at) an agent."""

    offer_id: OfferId
    agent_id: Id


class OfferAccepted(ContactEvent, frozen=True, kw_only=True, tag="offer.accepted"):
    """The agent accepted the offer (ring time: this - the ringing)."""

    offer_id: OfferId
    agent_id: Id


class OfferRejected(ContactEvent, frozen=True, kw_only=True, tag="offer.rejected"):
    """The agent declined the offer; routing offers the contact again."""

    offer_id: OfferId
    agent_id: Id


class OfferMissed(ContactEvent, frozen=True, kw_only=True, tag="offer.missed"):
    """The offer rang out unanswered (RONA: ring no answer); routing offers the contact again."""

    offer_id: OfferId
    agent_id: Id


class SurveyCompleted(Event, frozen=True, kw_only=True, tag="survey.completed"):
    """A customer satisfaction survey about one contact in one queue (key: queue_id)."""

    contact_id: Id
    queue_id: Id
    channel: Channel
    score: Annotated[int, Meta(ge=1, le=5, description="Satisfaction, 1 (very dissatisfied) to 5 (very satisfied).")]


class IvrSessionEnded(Event, frozen=True, kw_only=True, tag="ivr.session_ended"):
    """A self-service (IVR or bot) session ended, contained or handed to a queue (key: queue_id)."""

    session_id: Id
    queue_id: Annotated[
        str, Meta(min_length=1, max_length=128, description="The queue (service) the session belongs to.")
    ]
    channel: Channel
    contained: Annotated[bool, Meta(description="True when it ended in self-service, without asking for an agent.")]


class ForecastPublished(Event, frozen=True, kw_only=True, tag="forecast.published"):
    """The forecast for one queue and interval (key: queue_id). A newer forecast (by `time`) from the same source
    replaces it; an external WFM's replaces the pipeline's own, never the other way round."""

    queue_id: Id
    channel: Channel
    interval_start: Annotated[
        datetime,
        Meta(tz=True, description="Start of the forecast interval; the pipeline interval holding it is meant."),
    ]
    offered: Annotated[float, Meta(ge=0, description="Contacts expected to arrive in the interval.")]
    aht_seconds: Annotated[float, Meta(gt=0, description="Expected average handle time.")]
    source: Annotated[
        Literal["wfm", "pipeline"],
        Meta(
            description="Who made it: `wfm`, an external WFM system (the default), or `pipeline`, the pipeline's own "
            "(`python -m pipeline forecast`). For an interval with both, the WFM's is the one compared with the actuals."
        ),
    ] = "wfm"


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
    reason_code: (
        Annotated[str, Meta(max_length=64, description="Why the agent is not ready (break, lunch, ...).")] | None
    ) = None
    active_contacts: (
        Annotated[
            int,
            Meta(
                ge=0,
                le=100,
                description="Contacts the agent handles at this moment (in conversation "
                "or after-contact work), for chat concurrency. Absent: 1 in on_contact and acw, else 0. "
                "Send a state_changed with the same state when only this number changes.",
            ),
        ]
        | None
    ) = None


# ---- Schedules (agent topic) -------------------------------------------------------------------------------
# What the WFM system plans for each agent, on the agent topic keyed by agent_id (the same partition as the
# agent's presence events, so one worker sees both). Adherence (docs/kpis.md) compares the plan with the state:
#   contact_handling             <-> logged in and available, on_contact or acw;
#   break, lunch, training, meeting <-> not_ready (any reason code: ACD reason codes are free text, not the
#                                    WFM's activity names) or logged out;
#   off                          <-> not scheduled: counts neither as scheduled nor as adherent time.

ScheduleActivity = Literal["contact_handling", "break", "lunch", "training", "meeting", "off"]
SCHEDULE_ACTIVITIES: tuple[str, ...] = get_args(ScheduleActivity)
MAX_ACTIVITY_SECONDS = 7 * 24 * 3600


class ScheduleActivityPlanned(AgentEvent, frozen=True, kw_only=True, tag="schedule.activity_planned"):
    """One planned activity of an agent, as the WFM system published it; `time` is when it was published.

    A schedule is re-published (changed mid-shift) by sending its entries again with a higher `version`:
    wherever entries of one agent overlap, the highest version holds (ties: the greatest `event_id`), so a
    new version replaces the plan exactly where it has entries, and `off` removes planned work. Entries that
    reach into an interval whose agent KPIs are already final are late (reported, not applied): publish a
    change from the time it takes effect.
    """

    schedule_id: Annotated[
        str,
        Meta(min_length=1, max_length=128, description="The published schedule this entry belongs to (for lineage)."),
    ]
    version: Annotated[
        int,
        Meta(
            ge=1,
            description="Publication version: overlapping entries of the agent with a higher version replace this one.",
        ),
    ]
    activity: Annotated[ScheduleActivity, Meta(description="contact_handling, break, lunch, training, meeting or off.")]
    start: Annotated[datetime, Meta(tz=True, description="Start of the activity (RFC 3339 with offset).")]
    end: Annotated[
        datetime, Meta(tz=True, description="End of the activity, exclusive; after `start`, at most 7 days later.")
    ]

    def __post_init__(self) -> None:
        length = (self.end - self.start).total_seconds()
        if not 0 < length <= MAX_ACTIVITY_SECONDS:
            raise ValueError("`end` must be after `start` and at most 7 days later")


ContactTopicEvent = (
    ContactOffered
    | ContactAnswered
    | ContactAbandoned
    | HoldStarted
    | HoldEnded
    | ContactTransferred
    | ContactEnded
    | AcwEnded
    | ChatMessage
    | ContactFlowedOut
    | CallbackRequested
    | CallbackScheduled
    | CallbackDialled
    | CallbackConnected
    | CallbackFailed
    | OfferRinging
    | OfferAccepted
    | OfferRejected
    | OfferMissed
    | SurveyCompleted
    | IvrSessionEnded
    | ForecastPublished
    | SourceHeartbeat
)
AgentTopicEvent = AgentLoggedIn | AgentLoggedOut | AgentStateChanged | ScheduleActivityPlanned | SourceHeartbeat

CONTACT_EVENT_TYPES: tuple[type[Event], ...] = get_args(ContactTopicEvent)
AGENT_EVENT_TYPES: tuple[type[Event], ...] = get_args(AgentTopicEvent)


def event_type(cls: type[Event]) -> str:
    """The `type` tag of an event class."""
    tag = cls.__struct_config__.tag  # msgspec types a tag as str | int | None; ours are all strings
    if not isinstance(tag, str):
        raise TypeError(f"{cls.__name__} has no string tag")
    return tag


def encode(event: Event) -> bytes:
    """Serialize one event the way producers must write it."""
    return msgspec.json.encode(event)
