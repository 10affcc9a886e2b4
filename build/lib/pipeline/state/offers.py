"""Agent offers: a waiting contact ringing at an agent, then accepted, rejected or rung out unanswered (RONA).

An offer is keyed by (queue, contact, offer id) and counted like a leg, only once the facts each count needs are
known, so shuffled input gives the counts of ordered input:
- the ringing counts in its own interval (`agent_offers`);
- its outcome counts in the outcome's interval once the ringing is known too (an accept also adds its ring
  time, accept - ringing); an outcome whose ringing never comes is given up uncounted at the contact timeout.
Every count is also the offered agent's. Owned by `QueueState`, which says which intervals are final and applies
the increments; must not import it.
"""

from __future__ import annotations

import msgspec

from pipeline.contract import events as ev
from pipeline.core.time import interval_start

OFFER_EVENTS = (ev.OfferRinging, ev.OfferAccepted, ev.OfferRejected, ev.OfferMissed)
OfferEvent = ev.OfferRinging | ev.OfferAccepted | ev.OfferRejected | ev.OfferMissed
OUTCOME_COUNT = {
    ev.OfferAccepted: "agent_offers_accepted",
    ev.OfferRejected: "agent_offers_rejected",
    ev.OfferMissed: "agent_offers_missed",
}

# (interval start ms, count name, amount)
OfferIncrement = tuple[int, str, int]


class Offer(msgspec.Struct, omit_defaults=True):
    """What is known of one offer. Stored in checkpoints without the fields still at their defaults."""

    queue_id: str
    channel: str
    contact_id: str
    offer_id: str
    agent_id: str
    first_seen: int  # event times, epoch ms
    last_seen: int
    event_ids: list[str] = msgspec.field(default_factory=list)
    ringing_at: int | None = None
    outcome: str | None = None  # the count of its outcome (`OUTCOME_COUNT`)
    outcome_at: int | None = None
    outcome_counted: bool = False

    @property
    def complete(self) -> bool:
        return self.outcome_counted


def record(offer: Offer, e: OfferEvent, t: int) -> bool:
    """Write the event's fact into the offer; False when it contradicts what is known."""
    if e.agent_id != offer.agent_id:
        return False  # one offer rings at one agent
    if isinstance(e, ev.OfferRinging):
        if offer.ringing_at is not None:
            return False
        offer.ringing_at = t
    else:
        if offer.outcome is not None:
            return False
        offer.outcome, offer.outcome_at = OUTCOME_COUNT[type(e)], t
    return True


def contribution(offer: Offer, e: OfferEvent, t: int, length: int) -> list[OfferIncrement] | None:
    """The counts the event adds, marked on the offer; None when the outcome is before the ringing."""
    out: list[OfferIncrement] = []
    if isinstance(e, ev.OfferRinging):
        out.append((interval_start(t, length), "agent_offers", 1))
    rang, ended = offer.ringing_at, offer.outcome_at
    if not offer.outcome_counted and rang is not None and ended is not None and offer.outcome is not None:
        if ended < rang:
            return None
        at = interval_start(ended, length)
        out.append((at, offer.outcome, 1))
        if offer.outcome == "agent_offers_accepted":
            out.append((at, "agent_offer_ring_ms", ended - rang))
        offer.outcome_counted = True
    return out
