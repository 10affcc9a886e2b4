"""Asterisk `app_queue` queue_log -> contract events.

The queue_log (docs.asterisk.org, "Queue Logs", https://docs.asterisk.org/Operation/Logging/Queue-Logs/) has one
line per queue event: `time|callid|queuename|agent|event|data1|data2|...`. The time is epoch seconds, which is
UTC whatever the PBX's zone; exports of the realtime `queue_log` table carry a local date-time instead
(`2012-07-03 15:27:23.896208`), read in `AsteriskConfig.time_zone`.

What each event becomes (a *leg* is one call in one queue):

- ENTERQUEUE(url|callerid|position): `contact.offered`; the caller id becomes `customer_id` (for repeat
  contacts; never exported). The callid alone is not unique (a call re-enters a queue, a PBX restart reuses
  ids), so the contact id is the callid plus the ENTERQUEUE time: `<callid>@<time>`.
- CONNECT(holdtime|bridgedchanneluniqueid|ringtime): `contact.answered` by the member; the agent is on a call.
  With the ring time (whole seconds, app_queue's `(orig - to) / 1000`), also the accepted offer: `offer.ringing`
  that many seconds earlier (not before the call entered the queue) and `offer.accepted` at the CONNECT.
- RINGNOANSWER(ringtime): the member was rung for `ringtime` milliseconds and did not pick up (app_queue's
  `rna()`; the docs' own example is `1366720340|1366720340.303267|MYQUEUE|SIP/8007|RINGNOANSWER|1000`):
  `offer.ringing` `ringtime` ms earlier and `offer.missed` (RONA) at the line. A ring time of 0 is a member that
  could not be called at all (its device busy or unreachable): no offer, counted as ignored. A member who
  declines the call shows in a queue_log as a RINGNOANSWER too: the log has no rejected offers.
- COMPLETECALLER / COMPLETEAGENT(holdtime|calltime|origposition): `contact.ended`, then at the same time
  `contact.acw_ended`: Asterisk logs no after-contact work, so every leg gets an explicit zero-length ACW
  (its disposition is the event's name).
- TRANSFER / BLINDTRANSFER(extension|context|holdtime|calltime|origposition), ATTENDEDTRANSFER(method|data|
  holdtime|calltime|origposition): `contact.transferred` plus a zero-length ACW; the target is an extension,
  not a queue id, so `to_queue_id` stays empty (a transfer into another queue shows as that queue's
  ENTERQUEUE of the same callid).
- ABANDON(position|origposition|waittime): `contact.abandoned`.
- EXITWITHTIMEOUT(position|origposition|waittime), EXITEMPTY(position|origposition|waittime): the queue let
  the caller out unanswered: `contact.flowed_out`.
- EXITWITHKEY(key|position|origposition|waittime): `contact.callback_requested` for the keys configured as
  callback keys, else `contact.flowed_out`.
- AGENTLOGIN(channel), ADDMEMBER: the member logs in (the queues it serves are those it was added to);
  AGENTLOGOFF(channel|logintime), REMOVEMEMBER: it leaves (logged out when it is in no queue any more).
- PAUSE / PAUSEALL(reason): `not_ready` with the reason; UNPAUSE / UNPAUSEALL: ready again. The agent's state
  is derived: on a call (between CONNECT and the end of the leg) `on_contact`, else paused `not_ready`, else
  `available`; a `agent.state_changed` is written only when it changes.
- RINGCANCELED (not described in the queue_log reference: its meaning is not read into it), CONFIGRELOAD, QUEUESTART, SYSCOMPAT, AGENTDUMP, custom events
  written with the QueueLog() application: nothing in the contract; counted as ignored by name.

Placeholder agents ("NONE", "NO_SERVER") on a CONNECT are mapped to a configured agent id; they get no
agent state. Event ids are stable: the same line always yields the same ids (re-importing counts nothing
twice). The adapter keeps the open legs and the agents' state, so lines must come in time order (the ingest
tool sorts them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.contract import events as ev
from pipeline.sources.common import Rejected, guarded
from pipeline.sources.identity import stable_event_id

SOURCE = "asterisk-queue-log"

# Order of events stamped in the same second (the log's resolution): a leg's entry before its answer or exit,
# those before its end; a member is added before anything else and removed after everything else.
_RANK = {
    "ENTERQUEUE": 0,
    "AGENTLOGIN": 0,
    "ADDMEMBER": 0,
    "COMPLETECALLER": 2,
    "COMPLETEAGENT": 2,
    "TRANSFER": 2,
    "BLINDTRANSFER": 2,
    "ATTENDEDTRANSFER": 2,
    "REMOVEMEMBER": 3,
    "AGENTLOGOFF": 3,
}
IGNORED = frozenset(
    {
        "RINGCANCELED",
        "CONFIGRELOAD",
        "QUEUESTART",
        "SYSCOMPAT",
        "AGENTDUMP",
        "JOINEMPTY",
        "LEAVEEMPTY",
        "JOINUNAVAIL",
        "LEAVEUNAVAIL",
        "DID",
        "INFO",
        "PENALTY",
    }
)


@dataclass(frozen=True)
class AsteriskConfig:
    time_zone: str = "UTC"
    """Zone of local date-times (realtime table exports); epoch seconds are UTC whatever it is."""
    channel: ev.Channel = "voice"
    placeholder_agents: Mapping[str, str] = field(
        default_factory=lambda: {"NONE": "unassigned", "NO_SERVER": "unassigned", "": "unassigned"}
    )
    """Agent field values that name no real member, and the agent id their answered calls are credited to."""
    callback_keys: frozenset[str] = frozenset()
    """EXITWITHKEY keys that mean "call me back" (else the caller left the queue to another destination)."""

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {self.time_zone!r} (e.g. UTC, Europe/Paris)") from None


def sort_key(line: str) -> tuple[float, int] | None:
    """(time, rank) of a raw line for ordering, or None when its time cannot be read."""
    head, sep, rest = line.partition("|")
    if not sep:
        return None
    try:
        t = float(head)
    except ValueError:
        try:
            t = datetime.fromisoformat(head).timestamp()  # local: only the order matters here
        except ValueError:
            return None
    parts = rest.split("|", 4)
    return t, _RANK.get(parts[3].strip() if len(parts) > 3 else "", 1)


@dataclass
class _Leg:
    contact_id: str
    agent: str | None = None


@dataclass
class _Agent:
    queues: list[str] = field(default_factory=list)
    logged_in: bool = False
    paused: bool = False
    reason: str | None = None
    calls: int = 0
    shown: tuple[str, str | None] | None = None  # the last state written


class QueueLogAdapter:
    """Turns queue_log lines, in time order, into contract events; keeps the open legs and agent states."""

    def __init__(self, config: AsteriskConfig | None = None) -> None:
        self.config = config or AsteriskConfig()
        self.zone = ZoneInfo(self.config.time_zone)
        self.legs: dict[tuple[str, str], _Leg] = {}
        self.agents: dict[str, _Agent] = {}
        self.ignored: Counter[str] = Counter()

    # --- one line ---------------------------------------------------------------------------------------

    @guarded
    def translate(self, line: str) -> list[ev.Event]:
        """The events of one line (maybe none); raises `Rejected` for a line that cannot be read."""
        raw = line.rstrip("\r\n")
        fields = raw.split("|")
        if len(fields) < 5:
            raise Rejected(
                "too_few_fields", f"{len(fields)} fields, at least 5 expected (time|callid|queue|agent|event)"
            )
        stamp, callid, queue, agent, name = (f.strip() for f in fields[:5])
        data = fields[5:]
        time = self._time(stamp)
        ids = _Ids(raw)
        handler = _HANDLERS.get(name)
        if handler is None:
            self.ignored[name if name in IGNORED else "other"] += 1
            return []
        return handler(self, time, callid, queue, agent, data, ids)

    def _time(self, stamp: str) -> datetime:
        try:
            return datetime.fromtimestamp(float(stamp), UTC)
        except (ValueError, OverflowError, OSError):
            pass
        try:
            t = datetime.fromisoformat(stamp)
        except ValueError:
            raise Rejected("bad_time", f"time {stamp[:40]!r} is neither epoch seconds nor a date-time") from None
        return (t if t.tzinfo else t.replace(tzinfo=self.zone)).astimezone(UTC)

    # --- calls ------------------------------------------------------------------------------------------

    def _leg(self, callid: str, queue: str, name: str) -> _Leg:
        leg = self.legs.get((callid, queue))
        if leg is None:
            raise Rejected(
                "no_enterqueue", f"{name} of call {callid[:40]!r} in queue {queue[:40]!r} without ENTERQUEUE"
            )
        return leg

    def _enter(self, t: datetime, callid: str, queue: str, agent: str, data: list[str], ids: _Ids) -> list[ev.Event]:
        _require(callid, "callid")
        _require(queue, "queue")
        ts = t.timestamp()
        contact_id = f"{callid}@{ts:.0f}" if ts == int(ts) else f"{callid}@{ts:.6f}"
        if len(contact_id) > 128:
            raise Rejected("id_too_long", "callid longer than 100 characters")
        self.legs[(callid, queue)] = _Leg(contact_id)  # a re-entry replaces a leg that never ended
        caller = data[1].strip() if len(data) > 1 else ""
        return [
            ev.ContactOffered(
                event_id=ids.next(),
                time=t,
                contact_id=contact_id,
                queue_id=queue,
                channel=self.config.channel,
                customer_id=caller[:128] or None,
            )
        ]

    def _connect(self, t: datetime, callid: str, queue: str, agent: str, data: list[str], ids: _Ids) -> list[ev.Event]:
        leg = self._leg(callid, queue, "CONNECT")
        member = self.config.placeholder_agents.get(agent)
        leg.agent = member or agent
        out: list[ev.Event] = [
            ev.ContactAnswered(
                event_id=ids.next(),
                time=t,
                contact_id=leg.contact_id,
                queue_id=queue,
                channel=self.config.channel,
                agent_id=leg.agent,
            )
        ]
        if member is None:
            state = self.agents.setdefault(agent, _Agent())
            state.calls += 1
            out += self._show(t, agent, state, ids)
            if len(data) > 2 and data[2].strip():  # the ring time (Asterisk 1.4 on); last: the ids before stay
                rang = _ring_time(data[2], "CONNECT ringtime", 1000)
                out += self._offer(t, rang, queue, leg, agent, ev.OfferAccepted, ids)
        return out

    def _ring_no_answer(
        self, t: datetime, callid: str, queue: str, agent: str, data: list[str], ids: _Ids
    ) -> list[ev.Event]:
        leg = self._leg(callid, queue, "RINGNOANSWER")
        if agent in self.config.placeholder_agents:
            self.ignored["placeholder_agent"] += 1
            return []
        rang = _ring_time(data[0] if data else "", "RINGNOANSWER ringtime", 1)
        if rang == 0:
            self.ignored["RINGNOANSWER_not_rung"] += 1
            return []
        return self._offer(t, rang, queue, leg, agent, ev.OfferMissed, ids)

    def _offer(
        self,
        t: datetime,
        rang_ms: int,
        queue: str,
        leg: _Leg,
        agent: str,
        outcome: type[ev.OfferAccepted] | type[ev.OfferMissed],
        ids: _Ids,
    ) -> list[ev.Event]:
        """An offer to `agent` that rang `rang_ms` until its outcome at `t`: its ringing and outcome events. The ring
        starts no earlier than the call's entry (the line's times are whole seconds, the ring's milliseconds)."""
        entered = datetime.fromtimestamp(float(leg.contact_id.rpartition("@")[2]), UTC)
        rang_at = max(entered, t - timedelta(milliseconds=rang_ms))
        contact, channel, offer_id = leg.contact_id, self.config.channel, ids.offer_id()
        return [
            ev.OfferRinging(
                event_id=ids.next(),
                time=rang_at,
                contact_id=contact,
                queue_id=queue,
                channel=channel,
                offer_id=offer_id,
                agent_id=agent,
            ),
            outcome(
                event_id=ids.next(),
                time=t,
                contact_id=contact,
                queue_id=queue,
                channel=channel,
                offer_id=offer_id,
                agent_id=agent,
            ),
        ]

    def _finish(self, t: datetime, callid: str, queue: str, ids: _Ids, name: str, transfer: bool) -> list[ev.Event]:
        leg = self._leg(callid, queue, name)
        if leg.agent is None:
            raise Rejected("not_connected", f"{name} of call {callid[:40]!r} that was never connected")
        del self.legs[(callid, queue)]
        contact, channel, member = leg.contact_id, self.config.channel, leg.agent
        cls = ev.ContactTransferred if transfer else ev.ContactEnded
        end = cls(event_id=ids.next(), time=t, contact_id=contact, queue_id=queue, channel=channel, agent_id=member)
        # Asterisk logs no after-contact work: an explicit zero-length ACW completes the leg's handling.
        acw = ev.AcwEnded(
            event_id=ids.next(),
            time=t,
            contact_id=contact,
            queue_id=queue,
            channel=channel,
            agent_id=member,
            disposition=name,
        )
        out: list[ev.Event] = [end, acw]
        state = self.agents.get(leg.agent)
        if state is not None and state.calls > 0:
            state.calls -= 1
            out += self._show(t, leg.agent, state, ids)
        return out

    def _leave(self, t: datetime, callid: str, queue: str, ids: _Ids, cls: type[ev.ContactEvent]) -> list[ev.Event]:
        leg = self.legs.get((callid, queue))
        if leg is None:
            raise Rejected("no_enterqueue", f"exit of call {callid[:40]!r} in queue {queue[:40]!r} without ENTERQUEUE")
        if leg.agent is not None:
            raise Rejected("exit_after_connect", f"call {callid[:40]!r} left queue {queue[:40]!r} after CONNECT")
        del self.legs[(callid, queue)]
        return [
            cls(event_id=ids.next(), time=t, contact_id=leg.contact_id, queue_id=queue, channel=self.config.channel)
        ]

    def _exit(self, t: datetime, callid: str, queue: str, agent: str, data: list[str], ids: _Ids) -> list[ev.Event]:
        return self._leave(t, callid, queue, ids, ev.ContactFlowedOut)

    def _abandon(self, t: datetime, callid: str, queue: str, agent: str, data: list[str], ids: _Ids) -> list[ev.Event]:
        return self._leave(t, callid, queue, ids, ev.ContactAbandoned)

    def _exit_key(self, t: datetime, callid: str, queue: str, agent: str, data: list[str], ids: _Ids) -> list[ev.Event]:
        key = data[0].strip() if data else ""
        callback = key in self.config.callback_keys
        return self._leave(t, callid, queue, ids, ev.CallbackRequested if callback else ev.ContactFlowedOut)

    # --- members ----------------------------------------------------------------------------------------

    def _member(self, agent: str) -> _Agent | None:
        """The agent's state, or None for a placeholder (counted as ignored)."""
        if agent in self.config.placeholder_agents:
            self.ignored["placeholder_agent"] += 1
            return None
        return self.agents.setdefault(agent, _Agent())

    def _login(self, t: datetime, callid: str, queue: str, agent: str, data: list[str], ids: _Ids) -> list[ev.Event]:
        state = self._member(agent)
        if state is None:
            return []
        if queue and queue != "NONE" and queue not in state.queues:
            state.queues.append(queue)
        elif state.logged_in:
            return []  # nothing new
        out: list[ev.Event] = [
            ev.AgentLoggedIn(event_id=ids.next(), time=t, agent_id=agent, queue_ids=list(state.queues))
        ]
        if state.logged_in:
            return out  # another queue: a second login only replaces the queues
        state.logged_in = True
        state.shown = None  # a login starts not_ready "unspecified" in the contract: write the state again
        return out + self._show(t, agent, state, ids)

    def _logoff(self, t: datetime, callid: str, queue: str, agent: str, data: list[str], ids: _Ids) -> list[ev.Event]:
        state = self._member(agent)
        if state is None or not state.logged_in:
            return []
        if queue and queue != "NONE" and queue in state.queues:
            state.queues.remove(queue)
            if state.queues:
                return [ev.AgentLoggedIn(event_id=ids.next(), time=t, agent_id=agent, queue_ids=list(state.queues))]
        elif queue and queue != "NONE":
            return []  # removed from a queue it was not known in
        state.logged_in = False
        state.paused, state.reason = False, None  # a member added again starts unpaused
        state.queues.clear()
        state.shown = None
        return [ev.AgentLoggedOut(event_id=ids.next(), time=t, agent_id=agent)]

    def _pause(self, t: datetime, callid: str, queue: str, agent: str, data: list[str], ids: _Ids) -> list[ev.Event]:
        state = self._member(agent)
        if state is None:
            return []
        state.paused = True
        state.reason = (data[0].strip()[:64] if data else "") or None
        return self._show(t, agent, state, ids)

    def _unpause(self, t: datetime, callid: str, queue: str, agent: str, data: list[str], ids: _Ids) -> list[ev.Event]:
        state = self._member(agent)
        if state is None:
            return []
        state.paused = False
        state.reason = None
        return self._show(t, agent, state, ids)

    def _show(self, t: datetime, agent: str, state: _Agent, ids: _Ids) -> list[ev.Event]:
        """An `agent.state_changed` if the derived state differs from the one last written."""
        if state.calls:
            now: tuple[ev.AgentState, str | None] = ("on_contact", None)
        elif state.paused:
            now = ("not_ready", state.reason)
        else:
            now = ("available", None)
        if now == state.shown:
            return []
        state.shown = now
        if not state.logged_in:
            state.logged_in = True  # a state event logs the agent in (static members never log in)
        return [
            ev.AgentStateChanged(
                event_id=ids.next(),
                time=t,
                agent_id=agent,
                state=now[0],
                reason_code=now[1],
            )
        ]


Handler = Callable[[QueueLogAdapter, datetime, str, str, str, list[str], "_Ids"], list[ev.Event]]


def _finisher(name: str, transfer: bool) -> Handler:
    def handler(
        self: QueueLogAdapter, t: datetime, callid: str, queue: str, agent: str, data: list[str], ids: _Ids
    ) -> list[ev.Event]:
        return self._finish(t, callid, queue, ids, name, transfer)

    return handler


def _ring_time(text: str, what: str, to_ms: int) -> int:
    """A ring time field in milliseconds (`to_ms`: the field's unit in ms)."""
    try:
        value = int(text.strip())
    except ValueError:
        raise Rejected("bad_ringtime", f"{what} is not a whole number") from None
    if not 0 <= value * to_ms <= 86_400_000:
        raise Rejected("bad_ringtime", f"{what} is negative or longer than a day")
    return value * to_ms


def _require(value: str, what: str) -> None:
    if not value or value == "NONE":
        raise Rejected(f"no_{what}", f"no {what}")
    if not ev.label_safe(value) or len(value) > 100:
        raise Rejected(f"bad_{what}", f"{what} has control characters or is longer than 100 characters")


class _Ids:
    """Stable ids of the events made from one line: the line's text and the event's place among them."""

    __slots__ = ("line", "n")

    def __init__(self, line: str) -> None:
        self.line = line
        self.n = 0

    def next(self) -> str:
        self.n += 1
        return stable_event_id(SOURCE, self.line, self.n)

    def offer_id(self) -> str:
        """The offer a line tells of (its ringing and outcome come from the same line)."""
        return stable_event_id(SOURCE, self.line, "offer")


_HANDLERS: dict[str, Handler] = {
    "ENTERQUEUE": QueueLogAdapter._enter,
    "CONNECT": QueueLogAdapter._connect,
    "RINGNOANSWER": QueueLogAdapter._ring_no_answer,
    "COMPLETECALLER": _finisher("COMPLETECALLER", False),
    "COMPLETEAGENT": _finisher("COMPLETEAGENT", False),
    "TRANSFER": _finisher("TRANSFER", True),
    "BLINDTRANSFER": _finisher("BLINDTRANSFER", True),
    "ATTENDEDTRANSFER": _finisher("ATTENDEDTRANSFER", True),
    "ABANDON": QueueLogAdapter._abandon,
    "EXITWITHTIMEOUT": QueueLogAdapter._exit,
    "EXITEMPTY": QueueLogAdapter._exit,
    "EXITWITHKEY": QueueLogAdapter._exit_key,
    "AGENTLOGIN": QueueLogAdapter._login,
    "ADDMEMBER": QueueLogAdapter._login,
    "AGENTLOGOFF": QueueLogAdapter._logoff,
    "REMOVEMEMBER": QueueLogAdapter._logoff,
    "PAUSE": QueueLogAdapter._pause,
    "PAUSEALL": QueueLogAdapter._pause,
    "UNPAUSE": QueueLogAdapter._unpause,
    "UNPAUSEALL": QueueLogAdapter._unpause,
}


def snapshot(adapter: QueueLogAdapter) -> dict[str, object]:
    """The adapter's open legs and agent states as JSON-able data, for a follower's state file."""
    return {
        "legs": [[callid, queue, leg.contact_id, leg.agent] for (callid, queue), leg in adapter.legs.items()],
        "agents": {
            name: [a.queues, a.logged_in, a.paused, a.reason, a.calls, list(a.shown) if a.shown else None]
            for name, a in adapter.agents.items()
        },
    }


def restore(adapter: QueueLogAdapter, data: Mapping[str, Any]) -> None:
    """Put back what `snapshot` saved."""
    adapter.legs = {(c, q): _Leg(contact, agent) for c, q, contact, agent in data.get("legs", [])}
    adapter.agents = {
        name: _Agent(list(q), bool(li), bool(p), r, int(n), (s[0], s[1]) if s else None)
        for name, (q, li, p, r, n, s) in data.get("agents", {}).items()
    }
