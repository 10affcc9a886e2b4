"""The contact-center model: a seeded simpy simulation that emits contract events as things happen.

Customers arrive per queue (non-homogeneous Poisson, by thinning against the intraday curve), wait with
exponential patience, and are routed longest-waiting first to agents with the right skill (the longest
available agent takes a new arrival). Routing offers the contact to the agent: it rings, and a share of the
offers ring out unanswered (RONA) or are rejected, tying up the agent for the ring while the contact waits on;
the others are accepted, and the contact is answered. Agents work shifts with breaks; voice agents take one
contact at a time, chat agents several. Every event is emitted at the simulated time it happens, except the
ringing of an accepted offer (drawn back into the contact's wait, a few seconds at most: so that offers change
no answer time); events are handed over in time order, and streamed while the simulation runs.
"""

from __future__ import annotations

import bisect
import math
import random
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import simpy
from simpy.core import EmptySchedule

from pipeline.contract.events import (
    AcwEnded,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentStateChanged,
    CallbackConnected,
    CallbackDialled,
    CallbackFailed,
    CallbackRequested,
    ChatMessage,
    ContactAbandoned,
    ContactAnswered,
    ContactEnded,
    ContactFlowedOut,
    ContactOffered,
    ContactTransferred,
    Event,
    ForecastPublished,
    HoldEnded,
    HoldStarted,
    IvrSessionEnded,
    OfferAccepted,
    OfferMissed,
    OfferRejected,
    OfferRinging,
    ScheduleActivityPlanned,
    SurveyCompleted,
)
from pipeline.tools.simulate.config import CONVERSATIONS, CenterConfig, QueueSpec
from pipeline.tools.simulate.roster import Session, agent_sessions, chat_agents

BATCH_EVENTS = 1000  # the simulation runs about this many events ahead of the consumer
SURVEY_PROB = 0.25  # handled contacts whose customer answers the post-contact survey
SURVEY_SCORES = ((1, 0.05), (2, 0.07), (3, 0.13), (4, 0.35), (5, 0.40))
# Queues one agent serves at most, as Amazon Connect's routing profile allows by default ("the quota of 50 queues per
# routing profile per instance", Amazon Connect service quotas): a generalist of a 1,000-queue center is not in all.
MAX_SKILLS = 50
CALLBACK_SHARE = 0.2  # impatient voice callers who ask for a callback rather than abandon
# A callback's lifecycle (its own random stream: the rest of the day is unchanged): promised within half an hour,
# first dialled 1 to 40 minutes after the request (so some late), each attempt reaching the customer with
# CALLBACK_CONNECT_PROB, up to CALLBACK_ATTEMPTS attempts 5 to 15 minutes apart. The dialler is not modelled as
# agent time.
CALLBACK_PROMISE_SECONDS = 1800.0
CALLBACK_CONNECT_PROB = 0.6
CALLBACK_ATTEMPTS = 3
# An accepted offer rang this long (uniform, seconds) before the accept, within the contact's wait; a rejected one
# this long, at most the ring timeout. The ring of an accepted offer is drawn back into the wait, so that offers
# leave every answer where the model put it; missed and rejected offers are modelled (the agent is held, the
# customer waits on).
ACCEPT_RING_SECONDS = (2.0, 8.0)
REJECT_AFTER_SECONDS = (1.0, 10.0)
IVR_CONTAINED_PER_CALL = 0.35  # self-service sessions per voice call that reaches a queue
FORECAST_SECONDS = 900.0


def simulate(config: CenterConfig, seed: int) -> Iterator[Event]:
    """All events of one simulated period, in non-decreasing time order. Same config and seed, same events."""
    return _Center(config, seed).run()


class _Contact:
    """A customer's contact; it may visit several queues (transfers)."""

    __slots__ = ("contact_id", "customer_id", "visited")

    def __init__(self, contact_id: str, customer_id: str | None) -> None:
        self.contact_id = contact_id
        self.customer_id = customer_id
        # Queues offered this contact so far. Transfers never go back to one, so that (queue, contact)
        # identifies one leg for the whole log, not only while the leg is unfinished.
        self.visited: list[str] = []


class _Leg:
    """A contact's stay in one queue."""

    __slots__ = ("contact", "queue", "offered_at", "waiting", "patience_at", "free_since")

    def __init__(self, contact: _Contact, queue: _Queue, offered_at: float) -> None:
        self.contact = contact
        self.queue = queue
        self.offered_at = offered_at
        self.waiting = False  # in the queue's line; cleared on answer or abandon (lazy removal)
        self.patience_at: float | None = None  # when the customer gives up waiting, if they may
        self.free_since = offered_at  # since when no offer of it rings (an accepted offer's ring starts after)


class _Queue:
    __slots__ = (
        "spec",
        "queue_id",
        "channel",
        "line",
        "available",
        "transfer_targets",
        "dispositions",
        "weights",
        "segments",
        "segment_shares",
    )

    def __init__(self, spec: QueueSpec) -> None:
        self.spec = spec
        self.queue_id = spec.queue_id
        self.channel = spec.channel
        self.line: deque[_Leg] = deque()  # waiting legs, oldest first (may hold stale, non-waiting ones)
        self.available: dict[_Agent, None] = {}  # agents that can take a contact now, longest available first
        self.transfer_targets: list[_Queue] = []
        self.dispositions = [name for name, _ in spec.dispositions]
        self.weights = [weight for _, weight in spec.dispositions]
        self.segments: list[str | None] = [name for name, _ in spec.segments] + [None]
        self.segment_shares = [share for _, share in spec.segments] + [max(0.0, 1 - sum(s for _, s in spec.segments))]


class _Agent:
    __slots__ = (
        "agent_id",
        "channel",
        "queues",
        "capacity",
        "talking",
        "wrapping",
        "ringing",
        "ready",
        "draining",
        "listed",
        "state",
        "active",
        "idle",
    )

    def __init__(self, agent_id: str, channel: str, queues: list[_Queue], capacity: int) -> None:
        self.agent_id = agent_id
        self.channel = channel
        self.queues = queues  # primary skill first: it wins ties
        self.capacity = capacity
        self.talking = 0  # legs between answered and ended/transferred
        self.wrapping = 0  # legs in ACW
        self.ringing = 0  # offers ringing that will be missed or rejected (each holds a place, as a contact does)
        self.ready = False  # logged in and not heading for a break or logout: may get new contacts
        self.draining = False  # the period ended mid-shift: serving what still waits, then logging out
        self.listed = False  # in its queues' `available` lists
        self.state: str | None = None  # last emitted state
        self.active: int | None = None  # last emitted active_contacts (chat agents in a contact)
        self.idle: simpy.Event | None = None  # fired when the last contact is done, for a pending break/logout


class _Session(NamedTuple):
    login_at: float
    logout_at: float
    cut_end: bool  # the period ends mid-shift
    breaks: list[tuple[float, str, float]]  # (due at, reason code, length), in time order


class _Center:
    def __init__(self, config: CenterConfig, seed: int) -> None:
        self.config = config
        self.seed = seed
        self.env = simpy.Environment()
        # Separate random streams, so that e.g. the staffing does not change the arrivals.
        self.rng_customers = random.Random(f"{seed}:customers")
        self.rng_handling = random.Random(f"{seed}:handling")
        self.rng_extras = random.Random(f"{seed}:extras")  # surveys, IVR, forecasts: the rest is unchanged
        self.rng_segments = random.Random(f"{seed}:segments")  # likewise
        self.rng_callbacks = random.Random(f"{seed}:callbacks")  # callbacks' lifecycles
        self.rng_offers = random.Random(f"{seed}:offers")  # offers' outcomes and rings
        self.queues = [_Queue(spec) for spec in config.queues]
        for queue in self.queues:
            queue.transfer_targets = [q for q in self.queues if q.channel == queue.channel and q is not queue]
        self.events: list[Event] = []
        self.backdated: list[Event] = []  # accepted offers' ringing, up to ACCEPT_RING_SECONDS in the past
        self.held: list[Event] = []  # events not handed over yet: a backdated one may still come before them
        self.event_count = 0
        self.offer_count = 0
        self.offer_event_count = 0  # offer events have their own ids, so that offers change no other event's id
        self.contact_count = 0
        self.customer_count = 0
        self.recent_customers: list[tuple[float, str]] = []  # (contacted at, customer), oldest first
        self.recent_from = 0  # entries before this index are older than the repeat window
        self.start = config.start.astimezone(UTC)
        self.clock_at = -1.0
        self.clock = self.start
        self.sigma = config.duration_sigma

    # --- running and emitting -------------------------------------------------------------------------

    def run(self) -> Iterator[Event]:
        """Start arrivals and agents, then step the simulation, handing over events in batches."""
        env = self.env
        for queue in self.queues:
            env.process(self._arrivals(queue))
        self._publish_forecasts()
        for agent, sessions in self._staff():
            self._publish_schedule(agent, sessions)
            env.process(self._work(agent, sessions))
        step = env.step
        while True:
            try:
                step()
            except EmptySchedule:
                self._carry_over()
                break  # drained
            if len(self.events) >= BATCH_EVENTS:
                yield from self._hand_over(final=False)
        yield from self._hand_over(final=True)

    def _hand_over(self, final: bool) -> list[Event]:
        """The events emitted so far that no later one can precede, in time order (stable: equal times keep
        the order they happened in). Without backdated ringing, the events as they were emitted."""
        if not self.backdated and not self.held:
            events, self.events = self.events, []
            return events
        pending = self.held + self.events + self.backdated
        pending.sort(key=lambda e: e.time)
        self.events, self.backdated = [], []
        if final:
            self.held = []
            return pending
        # a ringing emitted later is backdated at most ACCEPT_RING_SECONDS before the simulated time
        horizon = self.start + timedelta(seconds=self.env.now - ACCEPT_RING_SECONDS[1] - 1)
        cut = bisect.bisect_left(pending, horizon, key=lambda e: e.time)
        self.held = pending[cut:]
        return pending[:cut]

    def _carry_over(self) -> None:
        """Emails and tasks never give up: those still waiting when the last agent has gone go to tomorrow's
        backlog (flowed out, no target), so that every leg of the log completes."""
        for queue in self.queues:
            for leg in queue.line:
                if leg.waiting:
                    leg.waiting = False
                    self._contact_event(ContactFlowedOut, leg, to_queue_id=None)

    def _time(self) -> datetime:
        now = self.env.now
        if now != self.clock_at:
            self.clock_at = now
            self.clock = self.start + timedelta(milliseconds=round(now * 1000))
        return self.clock

    def _event_id(self) -> str:
        self.event_count += 1
        return f"ev-{self.seed}-{self.event_count}"

    def _contact_event(self, cls: type, leg: _Leg, **fields: object) -> None:
        queue = leg.queue
        self.events.append(
            cls(
                event_id=self._event_id(),
                time=self._time(),
                contact_id=leg.contact.contact_id,
                queue_id=queue.queue_id,
                channel=queue.channel,
                **fields,
            )
        )

    def _agent_event(self, cls: type, agent: _Agent, **fields: object) -> None:
        self.events.append(cls(event_id=self._event_id(), time=self._time(), agent_id=agent.agent_id, **fields))

    def _chat_messages(self, leg: _Leg, agent_id: str, talk: float):
        """The conversation of an accepted chat: the agent's first reply, then exchanges, all within `talk`."""
        env, rng = self.env, self.rng_extras
        end = env.now + talk
        at = env.now + min(rng.uniform(5, 30), talk * 0.2)
        while at < end:
            yield env.timeout(at - env.now)
            self._contact_event(ChatMessage, leg, sender="agent", agent_id=agent_id)
            ask = env.now + rng.uniform(20, 90)
            if ask >= end:
                break
            yield env.timeout(ask - env.now)
            self._contact_event(ChatMessage, leg, sender="customer")
            at = env.now + rng.uniform(5, 60)

    def _ivr_session(self, queue: _Queue, contained: bool) -> None:
        self.events.append(
            IvrSessionEnded(
                event_id=self._event_id(),
                time=self._time(),
                session_id=f"ivr-{self.seed}-{self.event_count}",
                queue_id=queue.queue_id,
                channel=queue.channel,
                contained=contained,
            )
        )

    def _publish_forecasts(self) -> None:
        """The WFM forecast of every queue and quarter hour, published at the start: the expected arrivals
        (the intraday curve, off by a random few percent, as forecasts are) and the mean handle time."""
        config, rng = self.config, self.rng_extras
        for queue in self.queues:
            spec = queue.spec
            t = 0.0
            while t < config.duration:
                mid = t + FORECAST_SECONDS / 2
                expected = spec.peak_rate * config.rate_scale * config.load_at(mid) * FORECAST_SECONDS / 3600
                self.events.append(
                    ForecastPublished(
                        event_id=self._event_id(),
                        time=self._time(),
                        queue_id=queue.queue_id,
                        channel=queue.channel,
                        interval_start=self.start + timedelta(seconds=t),
                        offered=round(expected * rng.uniform(0.9, 1.1), 1),
                        aht_seconds=round(spec.mean_handle(config), 1),
                    )
                )
                t += FORECAST_SECONDS

    def _publish_schedule(self, agent: _Agent, sessions: list[_Session]) -> None:
        """The agent's planned shifts and breaks, published at the start (breaks as version 2 over the shift)."""
        for session in sessions:
            entries = [(1, "contact_handling", session.login_at, session.logout_at)]
            entries += [(2, reason, at, at + length) for at, reason, length in session.breaks]
            for version, activity, start, end in entries:
                if end > start:
                    self._agent_event(
                        ScheduleActivityPlanned,
                        agent,
                        schedule_id=f"roster-{self.seed}",
                        version=version,
                        activity=activity,
                        start=self.start + timedelta(seconds=start),
                        end=self.start + timedelta(seconds=end),
                    )

    def _set_state(self, agent: _Agent, state: str, reason_code: str | None = None) -> None:
        agent.state = state
        agent.active = None
        self._agent_event(AgentStateChanged, agent, state=state, reason_code=reason_code)

    def _update_state(self, agent: _Agent) -> None:
        """Emit the agent's state if its work changed it: on_contact while any contact is in talk. A chat agent
        (several contacts at once) also says how many it has (`active_contacts`), again whenever that changes."""
        state = "on_contact" if agent.talking else "acw" if agent.wrapping else "available"
        active = agent.talking + agent.wrapping if agent.capacity > 1 and state != "available" else None
        if state != agent.state or active != agent.active:
            agent.state, agent.active = state, active
            self._agent_event(AgentStateChanged, agent, state=state, active_contacts=active)

    def _lognormal(self, mean: float) -> float:
        sigma = self.sigma
        return self.rng_handling.lognormvariate(math.log(mean) - sigma * sigma / 2, sigma)

    # --- customers ------------------------------------------------------------------------------------

    def _arrivals(self, queue: _Queue):
        """New contacts for one queue until the end of the period: Poisson, thinned by the intraday curve."""
        config, env = self.config, self.env
        rng = random.Random(f"{self.seed}:arrivals:{queue.queue_id}")
        peak = queue.spec.peak_rate * config.rate_scale / 3600  # per second; the curve peaks at 1.0
        if peak <= 0:
            return
        at = 0.0
        while True:
            at += rng.expovariate(peak)
            if at >= config.duration:
                return
            open_now = config.is_open(at) if queue.spec.business_hours_only else None
            if rng.random() < (config.load_at(at) if open_now is None else float(open_now)):
                yield env.timeout(at - env.now)
                self.contact_count += 1
                contact = _Contact(f"c-{self.seed}-{self.contact_count}", self._customer())
                self._offer(contact, queue)

    def _customer(self) -> str | None:
        """Who is contacting: unknown, someone who contacted within the repeat window, or a new customer."""
        config, rng, now = self.config, self.rng_customers, self.env.now
        if rng.random() < config.anonymous_prob:
            return None
        recent = self.recent_customers
        window_start = now - config.repeat_window_hours * 3600
        while self.recent_from < len(recent) and recent[self.recent_from][0] < window_start:
            self.recent_from += 1
        if self.recent_from < len(recent) and rng.random() < config.repeat_prob:
            customer = recent[rng.randrange(self.recent_from, len(recent))][1]
        else:
            self.customer_count += 1
            customer = f"cust-{self.customer_count:06d}"
        recent.append((now, customer))
        if self.recent_from > 10_000 and 2 * self.recent_from > len(recent):  # forget the old ones
            del recent[: self.recent_from]
            self.recent_from = 0
        return customer

    def _offer(self, contact: _Contact, queue: _Queue) -> None:
        """A new leg: straight to the longest available agent, or into the line until answered or abandoned."""
        leg = _Leg(contact, queue, self.env.now)
        contact.visited.append(queue.queue_id)
        segment = self.rng_segments.choices(queue.segments, queue.segment_shares)[0] if queue.spec.segments else None
        self._contact_event(ContactOffered, leg, customer_id=contact.customer_id, segment=segment)
        if queue.channel in CONVERSATIONS:
            self._contact_event(ChatMessage, leg, sender="customer")  # the question that opens the chat
        if queue.channel == "voice" and len(contact.visited) == 1:  # came through the IVR
            self._ivr_session(queue, contained=False)
            if self.rng_extras.random() < IVR_CONTAINED_PER_CALL:
                self._ivr_session(queue, contained=True)
        if queue.available:
            agent = next(iter(queue.available))
            self._present(agent, leg)
            self._list(agent, requeue=True)
        else:
            leg.waiting = True
            queue.line.append(leg)
            if queue.spec.patience_mean > 0:  # an email or a task waits until someone takes it
                patience = self.rng_customers.expovariate(1 / queue.spec.patience_mean)
                self._give_up_after(leg, patience)

    def _give_up_after(self, leg: _Leg, patience: float) -> None:
        leg.patience_at = self.env.now + patience
        self.env.timeout(patience).callbacks.append(lambda _: self._abandon(leg))

    def _abandon(self, leg: _Leg) -> None:
        if not leg.waiting:
            return  # answered in time
        leg.waiting = False
        # Out of patience on the phone, some take the offered callback instead of hanging up.
        callback = leg.queue.channel == "voice" and self.rng_extras.random() < CALLBACK_SHARE
        if callback:
            promised_by = self.start + timedelta(seconds=self.env.now + CALLBACK_PROMISE_SECONDS)
            self._contact_event(CallbackRequested, leg, promised_by=promised_by)
            self.env.process(self._callback(leg))
        else:
            self._contact_event(ContactAbandoned, leg)
        line = leg.queue.line
        while line and not line[0].waiting:
            line.popleft()

    def _callback(self, leg: _Leg):
        """A requested callback: dialled, redialled while nobody answers, then connected or failed."""
        env, rng = self.env, self.rng_callbacks
        yield env.timeout(rng.uniform(60, 2400))
        for attempt in range(1, CALLBACK_ATTEMPTS + 1):
            self._contact_event(CallbackDialled, leg, attempt=attempt)
            if rng.random() < CALLBACK_CONNECT_PROB:
                yield env.timeout(rng.uniform(5, 30))
                self._contact_event(CallbackConnected, leg, attempt=attempt)
                return
            yield env.timeout(30)  # rang out
            if attempt < CALLBACK_ATTEMPTS:
                yield env.timeout(rng.uniform(270, 870))
        self._contact_event(CallbackFailed, leg, attempts=CALLBACK_ATTEMPTS)

    # --- routing and handling -------------------------------------------------------------------------

    def _list(self, agent: _Agent, requeue: bool = False) -> None:
        """Keep the agent in its queues' available lists exactly while it can take a contact.

        `requeue` moves a chat agent that just took a chat but has room for more behind the others.
        """
        can_take = agent.ready and agent.talking + agent.wrapping + agent.ringing < agent.capacity
        if agent.listed and (requeue or not can_take):
            for queue in agent.queues:
                del queue.available[agent]
            agent.listed = False
        if can_take and not agent.listed:
            for queue in agent.queues:
                queue.available[agent] = None
            agent.listed = True

    def _pull(self, agent: _Agent) -> None:
        """Give a ready agent the longest-waiting contacts of its queues while it has room, then list it."""
        while agent.ready and agent.talking + agent.wrapping + agent.ringing < agent.capacity:
            oldest: _Leg | None = None
            for queue in agent.queues:
                line = queue.line
                while line and not line[0].waiting:
                    line.popleft()
                if line and (oldest is None or line[0].offered_at < oldest.offered_at):
                    oldest = line[0]
            if oldest is None:
                break
            oldest.queue.line.popleft()
            self._present(agent, oldest, update=False)
        self._update_state(agent)  # once for the contacts taken at this instant (one state event, not one each)
        self._list(agent)

    def _present(self, agent: _Agent, leg: _Leg, update: bool = True) -> None:
        """Routing offers the leg to the agent: accepted (and answered) now, or ringing until it is missed or
        rejected, after which the leg is offered again."""
        config = self.config
        if not config.agent_offers:
            self._answer(agent, leg, update)
            return
        rng, now = self.rng_offers, self.env.now
        self.offer_count += 1
        offer_id = f"offer-{self.seed}-{self.offer_count}"
        draw = rng.random()
        if draw >= config.offer_missed_share + config.offer_rejected_share:
            rang_at = max(leg.free_since, now - rng.uniform(*ACCEPT_RING_SECONDS))
            self._offer_event(OfferRinging, leg, agent, offer_id, at=rang_at)
            self._offer_event(OfferAccepted, leg, agent, offer_id)
            self._answer(agent, leg, update)
            return
        outcome: type[OfferMissed] | type[OfferRejected]
        if draw < config.offer_missed_share:
            outcome, ring = OfferMissed, config.ring_timeout
        else:
            outcome, ring = OfferRejected, min(rng.uniform(*REJECT_AFTER_SECONDS), config.ring_timeout)
        leg.waiting = False  # out of the line while it rings (it keeps its place: back at the front after)
        agent.ringing += 1
        self._offer_event(OfferRinging, leg, agent, offer_id)
        self.env.timeout(ring).callbacks.append(lambda _: self._not_accepted(agent, leg, outcome, offer_id))

    def _not_accepted(self, agent: _Agent, leg: _Leg, outcome: type, offer_id: str) -> None:
        """The offer rang out or was rejected: the leg is offered again (another available agent first), the
        agent is free again (for routing, behind the other available agents)."""
        self._offer_event(outcome, leg, agent, offer_id)
        agent.ringing -= 1
        leg.free_since = self.env.now
        self._list(agent)
        queue = leg.queue
        if queue.available:
            other = next(iter(queue.available))
            self._present(other, leg)
            self._list(other, requeue=True)
        else:
            leg.waiting = True
            queue.line.appendleft(leg)  # it was the queue's oldest when offered; those behind came later
            if leg.patience_at is not None and leg.patience_at <= self.env.now:
                self._abandon(leg)  # gave up while it rang
            elif leg.patience_at is None and queue.spec.patience_mean > 0:  # was offered on arrival
                self._give_up_after(leg, self.rng_offers.expovariate(1 / queue.spec.patience_mean))
        if agent.ready:
            self._pull(agent)
        busy = agent.talking or agent.wrapping or agent.ringing
        if not busy and (agent.draining or not agent.ready) and agent.idle is not None:
            agent.idle.succeed()  # a break, the logout or the drain was waiting for this ring
            agent.idle = None

    def _offer_event(self, cls: type, leg: _Leg, agent: _Agent, offer_id: str, at: float | None = None) -> None:
        self.offer_event_count += 1
        queue = leg.queue
        event = cls(
            event_id=f"ev-{self.seed}-o{self.offer_event_count}",
            time=self._time() if at is None else self.start + timedelta(milliseconds=round(at * 1000)),
            contact_id=leg.contact.contact_id,
            queue_id=queue.queue_id,
            channel=queue.channel,
            offer_id=offer_id,
            agent_id=agent.agent_id,
        )
        (self.events if at is None or at >= self.env.now else self.backdated).append(event)

    def _answer(self, agent: _Agent, leg: _Leg, update: bool = True) -> None:
        leg.waiting = False
        agent.talking += 1
        self._contact_event(ContactAnswered, leg, agent_id=agent.agent_id)
        if update:
            self._update_state(agent)
        self.env.process(self._handle(agent, leg))

    def _handle(self, agent: _Agent, leg: _Leg):
        """One answered leg: talk with optional holds, end or transfer, ACW with a disposition."""
        config, env, rng = self.config, self.env, self.rng_handling
        queue, contact = leg.queue, leg.contact
        agent_id = agent.agent_id
        talk = self._lognormal(queue.spec.talk_mean)
        voice = queue.channel == "voice"
        if queue.channel in CONVERSATIONS:
            env.process(self._chat_messages(leg, agent_id, talk))
        if voice and rng.random() < config.hold_prob:
            holds = 2 if rng.random() < config.second_hold_prob else 1
            talked = 0.0
            for hold_at in sorted(rng.random() * talk for _ in range(holds)):
                yield env.timeout(hold_at - talked)
                talked = hold_at
                self._contact_event(HoldStarted, leg, agent_id=agent_id)
                yield env.timeout(self._lognormal(config.hold_mean))
                self._contact_event(HoldEnded, leg, agent_id=agent_id)
            talk -= talked
        yield env.timeout(talk)

        target = None
        if voice and len(contact.visited) <= config.max_transfers and rng.random() < config.transfer_prob:
            targets = [q for q in queue.transfer_targets if q.queue_id not in contact.visited]
            target = rng.choice(targets) if targets else None
        agent.talking -= 1
        agent.wrapping += 1
        if target is None:
            self._contact_event(ContactEnded, leg, agent_id=agent_id)
            disposition = rng.choices(queue.dispositions, queue.weights)[0]
        else:
            self._contact_event(ContactTransferred, leg, agent_id=agent_id, to_queue_id=target.queue_id)
            disposition = "transferred"
        self._update_state(agent)
        if target is not None:
            self._offer(contact, target)

        yield env.timeout(self._lognormal(queue.spec.acw_mean))
        self._contact_event(AcwEnded, leg, agent_id=agent_id, disposition=disposition)
        if self.rng_extras.random() < SURVEY_PROB:
            score = self.rng_extras.choices([s for s, _ in SURVEY_SCORES], [w for _, w in SURVEY_SCORES])[0]
            self._contact_event(SurveyCompleted, leg, score=score)
        agent.wrapping -= 1
        if agent.ready:
            self._pull(agent)
        busy = agent.talking or agent.wrapping or agent.ringing
        if busy or (agent.ready and not agent.draining):
            self._update_state(agent)
        elif agent.idle is not None:  # a break or the logout was waiting for this: no "available" first
            agent.idle.succeed()
            agent.idle = None

    # --- agents ---------------------------------------------------------------------------------------

    def _staff(self) -> list[tuple[_Agent, list[_Session]]]:
        """The agents (channel, skills) and their sessions, drawn once from the seed."""
        config = self.config
        rng = random.Random(f"{self.seed}:staff")
        chat_count = chat_agents(config)
        chat_indexes = set(rng.sample(range(config.agents), chat_count))
        plans = {}  # channel -> (queues, primary skills, rosters), one skill and roster per agent, shuffled
        for channel, count in (("voice", config.agents - chat_count), ("chat", chat_count)):
            queues = [q for q in self.queues if (q.channel == "voice") == (channel == "voice")]  # chat: the rest
            primaries, rosters = _allocate(count, queues, config), agent_sessions(config, count)
            rng.shuffle(primaries)
            rng.shuffle(rosters)
            plans[channel] = (queues, primaries, rosters)
        width = max(3, len(str(config.agents)))
        staff = []
        for index in range(config.agents):
            channel = "chat" if index in chat_indexes else "voice"
            queues, primaries, rosters = plans[channel]
            primary = primaries.pop()
            others = [q for q in queues if q is not primary]
            extra = rng.random()  # most agents have one or two skills, some all of their channel (up to a profile's)
            if extra < 0.15:
                skills = [primary] + (others if len(others) < MAX_SKILLS else rng.sample(others, MAX_SKILLS - 1))
            else:
                skills = [primary] + (rng.sample(others, 1) if extra < 0.5 and others else [])
            capacity = config.chat_concurrency if channel == "chat" else 1
            agent = _Agent(f"agent-{index + 1:0{width}d}", channel, skills, capacity)
            staff.append((agent, [self._session(session, rng) for session in rosters.pop()]))
        return staff

    def _session(self, session: Session, rng: random.Random) -> _Session:
        """Login, logout and breaks of one session: staggered edges, breaks spread over the shift."""
        config = self.config
        shift_start, shift_end = session.shift_start, session.shift_end
        stagger = min(0.05 * (shift_end - shift_start), 900.0)  # half on time, others up to 15 min off
        shift_start += max(0.0, rng.uniform(-stagger, stagger))
        shift_end -= max(0.0, rng.uniform(-stagger, stagger))
        login_at, logout_at = max(shift_start, session.start), min(shift_end, session.end)
        worked = shift_end - shift_start
        breaks = []
        if worked >= 3600:
            count = max(1, round(worked / 7200) - 1)  # 2 h -> 1, 6 h -> 2, 8 h -> 3
            part = worked / count
            for k in range(1, count + 1):  # one per part of the shift, anywhere in it: breaks spread out
                at = shift_start + (k - 1 + rng.uniform(0.1, 0.9)) * part
                if worked >= 5 * 3600 and k == (count + 1) // 2:
                    breaks.append((at, "lunch", rng.uniform(1800, 2700)))
                else:
                    breaks.append((at, "break", rng.uniform(600, 900)))
            if rng.random() < config.training_prob:
                breaks.append((shift_start + rng.uniform(0.1, 0.7) * worked, "training", rng.uniform(1800, 3600)))
        breaks = sorted(b for b in breaks if login_at <= b[0] < logout_at)  # those of the cut-off parts are gone
        return _Session(login_at, logout_at, shift_end > session.end, breaks)

    def _work(self, agent: _Agent, sessions: list[_Session]):
        """Each session: log in, take the breaks (after finishing current work), log out at the end (ditto)."""
        env = self.env
        for session in sessions:
            if session.login_at > env.now:
                yield env.timeout(session.login_at - env.now)
            self._agent_event(AgentLoggedIn, agent, queue_ids=[q.queue_id for q in agent.queues])
            self._become_ready(agent)
            for due_at, reason, length in session.breaks:
                if due_at >= session.logout_at:
                    break
                if due_at > env.now:
                    yield env.timeout(due_at - env.now)
                yield from self._finish_work(agent)
                if env.now >= session.logout_at:
                    break
                self._set_state(agent, "not_ready", reason)
                back_at = min(env.now + length, session.logout_at)
                yield env.timeout(back_at - env.now)
                if back_at >= session.logout_at:
                    break
                self._become_ready(agent)
            if session.logout_at > env.now:
                yield env.timeout(session.logout_at - env.now)
            if session.cut_end and agent.ready:
                yield from self._drain(agent)
            yield from self._finish_work(agent)
            self._agent_event(AgentLoggedOut, agent)
            agent.state = None

    def _become_ready(self, agent: _Agent) -> None:
        agent.ready = True
        self._update_state(agent)
        self._pull(agent)

    def _drain(self, agent: _Agent):
        """At the end of the period, mid-shift: keep answering until the agent's queues are empty."""
        agent.draining = True
        while agent.talking or agent.wrapping or agent.ringing:
            agent.idle = self.env.event()
            yield agent.idle
        agent.draining = False

    def _finish_work(self, agent: _Agent):
        """Take no new contacts and wait until the current ones are done (ACW included)."""
        agent.ready = False
        self._list(agent)
        if agent.talking or agent.wrapping or agent.ringing:
            agent.idle = self.env.event()
            yield agent.idle


def _allocate(count: int, queues: list[_Queue], config: CenterConfig) -> list[_Queue]:
    """Primary skills for `count` agents, in proportion to each queue's workload (largest remainder)."""
    if not queues or count == 0:
        return []
    work = [q.spec.peak_rate * q.spec.mean_handle(config) for q in queues]
    total = sum(work) or 1.0
    shares = [count * w / total for w in work]
    counts = [int(s) for s in shares]
    by_remainder = sorted(range(len(queues)), key=lambda i: shares[i] - counts[i], reverse=True)
    for i in by_remainder[: count - sum(counts)]:
        counts[i] += 1
    return [queue for queue, n in zip(queues, counts, strict=True) for _ in range(n)]
