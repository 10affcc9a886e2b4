"""A simulated day in a vendor's format, read back by the adapter, gives the KPIs of the same day in the contract.

Path A (contract): simulator -> contract events -> KPIs.
Path B (vendor): simulator -> vendor file (pipeline/tools/simulate/formats.py) -> `ingest` -> contract events
-> KPIs.
Both computed with the independent batch computations (tests/batch_kpis.py, tests/batch_agents.py). The
format cannot carry everything (sub-second times, hold, ACW, chat, surveys...): `format_view` removes exactly
that from path A, path B must then equal it field by field, and the KPI fields in which path A's own records
change are the ones docs/sources.md lists as not carried (`formats.NOT_CARRIED`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import batch_agents
import batch_kpis
import msgspec
import pytest

from pipeline.contract import events as ev
from pipeline.sources import cdr
from pipeline.sources.asterisk import AsteriskConfig
from pipeline.tools import ingest
from pipeline.tools.simulate import CenterConfig, formats, read_jsonl, simulate

INTERVAL = 900
DEFAULT = CenterConfig()
DAY = replace(DEFAULT, agents=24, duration_hours=10).with_load_of(DEFAULT)


@pytest.fixture(scope="module")
def day() -> list[ev.Event]:
    return list(simulate(DAY, 7))


@pytest.fixture(scope="module")
def voice() -> set[str]:
    return {q.queue_id for q in DAY.queues if q.channel == "voice"}


def _second(t: datetime) -> datetime:
    return datetime.fromtimestamp(int(t.timestamp()), UTC)


CALLBACK_LIFECYCLE = (ev.CallbackScheduled, ev.CallbackDialled, ev.CallbackConnected, ev.CallbackFailed)  # not carried
OFFERS = (ev.OfferRinging, ev.OfferAccepted, ev.OfferRejected, ev.OfferMissed)


def format_view(events: list[ev.Event], voice: set[str]) -> list[ev.Event]:
    """The contract day as a format carrying whole seconds, voice legs, no hold, no ACW, no segment and no callback
    lifecycle sees it: the ACW of a leg ends when its conversation does. Offers as a queue_log tells them: an
    accepted one by the CONNECT's ring time in whole seconds, a missed or rejected one by a RINGNOANSWER (missed:
    the log has no rejection) with its ring time in ms, both at the line's second, rung no earlier than the entry."""
    out: list[ev.Event] = []
    ended: dict[tuple[str, str], datetime] = {}
    entered: dict[tuple[str, str], datetime] = {}
    ringing: dict[str, ev.OfferRinging] = {}
    for e in events:
        if (
            not isinstance(e, ev.ContactEvent)
            or e.queue_id not in voice
            or isinstance(e, ev.HoldStarted | ev.HoldEnded)
            or isinstance(e, CALLBACK_LIFECYCLE)
        ):
            continue
        if isinstance(e, ev.OfferRinging):
            ringing[e.offer_id] = e
            continue
        if isinstance(e, ev.OfferAccepted | ev.OfferMissed | ev.OfferRejected):
            rang = ringing.pop(e.offer_id)
            ring = e.time - rang.time
            at = _second(e.time)
            if isinstance(e, ev.OfferAccepted):
                ring = timedelta(seconds=ring // timedelta(seconds=1))
            else:
                e = ev.OfferMissed(**{f: getattr(e, f) for f in e.__struct_fields__ if f != "type"})
            start = max(entered[(e.queue_id, e.contact_id)], at - ring)
            out += [msgspec.structs.replace(rang, time=start), msgspec.structs.replace(e, time=at)]
            continue
        if isinstance(e, ev.CallbackRequested):
            e = msgspec.structs.replace(e, promised_by=None)  # a key pressed in the queue: no promised time
        t = _second(e.time)
        key = (e.queue_id, e.contact_id)
        if isinstance(e, ev.ContactEnded | ev.ContactTransferred):
            ended[key] = t
        if isinstance(e, ev.AcwEnded):
            t = ended.pop(key)
        if isinstance(e, ev.ContactOffered):  # no segment: a queue_log or a call-detail row has none
            e = msgspec.structs.replace(e, segment=None)
            entered[(e.queue_id, e.contact_id)] = _second(e.time)
        out.append(msgspec.structs.replace(e, time=t))
    return out


def queue_kpis(events: list[ev.Event]) -> dict:
    intervals, _ = batch_kpis.compute(events, INTERVAL, lambda q: 20.0)
    return intervals


def changed_fields(a: dict, b: dict) -> set[str]:
    empty = type(next(iter(a.values())))()
    names = set(type(empty).__struct_fields__)
    changed = set()
    for key in a.keys() | b.keys():
        for name in names:
            if getattr(a.get(key, empty), name) != getattr(b.get(key, empty), name):
                changed.add(name)
    return changed


@pytest.fixture(scope="module")
def asterisk_path(day: list[ev.Event], voice: set[str], tmp_path_factory: pytest.TempPathFactory) -> list[ev.Event]:
    folder = tmp_path_factory.mktemp("asterisk")
    log, out = folder / "queue_log", folder / "events.jsonl"
    lines = formats.write_asterisk_queue_log(day, log, voice)
    assert lines > 1000
    fmt = ingest.AsteriskFormat(AsteriskConfig(callback_keys=frozenset({formats.CALLBACK_KEY})))
    summary = ingest.import_file(fmt, log, out, folder / "dead.jsonl", chunk=5000)  # several sorted runs merged
    assert not summary.dead
    assert summary.read == lines
    return list(read_jsonl(out))


def test_asterisk_queue_kpis_equal_the_contract_path(day: list[ev.Event], voice: set[str], asterisk_path) -> None:
    view = queue_kpis(format_view(day, voice))
    vendor = queue_kpis(asterisk_path)
    assert vendor == view
    original = {k: v for k, v in queue_kpis(day).items() if k[0] in voice}
    changed = changed_fields(original, view)
    assert changed <= set(formats.NOT_CARRIED["asterisk-queue-log"]["queue"])
    # what a reader needs most is carried exactly, in every interval
    for name in ("offered", "answered", "abandoned", "callbacks_requested"):
        assert name not in changed
    for name in ("offered", "answered", "abandoned", "callbacks_requested", "handled", "transferred_out"):
        assert sum(getattr(c, name) for c in vendor.values()) == sum(getattr(c, name) for c in original.values())
    # offers: every answer an accepted offer, and the day's missed and rejected ones all missed (RINGNOANSWER)
    total = {n: sum(getattr(c, n) for c in vendor.values()) for n in formats.OFFER_FIELDS}
    was = {n: sum(getattr(c, n) for c in original.values()) for n in formats.OFFER_FIELDS}
    assert total["agent_offers_accepted"] == was["agent_offers_accepted"] == sum(c.answered for c in vendor.values())
    assert total["agent_offers_missed"] == was["agent_offers_missed"] + was["agent_offers_rejected"] > 0
    assert total["agent_offers"] == was["agent_offers"] and total["agent_offers_rejected"] == 0


def test_asterisk_agent_kpis_equal_the_contract_path(day: list[ev.Event], voice: set[str], asterisk_path) -> None:
    """Agent time: logged in, on a call and not ready (by reason) are carried to the second; the contract's ACW
    is available time in Asterisk (which logs no wrap-up), and schedules are not carried."""
    voice_agents = {e.agent_id for e in day if isinstance(e, ev.AgentLoggedIn) and set(e.queue_ids) & voice}
    contract = [
        msgspec.structs.replace(e, time=_second(e.time))
        for e in day
        if isinstance(e, ev.AgentEvent) and not isinstance(e, ev.ScheduleActivityPlanned) and e.agent_id in voice_agents
    ]
    until = int(max(e.time for e in day).timestamp() + 1) * 1000
    a, _, _ = batch_agents.compute(contract, INTERVAL, until)
    b, _, _ = batch_agents.compute([e for e in asterisk_path if isinstance(e, ev.AgentEvent)], INTERVAL, until)
    assert a.keys() == b.keys()
    for key in a:
        x, y = a[key], b[key]
        assert (y.logged_in_ms, y.on_contact_ms, y.not_ready_ms) == (x.logged_in_ms, x.on_contact_ms, x.not_ready_ms)
        assert y.not_ready_by_reason_ms == x.not_ready_by_reason_ms
        assert y.available_ms == x.available_ms + x.acw_ms and y.acw_ms == 0
        assert y.queues == x.queues


def test_reimporting_gives_the_same_event_ids(
    voice: set[str], day: list[ev.Event], asterisk_path, tmp_path: Path
) -> None:
    log = tmp_path / "queue_log"
    formats.write_asterisk_queue_log(day, log, voice)
    seconds: dict[str, list[str]] = {}
    for line in log.read_text().splitlines(keepends=True):
        seconds.setdefault(line.split("|", 1)[0], []).append(line)
    # the seconds in reverse order: read back in time order (within a second, the log's resolution, the file's
    # order is all there is to go by, and it is kept)
    log.write_text("".join(line for second in reversed(seconds.values()) for line in second))
    fmt = ingest.AsteriskFormat(AsteriskConfig(callback_keys=frozenset({formats.CALLBACK_KEY})))
    summary = ingest.import_file(fmt, log, tmp_path / "again.jsonl", tmp_path / "dead.jsonl")
    assert summary.out_of_order > 0
    again = list(read_jsonl(tmp_path / "again.jsonl"))
    assert {e.event_id for e in again} == {e.event_id for e in asterisk_path}


@pytest.fixture(scope="module")
def cdr_path(day: list[ev.Event], voice: set[str], tmp_path_factory: pytest.TempPathFactory) -> list[ev.Event]:
    folder = tmp_path_factory.mktemp("cdr")
    calls, mapping, out = folder / "calls.tsv", folder / "map.toml", folder / "events.jsonl"
    rows = formats.write_cdr(day, calls, voice)
    mapping.write_text(formats.CDR_MAPPING)
    fmt = ingest.CdrFormat(cdr.load_mapping(mapping))
    summary = ingest.import_file(fmt, calls, out, folder / "dead.jsonl", chunk=2000)
    assert not summary.dead and summary.read == rows
    assert summary.out_of_order > 0  # rows come in completion order: read in arrival order
    return list(read_jsonl(out))


def test_cdr_queue_kpis_equal_the_contract_path(day: list[ev.Event], voice: set[str], cdr_path) -> None:
    ids = [e.contact_id for e in cdr_path if isinstance(e, ev.ContactOffered)]
    assert len({i.split("@")[0] for i in ids}) < len(ids) == len(set(ids))  # call ids repeat; contact ids do not
    view = [
        msgspec.structs.replace(
            e, time=_second(e.time), **({"segment": None} if isinstance(e, ev.ContactOffered) else {})
        )
        for e in day
        if isinstance(e, ev.ContactEvent) and e.queue_id in voice and not isinstance(e, CALLBACK_LIFECYCLE + OFFERS)
    ]  # whole seconds, and no segment or offer: the simulated call-detail file has no column for them
    vendor = queue_kpis(cdr_path)
    assert vendor == queue_kpis(view)
    original = {k: v for k, v in queue_kpis(day).items() if k[0] in voice}
    changed = changed_fields(original, queue_kpis(view))
    assert changed <= set(formats.NOT_CARRIED["cdr"]["queue"])
    assert not changed & {
        "offered",
        "answered",
        "abandoned",
        "callbacks_requested",
        "handled",
        "held",
        "transferred_out",
    }
    for name in ("hold_ms", "acw_ms"):  # carried to the second: off by less than a second per call
        total = sum(getattr(c, name) for c in original.values())
        assert abs(sum(getattr(c, name) for c in vendor.values()) - total) < 1000 * sum(
            c.handled for c in vendor.values()
        )
