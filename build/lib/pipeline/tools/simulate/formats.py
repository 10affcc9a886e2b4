"""The simulated day in vendors' own formats, so that the source adapters can be checked end to end: the KPIs of
(simulated events -> vendor format -> adapter) must equal those of the contract path, except what the format
cannot carry (docs/sources.md).

- `write_asterisk_queue_log`: Asterisk app_queue's queue_log (voice queues only: Asterisk is a telephone ACD).
- `write_cdr`: one row per call leg, tab-separated, local times without offset, with the mapping file that
  reads it back (`CDR_MAPPING`).
"""

from __future__ import annotations

import csv
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from pipeline.contract import events as ev

# KPI fields a format cannot carry (docs/sources.md): they may differ from the contract path's; all others are equal.
_SECONDS = (  # times to the whole second: durations, and the counts that compare a wait with a threshold
    "answer_wait_ms",
    "abandon_wait_ms",
    "longest_wait_ms",
    "waits",
    "answered_within_threshold",
    "abandoned_within_threshold",
    "short_abandoned",
    "talk_ms",
    "hold_ms",
    "acw_ms",
    "handle_ms",
)
# `handled`, `transferred_out` and the dispositions count when the ACW ends: without ACW, at the call's end (maybe an interval earlier)
_NO_ACW_NO_HOLD = ("held", "handled", "transferred_out", "dispositions")
_NOT_LOGGED: tuple[str, ...] = (
    "surveys",
    "survey_score_sum",
    "surveys_satisfied",
    "ivr_sessions",
    "ivr_contained",
    "segments",
)
_NOT_LOGGED += (  # callbacks' lifecycles after the request (issue 18): neither format has them
    "callback_dials",
    "callbacks_dialled_promised",
    "callbacks_dialled_within_promise",
    "callbacks_connected",
    "callbacks_failed",
    "callback_attempts",
)
OFFER_FIELDS = (
    "agent_offers",
    "agent_offers_accepted",
    "agent_offers_rejected",
    "agent_offers_missed",
    "agent_offer_ring_ms",
)
# a queue_log has offers to the second (CONNECT's ring time in whole seconds, so some rings move to an interval
# before), and a declined call is a RINGNOANSWER: rejected offers count as missed
_RINGS = ("agent_offers", "agent_offers_rejected", "agent_offers_missed", "agent_offer_ring_ms")
NOT_CARRIED: dict[str, dict[str, tuple[str, ...]]] = {
    "asterisk-queue-log": {
        "queue": _SECONDS + _NO_ACW_NO_HOLD + _NOT_LOGGED + _RINGS,
        # chat queues, surveys, IVR sessions and forecasts are not in a queue_log at all
        "agent": ("acw_ms", "available_ms", "scheduled_ms", "adherent_ms"),
    },
    "cdr": {
        # hold is a total per call: one hold of that length before the call's end (KPIs use only totals)
        "queue": _SECONDS + _NOT_LOGGED + OFFER_FIELDS,  # one row per call: no offers
        "agent": ("every agent time: a call-detail file has no presence or state",),
    },
}

CALLBACK_KEY = "1"  # the EXITWITHKEY key the simulated IVR offers for "call me back"


def _crc(text: str) -> int:
    return zlib.crc32(text.encode())


def write_asterisk_queue_log(events: Iterable[ev.Event], path: str | Path, voice_queues: set[str]) -> int:
    """Write the events of `voice_queues` and of the agents serving them as queue_log lines; the lines written.

    Times are whole epoch seconds (the log's resolution); hold, ACW, surveys, IVR sessions, forecasts and
    schedules have no queue_log event and are left out. Callbacks are EXITWITHKEY with `CALLBACK_KEY`. Offers: an
    accepted one is the CONNECT's ring time (whole seconds), a missed or rejected one a RINGNOANSWER with its ring
    time in milliseconds (app_queue logs no rejection)."""
    legs: dict[tuple[str, str], tuple[int, int | None]] = {}  # (queue, contact) -> (entered, connected)
    ringing: dict[str, datetime] = {}  # offer id -> when it began to ring
    accepted_ring: dict[tuple[str, str], int] = {}  # (queue, contact) -> its accepted offer's ring, ms
    members: dict[str, list[str]] = {}  # agent -> voice queues it is a member of
    paused: set[str] = set()
    count = 0
    with open(path, "w", encoding="utf-8", newline="\n") as out:

        def line(t: int, callid: str, queue: str, agent: str, name: str, *data: object) -> None:
            nonlocal count
            out.write("|".join([str(t), callid, queue, agent, name, *map(str, data)]) + "\n")
            count += 1

        for e in events:
            t = int(e.time.timestamp())
            if isinstance(e, ev.ContactEvent):
                if e.queue_id not in voice_queues:
                    continue
                key = (e.queue_id, e.contact_id)
                c, q = e.contact_id, e.queue_id
                if isinstance(e, ev.ContactOffered):
                    legs[key] = (t, None)
                    line(t, c, q, "NONE", "ENTERQUEUE", "", e.customer_id or "", 1)
                elif isinstance(e, ev.OfferRinging):
                    ringing[e.offer_id] = e.time
                elif isinstance(e, ev.OfferAccepted | ev.OfferMissed | ev.OfferRejected):
                    rang = round((e.time - ringing.pop(e.offer_id)).total_seconds() * 1000)
                    if isinstance(e, ev.OfferAccepted):
                        accepted_ring[key] = rang
                    else:
                        line(t, c, q, e.agent_id, "RINGNOANSWER", rang)
                elif isinstance(e, ev.ContactAnswered):
                    entered = legs[key][0]
                    legs[key] = (entered, t)
                    # app_queue's ring time: (orig - to) / 1000; none without an offer (as before Asterisk 1.4)
                    ring = [accepted_ring.pop(key) // 1000] if key in accepted_ring else []
                    line(t, c, q, e.agent_id, "CONNECT", t - entered, f"{c}-member", *ring)
                elif isinstance(e, ev.ContactEnded | ev.ContactTransferred):
                    entered, connected = legs.pop(key)
                    hold, talk = (connected or t) - entered, t - (connected or t)
                    if isinstance(e, ev.ContactEnded):
                        name = "COMPLETECALLER" if _crc(c) % 2 else "COMPLETEAGENT"
                        line(t, c, q, e.agent_id, name, hold, talk, 1)
                    else:
                        kind = _crc(c) % 3
                        target = e.to_queue_id or "200"
                        if kind == 0:
                            line(t, c, q, e.agent_id, "TRANSFER", target, "from-internal", hold, talk, 1)
                        elif kind == 1:
                            line(t, c, q, e.agent_id, "BLINDTRANSFER", target, "from-internal", hold, talk, 1)
                        else:
                            line(t, c, q, e.agent_id, "ATTENDEDTRANSFER", "BRIDGE", f"{c}-xfer", hold, talk, 1)
                elif isinstance(e, ev.ContactAbandoned | ev.CallbackRequested | ev.ContactFlowedOut):
                    entered = legs.pop(key)[0]
                    if isinstance(e, ev.ContactAbandoned):
                        line(t, c, q, "NONE", "ABANDON", 1, 1, t - entered)
                    elif isinstance(e, ev.CallbackRequested):
                        line(t, c, q, "NONE", "EXITWITHKEY", CALLBACK_KEY, 1, 1, t - entered)
                    else:
                        line(t, c, q, "NONE", "EXITWITHTIMEOUT", 1, 1, t - entered)
            elif isinstance(e, ev.AgentLoggedIn):
                queues = [q for q in e.queue_ids if q in voice_queues]
                if queues:
                    members[e.agent_id] = queues
                    for q in queues:
                        line(t, "NONE", q, e.agent_id, "ADDMEMBER", "")
            elif isinstance(e, ev.AgentLoggedOut):
                for q in members.pop(e.agent_id, []):
                    line(t, "NONE", q, e.agent_id, "REMOVEMEMBER", "")
                paused.discard(e.agent_id)
            elif isinstance(e, ev.AgentStateChanged) and e.agent_id in members:
                # Contacts drive on_contact/acw/available in Asterisk itself; only pauses are logged.
                if e.state == "not_ready":
                    paused.add(e.agent_id)
                    line(t, "NONE", "NONE", e.agent_id, "PAUSEALL", e.reason_code or "")
                    for q in members[e.agent_id]:
                        line(t, "NONE", q, e.agent_id, "PAUSE", e.reason_code or "")
                elif e.agent_id in paused:
                    paused.discard(e.agent_id)
                    line(t, "NONE", "NONE", e.agent_id, "UNPAUSEALL", "")
                    for q in members[e.agent_id]:
                        line(t, "NONE", q, e.agent_id, "UNPAUSE", "")
    return count


CDR_ZONE = "Europe/Paris"
CDR_COLUMNS = (
    "CallID",
    "Queue",
    "Arrived",
    "Answered",
    "Ended",
    "Agent",
    "Outcome",
    "Caller",
    "Hold",
    "WrapUp",
    "TransferTo",
)
# The mapping that reads `write_cdr`'s files back (docs/sources.md describes every key).
CDR_MAPPING = f"""\
[file]
delimiter = "\\t"
time_format = "%Y-%m-%d %H:%M:%S"
time_zone = "{CDR_ZONE}"   # times are local, without an offset
source = "simulated-acd"

[columns]
call_id = "CallID"          # not unique on its own: re-used across the day
queue = "Queue"
arrived = "Arrived"
answered = "Answered"
ended = "Ended"
agent = "Agent"
outcome = "Outcome"
customer = "Caller"
hold_seconds = "Hold"
acw_seconds = "WrapUp"
transfer_to = "TransferTo"

[outcomes]
answered = ["ANSWERED"]
abandoned = ["ABANDONED"]
callback = ["CALLBACK"]
flowed_out = ["OVERFLOW"]
transferred = ["TRANSFERRED"]
"""
CALL_IDS = 5000  # call ids cycle through this many values, as many ACDs' daily counters do


@dataclass
class _Row:
    call_id: str
    arrived: int
    caller: str
    answered: int = 0
    agent: str = ""
    hold: int = 0
    hold_from: int = 0
    ended: int = 0
    outcome: str = "ANSWERED"
    to: str = ""


def write_cdr(events: Iterable[ev.Event], path: str | Path, voice_queues: set[str]) -> int:
    """One tab-separated row per voice leg, written when the leg is complete (so rows are in completion order,
    not arrival order), local times to the second; the rows written. Hold and ACW are whole seconds."""
    zone = ZoneInfo(CDR_ZONE)
    legs: dict[tuple[str, str], _Row] = {}
    exits = {ev.ContactAbandoned: "ABANDONED", ev.CallbackRequested: "CALLBACK", ev.ContactFlowedOut: "OVERFLOW"}
    count = 0

    def local(t: int) -> str:
        return datetime.fromtimestamp(t, zone).strftime("%Y-%m-%d %H:%M:%S")

    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, delimiter="\t", lineterminator="\n")
        writer.writerow(CDR_COLUMNS)
        for e in events:
            if not isinstance(e, ev.ContactEvent) or e.queue_id not in voice_queues:
                continue
            t = int(e.time.timestamp())
            key = (e.queue_id, e.contact_id)
            if isinstance(e, ev.ContactOffered):
                legs[key] = _Row(str(_crc(e.contact_id) % CALL_IDS), t, e.customer_id or "")
                continue
            leg = legs.get(key)
            if leg is None:
                continue
            if isinstance(e, ev.ContactAnswered):
                leg.answered, leg.agent = t, e.agent_id
            elif isinstance(e, ev.HoldStarted):
                leg.hold_from = t
            elif isinstance(e, ev.HoldEnded):
                leg.hold += t - leg.hold_from
            elif isinstance(e, ev.ContactEnded):
                leg.ended = t
            elif isinstance(e, ev.ContactTransferred):
                leg.ended, leg.outcome, leg.to = t, "TRANSFERRED", e.to_queue_id or ""
            elif isinstance(e, ev.AcwEnded):
                del legs[key]
                row = [leg.call_id, e.queue_id, local(leg.arrived), local(leg.answered), local(leg.ended), leg.agent]
                writer.writerow([*row, leg.outcome, leg.caller, leg.hold, t - leg.ended, leg.to])
                count += 1
            elif type(e) in exits:
                del legs[key]
                row = [leg.call_id, e.queue_id, local(leg.arrived), "", local(t), ""]
                writer.writerow([*row, exits[type(e)], leg.caller, 0, 0, ""])
                count += 1
    return count
