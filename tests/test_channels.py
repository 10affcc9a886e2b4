"""Channels, segments and dispositions: per (queue, channel) settings from the queue file, the business-hours
clock of a channel's service level, and the bounded segment and wrap-up code counts in records and metrics."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import msgspec
import pytest
from batch_kpis import business_wait
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from pipeline.contract import events as ev
from pipeline.core.settings import WEEKDAYS, QueueConfig, QueueSettings, SettingsError, load_settings
from pipeline.exposition.metrics import build_registry, exposition
from pipeline.processing.processor import ContactProcessor, Message, PipelineStats

ROOT = Path(__file__).resolve().parent.parent
FRIDAY = datetime(2026, 1, 9, tzinfo=UTC)  # a Friday, in winter (London is on UTC)

QUEUE_FILE = """
[defaults]
time_zone = "Europe/London"
open_days = ["mon", "tue", "wed", "thu", "fri"]
opens = 08:00:00
closes = 20:00:00
[defaults.channels.email]
service_level_threshold_seconds = 14400
service_level_clock = "business_hours"
[queues.support]
segments = ["gold", "silver"]
dispositions = ["resolved", "sale"]
[queues.support.channels.email]
service_level_target = 0.9
[queues.billing.channels.email]
service_level_clock = "elapsed"
"""


def config(tmp_path: Path, text: str = QUEUE_FILE) -> QueueConfig:
    path = tmp_path / "queues.toml"
    path.write_text(text)
    return QueueConfig.load(path)


def test_a_channel_table_overrides_its_fields_only_and_inherits_the_defaults_table(tmp_path):
    c = config(tmp_path)
    email = c.rules("support", "email")
    assert (email.service_level_threshold_seconds, email.service_level_clock) == (14400, "business_hours")
    assert email.service_level_target == 0.9  # the queue's own table, over the defaults' table
    assert email.asa_target_seconds == c.for_queue("support").asa_target_seconds  # left out: the queue's
    billing = c.rules("billing", "email")
    assert (billing.service_level_threshold_seconds, billing.service_level_clock) == (14400, "elapsed")
    voice = c.rules("support", "voice")
    assert (voice.service_level_threshold_seconds, voice.service_level_clock) == (20, "elapsed")


def test_every_existing_queue_of_the_demo_file_means_what_it_meant_on_every_channel_without_a_table():
    c = QueueConfig.load(ROOT / "deploy" / "queues.toml")
    for q, s in c.queues.items():
        for channel in ev.CHANNELS:
            if channel not in s.channels:
                assert c.rules(q, channel) == c.for_queue(q), (q, channel)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[queues.x.channels.fax]\nservice_level_threshold_seconds = 60\n", "queues.x.channels.fax"),
        ('[queues.x.channels.email]\nservice_level_clock = "office"\n', "'elapsed' or 'business_hours'"),
        ("[queues.x.channels.email]\nsla = 3\n", "queues.x.channels.email.sla=3: unknown field"),
        ('[queues.x]\nsegments = ["gold plus"]\n', "queues.x.segments.0='gold plus'"),
    ],
)
def test_a_wrong_channel_table_or_label_set_names_the_queue_and_the_field(tmp_path, text, expected):
    with pytest.raises(SettingsError) as err:
        config(tmp_path, text)
    assert expected in str(err.value)


# ---- the business-hours clock ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, database=None)
@given(
    start=st.integers(0, 40 * 24 * 60),  # minutes into a span holding London's spring DST change (29 March)
    length=st.integers(0, 4 * 24 * 60 * 60),  # seconds: up to four days
    offset_ms=st.integers(0, 59_999),
    opens=st.integers(0, 23 * 60),
    hours=st.integers(1, 24 * 60),
    days=st.sets(st.sampled_from(WEEKDAYS), min_size=1),
)
def test_business_time_equals_the_minute_by_minute_count(start, length, offset_ms, opens, hours, days):
    open_at = time(opens // 60, opens % 60)
    close_minute = min(opens + hours, 24 * 60)
    closes = time.max if close_minute == 24 * 60 else time(close_minute // 60, close_minute % 60)
    rules = QueueSettings(time_zone="Europe/London", open_days=tuple(sorted(days)), opens=open_at, closes=closes)
    t0 = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp() * 1000) + start * 60_000 + offset_ms
    t1 = t0 + length * 1000
    expected = business_wait(t0, t1, "Europe/London", [WEEKDAYS.index(d) for d in days], open_at, closes)
    assert rules.business_ms(t0, t1) == expected


# ---- through the processor: records and /metrics ----------------------------------------------------------------


def offered(cid: str, queue: str, channel: str, at: datetime, segment: str | None = None) -> ev.Event:
    return ev.ContactOffered(
        event_id=f"{cid}-o", time=at, contact_id=cid, queue_id=queue, channel=channel, segment=segment
    )


def handled(cid: str, queue: str, channel: str, answered: datetime, code: str, talk: float = 60) -> list[ev.Event]:
    ids = dict(contact_id=cid, queue_id=queue, channel=channel, agent_id="ag-1")
    end = answered + timedelta(seconds=talk)
    return [
        ev.ContactAnswered(event_id=f"{cid}-a", time=answered, **ids),
        ev.ContactEnded(event_id=f"{cid}-e", time=end, **ids),
        ev.AcwEnded(event_id=f"{cid}-w", time=end + timedelta(seconds=10), disposition=code, **ids),
    ]


def run(queues: QueueConfig, events: list[ev.Event]):
    stats = PipelineStats()
    settings = load_settings(broker_url="x:1", partitions=1, contact_timeout_seconds=7 * 86400)
    p = ContactProcessor(settings, queues, stats)
    registry = build_registry(p, stats)
    events = sorted(events, key=lambda e: e.time)
    events.append(ev.SourceHeartbeat(event_id="hb", time=events[-1].time + timedelta(hours=1)))
    encoded = [Message("cc.contact-events", 0, i, b"k", msgspec.json.encode(e)) for i, e in enumerate(events)]
    out = p.process(encoded, lambda part: None)
    finals = [r for r in out.records if r.final and r.window == "interval"]
    metrics = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(exposition(registry).decode())
        for s in f.samples
    }
    return finals, metrics


def test_an_email_of_friday_evening_answered_on_monday_morning_is_within_four_business_hours(tmp_path):
    """Friday 19:00 to Monday 09:00: 62 hours elapsed, 2 business hours (19:00-20:00 and 08:00-09:00). In `billing`
    (elapsed clock) the same email is outside its 4 h; the voice call of the same queue keeps the queue's 20 s."""
    queues = config(tmp_path)
    friday_7pm, monday_9am = FRIDAY + timedelta(hours=19), FRIDAY + timedelta(days=3, hours=9)
    events = []
    for queue in ("support", "billing"):
        events += [offered(f"{queue}-m1", queue, "email", friday_7pm)]
        events += handled(f"{queue}-m1", queue, "email", monday_9am, "resolved")
        events += [offered(f"{queue}-v1", queue, "voice", friday_7pm)]
        events += handled(f"{queue}-v1", queue, "voice", friday_7pm + timedelta(seconds=25), "resolved")
    finals, _ = run(queues, events)
    arrivals = {(r.queue_id, r.channel): r for r in finals if r.offered}
    support, billing = arrivals[("support", "email")], arrivals[("billing", "email")]
    assert support.service_level_threshold_seconds == 14400 and support.service_level_clock == "business_hours"
    assert (support.answered_within_threshold, support.service_level) == (1, 1.0)
    assert support.asa_seconds == 62 * 3600  # the speed of answer stays elapsed time
    assert (billing.service_level_clock, billing.answered_within_threshold, billing.service_level) == (
        "elapsed",
        0,
        0.0,
    )
    voice = arrivals[("support", "voice")]
    assert (voice.service_level_threshold_seconds, voice.answered_within_threshold) == (20, 0)  # 25 s > 20 s


def test_segments_and_wrap_up_codes_are_counted_in_their_bounded_sets_in_records_and_metrics(tmp_path):
    """Three calls: gold answered in 10 s, `vip` (not configured: other) abandoned after 30 s, and one without a
    segment answered in 40 s; codes `sale` and `escalated` (not configured: other)."""
    queues = config(tmp_path)
    t = FRIDAY + timedelta(hours=10)
    events = [
        offered("c1", "support", "voice", t, "gold"),
        *handled("c1", "support", "voice", t + timedelta(seconds=10), "sale"),
        offered("c2", "support", "voice", t, "vip"),
        ev.ContactAbandoned(
            event_id="c2-x", time=t + timedelta(seconds=30), contact_id="c2", queue_id="support", channel="voice"
        ),
        offered("c3", "support", "voice", t),
        *handled("c3", "support", "voice", t + timedelta(seconds=40), "escalated"),
    ]
    finals, metrics = run(queues, events)
    (arrival,) = [r for r in finals if r.offered]
    gold, other = arrival.segments
    assert (gold.segment, gold.offered, gold.answered, gold.answered_within_threshold) == ("gold", 1, 1, 1)
    assert (gold.service_level, gold.asa_seconds, gold.abandon_rate) == (1.0, 10.0, 0.0)
    assert (other.segment, other.offered, other.abandoned, other.abandoned_within_threshold) == ("other", 1, 1, 0)
    assert (other.service_level, other.asa_seconds, other.abandon_rate) == (0.0, None, 1.0)
    assert arrival.offered == 3  # the contact without a segment is in the queue, in no segment
    completed = [r for r in finals if r.handled]
    codes = {d.disposition: d.contacts for r in completed for d in r.dispositions}
    assert codes == {"sale": 1, "other": 1} and sum(codes.values()) == sum(r.handled for r in completed)
    labels = (("channel", "voice"), ("queue", "support"))
    assert metrics[("cc_queue_segment_offered_total", (*labels, ("segment", "gold")))] == 1
    assert metrics[("cc_queue_segment_answer_wait_seconds_total", (*labels, ("segment", "gold")))] == 10
    assert metrics[("cc_queue_segment_abandoned_total", (*labels, ("segment", "other")))] == 1
    assert not any(name.startswith("cc_queue_segment_") and "vip" in str(lab) for name, lab in metrics)
    assert (
        metrics[("cc_queue_dispositions_total", (("channel", "voice"), ("disposition", "other"), ("queue", "support")))]
        == 1
    )
    assert (
        metrics[("cc_queue_dispositions_total", (("channel", "voice"), ("disposition", "sale"), ("queue", "support")))]
        == 1
    )


def test_the_target_gauges_are_each_queue_and_channels_own(tmp_path):
    """The worker exports every target per queue and channel: a channel's own from its table, the queue's for a
    channel without one; the queue's callback thresholds likewise."""
    queues = config(
        tmp_path,
        """
[defaults.channels.email]
service_level_threshold_seconds = 14400
oldest_wait_target_seconds = 28800
[queues.support.channels.email]
service_level_target = 0.9
[queues.billing]
callback_overdue_seconds = 900
[queues.billing.channels.email]
callback_service_level_target = 0.6
""",
    )
    t = FRIDAY + timedelta(hours=10)
    events = []
    for queue in ("support", "billing"):
        for channel in ("voice", "email"):
            events += [offered(f"{queue}-{channel}", queue, channel, t)]
            events += handled(f"{queue}-{channel}", queue, channel, t + timedelta(seconds=10), "resolved")
    _, metrics = run(queues, events)

    def gauge(name: str, queue: str, channel: str, *more: tuple[str, str]) -> float:
        return metrics[(name, (("channel", channel), ("queue", queue), *more))]

    for queue in ("support", "billing"):
        assert gauge("cc_queue_service_level_threshold_seconds", queue, "voice") == 20
        assert gauge("cc_queue_service_level_threshold_seconds", queue, "email") == 14400
        assert gauge("cc_queue_oldest_wait_target_seconds", queue, "voice") == 120  # the queue's (the default)
        assert gauge("cc_queue_oldest_wait_target_seconds", queue, "email") == 28800
    # support's email table sets its service level target; its voice keeps the queue's
    variant = ("variant", "abandons_against")
    assert gauge("cc_queue_service_level_target_ratio", "support", "email", variant) == 0.9
    assert gauge("cc_queue_service_level_target_ratio", "support", "voice", variant) == 0.8
    # billing's callback thresholds: the queue's own limit on both channels, email's own target
    assert gauge("cc_queue_callback_overdue_limit_seconds", "billing", "voice") == 900
    assert gauge("cc_queue_callback_overdue_limit_seconds", "billing", "email") == 900
    assert gauge("cc_queue_callback_service_level_target_ratio", "billing", "email") == 0.6
    assert gauge("cc_queue_callback_service_level_target_ratio", "billing", "voice") == 0.9
    assert gauge("cc_queue_callback_overdue_limit_seconds", "support", "voice") == 300
