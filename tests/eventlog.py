"""Small builders of contract events for the queue-state tests (times given in seconds after BASE)."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta, tzinfo

from pipeline.contract import events as ev

# 2024-01-01T00:00:00Z: aligned to every interval length used in the tests (epoch seconds 1704067200)
BASE = datetime(2024, 1, 1, tzinfo=UTC)
BASE_MS = 1_704_067_200_000
BASE_S = BASE_MS // 1000


def when(at: float, tz: tzinfo = UTC) -> datetime:
    """BASE + `at` seconds (to the millisecond), expressed in time zone `tz`."""
    return (BASE + timedelta(milliseconds=round(at * 1000))).astimezone(tz)


class Events:
    """Builds events with unique ids; `at` is seconds after BASE."""

    def __init__(self, prefix: str = "e", tz: tzinfo = UTC) -> None:
        self._ids = itertools.count(1)
        self.prefix = prefix
        self.tz = tz

    def _common(self, at: float, queue: str, contact: str, channel: str) -> dict:
        return {
            "event_id": f"{self.prefix}{next(self._ids)}",
            "time": when(at, self.tz),
            "queue_id": queue,
            "contact_id": contact,
            "channel": channel,
        }

    def offered(self, at, queue="Q1", contact="c1", channel="voice", customer_id=None, segment=None):
        return ev.ContactOffered(**self._common(at, queue, contact, channel), customer_id=customer_id, segment=segment)

    def answered(self, at, queue="Q1", contact="c1", channel="voice", agent="a1"):
        return ev.ContactAnswered(**self._common(at, queue, contact, channel), agent_id=agent)

    def abandoned(self, at, queue="Q1", contact="c1", channel="voice"):
        return ev.ContactAbandoned(**self._common(at, queue, contact, channel))

    def hold_started(self, at, queue="Q1", contact="c1", channel="voice", agent="a1"):
        return ev.HoldStarted(**self._common(at, queue, contact, channel), agent_id=agent)

    def hold_ended(self, at, queue="Q1", contact="c1", channel="voice", agent="a1"):
        return ev.HoldEnded(**self._common(at, queue, contact, channel), agent_id=agent)

    def ended(self, at, queue="Q1", contact="c1", channel="voice", agent="a1"):
        return ev.ContactEnded(**self._common(at, queue, contact, channel), agent_id=agent)

    def transferred(self, at, queue="Q1", contact="c1", channel="voice", agent="a1", to_queue=None):
        return ev.ContactTransferred(**self._common(at, queue, contact, channel), agent_id=agent, to_queue_id=to_queue)

    def acw_ended(self, at, queue="Q1", contact="c1", channel="voice", agent="a1", disposition="done"):
        return ev.AcwEnded(**self._common(at, queue, contact, channel), agent_id=agent, disposition=disposition)

    def flowed_out(self, at, queue="Q1", contact="c1", channel="voice", to_queue=None):
        return ev.ContactFlowedOut(**self._common(at, queue, contact, channel), to_queue_id=to_queue)

    def callback(self, at, queue="Q1", contact="c1", channel="voice", promised_by=None):
        promise = None if promised_by is None else when(promised_by, self.tz)
        return ev.CallbackRequested(**self._common(at, queue, contact, channel), promised_by=promise)

    def callback_scheduled(self, at, promised_by, queue="Q1", contact="c1", channel="voice"):
        return ev.CallbackScheduled(**self._common(at, queue, contact, channel), promised_by=when(promised_by, self.tz))

    def callback_dialled(self, at, attempt, queue="Q1", contact="c1", channel="voice", agent=None):
        return ev.CallbackDialled(**self._common(at, queue, contact, channel), attempt=attempt, agent_id=agent)

    def callback_connected(self, at, attempt, queue="Q1", contact="c1", channel="voice"):
        return ev.CallbackConnected(**self._common(at, queue, contact, channel), attempt=attempt)

    def callback_failed(self, at, attempts, queue="Q1", contact="c1", channel="voice"):
        return ev.CallbackFailed(**self._common(at, queue, contact, channel), attempts=attempts)

    def offer(self, at, outcome, offer_id, agent, queue="Q1", contact="c1", channel="voice"):
        """An `offer.*` event: outcome `ringing`, `accepted`, `rejected` or `missed`."""
        cls = {"ringing": ev.OfferRinging, "accepted": ev.OfferAccepted}.get(outcome)
        cls = cls or {"rejected": ev.OfferRejected, "missed": ev.OfferMissed}[outcome]
        return cls(**self._common(at, queue, contact, channel), offer_id=offer_id, agent_id=agent)

    def message(self, at, sender, queue="Q1", contact="c1", channel="chat", agent=None):
        return ev.ChatMessage(**self._common(at, queue, contact, channel), sender=sender, agent_id=agent)

    def survey(self, at, score, queue="Q1", contact="c1", channel="voice"):
        return ev.SurveyCompleted(**self._common(at, queue, contact, channel), score=score)

    def ivr(self, at, contained, queue="Q1", session="s1", channel="voice"):
        return ev.IvrSessionEnded(
            event_id=f"{self.prefix}{next(self._ids)}",
            time=when(at, self.tz),
            session_id=session,
            queue_id=queue,
            channel=channel,
            contained=contained,
        )

    def forecast(self, at, interval_at, offered, aht, queue="Q1", channel="voice"):
        return ev.ForecastPublished(
            event_id=f"{self.prefix}{next(self._ids)}",
            time=when(at, self.tz),
            queue_id=queue,
            channel=channel,
            interval_start=when(interval_at, self.tz),
            offered=offered,
            aht_seconds=aht,
        )

    def heartbeat(self, at):
        return ev.SourceHeartbeat(event_id=f"{self.prefix}{next(self._ids)}", time=when(at, self.tz))


# ---- stream shapes shared by the property tests ------------------------------------------------------------


def ms(e: ev.Event) -> int:
    """An event's time in integer epoch milliseconds."""
    return round(e.time.timestamp() * 1000)


def perturbed(events: list[ev.Event], rnd: random.Random, max_shift_ms: int) -> list[ev.Event]:
    """Processing order = event time + a random shift in [0, max_shift_ms]: an event is processed at most
    max_shift_ms (<= allowed lateness) after a newer one, so no interval it touches can be final yet."""
    keyed = [(ms(e) + rnd.randint(0, max_shift_ms), rnd.random(), e) for e in events]
    keyed.sort(key=lambda x: (x[0], x[1]))
    return [e for _, _, e in keyed]


def redelivered(events: list[ev.Event], rnd: random.Random, max_delay_ms: int) -> list[ev.Event]:
    """The originals in event order, each event but heartbeats delivered once more up to `max_delay_ms` later."""
    keyed = []
    for e in events:
        keyed.append((ms(e), rnd.random(), e))
        if not isinstance(e, ev.SourceHeartbeat):
            keyed.append((ms(e) + rnd.randint(0, max_delay_ms), rnd.random(), e))
    keyed.sort(key=lambda x: (x[0], x[1]))
    return [e for _, _, e in keyed]


def assert_first_applied_then_dropped(stream: list[ev.Event], results: list, dropped: tuple) -> None:
    """Each event's first delivery was applied (None); every later one came back as one of `dropped`."""
    first_seen: set[str] = set()
    for e, r in zip((e for e in stream if not isinstance(e, ev.SourceHeartbeat)), results, strict=True):
        if e.event_id in first_seen:
            assert r in dropped, (e, r)
        else:
            assert r is None, (e, r)
            first_seen.add(e.event_id)


def keyed_messages(topic: str, events: list, partitions: int, first_offset: int = 0) -> list:
    """One message per event, on the partition its key (queue_id, else agent_id) maps to, as a producer puts it;
    offsets count per partition from `first_offset`. Heartbeats go to every partition."""
    import msgspec

    from pipeline.contract.partitioner import partition_of
    from pipeline.processing.processor import Message

    offsets = [first_offset] * partitions
    out = []
    for e in events:
        key = getattr(e, "queue_id", None) or getattr(e, "agent_id", None)
        targets = range(partitions) if key is None else [partition_of(key.encode(), partitions)]
        for p in targets:
            out.append(Message(topic, p, offsets[p], key.encode() if key else None, msgspec.json.encode(e)))
            offsets[p] += 1
    return out
