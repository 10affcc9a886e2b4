"""The traffic simulator: deterministic, complete and consistent event logs that follow the contract."""

from __future__ import annotations

import asyncio
import math
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import datetime, timedelta

import msgspec
import pytest

from pipeline.contract.events import (
    AcwEnded,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentStateChanged,
    AgentTopicEvent,
    CallbackConnected,
    CallbackDialled,
    CallbackFailed,
    CallbackRequested,
    ChatMessage,
    ContactAbandoned,
    ContactAnswered,
    ContactEnded,
    ContactEvent,
    ContactFlowedOut,
    ContactOffered,
    ContactTopicEvent,
    ContactTransferred,
    Event,
    HoldEnded,
    HoldStarted,
    OfferAccepted,
    OfferMissed,
    OfferRejected,
    OfferRinging,
    encode,
)
from pipeline.tools.simulate import (
    CenterConfig,
    main_simulate,
    paced,
    read_jsonl,
    simulate,
    with_all_channels,
    write_jsonl,
)
from pipeline.tools.simulate.center import ACCEPT_RING_SECONDS, REJECT_AFTER_SECONDS
from pipeline.tools.simulate.config import CONVERSATIONS, SEGMENTS, _staffing

DEFAULT = CenterConfig()
# A whole day of a small center: several sessions per agent, shifts cut by the period's edges.
DAY = replace(DEFAULT, agents=30, duration_hours=26).with_load_of(DEFAULT)

# Every channel: email and tasks in business hours only, messaging; a day of it crosses the closed night.
ALL = with_all_channels(DEFAULT).with_load_of(DEFAULT)
ALL_DAY = with_all_channels(replace(DEFAULT, agents=30, duration_hours=26)).with_load_of(DEFAULT)

RUNS = {
    "default-1": (DEFAULT, 1),
    "default-2": (DEFAULT, 2),
    "default-3": (DEFAULT, 3),
    "day-4": (DAY, 4),
    "all-5": (ALL, 5),
    "all-day-6": (ALL_DAY, 6),
}


@pytest.fixture(scope="module")
def logs() -> dict[str, list[Event]]:
    return {name: list(simulate(config, seed)) for name, (config, seed) in RUNS.items()}


@pytest.fixture(scope="module")
def default_log(logs: dict[str, list[Event]]) -> list[Event]:
    return logs["default-1"]


def _bytes(events: list[Event]) -> bytes:
    return b"\n".join(encode(e) for e in events)


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(default_log: list[Event]) -> None:
    assert _bytes(list(simulate(DEFAULT, 1))) == _bytes(default_log)
    assert _bytes(list(simulate(DEFAULT, 2)))[:20_000] != _bytes(default_log)[:20_000]


@pytest.mark.parametrize("run", RUNS)
def test_events_are_in_time_order_with_unique_ids(logs: dict[str, list[Event]], run: str) -> None:
    events = logs[run]
    config = RUNS[run][0]
    assert all(a.time <= b.time for a, b in zip(events, events[1:], strict=False))
    assert events[0].time >= config.start
    assert len({e.event_id for e in events}) == len(events)
    assert all(e.time.microsecond % 1000 == 0 and e.time.utcoffset() == timedelta(0) for e in events)


@pytest.mark.parametrize("run", RUNS)
def test_every_leg_follows_the_contract_sequence(logs: dict[str, list[Event]], run: str) -> None:
    events = logs[run]
    open_legs: dict[tuple[str, str], list[ContactEvent]] = {}
    callbacks: dict[tuple[str, str], list[ContactEvent]] = {}
    seen: set[tuple[str, str]] = set()
    finished = 0
    for index, event in enumerate(events):
        if not isinstance(event, ContactEvent):
            continue
        key = (event.queue_id, event.contact_id)
        if isinstance(event, OFFER_EVENTS):
            continue  # offers have their own test
        if isinstance(event, CallbackDialled | CallbackConnected | CallbackFailed):
            callbacks.setdefault(key, []).append(event)  # after its leg: checked below
            continue
        if isinstance(event, ChatMessage):  # during the leg: after the offer, agents' only once answered
            kinds = [type(e) for e in open_legs[key]]
            assert event.channel in CONVERSATIONS and kinds[-1] is not AcwEnded
            assert event.sender == "customer" or (ContactAnswered in kinds and ContactEnded not in kinds)
            continue
        if isinstance(event, ContactOffered):
            assert key not in open_legs, f"offered again while its leg is unfinished: {event}"
            assert key not in seen, f"(queue, contact) identifies one leg for the whole log: {event}"
            seen.add(key)
            open_legs[key] = [event]
            continue
        leg = open_legs[key]
        leg.append(event)
        assert leg[-2].time <= event.time
        if isinstance(event, ContactTransferred):
            assert event.to_queue_id not in (None, event.queue_id)
            offered = [
                e
                for e in events[index + 1 : index + 50]
                if isinstance(e, ContactOffered)
                and e.contact_id == event.contact_id
                and e.queue_id == event.to_queue_id
            ]
            assert offered and offered[0].time == event.time and offered[0].channel == event.channel
        if isinstance(event, ContactAbandoned | CallbackRequested | ContactFlowedOut | AcwEnded):
            _check_leg(leg)
            del open_legs[key]
            finished += 1
    assert not open_legs, "the run drains: every leg completes"
    assert finished == sum(isinstance(e, ContactOffered) for e in events)
    # every callback request is dialled 1, 2, ... after it, and ends connected on its last attempt or failed
    requests = {(e.queue_id, e.contact_id): e for e in events if isinstance(e, CallbackRequested)}
    assert set(callbacks) == set(requests)
    for key, lifecycle in callbacks.items():
        assert requests[key].promised_by is not None and requests[key].time <= lifecycle[0].time
        dials = [e.attempt for e in lifecycle if isinstance(e, CallbackDialled)]
        assert dials == list(range(1, len(dials) + 1))
        end = lifecycle[-1]
        assert isinstance(end, CallbackConnected | CallbackFailed) and len(lifecycle) == len(dials) + 1
        assert end.attempt == dials[-1] if isinstance(end, CallbackConnected) else end.attempts == len(dials)


OFFER_EVENTS = (OfferRinging, OfferAccepted, OfferRejected, OfferMissed)


@pytest.mark.parametrize("run", RUNS)
def test_every_answer_is_an_accepted_offer_after_offers_missed_or_rejected(
    logs: dict[str, list[Event]], run: str
) -> None:
    """Each offer: one ringing, then one outcome at the same agent. Each answered leg: its last offer accepted by
    the answering agent at the answer, after a ring within the wait; the offers before it missed (after the ring
    timeout) or rejected, one at a time. An abandoned leg may have had missed or rejected offers, never an accept."""
    config = RUNS[run][0]
    events = logs[run]
    offers: dict[str, list[ContactEvent]] = {}
    legs: dict[tuple[str, str], list[ContactEvent]] = defaultdict(list)
    for e in events:
        if isinstance(e, ContactEvent):
            legs[(e.queue_id, e.contact_id)].append(e)
        if isinstance(e, OFFER_EVENTS):
            offers.setdefault(e.offer_id, []).append(e)
    for offer_id, (ringing, *outcome) in offers.items():
        assert isinstance(ringing, OfferRinging) and len(outcome) == 1, offer_id
        end = outcome[0]
        assert (end.queue_id, end.contact_id, end.agent_id) == (ringing.queue_id, ringing.contact_id, ringing.agent_id)  # type: ignore[attr-defined]
        ring = (end.time - ringing.time).total_seconds()
        if isinstance(end, OfferMissed):
            assert ring == pytest.approx(config.ring_timeout)
        elif isinstance(end, OfferRejected):
            assert REJECT_AFTER_SECONDS[0] - 0.001 <= ring <= REJECT_AFTER_SECONDS[1] + 0.001
        else:
            assert isinstance(end, OfferAccepted) and 0 <= ring <= ACCEPT_RING_SECONDS[1] + 0.001
    outcomes: Counter[type] = Counter()
    for leg in legs.values():
        offered = leg[0]
        assert isinstance(offered, ContactOffered)
        rings = [e for e in leg if isinstance(e, OfferRinging)]
        ends = [e for e in leg if isinstance(e, OfferAccepted | OfferMissed | OfferRejected)]
        assert len(rings) == len(ends)
        free_since = offered.time
        for ringing, end in zip(rings, ends, strict=True):  # one offer at a time, each after the last one's end
            assert ringing.offer_id == end.offer_id and free_since <= ringing.time
            free_since = end.time
            outcomes[type(end)] += 1
        answered = [e for e in leg if isinstance(e, ContactAnswered)]
        if answered:
            assert isinstance(ends[-1], OfferAccepted) and ends[-1].agent_id == answered[0].agent_id
            assert ends[-1].time == answered[0].time
            assert not any(isinstance(e, OfferAccepted) for e in ends[:-1])
        else:
            assert not any(isinstance(e, OfferAccepted) for e in ends)
    accepted = outcomes[OfferAccepted]
    assert accepted == sum(isinstance(e, ContactAnswered) for e in events)
    # the outcomes come in the configured shares (binomial: within 4 standard deviations)
    offered = sum(outcomes.values())
    for kind, share in ((OfferMissed, config.offer_missed_share), (OfferRejected, config.offer_rejected_share)):
        assert abs(outcomes[kind] - offered * share) <= 4 * math.sqrt(offered * share * (1 - share)) + 1, kind
        assert outcomes[kind] > 0


def test_offers_change_no_other_event_when_every_offer_is_accepted() -> None:
    """Every offer accepted: the day is the day without offers, event for event (ids, times, order), plus the
    offers. So adding offers moves no answer, no handle time, no other figure."""
    for config, seed in (RUNS["default-2"], RUNS["all-day-6"]):
        without = list(simulate(replace(config, agent_offers=False), seed))
        accepted = list(simulate(replace(config, offer_missed_share=0.0, offer_rejected_share=0.0), seed))
        assert not any(isinstance(e, OFFER_EVENTS) for e in without)
        assert [e for e in accepted if not isinstance(e, OFFER_EVENTS)] == without
        assert sum(isinstance(e, OfferAccepted) for e in accepted) == sum(
            isinstance(e, ContactAnswered) for e in without
        )


def test_missed_and_rejected_offers_leave_the_queue_figures_about_the_same() -> None:
    """Missed and rejected offers hold an agent and the customer for a few seconds, a few percent of the time:
    over 12 seeds answered, abandoned, ASA and AHT stay within a few percent of the center without offers."""

    def figures(config: CenterConfig) -> list[float]:
        answered = abandoned = 0
        wait = handle = 0.0
        for seed in range(1, 13):
            offered_at: dict[tuple[str, str], datetime] = {}
            answered_at: dict[tuple[str, str], datetime] = {}
            for e in simulate(config, seed):
                if isinstance(e, ContactOffered):
                    offered_at[(e.queue_id, e.contact_id)] = e.time
                elif isinstance(e, ContactAnswered):
                    answered += 1
                    answered_at[(e.queue_id, e.contact_id)] = e.time
                    wait += (e.time - offered_at[(e.queue_id, e.contact_id)]).total_seconds()
                elif isinstance(e, ContactAbandoned | CallbackRequested):
                    abandoned += 1
                elif isinstance(e, AcwEnded):
                    handle += (e.time - answered_at[(e.queue_id, e.contact_id)]).total_seconds()
        return [answered, abandoned, wait / answered, handle / answered]

    answered, abandoned, asa, aht = figures(DEFAULT)
    base_answered, base_abandoned, base_asa, base_aht = figures(replace(DEFAULT, agent_offers=False))
    assert answered == pytest.approx(base_answered, rel=0.02)
    assert aht == pytest.approx(base_aht, rel=0.03)
    assert abandoned == pytest.approx(base_abandoned, rel=0.25)
    assert asa == pytest.approx(base_asa, rel=0.25)


def test_config_rejects_offer_shares_that_leave_no_accept() -> None:
    with pytest.raises(ValueError, match="sum below 1"):
        CenterConfig(offer_missed_share=0.6, offer_rejected_share=0.4)
    with pytest.raises(ValueError, match="ring_timeout"):
        CenterConfig(ring_timeout=0)


def _check_leg(leg: list[ContactEvent]) -> None:
    """offered, then abandoned or a callback request (voice only); or answered, hold pairs, ended or
    transferred, acw_ended (same agent)."""
    kinds = [type(e) for e in leg]
    assert kinds[0] is ContactOffered
    assert len({(e.channel, e.queue_id, e.contact_id) for e in leg}) == 1
    if kinds[1] in (ContactAbandoned, CallbackRequested):
        assert len(kinds) == 2 and (kinds[1] is ContactAbandoned or leg[0].channel == "voice")
        assert leg[0].channel not in ("email", "task"), "an email or a task waits until someone takes it"
        return
    if kinds[1] is ContactFlowedOut:  # carried over to tomorrow's backlog after the last agent left
        assert len(kinds) == 2 and leg[0].channel in ("email", "task") and leg[1].to_queue_id is None  # type: ignore[attr-defined]
        return
    assert kinds[1] is ContactAnswered
    assert kinds[-2] in (ContactEnded, ContactTransferred) and kinds[-1] is AcwEnded
    holds = kinds[2:-2]
    assert holds == [HoldStarted, HoldEnded] * (len(holds) // 2)
    assert len({e.agent_id for e in leg[1:]}) == 1  # type: ignore[attr-defined]
    assert leg[-1].disposition  # type: ignore[attr-defined]


@pytest.mark.parametrize("run", RUNS)
def test_agents_never_exceed_their_capacity_and_work_only_when_logged_in(
    logs: dict[str, list[Event]], run: str
) -> None:
    config = RUNS[run][0]
    logged_in: set[str] = set()
    channel_of: dict[str, str] = {}
    active: Counter[str] = Counter()
    for event in logs[run]:
        if isinstance(event, AgentLoggedIn):
            assert event.agent_id not in logged_in
            logged_in.add(event.agent_id)
            assert event.queue_ids
        elif isinstance(event, AgentLoggedOut):
            assert active[event.agent_id] == 0, "logs out only after finishing its work"
            logged_in.remove(event.agent_id)
        elif isinstance(event, AgentStateChanged):
            assert event.agent_id in logged_in
            assert (event.state == "not_ready") == (event.reason_code is not None)
            if event.state == "not_ready":
                assert active[event.agent_id] == 0, "breaks start after the current work"
        elif isinstance(event, ContactAnswered):
            assert event.agent_id in logged_in
            pool = "voice" if event.channel == "voice" else "digital"  # chat agents take every other channel
            assert channel_of.setdefault(event.agent_id, pool) == pool
            active[event.agent_id] += 1
            limit = config.chat_concurrency if pool == "digital" else 1
            assert active[event.agent_id] <= limit, f"{event.agent_id} over capacity at {event.time}"
        elif isinstance(event, AcwEnded):
            active[event.agent_id] -= 1
    assert not logged_in and not +active
    assert config.chat_concurrency > 1 and any(
        n == config.chat_concurrency for n in _peak_concurrency(logs[run]).values()
    )


def _peak_concurrency(events: list[Event]) -> dict[str, int]:
    """Most contacts at once per chat agent (every channel but voice)."""
    active: Counter[str] = Counter()
    peak: dict[str, int] = {}
    for event in events:
        if isinstance(event, ContactAnswered) and event.channel != "voice":
            active[event.agent_id] += 1
            peak[event.agent_id] = max(peak.get(event.agent_id, 0), active[event.agent_id])
        elif isinstance(event, AcwEnded) and event.channel != "voice":
            active[event.agent_id] -= 1
    return peak


def test_agent_states_follow_the_work(default_log: list[Event]) -> None:
    """A voice agent is on_contact when answering, in acw after ending, available or on a break after."""
    voice_agents = {e.agent_id for e in default_log if isinstance(e, ContactAnswered) and e.channel == "voice"}
    state: dict[str, str] = {}
    for event in default_log:
        if isinstance(event, AgentStateChanged):
            # the same state again only for a break, or for a chat agent whose number of contacts changed
            same = state.get(event.agent_id) == event.state
            assert not same or event.state == "not_ready" or event.active_contacts is not None
            state[event.agent_id] = event.state
        elif isinstance(event, AgentLoggedOut):
            state.pop(event.agent_id)
        elif isinstance(event, ContactAnswered) and event.agent_id in voice_agents:
            assert state[event.agent_id] in ("available", "acw")  # acw: straight on to a waiting contact
        elif isinstance(event, HoldStarted | HoldEnded | ContactEnded | ContactTransferred):
            assert state[event.agent_id] == "on_contact"


def test_a_moderate_run_shows_everything_the_kpis_need(logs: dict[str, list[Event]]) -> None:
    default_log = logs["default-1"]
    types = Counter(type(e) for e in default_log)
    kinds = (ContactAbandoned, ContactTransferred, HoldStarted, AgentLoggedIn, AgentLoggedOut, OfferMissed)
    for kind in (*kinds, OfferRejected, CallbackRequested, CallbackDialled, CallbackConnected):
        assert types[kind] > 0, kind
    # a callback fails after 3 unanswered dials (0.4 ** 3: 6 % of a handful per run): over the runs, some do
    assert any(isinstance(e, CallbackFailed) for log in logs.values() for e in log)
    offered = [e for e in default_log if isinstance(e, ContactOffered)]
    assert {e.channel for e in offered} == {"voice", "chat"}
    assert {e.queue_id for e in offered} == {q.queue_id for q in DEFAULT.queues}
    # Repeat customers: several contacts (not merely transfer legs) from the same customer.
    customer_of = {e.contact_id: e.customer_id for e in offered}
    by_customer = Counter(customer for customer in customer_of.values() if customer is not None)
    assert sum(n > 1 for n in by_customer.values()) >= 10
    assert None in customer_of.values()  # some contacts come from unknown customers
    assert all(c.startswith("cust-") for c in by_customer)
    reasons = {e.reason_code for e in default_log if isinstance(e, AgentStateChanged) and e.state == "not_ready"}
    assert "break" in reasons
    dispositions = {e.disposition for e in default_log if isinstance(e, AcwEnded)}
    assert {"resolved", "transferred"} <= dispositions
    # segments: on the voice queues' offers, from the configured ones, and a share with none
    segments = Counter(e.segment for e in offered if e.channel == "voice" and e.queue_id in ("sales", "support"))
    assert set(segments) == {name for name, _ in SEGMENTS} | {None}
    assert all(e.contact_id.startswith("c-1-") for e in offered)


@pytest.mark.parametrize("run", ["default-1", "all-5", "all-day-6"])
def test_chat_agents_send_how_many_contacts_they_have_whenever_it_changes(logs, run) -> None:
    """`active_contacts` on a chat agent's state is its contacts between answer and end of ACW, sent at every change
    while it has any; voice agents never send it (one contact: the contract's default)."""
    events = logs[run]
    open_contacts: Counter[str] = Counter()
    last_sent: dict[str, int | None] = {}
    chat_agents = {e.agent_id for e in events if isinstance(e, ContactAnswered) and e.channel != "voice"}
    most = 0
    for i, event in enumerate(events):
        if isinstance(event, ContactAnswered | AcwEnded):
            open_contacts[event.agent_id] += 1 if isinstance(event, ContactAnswered) else -1
        elif isinstance(event, AgentStateChanged):
            last_sent[event.agent_id] = event.active_contacts
            if event.active_contacts is not None:
                assert event.agent_id in chat_agents and event.state in ("on_contact", "acw")
                assert event.active_contacts == open_contacts[event.agent_id]
                most = max(most, event.active_contacts)
            else:
                assert event.agent_id not in chat_agents or event.state not in ("on_contact", "acw")
        # once the events of one instant are out, what a busy chat agent last sent is its number of contacts
        agent = getattr(event, "agent_id", None)
        boundary = i + 1 == len(events) or events[i + 1].time != event.time
        if boundary and agent in chat_agents and open_contacts[agent]:
            assert last_sent.get(agent) == open_contacts[agent], (agent, event.time)
    assert most == RUNS[run][0].chat_concurrency  # the concurrency KPI sees chat agents at full capacity


@pytest.mark.parametrize("run", ["all-5", "all-day-6"])
def test_every_channel_arrives_email_and_tasks_in_business_hours_only(logs, run) -> None:
    config = RUNS[run][0]
    offered = [e for e in logs[run] if isinstance(e, ContactOffered)]
    assert {e.channel for e in offered} == {"voice", "chat", "email", "task", "messaging"}
    for e in offered:
        if e.channel in ("email", "task"):
            assert config.is_open((e.time - config.start).total_seconds()), e
    if run == "all-day-6":  # the night is closed: no email or task between 20:00 and 08:00
        hours = {e.time.hour for e in offered if e.channel in ("email", "task")}
        assert hours and hours <= set(range(8, 20)) and len({e.time.date() for e in offered}) == 2
    answered = {(e.queue_id, e.contact_id) for e in logs[run] if isinstance(e, ContactAnswered)}
    emails = [e for e in offered if e.channel in ("email", "task")]
    assert sum((e.queue_id, e.contact_id) in answered for e in emails) > 0.9 * len(emails)  # the rest carried over
    messages = {e.channel for e in logs[run] if isinstance(e, ChatMessage)}
    assert messages == {"chat", "messaging"}


def test_every_event_round_trips_through_the_contract_decoder(default_log: list[Event]) -> None:
    decoder = msgspec.json.Decoder(ContactTopicEvent | AgentTopicEvent)
    for event in default_log:
        raw = encode(event)
        decoded = decoder.decode(raw)
        assert decoded == event and encode(decoded) == raw


def test_jsonl_write_and_read_round_trip(default_log: list[Event], tmp_path) -> None:
    path = tmp_path / "events.jsonl"
    assert write_jsonl(iter(default_log), path) == len(default_log)
    assert path.read_bytes().count(b"\n") == len(default_log)
    assert list(read_jsonl(path)) == default_log


def test_read_jsonl_names_the_bad_line(tmp_path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"type": "agent.logged_out"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        list(read_jsonl(path))


def test_with_load_of_scales_arrivals_with_the_staff() -> None:
    assert DEFAULT.with_load_of(DEFAULT).rate_scale == pytest.approx(1.0)
    double = replace(DEFAULT, agents=80).with_load_of(DEFAULT)
    # Square-root staffing keeps the smallest margin (agents - load) / sqrt(load) of the reference, which lets
    # twice the agents carry more than twice the load (economies of scale).
    assert _smallest_margin(double) == pytest.approx(_smallest_margin(DEFAULT), rel=1e-6)
    assert double.rate_scale > 2.0
    day = replace(DEFAULT, agents=1000, duration_hours=24).with_load_of(DEFAULT)
    assert 10 < day.rate_scale < 40


def test_config_rejects_a_naive_start() -> None:
    with pytest.raises(ValueError, match="timezone"):
        CenterConfig(start=datetime(2026, 1, 5, 9))


async def test_paced_replays_everything_in_order_in_batches() -> None:
    events = list(simulate(replace(DEFAULT, agents=8, duration_hours=0.25).with_load_of(DEFAULT), 5))
    span = (events[-1].time - events[0].time).total_seconds()
    loop = asyncio.get_running_loop()
    began = loop.time()
    batches = [batch async for batch in paced(events, speed=span / 0.3)]  # about 0.3 s of wall time
    elapsed = loop.time() - began
    assert [e for batch in batches for e in batch] == events
    assert all(batches)
    assert 0.25 < elapsed < 2.0
    assert len(batches) <= elapsed / 0.1 + 2
    assert [b async for b in paced([], speed=60)] == []


def test_main_simulate_writes_a_log_and_a_summary(tmp_path, capsys) -> None:
    path = tmp_path / "out.jsonl"
    argv = ["--out", str(path), "--seed", "3", "--hours", "0.5", "--agents", "12", "--start", "2026-01-06T10:00Z"]
    assert main_simulate(argv) == 0
    events = list(read_jsonl(path))
    assert events and events[0].time >= datetime.fromisoformat("2026-01-06T10:00:00+00:00")
    assert len({e.agent_id for e in events if isinstance(e, AgentLoggedIn)}) == 12
    summary = capsys.readouterr().err
    assert f"wrote {len(events):,} events" in summary and "contact.offered" in summary
    per_agent = defaultdict(list)
    for e in events:
        if isinstance(e, AgentLoggedIn | AgentLoggedOut):
            per_agent[e.agent_id].append(type(e))
    assert all(kinds == [AgentLoggedIn, AgentLoggedOut] for kinds in per_agent.values())


def _smallest_margin(config: CenterConfig) -> float:
    return min((n - load) / math.sqrt(load) for n, load in _staffing(config) if n > 0 and load > 0)


def test_main_simulate_takes_the_offer_shares(tmp_path, capsys) -> None:
    path = tmp_path / "out.jsonl"
    argv = ["--out", str(path), "--hours", "0.5", "--agents", "12", "--offer-rejected-share", "0"]
    assert main_simulate([*argv, "--offer-missed-share", "0.2"]) == 0
    kinds = Counter(type(e) for e in read_jsonl(path))
    assert kinds[OfferRejected] == 0 and kinds[OfferMissed] > 0.1 * kinds[OfferRinging]
    assert "offer.missed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main_simulate([*argv, "--offer-missed-share", "1"])
    assert "their sum below 1" in capsys.readouterr().err


def test_an_agent_serves_at_most_a_routing_profiles_queues() -> None:
    """Generalists of a center with hundreds of queues serve 50 of them, Amazon Connect's default quota of queues
    per routing profile ("Connect Customer service quotas"), not every queue of their channel."""
    from pipeline.tools.bench import center
    from pipeline.tools.simulate.center import MAX_SKILLS

    config = center(400, 0.5, queues=300)
    logins = [e for e in simulate(config, 7) if isinstance(e, AgentLoggedIn)]
    served = Counter(len(set(e.queue_ids)) for e in logins)
    voice_queues = sum(1 for q in config.queues if q.channel == "voice")
    assert voice_queues > MAX_SKILLS  # the cap can bind
    assert max(served) == MAX_SKILLS  # the generalists: capped, and there are some
    assert served[1] > 0 and served[2] > 0  # most agents: one or two
