"""The Asterisk queue_log adapter (pipeline/sources/asterisk.py).

Lines are written as the Asterisk documentation describes them: "Queue Logs",
https://docs.asterisk.org/Operation/Logging/Queue-Logs/ (fields `UNIX timestamp|callid|queue name|member
channel|event|parameters...`, and the parameters of each event: ENTERQUEUE(url|callerid), CONNECT(holdtime|
bridgedchanneluniqueid|ringtime), COMPLETECALLER/COMPLETEAGENT(holdtime|calltime|origposition),
ABANDON(position|origposition|waittime), EXITWITHKEY(key|position|origposition|waittime), TRANSFER(extension|
context|holdtime|calltime|origposition), PAUSE/UNPAUSE(reason), RINGNOANSWER(ringtime)...; its own example
line `1366720340|1366720340.303267|MYQUEUE|SIP/8007|RINGNOANSWER|1000`), the units app_queue.c writes them in
(CONNECT's ring time in whole seconds, `(orig - to) / 1000`; RINGNOANSWER's in milliseconds, `rna(rnatime, ...)`:
"Nobody picked up in %d ms"), and the sample
logs of the Wazo documentation (https://wazo.readthedocs.io/en/wazo-20.03/api_sdk/queue_log.html: UNPAUSEALL on
queue NONE followed by one UNPAUSE per queue; `time` as a local date-time in the realtime table).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.contract import events as ev
from pipeline.sources.asterisk import AsteriskConfig, QueueLogAdapter, sort_key
from pipeline.sources.common import Rejected

T0 = 1366720340


def run(lines: list[str], config: AsteriskConfig | None = None) -> tuple[list[ev.Event], QueueLogAdapter]:
    adapter = QueueLogAdapter(config)
    out: list[ev.Event] = []
    for line in lines:
        out += adapter.translate(line)
    return out, adapter


def kinds(events: list[ev.Event]) -> list[str]:
    return [ev.event_type(type(e)) for e in events]


def test_an_answered_call_is_a_complete_leg_with_a_zero_length_acw() -> None:
    events, adapter = run(
        [
            f"{T0}|1366720340.303267|sales|NONE|ENTERQUEUE||0612345678|1",
            f"{T0 + 12}|1366720340.303267|sales|SIP/8007|CONNECT|12|1366720352.303270|3",
            f"{T0 + 200}|1366720340.303267|sales|SIP/8007|COMPLETECALLER|12|188|1",
        ]
    )
    assert kinds(events) == [
        "contact.offered",
        "contact.answered",
        "agent.state_changed",
        "offer.ringing",  # CONNECT's ring time: the accepted offer
        "offer.accepted",
        "contact.ended",
        "contact.acw_ended",
        "agent.state_changed",
    ]
    offered, answered, on_call, ringing, accepted, ended, acw, free = events
    assert isinstance(ringing, ev.OfferRinging) and isinstance(accepted, ev.OfferAccepted)
    assert (ringing.agent_id, accepted.agent_id, accepted.time) == ("SIP/8007", "SIP/8007", answered.time)
    assert (accepted.time - ringing.time).total_seconds() == 3 and ringing.offer_id == accepted.offer_id
    assert isinstance(offered, ev.ContactOffered) and offered.customer_id == "0612345678"
    assert offered.time == datetime.fromtimestamp(T0, UTC)
    assert offered.contact_id == f"1366720340.303267@{T0}"  # callid + ENTERQUEUE time
    assert {e.contact_id for e in (offered, answered, ended, acw)} == {offered.contact_id}  # type: ignore[attr-defined]
    assert isinstance(answered, ev.ContactAnswered) and answered.agent_id == "SIP/8007"
    assert (answered.time - offered.time).total_seconds() == 12
    assert isinstance(acw, ev.AcwEnded) and acw.time == ended.time and acw.disposition == "COMPLETECALLER"
    assert isinstance(on_call, ev.AgentStateChanged) and on_call.state == "on_contact"
    assert isinstance(free, ev.AgentStateChanged) and free.state == "available"
    assert not adapter.legs  # the leg is done


def test_event_ids_are_stable_and_distinct() -> None:
    lines = [
        f"{T0}|c1|sales|NONE|ENTERQUEUE||x|1",
        f"{T0 + 5}|c1|sales|SIP/1|CONNECT|5|m|1",
        f"{T0 + 9}|c1|sales|SIP/1|COMPLETEAGENT|5|4|1",
    ]
    first, _ = run(lines)
    again, _ = run(lines)
    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert len({e.event_id for e in first}) == len(first)


def test_the_same_callid_entering_twice_gives_two_legs() -> None:
    events, _ = run(
        [
            f"{T0}|c1|sales|NONE|ENTERQUEUE||x|1",
            f"{T0 + 30}|c1|sales|NONE|ABANDON|1|1|30",
            f"{T0 + 60}|c1|sales|NONE|ENTERQUEUE||x|1",
            f"{T0 + 70}|c1|sales|NONE|EXITWITHTIMEOUT|1|1|10",
        ]
    )
    assert kinds(events) == ["contact.offered", "contact.abandoned", "contact.offered", "contact.flowed_out"]
    ids = [e.contact_id for e in events]  # type: ignore[attr-defined]
    assert ids[0] == ids[1] != ids[2] == ids[3]


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("EXITWITHKEY|1|2|3|40", "contact.callback_requested"),
        ("EXITWITHKEY|9|2|3|40", "contact.flowed_out"),
        ("EXITEMPTY|2|3|40", "contact.flowed_out"),
        ("EXITWITHTIMEOUT|2|3|40", "contact.flowed_out"),
        ("ABANDON|2|3|40", "contact.abandoned"),
    ],
)
def test_exits_before_an_answer(line: str, kind: str) -> None:
    config = AsteriskConfig(callback_keys=frozenset({"1"}))
    events, _ = run([f"{T0}|c1|q|NONE|ENTERQUEUE||x|1", f"{T0 + 40}|c1|q|NONE|{line}"], config)
    assert kinds(events)[1:] == [kind]


@pytest.mark.parametrize(
    "data",
    [
        "TRANSFER|200|from-internal|5|60|1",
        "BLINDTRANSFER|200|from-internal|5|60|1",
        "ATTENDEDTRANSFER|BRIDGE|1366720399.12|5|60|1",
    ],
)
def test_transfers_end_the_leg_with_a_zero_length_acw(data: str) -> None:
    events, _ = run(
        [f"{T0}|c1|q|NONE|ENTERQUEUE||x|1", f"{T0 + 5}|c1|q|PJSIP/2|CONNECT|5|m|1", f"{T0 + 65}|c1|q|PJSIP/2|{data}"]
    )
    tail = [e for e in events if isinstance(e, ev.ContactEvent)][-2:]
    assert kinds(tail) == ["contact.transferred", "contact.acw_ended"]
    assert tail[0].time == tail[1].time


def test_placeholder_agents_are_mapped_by_configuration_and_get_no_state() -> None:
    config = AsteriskConfig(placeholder_agents={"NO_SERVER": "unassigned-voice", "NONE": "unassigned-voice"})
    events, adapter = run(
        [
            f"{T0}|c1|q|NONE|ENTERQUEUE||x|1",
            f"{T0 + 5}|c1|q|NO_SERVER|CONNECT|5|m|1",
            f"{T0 + 50}|c1|q|NO_SERVER|COMPLETECALLER|5|45|1",
        ],
        config,
    )
    assert kinds(events) == ["contact.offered", "contact.answered", "contact.ended", "contact.acw_ended"]
    assert {e.agent_id for e in events[1:]} == {"unassigned-voice"}  # type: ignore[attr-defined]
    assert not adapter.agents


def test_members_log_in_pause_with_a_reason_and_log_out() -> None:
    events, adapter = run(
        [
            f"{T0}|NONE|sales|Agent/1001|ADDMEMBER|",
            f"{T0}|NONE|support|Agent/1001|ADDMEMBER|",
            f"{T0 + 60}|NONE|NONE|Agent/1001|PAUSEALL|lunch",
            f"{T0 + 60}|NONE|sales|Agent/1001|PAUSE|lunch",
            f"{T0 + 60}|NONE|support|Agent/1001|PAUSE|lunch",
            f"{T0 + 900}|NONE|NONE|Agent/1001|UNPAUSEALL|",
            f"{T0 + 900}|NONE|sales|Agent/1001|UNPAUSE|",
            f"{T0 + 900}|NONE|support|Agent/1001|UNPAUSE|",
            f"{T0 + 950}|NONE|sales|Agent/1001|REMOVEMEMBER|",
            f"{T0 + 950}|NONE|support|Agent/1001|REMOVEMEMBER|",
            f"{T0 + 960}|NONE|NONE|NONE|QUEUESTART|",
            f"{T0 + 961}|NONE|sales|NONE|CONFIGRELOAD|",
            f"{T0 + 963}|c9|sales|SIP/1|RINGCANCELED|2000",
        ]
    )
    assert kinds(events) == [
        "agent.logged_in",
        "agent.state_changed",
        "agent.logged_in",  # a second queue: the login's queues are replaced
        "agent.state_changed",  # not_ready, once for PAUSEALL and its per-queue PAUSEs
        "agent.state_changed",
        "agent.logged_in",  # out of one queue, still in the other
        "agent.logged_out",
    ]
    assert events[2].queue_ids == ["sales", "support"]  # type: ignore[attr-defined]
    states = [(e.state, e.reason_code) for e in events if isinstance(e, ev.AgentStateChanged)]
    assert states == [("available", None), ("not_ready", "lunch"), ("available", None)]
    assert adapter.ignored == {"QUEUESTART": 1, "CONFIGRELOAD": 1, "RINGCANCELED": 1}


def test_an_agent_paused_during_a_call_stays_on_contact_until_it_ends() -> None:
    events, _ = run(
        [
            f"{T0}|NONE|NONE|Agent/7|AGENTLOGIN|PJSIP/7",
            f"{T0 + 1}|c1|q|NONE|ENTERQUEUE||x|1",
            f"{T0 + 2}|c1|q|Agent/7|CONNECT|1|m|1",
            f"{T0 + 3}|NONE|q|Agent/7|PAUSE|break",
            f"{T0 + 9}|c1|q|Agent/7|COMPLETEAGENT|1|7|1",
            f"{T0 + 99}|NONE|NONE|Agent/7|AGENTLOGOFF|PJSIP/7|99",
        ]
    )
    states = [(e.state, e.reason_code) for e in events if isinstance(e, ev.AgentStateChanged)]
    assert states == [("available", None), ("on_contact", None), ("not_ready", "break")]
    assert kinds(events)[-1] == "agent.logged_out"


def test_local_date_times_are_read_in_the_pbx_zone_and_epochs_are_utc() -> None:
    config = AsteriskConfig(time_zone="Europe/Paris")
    events, _ = run(["2012-07-03 15:27:23.896208|1341343640.4|q1|NONE|ENTERQUEUE||x|1"], config)
    assert events[0].time == datetime(2012, 7, 3, 13, 27, 23, 896208, tzinfo=UTC)
    events, _ = run([f"{T0}|c|q1|NONE|ENTERQUEUE||x|1"], config)
    assert events[0].time == datetime.fromtimestamp(T0, UTC)


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        (["garbage"], "too_few_fields"),
        (["yesterday|c1|q|NONE|ENTERQUEUE||x|1"], "bad_time"),
        ([f"{T0}|c1|q|SIP/1|CONNECT|5|m|1"], "no_enterqueue"),
        ([f"{T0}|c1|q|NONE|ENTERQUEUE||x|1", f"{T0}|c1|q|SIP/1|COMPLETEAGENT|5|4|1"], "not_connected"),
        ([f"{T0}|c1|NONE|NONE|ENTERQUEUE||x|1"], "no_queue"),
        ([f"{T0}|c\x001|q|NONE|ENTERQUEUE||x|1"], "bad_callid"),
    ],
)
def test_malformed_lines_are_refused_with_a_reason(lines: list[str], reason: str) -> None:
    adapter = QueueLogAdapter()
    for line in lines[:-1]:
        adapter.translate(line)
    with pytest.raises(Rejected) as refused:
        adapter.translate(lines[-1])
    assert refused.value.reason == reason


def test_custom_events_are_ignored_and_counted() -> None:
    events, adapter = run([f"{T0}|c1|q|NONE|MYTESTEVENT|x"])
    assert events == [] and adapter.ignored == {"other": 1}


def test_sort_key_orders_a_leg_within_its_second() -> None:
    lines = [
        f"{T0}|c1|q|SIP/1|COMPLETEAGENT|0|0|1",
        f"{T0}|c1|q|SIP/1|CONNECT|0|m|1",
        f"{T0}|c1|q|NONE|ENTERQUEUE||x|1",
    ]
    ordered = sorted(lines, key=lambda line: sort_key(line) or (0, 0))
    events, _ = run(ordered)
    legs = [
        e for e in events if isinstance(e, ev.ContactEvent) and not isinstance(e, ev.OfferRinging | ev.OfferAccepted)
    ]
    assert kinds(legs) == [
        "contact.offered",
        "contact.answered",
        "contact.ended",
        "contact.acw_ended",
    ]
    assert sort_key("no time here") is None


def test_stable_event_id_is_exactly_uuid5_of_the_joined_parts() -> None:
    """The fast implementation must not change an id: a re-import after an upgrade would count twice."""
    import random
    import uuid

    from pipeline.sources.identity import NAMESPACE, stable_event_id

    rng = random.Random(3)
    for i in range(2000):
        parts = [rng.random(), "é\x1f|", i, "".join(chr(rng.randrange(32, 0x3000)) for _ in range(rng.randrange(40)))]
        name = "\x1f".join(["src", *map(str, parts)])
        assert stable_event_id("src", *parts) == str(uuid.uuid5(NAMESPACE, name))


def test_a_ring_no_answer_is_a_missed_offer_that_rang_its_ring_time() -> None:
    """The documentation's own RINGNOANSWER line: SIP/8007 rang 1000 ms and did not pick up (RONA)."""
    events, adapter = run(
        [
            f"{T0 - 30}|1366720340.303267|MYQUEUE|NONE|ENTERQUEUE||0612345678|1",
            "1366720340|1366720340.303267|MYQUEUE|SIP/8007|RINGNOANSWER|1000",
            f"{T0 + 20}|1366720340.303267|MYQUEUE|SIP/8008|RINGNOANSWER|20000",
            f"{T0 + 25}|1366720340.303267|MYQUEUE|SIP/8009|CONNECT|55|1366720365.303270|4",
        ]
    )
    offers = [e for e in events if isinstance(e, ev.OfferRinging | ev.OfferMissed | ev.OfferAccepted)]
    assert kinds(offers) == ["offer.ringing", "offer.missed"] * 2 + ["offer.ringing", "offer.accepted"]
    leg = events[0].contact_id  # type: ignore[attr-defined]
    assert {(e.contact_id, e.queue_id, e.channel) for e in offers} == {(leg, "MYQUEUE", "voice")}  # type: ignore[attr-defined]
    rings = [(e.agent_id, e.time.timestamp()) for e in offers if isinstance(e, ev.OfferRinging)]
    assert rings == [("SIP/8007", T0 - 1), ("SIP/8008", T0), ("SIP/8009", T0 + 21)]
    ends = [(e.agent_id, e.time.timestamp()) for e in offers if not isinstance(e, ev.OfferRinging)]
    assert ends == [("SIP/8007", T0), ("SIP/8008", T0 + 20), ("SIP/8009", T0 + 25)]
    ids = [e.offer_id for e in offers]  # type: ignore[attr-defined]
    assert ids[0] == ids[1] != ids[2] == ids[3] != ids[4] == ids[5] != ids[0]
    assert not adapter.ignored


def test_a_ring_starts_no_earlier_than_the_call_entered_the_queue() -> None:
    events, _ = run([f"{T0}|c1|q|NONE|ENTERQUEUE||x|1", f"{T0 + 2}|c1|q|SIP/1|CONNECT|2|m|5"])
    ringing = next(e for e in events if isinstance(e, ev.OfferRinging))
    assert ringing.time == datetime.fromtimestamp(T0, UTC)


def test_no_offer_without_a_ring_a_member_or_a_ring_time() -> None:
    """RINGNOANSWER|0: the member could not be called; a placeholder names no member; a CONNECT without its third
    field (before Asterisk 1.4) tells no ring."""
    events, adapter = run(
        [
            f"{T0}|c1|q|NONE|ENTERQUEUE||x|1",
            f"{T0 + 1}|c1|q|SIP/1|RINGNOANSWER|0",
            f"{T0 + 2}|c1|q|NONE|RINGNOANSWER|15000",
            f"{T0 + 3}|c1|q|SIP/2|CONNECT|3|m",
            f"{T0 + 4}|c2|q|NONE|ENTERQUEUE||x|1",
            f"{T0 + 5}|c2|q|NONE|CONNECT|1|m|1",
        ]
    )
    assert not any(isinstance(e, ev.OfferRinging | ev.OfferMissed | ev.OfferAccepted) for e in events)
    assert adapter.ignored == {"RINGNOANSWER_not_rung": 1, "placeholder_agent": 1}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("c1|q|SIP/1|RINGNOANSWER|soon", "bad_ringtime"),
        ("c1|q|SIP/1|RINGNOANSWER|-5", "bad_ringtime"),
        ("c1|q|SIP/1|RINGNOANSWER|", "bad_ringtime"),
        ("c1|q|SIP/1|CONNECT|5|m|x", "bad_ringtime"),
        ("c9|q|SIP/1|RINGNOANSWER|1000", "no_enterqueue"),
    ],
)
def test_bad_ring_lines_are_refused_with_a_reason(line: str, reason: str) -> None:
    adapter = QueueLogAdapter()
    adapter.translate(f"{T0}|c1|q|NONE|ENTERQUEUE||x|1")
    with pytest.raises(Rejected) as refused:
        adapter.translate(f"{T0 + 5}|{line}")
    assert refused.value.reason == reason
