"""The agent state of one partition of the agent-event topic, on event time. Pure Python: no Kafka, no Faust.

What it keeps, per agent:
- its clock (the newest time of its own presence events) and its final horizon F: the end of its newest final
  interval;
- the *settled* status (logged in or not, state, reason code, queues, active contacts) at F;
- the *buffer*: the agent's presence events at or after F, in any order of arrival;
- the *plan*: the schedule entries (`schedule.activity_planned`) that end after F.
And per partition: the newest heartbeat (`source.heartbeat`: no event older is still to come), the watermark
(newest time seen, shown), the running totals per agent and per queue, and the offset of the last message
applied.

Each agent's intervals close on its own clock, or on the heartbeat if later: an agent desktop whose clock runs
ahead (or a writer stamping a made-up agent later than the real traffic) finalises nobody else's intervals.

Order independence. An agent's time in a state is the span from one event to the next, so it is only known
once the events around it are. Events are therefore buffered and applied in event-time order when the
agent's clock passes the end of their interval by the allowed lateness (the same rule that makes a queue
interval final): the interval's spans are then settled and its final record is published. Within the
allowed lateness events may come in any order; events of one agent stamped with the same millisecond are
applied in the order they arrived (Kafka keeps the order of one key), so the producer's order decides
there. Provisional records and the real-time view are computed from the settled status and the buffer.

Attribution (docs/kpis.md): each span of constant status and planned activity is split at interval
boundaries, and each interval gets the part in it. Logged in before the first `agent.state_changed`
counts as not ready (reason `unspecified`); an `agent.state_changed` while logged out logs the agent in
(with the queues of its last session). The planned activity at a time is the one of the entry covering it
with the highest (version, event_id); `off` is not scheduled.

Late: a presence event stamped before F, or a schedule entry starting before F, would change a final
interval: it is counted and reported, never applied. F here is the horizon the agent's clock implies when the
event comes (`final_horizon`), whether or not `advance` has settled it yet, so that batches do not decide it. Duplicates (same event_id) are recognised while the
event is buffered (presence) or its entry is kept (schedule); the id is forgotten when the event is settled
or the entry ends before F, after which any re-delivery is late anyway. So the memory of ids is bounded by
the events of the last interval plus the allowed lateness, and the published plan.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import msgspec

from pipeline.contract import events as ev
from pipeline.core.time import NO_TIME, epoch_ms, interval_start, next_revision
from pipeline.kpis.agents import (
    HANDLING_STATES,
    MAX_PRESENCE_SECONDS,
    STATES,
    UNSPECIFIED_REASON,
    AgentCounts,
    AgentIntervalUpdate,
)
from pipeline.state.codec import Codec

MAX_PRESENCE_MS = MAX_PRESENCE_SECONDS * 1000
MAX_QUEUE_SETS = 10_000  # distinct login queue lists shared (`AgentState._queues`)
SNAPSHOT_VERSION = 3  # the version of `AgentSnapshot` (pipeline.state.codec): no other is read

DUPLICATE = "duplicate"
LATE = "late"

READY_STATES = frozenset({"available", "on_contact", "acw"})
AWAY_ACTIVITIES = frozenset({"break", "lunch", "training", "meeting"})
OFF = "off"
# the state counts of the real-time view: the four states, and logged_in (all of them)
NOW_STATES: tuple[str, ...] = (*STATES, "logged_in")


# Status, Change and Planned are made per presence or schedule event: msgspec structs, as they are stored, build
# several times faster than dataclasses (a frozen one sets each field through object.__setattr__), and hold no
# containers that could form a cycle (gc=False: never tracked by the cycle collector)
class Status(msgspec.Struct, frozen=True, gc=False):
    """An agent's presence at one moment."""

    logged_in: bool = False
    state: str | None = None  # one of STATES while logged in
    reason: str | None = None  # while not_ready
    queues: tuple[str, ...] = ()  # the session's queues; kept after logout (scheduled time is attributed to them)
    active: int = 0  # contacts handled at once


class Change(msgspec.Struct, gc=False):
    """A buffered presence event."""

    t: int  # event time, epoch ms
    seq: int  # arrival order in this partition: breaks ties between events of the same millisecond
    event_id: str
    kind: str  # "login", "logout" or "state"
    state: str | None = None
    reason: str | None = None
    queues: tuple[str, ...] = ()
    active: int | None = None


class Planned(msgspec.Struct, gc=False):
    """One schedule entry."""

    event_id: str
    version: int
    activity: str
    start: int  # epoch ms
    end: int


@dataclass(slots=True)
class AgentTrack:
    clock: int = NO_TIME  # the newest time of its presence events
    horizon: int = NO_TIME  # F: every interval of this agent ending at or before it is final
    settled: Status = field(default_factory=Status)  # the status at the horizon
    changes: list[Change] = field(default_factory=list)  # kept sorted by (t, seq)
    plan: list[Planned] = field(default_factory=list)
    now: Status = field(default_factory=Status)  # after every known event: the real-time view
    revisions: dict[int, int] = field(default_factory=dict)  # open interval start (ms) -> last revision
    changed: bool = False  # an event arrived since the last provisional publication
    published_at: float = 0.0
    settled_since: int = NO_TIME  # when the settled status took its presence (state and reason); see `status_since`
    now_since: int = NO_TIME  # the same of `now`: the agent board's time in state (derived, not stored)
    # the event ids of `changes` (derived, not stored): a duplicate is found at once, not by walking the changes,
    # which grow through a batch (an agent's whole day in a replay)
    event_ids: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.event_ids = {c.event_id for c in self.changes}


LOGGED_OUT = Status()  # before any event, and after a logout from a session without queues


def apply_change(s: Status, c: Change) -> Status:
    """The status after one presence event."""
    if c.kind == "login":
        if s.logged_in:  # a second login without logout: the new queues, the same state
            return msgspec.structs.replace(s, queues=c.queues)
        return Status(True, "not_ready", UNSPECIFIED_REASON, c.queues, 0)
    if c.kind == "logout":
        return Status(False, None, None, s.queues, 0)
    state = c.state
    reason = (c.reason or UNSPECIFIED_REASON) if state == "not_ready" else None
    active = c.active if c.active is not None else (1 if state in HANDLING_STATES else 0)
    return Status(True, state, reason, s.queues, active)


def _same_presence(a: Status, b: Status) -> bool:
    """What a supervisor sees change: logged in or not, the state and the reason (not the queues or contacts)."""
    return a.logged_in == b.logged_in and a.state == b.state and a.reason == b.reason


def status_since(status: Status, since: int, changes: list[Change]) -> tuple[Status, int]:
    """The status after `changes` (sorted) from `status`, and the event time since when its presence holds
    (`since` if no change altered it): the agent board's time in state."""
    for c in changes:
        after = apply_change(status, c)
        if not _same_presence(after, status):
            since = c.t
        status = after
    return status, since


def adherent(activity: str, s: Status) -> bool:
    """Does the status match the planned activity (`off` is never scheduled, so never asked)?"""
    if activity == "contact_handling":
        return s.logged_in and s.state in READY_STATES
    return not s.logged_in or s.state == "not_ready"


def planned_activity(plan: list[Planned], t: int) -> str | None:
    """The activity planned at `t`: of the covering entries, the one with the highest (version, event_id)."""
    best: Planned | None = None
    for p in plan:
        if p.start <= t < p.end and (best is None or (p.version, p.event_id) > (best.version, best.event_id)):
            best = p
    return None if best is None or best.activity == OFF else best.activity


Piece = tuple[int, int, Status, str | None]  # (start, end, status, planned activity), inside one interval


def pieces(
    status: Status, since: int, changes: list[Change], plan: list[Planned], a: int, b: int, length: int
) -> Iterator[Piece]:
    """Split [a, b) into pieces of constant status and planned activity, each inside one interval.

    `status` holds at `a`, its presence since `since`; `changes` are sorted and none is before `a`; those before
    `b` are applied. A presence counts for `MAX_PRESENCE_SECONDS` at most, then as logged out. Pieces where the
    agent is neither logged in nor scheduled are left out.
    """
    if a >= b:
        return
    cuts = {a, b}
    cuts.update(c.t for c in changes if a < c.t < b)
    # where a presence would run out (cut at every change's time: more cuts than needed split no sum)
    cuts.update(x for x in [since + MAX_PRESENCE_MS, *(c.t + MAX_PRESENCE_MS for c in changes)] if a < x < b)
    for p in plan:
        cuts.update(x for x in (p.start, p.end) if a < x < b)
    points = sorted(cuts)
    i = 0
    n = len(changes)
    for s, e in zip(points, points[1:], strict=False):
        while i < n and changes[i].t <= s:
            after = apply_change(status, changes[i])
            if not _same_presence(after, status):
                since = changes[i].t
            status = after
            i += 1
        activity = planned_activity(plan, s)
        # `status` and `since` go on as `status_since` has them (the settled status of the next walk), whatever ran out
        counted = status if not status.logged_in or s < since + MAX_PRESENCE_MS else _ran_out(status)
        if not counted.logged_in and activity is None:
            continue
        while s < e:  # split at interval boundaries
            cut = min(e, interval_start(s, length) + length)
            yield s, cut, counted, activity
            s = cut


def _ran_out(status: Status) -> Status:
    """A presence past `MAX_PRESENCE_SECONDS`: counted as logged out (its queues kept, as after a logout)."""
    return Status(False, None, None, status.queues, 0)


def add_piece(c: AgentCounts, s: int, e: int, status: Status, activity: str | None) -> None:
    d = e - s
    if status.logged_in:
        c.logged_in_ms += d
        c.queues.update(status.queues)
        if status.state == "available":
            c.available_ms += d
        elif status.state == "on_contact":
            c.on_contact_ms += d
        elif status.state == "acw":
            c.acw_ms += d
        else:
            c.not_ready_ms += d
            reason = status.reason or UNSPECIFIED_REASON  # `apply_change` gives every not_ready status a reason
            c.not_ready_by_reason_ms[reason] = c.not_ready_by_reason_ms.get(reason, 0) + d
        if status.state in HANDLING_STATES:
            c.contact_ms += status.active * d
    if activity is not None:
        c.scheduled_ms += d
        if adherent(activity, status):
            c.adherent_ms += d


@dataclass(slots=True)
class QueueAdherence:
    """Scheduled and adherent time of the agents serving one queue."""

    scheduled_ms: int = 0
    adherent_ms: int = 0


@dataclass(slots=True)
class QueueCapacity:
    """The agents of one queue now (`AgentState.capacity_by_queue`)."""

    staffed: float = 0.0  # able to take contacts, shared between an agent's queues (1/k each)
    ready: int = 0  # able to take contacts, counted fully in each of their queues
    not_ready: int = 0  # logged in and not ready, counted in each of their queues


class AgentState:
    """All agents of one partition of the agent-event topic."""

    def __init__(self, interval_seconds: int, allowed_lateness_seconds: float) -> None:
        self.interval_ms = interval_seconds * 1000
        self.allowed_lateness = round(allowed_lateness_seconds * 1000)
        self.watermark = NO_TIME  # the newest time seen on the partition (shown; the real-time view's "now")
        self.heartbeat = NO_TIME  # the newest `source.heartbeat`
        self.horizon = NO_TIME  # the heartbeat's horizon: every agent's intervals ending at or before it are final
        self.offset = -1  # last source offset applied; replays of older offsets are skipped
        self.seq = 0
        self.agents: dict[str, AgentTrack] = {}
        self.totals: dict[str, AgentCounts] = {}  # per agent, final intervals only (so they never go down)
        self.queue_totals: dict[str, QueueAdherence] = {}
        self._changed: set[str] = set()  # agents changed since the last `snapshot` or `changes`
        self._dropped: set[str] = set()  # and forgotten since
        # agents and queues whose totals grew since (insertion-ordered sets: a checkpoint of changes lists the new
        # ones in the order `totals` got them, so that a restored state's totals are in the same order)
        self._totalled: dict[str, None] = {}
        self._queues_totalled: dict[str, None] = {}
        self._moved: set[str] = set()  # agents whose clock moved since the last `advance`
        # agents with events not yet in a provisional publication (`AgentTrack.changed`): what `provisional` looks
        # at, rather than every agent of the partition each batch
        self._unpublished: set[str] = set()
        self._queue_sets: dict[tuple[str, ...], tuple[str, ...]] = {}  # see `_queues`

    # ---- applying events -------------------------------------------------------------------------------

    def observe_time(self, t: int) -> None:
        """A heartbeat: every agent's clock is at least `t`."""
        if t > self.heartbeat:
            self.heartbeat = t
        if t > self.watermark:
            self.watermark = t

    def apply(self, e: ev.AgentEvent, t: int | None = None) -> str | None:
        """Apply one agent event (`t`: its time in epoch ms, if the caller has it already). Returns None when
        applied, else DUPLICATE or LATE."""
        if isinstance(e, ev.ScheduleActivityPlanned):
            return self._plan(e)
        if t is None:
            t = epoch_ms(e.time)
        track = self.agents.get(e.agent_id)
        if track is not None and e.event_id in track.event_ids:
            return DUPLICATE
        if t < self.final_horizon(e.agent_id):
            return LATE
        match e:
            case ev.AgentLoggedIn():
                change = Change(t, self.seq, e.event_id, "login", queues=self._queues(e.queue_ids))
            case ev.AgentLoggedOut():
                change = Change(t, self.seq, e.event_id, "logout")
            case ev.AgentStateChanged():
                change = Change(t, self.seq, e.event_id, "state", e.state, e.reason_code, (), e.active_contacts)
            case _:
                raise TypeError(f"not an agent presence event: {type(e).__name__}")
        self.seq += 1
        if track is None:
            track = self._new_track(e.agent_id)
        if t > track.clock:
            track.clock = t
            self._moved.add(e.agent_id)
        changes = track.changes
        changes.append(change)
        track.event_ids.add(change.event_id)
        if len(changes) > 1 and change.t < changes[-2].t:  # out of order: re-sort, and fold from the horizon
            changes.sort(key=lambda c: (c.t, c.seq))
            track.now, track.now_since = status_since(track.settled, track.settled_since, changes)
        else:  # the newest (the usual case): `now` is the fold of the changes before it
            before, track.now = track.now, apply_change(track.now, change)
            if not _same_presence(before, track.now):
                track.now_since = change.t
        self._changed_one(e.agent_id, track)
        if t > self.watermark:
            self.watermark = t
        return None

    def _queues(self, queue_ids: Iterable[str]) -> tuple[str, ...]:
        """A login's queues as one shared tuple of interned ids: each decoded event carries its own copies, and
        an agent serving a hundred queues would otherwise hold a hundred strings in every status, login and total
        (most of an agent's memory in a large center)."""
        queues = tuple(queue_ids)
        shared = self._queue_sets.get(queues)
        if shared is None:
            if len(self._queue_sets) >= MAX_QUEUE_SETS:
                self._queue_sets.clear()  # a cache: bounded whatever logins come
            shared = self._queue_sets[queues] = tuple(map(sys.intern, queues))
        return shared

    def _new_track(self, agent_id: str) -> AgentTrack:
        track = self.agents[agent_id] = AgentTrack()
        self._dropped.discard(agent_id)
        return track

    def _plan(self, e: ev.ScheduleActivityPlanned) -> str | None:
        track = self.agents.get(e.agent_id)
        if track is not None and any(p.event_id == e.event_id for p in track.plan):
            return DUPLICATE
        start, end = epoch_ms(e.start), epoch_ms(e.end)
        if start < self.final_horizon(e.agent_id):
            return LATE
        if track is None:
            track = self._new_track(e.agent_id)
        track.plan.append(Planned(e.event_id, e.version, e.activity, start, end))
        self._changed_one(e.agent_id, track)
        # the planner's clock, not the agent's: shown, but it closes nothing
        self.watermark = max(self.watermark, epoch_ms(e.time))
        return None

    def _changed_one(self, agent_id: str, track: AgentTrack) -> None:
        track.changed = True
        self._changed.add(agent_id)
        self._unpublished.add(agent_id)

    @staticmethod
    def _fold(status: Status, changes: list[Change]) -> Status:
        for c in changes:
            status = apply_change(status, c)
        return status

    # ---- time passing ----------------------------------------------------------------------------------

    def final_horizon(self, agent_id: str) -> int:
        """The horizon the agent's clock (or the heartbeat, if later) implies now, which `advance` moves its F to.
        Lateness is judged against it, not F: otherwise an event would be late or applied depending on where a
        batch happened to end, and a record made at a given offset would not be a function of the events up to it
        (its revision names that offset)."""
        track = self.agents.get(agent_id)
        if track is None:
            # an agent is forgotten only once the heartbeat's horizon passed all it did: that horizon keeps
            # a re-delivery of its old events late
            floor, clock = self.horizon, self.heartbeat
        else:
            floor, clock = track.horizon, max(track.clock, self.heartbeat)
        if clock == NO_TIME:
            return floor
        return max(floor, self.horizon, interval_start(clock - self.allowed_lateness, self.interval_ms))

    def advance(self) -> list[AgentIntervalUpdate]:
        """Settle every interval that is now final and return its records, oldest first; forget what can
        change nothing any more. Call once per batch, after applying it."""
        heartbeat_horizon = (
            self.horizon
            if self.heartbeat == NO_TIME
            else max(self.horizon, interval_start(self.heartbeat - self.allowed_lateness, self.interval_ms))
        )
        # every agent when the heartbeat closed an interval, else only those whose own clock moved
        due = list(self.agents) if heartbeat_horizon > self.horizon else sorted(self._moved)
        self.horizon = heartbeat_horizon
        self._moved = set()
        finals: list[AgentIntervalUpdate] = []
        for agent_id in due:
            track = self.agents.get(agent_id)
            if track is None:
                continue
            new = self.final_horizon(agent_id)
            if new <= track.horizon:
                continue
            old, track.horizon = track.horizon, new
            self._changed.add(agent_id)
            settling = [c for c in track.changes if c.t < new]
            counts: dict[int, AgentCounts] = {}
            # the settled status holds from the old horizon on (before any event: logged out, from its first one)
            start = old if old != NO_TIME else min([c.t for c in settling] + [p.start for p in track.plan] + [new])
            for s, e, status, activity in pieces(
                track.settled, track.settled_since, settling, track.plan, start, new, self.interval_ms
            ):
                ivl = interval_start(s, self.interval_ms)
                c = counts.get(ivl)
                if c is None:
                    c = counts[ivl] = AgentCounts()
                add_piece(c, s, e, status, activity)
                if activity is not None:
                    for q in status.queues:
                        qa = self.queue_totals.get(q)
                        if qa is None:
                            qa = self.queue_totals[q] = QueueAdherence()
                        self._queues_totalled[q] = None
                        qa.scheduled_ms += e - s
                        if adherent(activity, status):
                            qa.adherent_ms += e - s
            for ivl in sorted(track.revisions):  # published provisionally: a final revision is owed
                if ivl < new:
                    counts.setdefault(ivl, AgentCounts())
            total = self.totals.get(agent_id)
            for ivl in sorted(counts):
                c = counts[ivl]
                previous = track.revisions.pop(ivl, 0)
                if c.empty and not previous:
                    continue
                revision = next_revision(previous, self.offset)
                finals.append(AgentIntervalUpdate(agent_id, ivl // 1000, revision, True, c))
                if total is None:
                    total = self.totals[agent_id] = AgentCounts()
                total.add(c)
                self._totalled[agent_id] = None
            track.settled, track.settled_since = status_since(track.settled, track.settled_since, settling)
            track.changes = [c for c in track.changes if c.t >= new]
            track.event_ids = {c.event_id for c in track.changes}
            track.plan = [p for p in track.plan if p.end > new]
            if track.settled == LOGGED_OUT and not track.changes and not track.plan and not track.revisions:
                # nothing left that could make a record; its totals stay. (A logged-out agent that had queues
                # keeps them: an agent.state_changed while logged out logs it in to the queues of its last session.)
                del self.agents[agent_id]
                self._changed.discard(agent_id)
                self._unpublished.discard(agent_id)
                self._dropped.add(agent_id)
        finals.sort(key=lambda u: (u.start, u.agent_id))
        return finals

    def open_counts(self, agent_id: str) -> dict[int, AgentCounts]:
        """The agent's counts of the open intervals, from the horizon up to the watermark (provisional)."""
        track = self.agents.get(agent_id)
        out: dict[int, AgentCounts] = {}
        if track is None or self.watermark == NO_TIME:
            return out
        start = (
            track.horizon
            if track.horizon != NO_TIME
            else min([c.t for c in track.changes] + [p.start for p in track.plan] + [self.watermark])
        )
        for s, e, status, activity in pieces(
            track.settled, track.settled_since, track.changes, track.plan, start, self.watermark, self.interval_ms
        ):
            ivl = interval_start(s, self.interval_ms)
            add_piece(out.setdefault(ivl, AgentCounts()), s, e, status, activity)
        return out

    def provisional(self, wall_now: float, every: float) -> list[AgentIntervalUpdate]:
        """Updates for the open intervals of agents that had events since their last provisional publication
        and were last published at least `every` seconds ago (by agent id)."""
        out = []
        unpublished, agents = self._unpublished, self.agents
        # only the due ones sorted: the others wait, most batches, for `every` to pass since their last publication
        for agent_id in sorted(a for a in unpublished if wall_now - agents[a].published_at >= every):
            track = agents[agent_id]
            track.changed = False
            unpublished.discard(agent_id)
            track.published_at = wall_now
            self._changed.add(agent_id)
            for ivl, c in sorted(self.open_counts(agent_id).items()):
                if c.empty and ivl not in track.revisions:
                    continue
                track.revisions[ivl] = next_revision(track.revisions.get(ivl, 0), self.offset)
                out.append(AgentIntervalUpdate(agent_id, ivl // 1000, track.revisions[ivl], False, c))
        return out

    # ---- real time -------------------------------------------------------------------------------------

    def agents_by_state(self) -> dict[str, dict[str, int]]:
        """queue -> state -> agents logged in and serving the queue now (at the watermark); `logged_in`
        counts them all. Every state appears, with 0 where no agent is in it."""
        out: dict[str, dict[str, int]] = {}
        for track in self.agents.values():
            s = track.now
            if not s.logged_in or s.state is None:  # a logged-in status always has a state
                continue
            for q in s.queues:
                counts = out.get(q)
                if counts is None:
                    counts = out[q] = dict.fromkeys(NOW_STATES, 0)
                counts[s.state] += 1
                counts["logged_in"] += 1
        return out

    def capacity_by_queue(self) -> dict[str, QueueCapacity]:
        """queue -> the capacity of this partition's agents for it now (at the watermark), by the capacity rule:
        an agent able to take contacts (available, on a contact, in ACW) and serving k queues counts 1/k in each
        (`staffed`) and 1 in each (`ready`); a logged-in agent not ready counts 1 in each (`not_ready`).
        The shares of one agent sum to 1, so summed over queues and partitions they count each agent once."""
        out: dict[str, QueueCapacity] = {}
        for track in self.agents.values():
            s = track.now
            if not s.logged_in or not s.queues:
                continue
            queues = set(s.queues)
            ready = s.state in READY_STATES
            share = 1.0 / len(queues)
            for q in queues:
                c = out.get(q)
                if c is None:
                    c = out[q] = QueueCapacity()
                if ready:
                    c.staffed += share
                    c.ready += 1
                else:
                    c.not_ready += 1
        return out

    # ---- checkpoint ------------------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The whole state (resets what `changes` reports)."""
        self._changed, self._dropped, self._totalled, self._queues_totalled = set(), set(), {}, {}
        return CODEC.encode(self._document(self.agents, [], self.totals, self.queue_totals))

    def changes(self) -> bytes | None:
        """The agents changed or forgotten since the last `snapshot` or `changes`, and the totals that grew since
        (of the agents and queues whose intervals became final). `restore(snapshot, [changes, ...])` gives the
        state back."""
        changed, dropped = self._changed, self._dropped
        totalled, queues_totalled = self._totalled, self._queues_totalled
        self._changed, self._dropped, self._totalled, self._queues_totalled = set(), set(), {}, {}
        # in the state's own order, so that a restored state lists its agents as this one does
        return CODEC.encode(
            self._document(
                {a: t for a, t in self.agents.items() if a in changed},
                sorted(dropped),
                {a: self.totals[a] for a in totalled},
                {q: self.queue_totals[q] for q in queues_totalled},
            )
        )

    def _document(
        self,
        agents: dict[str, AgentTrack],
        dropped: list[str],
        totals: dict[str, AgentCounts],
        queue_totals: dict[str, QueueAdherence],
    ) -> AgentSnapshot:
        """The stored form of the state with these agents and totals (the clocks and offset whole)."""
        return AgentSnapshot(
            watermark=self.watermark,
            heartbeat=self.heartbeat,
            horizon=self.horizon,
            offset=self.offset,
            seq=self.seq,
            agents={
                a: StoredTrack(
                    t.clock,
                    t.horizon,
                    t.settled,
                    t.changes,
                    t.plan,
                    t.revisions,
                    t.changed,
                    t.published_at,
                    t.settled_since,
                )
                for a, t in agents.items()
            },
            dropped=dropped,
            totals=totals,
            queue_totals=queue_totals,
        )

    def restore(self, data: bytes, changes: Iterable[bytes] = ()) -> None:
        """From a `snapshot` and the `changes` since, oldest first."""
        d = CODEC.decode(data)
        for later in changes:
            c = CODEC.decode(later)
            agents = {**d.agents, **c.agents}
            for a in c.dropped:
                agents.pop(a, None)
            # totals only grow and are never forgotten: those in the changes over the earlier ones
            d = msgspec.structs.replace(
                c,
                agents=agents,
                totals={**d.totals, **c.totals},
                queue_totals={**d.queue_totals, **c.queue_totals},
            )
        self.watermark = d.watermark
        self.heartbeat = d.heartbeat
        self.horizon = d.horizon
        self.offset = d.offset
        self.seq = d.seq
        self.agents = {}
        self._queue_sets = {}
        for a, x in d.agents.items():
            for change in x.changes:  # shared and interned as when applied (`_queues`)
                if change.queues:
                    change.queues = self._queues(change.queues)
            track = AgentTrack(
                clock=x.clock,
                horizon=x.horizon,
                settled=msgspec.structs.replace(x.settled, queues=self._queues(x.settled.queues)),
                changes=x.changes,
                plan=x.plan,
                revisions=x.revisions,
                changed=x.changed,
                published_at=x.published_at,
                settled_since=x.since,
            )
            track.now, track.now_since = status_since(track.settled, track.settled_since, track.changes)
            self.agents[a] = track
        self.totals = d.totals
        for total in self.totals.values():
            total.queues = set(map(sys.intern, total.queues))
        self.queue_totals = d.queue_totals
        self._changed, self._dropped, self._moved = set(), set(), set()
        self._totalled, self._queues_totalled = {}, {}
        self._unpublished = {a for a, t in self.agents.items() if t.changed}


class StoredTrack(msgspec.Struct, array_like=True):
    """One agent as its checkpoint stores it (`AgentTrack` but what is derived from it)."""

    clock: int
    horizon: int
    settled: Status
    changes: list[Change]
    plan: list[Planned]
    revisions: dict[int, int]
    changed: bool
    published_at: float
    since: int


class AgentSnapshot(msgspec.Struct):
    """An agent state's checkpoint: the whole of it, or the agents changed and forgotten since (`dropped`) and the
    totals that grew since (laid over the earlier ones), with the partition's clocks and offset whole either way."""

    watermark: int
    heartbeat: int
    horizon: int
    offset: int
    seq: int
    agents: dict[str, StoredTrack]
    dropped: list[str]
    totals: dict[str, AgentCounts]
    queue_totals: dict[str, QueueAdherence]


CODEC = Codec("agent state", b"CCAS", SNAPSHOT_VERSION, AgentSnapshot)
