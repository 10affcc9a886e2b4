"""Small builders of contract events for the queue-state tests (times given in seconds after BASE)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, tzinfo

from pipeline.ingest import events as ev

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

    def offered(self, at, queue="Q1", contact="c1", channel="voice", customer_id=None):
        return ev.ContactOffered(**self._common(at, queue, contact, channel), customer_id=customer_id)

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
        return ev.ContactTransferred(**self._common(at, queue, contact, channel), agent_id=agent,
                                     to_queue_id=to_queue)

    def acw_ended(self, at, queue="Q1", contact="c1", channel="voice", agent="a1", disposition="done"):
        return ev.AcwEnded(**self._common(at, queue, contact, channel), agent_id=agent, disposition=disposition)

    def flowed_out(self, at, queue="Q1", contact="c1", channel="voice", to_queue=None):
        return ev.ContactFlowedOut(**self._common(at, queue, contact, channel), to_queue_id=to_queue)

    def callback(self, at, queue="Q1", contact="c1", channel="voice"):
        return ev.CallbackRequested(**self._common(at, queue, contact, channel))

    def message(self, at, sender, queue="Q1", contact="c1", channel="chat", agent=None):
        return ev.ChatMessage(**self._common(at, queue, contact, channel), sender=sender, agent_id=agent)

    def survey(self, at, score, queue="Q1", contact="c1", channel="voice"):
        return ev.SurveyCompleted(**self._common(at, queue, contact, channel), score=score)

    def ivr(self, at, contained, queue="Q1", session="s1", channel="voice"):
        return ev.IvrSessionEnded(event_id=f"{self.prefix}{next(self._ids)}", time=when(at, self.tz),
                                  session_id=session, queue_id=queue, channel=channel, contained=contained)

    def forecast(self, at, interval_at, offered, aht, queue="Q1", channel="voice"):
        return ev.ForecastPublished(event_id=f"{self.prefix}{next(self._ids)}", time=when(at, self.tz),
                                    queue_id=queue, channel=channel, interval_start=when(interval_at, self.tz),
                                    offered=offered, aht_seconds=aht)

    def heartbeat(self, at):
        return ev.SourceHeartbeat(event_id=f"{self.prefix}{next(self._ids)}", time=when(at, self.tz))
