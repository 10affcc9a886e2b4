"""The processor and the metrics collector without a broker: batches of Kafka-like messages in, results out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.contract import events as ev
from pipeline.contract.partitioner import partition_of
from pipeline.core.settings import QueueConfig, load_settings
from pipeline.exposition.metrics import build_registry, exposition
from pipeline.processing.processor import HOLE_EVIDENCE, ZSTD_MAGIC, ContactProcessor, Message, PipelineStats, unpack
from pipeline.state.queues import CODEC

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
TOPIC = "cc.contact-events"


def leg(contact: str, queue: str, start: timedelta, wait: float, talk: float, acw: float) -> list[ev.Event]:
    ids = dict(contact_id=contact, queue_id=queue, channel="voice")
    t = T0 + start
    return [
        ev.ContactOffered(event_id=f"{contact}-o", time=t, customer_id="cust-secret-1", **ids),
        ev.ContactAnswered(event_id=f"{contact}-a", time=t + timedelta(seconds=wait), agent_id="ag-1", **ids),
        ev.ContactEnded(event_id=f"{contact}-e", time=t + timedelta(seconds=wait + talk), agent_id="ag-1", **ids),
        ev.AcwEnded(
            event_id=f"{contact}-w",
            time=t + timedelta(seconds=wait + talk + acw),
            agent_id="ag-1",
            disposition="resolved",
            **ids,
        ),
    ]


def messages(events: list[ev.Event], partition: int = 0, first_offset: int = 0) -> list[Message]:
    return [Message(TOPIC, partition, first_offset + i, b"sales", msgspec.json.encode(e)) for i, e in enumerate(events)]


def processor() -> tuple[ContactProcessor, PipelineStats]:
    stats = PipelineStats()
    return ContactProcessor(load_settings(broker_url="x:1"), QueueConfig(), stats), stats


def stream() -> list[ev.Event]:
    events = leg("c1", "sales", timedelta(0), 10, 100, 20) + leg("c2", "sales", timedelta(minutes=3), 25, 50, 5)
    events.sort(key=lambda e: e.time)
    return events + [ev.SourceHeartbeat(event_id="hb", time=T0 + timedelta(hours=1))]


def test_batch_gives_final_record_and_a_checkpoint():
    p, stats = processor()
    out = p.process(messages(stream()), lambda part: None)
    finals = [r for r in out.records if r.final]
    assert [(r.queue_id, r.offered, r.answered, r.answered_within_threshold) for r in finals] == [("sales", 2, 2, 1)]
    assert finals[0].asa_seconds == (10 + 25) / 2
    assert finals[0].aht_seconds == ((100 + 20) + (50 + 5)) / 2  # talk + ACW; the wait is not handling
    assert set(p.checkpoint()) == {0}
    assert p.checkpoint() == {}  # nothing changed since
    assert b"cust-secret-1" not in msgspec.json.encode(finals[0])


def test_restart_from_checkpoint_with_redelivery_counts_nothing_twice():
    events = stream()
    whole, _ = processor()
    expected = whole.process(messages(events), lambda part: None)

    first, _ = processor()
    out = first.process(messages(events[:5]), lambda part: None)  # crash after this batch's checkpoint
    checkpoint = [first.checkpoint()[0].whole()]
    again, stats = processor()
    # Kafka re-delivers from the last committed offset, which may be older than the checkpoint.
    out2 = again.process(messages(events[2:], first_offset=2), lambda part: checkpoint)

    # Same final figures; only the revision number may differ (the first run also published a provisional one).
    def finals(records):
        return [msgspec.structs.replace(r, revision=0) for r in records if r.final]

    assert finals(out.records + out2.records) == finals(expected.records)
    assert sum(stats.duplicates.values()) == 0  # skipped by offset, not even seen as duplicates


def test_a_checkpoint_is_stored_compressed_and_restored_from_it():
    events = stream()
    expected, _ = processor()
    expected_out = expected.process(messages(events), lambda part: None)
    first, _ = processor()
    first.process(messages(events[:5]), lambda part: None)
    stored = first.checkpoint()[0].whole()
    assert stored[:4] == ZSTD_MAGIC and unpack(stored)[:4] == CODEC.magic
    again, _ = processor()
    out = again.process(messages(events[5:], first_offset=5), lambda part: [stored])
    want = [(r.offered, r.answered, r.aht_seconds) for r in expected_out.records if r.final]
    assert want  # the stream closes its interval
    assert [(r.offered, r.answered, r.aht_seconds) for r in out.records if r.final] == want
    with pytest.raises(ValueError, match="zstd frame"):
        unpack(unpack(stored))


def test_an_unexpected_error_costs_one_event_not_the_batch(monkeypatch):
    p, stats = processor()
    from pipeline.state import queues

    original = queues.QueueState.apply

    def flaky(self, e, t=None):
        if e.event_id == "c2-a":
            raise ZeroDivisionError("boom")
        return original(self, e, t)

    monkeypatch.setattr(queues.QueueState, "apply", flaky)
    out = p.process(messages(stream()), lambda part: None)
    assert [(d.reason, d.offset) for d in out.dead_letters] == [("processing_error", 5)]  # c2-a is the 6th message
    assert stats.rejected[(TOPIC, "processing_error")] == 1
    assert p.partitions[0].totals[("sales", "voice")].offered == 2


def samples(text: str) -> dict:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_metrics_are_read_at_scrape_time_and_vanish_with_a_revoked_partition():
    p, stats = processor()
    registry = build_registry(p, stats)
    p.process(messages(stream()), lambda part: None)
    m = samples(exposition(registry).decode())
    labels = (("channel", "voice"), ("queue", "sales"))
    assert m[("cc_queue_offered_total", labels)] == 2
    assert m[("cc_queue_answer_wait_seconds_total", labels)] == 35
    assert m[("cc_queue_handle_seconds_total", labels)] == 175
    assert m[("cc_pipeline_events_total", (("topic", TOPIC), ("type", "contact.offered")))] == 2
    assert "cust-secret-1" not in exposition(registry).decode()
    p.drop(0)
    assert ("cc_queue_offered_total", labels) not in samples(exposition(registry).decode())


def test_the_state_held_is_on_metrics_and_falls_when_intervals_close():
    p, stats = processor()
    registry = build_registry(p, stats)

    def held() -> dict[str, float]:
        return {
            dict(labels)["kind"]: v
            for (name, labels), v in samples(exposition(registry).decode()).items()
            if name == "cc_pipeline_state_entries"
        }

    events = stream()
    p.process(messages(events[:-1]), lambda part: None)  # both contacts done, their interval still open
    assert held() == {"contact_legs": 2, "open_intervals": 1, "open_rollups": 2, "forecasts": 0, "agents": 0}
    p.process(messages(events[-1:], first_offset=len(events) - 1), lambda part: None)  # an hour later
    assert held() == {"contact_legs": 0, "open_intervals": 0, "open_rollups": 2, "forecasts": 0, "agents": 0}
    next_day = ev.SourceHeartbeat(event_id="hb2", time=T0 + timedelta(days=1, hours=1))
    p.process(messages([next_day], first_offset=len(events)), lambda part: None)  # the hour and the day closed
    assert held() == {"contact_legs": 0, "open_intervals": 0, "open_rollups": 0, "forecasts": 0, "agents": 0}


def test_an_error_while_decoding_costs_one_message_and_the_batch_goes_on(monkeypatch):
    p, stats = processor()
    original = p.ingest.decoder.decode

    def failing(payload):
        if payload and b'"c1-a"' in payload:
            raise MemoryError("a decoder bug")
        return original(payload)

    monkeypatch.setattr(p.ingest.decoder, "decode", failing)
    msgs = messages(stream())
    out = p.process(msgs, lambda part: None)
    assert [(d.reason, d.offset, d.original) for d in out.dead_letters] == [("processing_error", 1, msgs[1].value)]
    assert p.partitions[0].totals[("sales", "voice")].offered == 2  # the messages behind it were applied


def partition_of_queue(queue: str) -> int:
    return partition_of(queue.encode(), load_settings(broker_url="x:1").partitions)


def test_events_keyed_to_another_partition_are_dead_lettered_alone_or_in_an_array():
    p, stats = processor()
    assert partition_of_queue("sales") == 0 and partition_of_queue("billing") != 0
    stray = leg("c9", "billing", timedelta(minutes=1), 5, 10, 1)
    batch = msgspec.json.encode([stream()[0], stray[1]])  # one event of its partition, one of another's
    msgs = [
        *messages(stray[:1]),
        Message(TOPIC, 0, 1, b"sales", batch),
        *messages(stream()[1:], first_offset=2),
    ]
    out = p.process(msgs, lambda part: None)
    assert [(d.reason, d.offset) for d in out.dead_letters] == [("wrong_partition", 0), ("wrong_partition", 1)]
    assert msgspec.json.decode(out.dead_letters[1].original)["event_id"] == "c9-a"
    assert stats.rejected[(TOPIC, "wrong_partition")] == 2
    state = p.partitions[0]
    assert set(state.totals) == {("sales", "voice")} and not any(q == "billing" for q, _ in state.legs)
    assert [(r.queue_id, r.offered, r.answered) for r in out.records if r.final] == [("sales", 2, 2)]


@pytest.mark.parametrize("bad_id", ["q\x00", "line\nbreak", "\u202eevil", "zero\u200bwidth", "bom\ufeff"])
def test_ids_with_control_format_or_direction_characters_are_invalid(bad_id):
    p, stats = processor()
    ids = dict(time=T0, contact_id="c1", queue_id="sales", channel="voice")
    cases = [
        ev.ContactOffered(event_id="x1", **{**ids, "queue_id": bad_id}),
        ev.ContactAnswered(event_id="x2", agent_id=bad_id, **ids),
        ev.ContactTransferred(event_id="x3", agent_id="ag-1", to_queue_id=bad_id, **ids),
    ]
    out = p.process(messages(cases), lambda part: None)
    assert [d.reason for d in out.dead_letters] == ["invalid_field"] * 3
    text = exposition(build_registry(p, stats)).decode()
    assert bad_id not in text


def test_late_events_of_unknown_queues_share_one_label():
    p, stats = processor()
    p.process(messages(stream()), lambda part: None)
    old = T0 - timedelta(days=1)
    unknown = [q for q in (f"nosuch-{i}" for i in range(100)) if partition_of_queue(q) == 0][:3]
    late = [
        ev.ContactOffered(event_id=f"late-{q}", time=old, contact_id="c", queue_id=q, channel="voice")
        for q in ("sales", *unknown)
    ]
    p.process(messages(late, first_offset=len(stream())), lambda part: None)  # the partition's next offsets
    assert stats.late == {("sales", "voice"): 1, ("other", "voice"): len(late) - 1}


@pytest.mark.parametrize("kind", ["contact-events", "agent-events"])
def test_a_revision_is_the_same_record_whatever_the_batches_and_the_clock(kind):
    """A record's revision names the offset it was made at, so its body must depend on the messages up to that
    offset only: not on where batches ended (when an interval was published final) nor on the wall clock (when a
    provisional revision was due). A restarted worker replays the same messages in other batches. A tenth of the
    events come up to three times the allowed lateness late, so some are late: where a batch ends must not decide
    which."""
    import random

    from pipeline.processing.processor import AgentProcessor
    from pipeline.runtime.producer import route
    from pipeline.tools.simulate import CenterConfig, simulate

    rng = random.Random(3)
    events = sorted(
        simulate(CenterConfig(duration_hours=1.0), seed=3),
        key=lambda e: e.time.timestamp() + (rng.uniform(0, 360) if rng.random() < 0.1 else 0),
    )
    beat = ev.SourceHeartbeat(event_id="hb", time=max(e.time for e in events) + timedelta(hours=6))
    mine = [e for e in events if route(e)[0] == kind] + [beat]
    msgs = [Message(kind, 0, i, None, msgspec.json.encode(e)) for i, e in enumerate(mine)]
    settings = load_settings(broker_url="x:1", partitions=1)  # every key on the one partition
    bodies: dict[tuple[str, int], set[bytes]] = {}
    late = []
    for most, wall_step in ((1, 0.3), (7, 2.0), (50, 5.0), (400, 1.0)):
        stats = PipelineStats()
        p = (
            ContactProcessor(settings, QueueConfig(), stats)
            if kind == "contact-events"
            else AgentProcessor(settings, stats)
        )
        batches = random.Random(most)
        i, wall = 0, 1000.0
        while i < len(msgs):
            n = batches.randint(1, most)
            for r in p.process(msgs[i : i + n], wall_now=wall).records:
                bodies.setdefault((r.key, r.revision), set()).add(msgspec.json.encode(r))
            i, wall = i + n, wall + batches.uniform(0, wall_step)
        late.append(sum(stats.late.values()) + sum(getattr(p, "late", {}).values()))
    assert len(bodies) > 1000
    assert [k for k, b in bodies.items() if len(b) > 1] == []
    assert len(set(late)) == 1


def test_a_made_up_queue_stamped_later_than_the_traffic_changes_no_other_queue_record():
    """The probe of issue 25: contract-valid events of a queue that does not exist, stamped an hour later than the
    real traffic on the same partition, used to close the real queues' intervals early (their events late)."""
    from pipeline.tools.simulate import CenterConfig, simulate

    settings = load_settings(broker_url="x:1", partitions=1)
    day = [e for e in simulate(CenterConfig(duration_hours=2.0), seed=5) if hasattr(e, "queue_id")]
    day.sort(key=lambda e: e.time)
    end = ev.SourceHeartbeat(event_id="end", time=day[-1].time + timedelta(hours=3))
    hostile = [
        ev.ContactOffered(
            event_id=f"bogus-{i}",
            time=e.time + timedelta(hours=1),
            contact_id=f"b{i}",
            queue_id="nosuch",
            channel="voice",
        )
        for i, e in enumerate(day[::50])
    ]
    mixed = [x for pair in zip(day, [None] * len(day), strict=True) for x in pair if x is not None]
    for i, h in enumerate(hostile):  # spread through the day, each ahead of the traffic around it
        mixed.insert(i * 51 + 1, h)

    def finals(events):
        stats = PipelineStats()
        p = ContactProcessor(settings, QueueConfig(), stats)
        msgs = [Message(TOPIC, 0, i, None, msgspec.json.encode(e)) for i, e in enumerate([*events, end])]
        records = {}
        for i in range(0, len(msgs), 7):
            for r in p.process(msgs[i : i + 7], wall_now=0.0).records:
                if r.final and r.queue_id != "nosuch":
                    records[r.key] = msgspec.structs.replace(r, revision=0)
        return records, stats

    clean, clean_stats = finals(day)
    attacked, attacked_stats = finals(mixed)
    assert len(clean) > 20 and attacked == clean
    assert attacked_stats.late == clean_stats.late


@pytest.mark.parametrize("tolerance, clamped, rejected", [("2", 1, 0), ("0.5", 0, 1)])
def test_an_answer_stamped_before_its_offer_is_clamped_within_the_tolerance_and_counted(
    monkeypatch, tolerance, clamped, rejected
):
    """The tolerance arrives as a string in the environment; an answer 1.2 s before its offer is counted (wait 0)
    within a 2 s tolerance, and dead-lettered as impossible_sequence beyond a 0.5 s one."""
    monkeypatch.setenv("PIPELINE_CLAMP_SKEW_SECONDS", tolerance)
    stats = PipelineStats()
    p = ContactProcessor(load_settings(broker_url="x:1"), QueueConfig(), stats)
    events = leg("c1", "sales", timedelta(0), -1.2, 100, 20)  # answered 1.2 s before the offer
    out = p.process(messages(events + [ev.SourceHeartbeat(event_id="hb", time=T0 + timedelta(hours=1))]))
    finals = [r for r in out.records if r.final]
    # refused, the answer leaves its contact waiting (until the contact timeout): no final interval yet
    assert [(r.offered, r.answered, r.answered_within_threshold) for r in finals] == [(1, 1, 1)] * clamped
    assert [d.reason for d in out.dead_letters] == ["impossible_sequence"] * rejected
    families = {f.name: f for f in text_string_to_metric_families(exposition(build_registry(p, stats)).decode())}
    samples = {
        s.labels["reason"]: s.value for s in families["cc_pipeline_clamped_events"].samples if s.name.endswith("_total")
    }
    assert samples == {"answer_before_offer": clamped, "abandon_before_offer": 0, "exit_before_offer": 0}


def test_the_fcr_side_closes_on_the_slowest_live_queue_not_on_a_queue_stamped_ahead():
    """A made-up queue stamped four minutes ahead on the partition moves only its own clock: the time the FCR side
    is told the partition is complete up to stays at the real queue's; a queue quiet for longer than the allowed
    clock skew is not waited for; a heartbeat moves it for all."""
    p, _ = processor()
    part = partition_of(b"sales", p.settings.partitions)

    def offer(queue: str, at: timedelta) -> ev.Event:
        return ev.ContactOffered(
            event_id=f"{queue}-{at}", time=T0 + at, contact_id="c", queue_id=queue, channel="voice"
        )

    ahead = next(
        q for q in (f"made-up-{i}" for i in range(1000)) if partition_of(q.encode(), p.settings.partitions) == part
    )
    quiet = next(
        q for q in (f"quiet-{i}" for i in range(1000)) if partition_of(q.encode(), p.settings.partitions) == part
    )
    batch = [
        offer(quiet, timedelta(minutes=-30)),
        offer("sales", timedelta(minutes=1)),
        offer(ahead, timedelta(minutes=5)),
    ]
    p.process([Message(TOPIC, part, i, e.queue_id.encode(), msgspec.json.encode(e)) for i, e in enumerate(batch)])
    state = p.partitions[part]
    assert state.watermark == round((T0 + timedelta(minutes=5)).timestamp() * 1000)  # the newest: the made-up queue's
    assert p.complete_upto(part) == round((T0 + timedelta(minutes=1)).timestamp() * 1000)
    beat = ev.SourceHeartbeat(event_id="hb", time=T0 + timedelta(minutes=10))
    p.process([Message(TOPIC, part, 3, b"sales", msgspec.json.encode(beat))])
    assert p.complete_upto(part) == round(beat.time.timestamp() * 1000)


def test_a_partition_whose_next_offset_was_not_delivered_is_read_again_from_it():
    """The state's offset is what was applied: a later message (a commit past the checkpoint, a rebalance handing
    over from the wrong place) is set aside, not applied, and the partition read again from the next offset."""
    p, stats = processor()
    msgs = messages(stream())
    out = p.process(msgs[:2] + msgs[5:8])
    assert out.rewind == {0: 2}
    assert p.partitions[0].offset == 1 and stats.messages[TOPIC] == 2  # 5 to 7 set aside, not even decoded
    out = p.process(msgs[2:])  # read again from offset 2: applied in order
    assert out.rewind == {} and p.partitions[0].offset == len(msgs) - 1
    assert stats.messages[TOPIC] == len(msgs) and stats.skipped_offsets == {}  # each message applied once
    assert [(r.offered, r.answered) for r in out.records if r.final] == [(2, 2)]  # as the whole stream at once


def test_offsets_that_cannot_be_read_again_are_counted_skipped_and_processing_goes_on():
    """A re-read that comes back without the offset asked for (retention deleted it, or a producer wrote
    transactionally) is counted and logged, never a stall."""
    p, stats = processor()
    msgs = messages(stream())
    later = [m._replace(offset=m.offset + 3) for m in msgs[2:]]
    out = p.process(msgs[:2] + later)
    assert out.rewind == {0: 2} and p.partitions[0].offset == 1 and stats.skipped_offsets == {}
    for _ in range(HOLE_EVIDENCE - 1):  # re-reads that begin at the first offset there is, 5: no proof yet
        out = p.process(later)
        assert out.rewind == {0: 2} and p.partitions[0].offset == 1 and stats.skipped_offsets == {}
    assert stats.messages[TOPIC] == 2  # every later message set aside so far
    out = p.process(later)  # the last re-read of the evidence asked for
    assert stats.skipped_offsets == {TOPIC: 3} and out.rewind == {}
    assert p.partitions[0].offset == later[-1].offset and stats.messages[TOPIC] == 2 + len(later)
    families = {f.name: f for f in text_string_to_metric_families(exposition(build_registry(p, stats)).decode())}
    assert [s.value for s in families["cc_pipeline_skipped_offsets"].samples if s.name.endswith("_total")] == [3]
    assert out.dead_letters == [] and [(r.offered, r.answered) for r in out.records if r.final] == [(2, 2)]


def test_a_new_partition_starts_where_its_log_starts_without_counting_a_loss():
    """Nothing applied yet and the log's start already deleted by retention (a new deployment on an old topic):
    the earliest offset there is is where it starts; nothing was this worker's to lose."""
    p, stats = processor()
    msgs = [m._replace(offset=m.offset + 40) for m in messages(stream())]
    out = p.process(msgs)
    assert out.rewind == {0: 0} and stats.skipped_offsets == {}
    for _ in range(HOLE_EVIDENCE - 1):
        assert p.process(msgs).rewind == {0: 0}
    assert p.partitions[0].offset == -1 and stats.messages[TOPIC] == 0  # nothing applied before the proof
    out = p.process(msgs)  # the re-reads from 0 came back at 40, the log's start
    assert out.rewind == {} and stats.skipped_offsets == {}
    assert p.partitions[0].offset == msgs[-1].offset and stats.messages[TOPIC] == len(msgs)
    assert [(r.offered, r.answered) for r in out.records if r.final] == [(2, 2)]


def test_handling_cost_counter_by_hand_and_equal_to_the_records():
    """Two calls: handle 120 s + 55 s, on the line 10 + 100 s and 25 + 50 s; at 36 an agent hour and 0.03 a minute."""
    stats = PipelineStats()
    queues = QueueConfig.model_validate({"defaults": {"agent_hour_cost": 36.0, "telephony_cost_per_minute": 0.03}})
    p = ContactProcessor(load_settings(broker_url="x:1"), queues, stats)
    registry = build_registry(p, stats)
    out = p.process(messages(stream()), lambda part: None)
    spent = 175 / 3600 * 36 + 185 / 60 * 0.03  # 1.75 + 0.0925
    labels = (("channel", "voice"), ("queue", "sales"))
    assert samples(exposition(registry).decode())[("cc_queue_handling_cost_total", labels)] == pytest.approx(spent)
    (final,) = [r for r in out.records if r.final and r.window == "interval"]
    assert final.handling_cost == pytest.approx(spent)
    assert final.handling_cost_per_handled == pytest.approx(spent / 2)
    # without `agent_hour_cost`, no series (and null record fields)
    q, s = processor()
    plain = build_registry(q, s)
    (bare,) = [
        r for r in q.process(messages(stream()), lambda part: None).records if r.final and r.window == "interval"
    ]
    assert bare.handling_cost is None
    assert not any(name == "cc_queue_handling_cost_total" for name, _ in samples(exposition(plain).decode()))


def test_a_re_read_that_begins_late_once_is_read_again_not_taken_for_a_hole():
    """A re-read can begin past the offset asked for without a hole (a broker delivering from elsewhere than asked;
    under Faust's per-message stream one began at 38 where 0 was due, and an hour's offers were lost). One such
    re-read proves nothing; the partition is read again, and the records are the whole stream's."""
    p, stats = processor()
    msgs = messages(stream())
    out = p.process(msgs[4:])  # committed past what was applied: nothing applied yet, offset 4 came first
    assert out.rewind == {0: 0}
    out = p.process(msgs[2:])  # a re-read that begins past 0 (offsets 0 and 1 dropped on the way)
    assert out.rewind == {0: 0} and p.partitions[0].offset == -1 and stats.skipped_offsets == {}
    assert stats.messages[TOPIC] == 0  # nothing applied while the re-reads began past 0
    out = p.process(msgs)  # the re-read from 0
    assert out.rewind == {} and stats.skipped_offsets == {}
    assert p.partitions[0].offset == len(msgs) - 1 and stats.messages[TOPIC] == len(msgs)
    assert [(r.offered, r.answered) for r in out.records if r.final] == [(2, 2)]
