"""What the simulated contact center looks like: queues, staffing, customer behaviour, the intraday curve.

The defaults describe a small center (40 agents, three voice and two chat queues) over two busy morning
hours, loaded so that agents are busy most of the time and some customers abandon at the peak.
`CenterConfig.with_load_of` rescales the arrivals when the staffing or the simulated period changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Literal

from pipeline.tools.simulate.roster import SLOT_SECONDS, agent_sessions, chat_agents

Channel = Literal["voice", "chat", "email", "task", "messaging"]
CONVERSATIONS = ("chat", "messaging")  # channels with messages back and forth (`chat.message`)


@dataclass(frozen=True)
class QueueSpec:
    """One queue: its channel, its traffic and how its contacts behave. Times are in seconds."""

    queue_id: str
    channel: Channel
    peak_rate: float  # contacts per hour at the intraday peak, before CenterConfig.rate_scale
    talk_mean: float  # answered -> ended, holds excluded (for chat: the conversation)
    acw_mean: float  # after-contact work
    patience_mean: float  # mean of the exponential time a customer waits before abandoning; 0: never abandons
    dispositions: tuple[tuple[str, float], ...]  # wrap-up codes with their relative weights
    # customer segments with the share of offers naming each (the rest name none)
    segments: tuple[tuple[str, float], ...] = ()
    business_hours_only: bool = False  # arrivals at a flat rate within `CenterConfig.business_hours` only

    def mean_handle(self, config: CenterConfig) -> float:
        """Mean agent time per answered contact (talk, holds, ACW)."""
        holds = config.hold_prob * (1 + config.second_hold_prob) * config.hold_mean
        return self.talk_mean + self.acw_mean + (holds if self.channel == "voice" else 0.0)


SEGMENTS = (("gold", 0.15), ("silver", 0.3), ("basic", 0.45))  # a tenth of the offers name no segment

DEFAULT_QUEUES: tuple[QueueSpec, ...] = (
    QueueSpec("sales", "voice", 70, 240, 45, 150,
              (("sale", 0.35), ("resolved", 0.35), ("follow_up", 0.2), ("escalated", 0.1)), SEGMENTS),
    QueueSpec("support", "voice", 100, 360, 60, 180,
              (("resolved", 0.6), ("follow_up", 0.25), ("escalated", 0.15)), SEGMENTS),
    QueueSpec("billing", "voice", 50, 300, 45, 180,
              (("resolved", 0.7), ("follow_up", 0.2), ("escalated", 0.1))),
    QueueSpec("support-chat", "chat", 60, 540, 30, 300,
              (("resolved", 0.65), ("follow_up", 0.25), ("escalated", 0.1))),
    QueueSpec("sales-chat", "chat", 35, 420, 30, 240,
              (("sale", 0.3), ("resolved", 0.45), ("follow_up", 0.25))),
)  # fmt: skip
DIGITAL_QUEUES: tuple[QueueSpec, ...] = (
    QueueSpec("support-email", "email", 24, 300, 60, 0,
              (("resolved", 0.7), ("follow_up", 0.3)), SEGMENTS, business_hours_only=True),
    QueueSpec("back-office", "task", 16, 480, 30, 0,
              (("done", 0.85), ("escalated", 0.15)), business_hours_only=True),
    QueueSpec("support-messaging", "messaging", 24, 420, 30, 900,
              (("resolved", 0.7), ("follow_up", 0.2), ("escalated", 0.1)), SEGMENTS),
)  # fmt: skip
"""Email, back-office tasks and messaging (SMS, WhatsApp), served by the chat agents: `--all-channels`."""
ALL_CHANNEL_QUEUES = DEFAULT_QUEUES + DIGITAL_QUEUES


def intraday_load(hour: float) -> float:
    """Relative arrival rate at an hour of the day (0-24, UTC): quiet night, a mid-morning peak (1.0),
    a lunchtime dip and a slightly lower mid-afternoon peak, then a quick decline in the evening."""
    morning = math.exp(-0.5 * ((hour - 10.5) / 1.6) ** 2)
    afternoon = 0.9 * math.exp(-0.5 * ((hour - 14.75) / 1.7) ** 2)
    return (0.04 + morning + afternoon) / _PEAK


_PEAK = 1.0849  # the unnormalized maximum (10:41), so that the peak is 1.0


@dataclass(frozen=True)
class CenterConfig:
    """A contact center and the period to simulate. Times are in seconds unless the name says otherwise."""

    queues: tuple[QueueSpec, ...] = DEFAULT_QUEUES
    agents: int = 40
    chat_agent_share: float = 0.25  # the others are voice agents
    chat_concurrency: int = 2  # chats a chat agent handles at once
    start: datetime = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday morning
    duration_hours: float = 2.0  # arrivals stop after this; the run then drains
    rate_scale: float = 1.0  # multiplies every queue's arrival rate
    shift_hours: float = 8.0  # shorter runs use the whole period as the shift
    hold_prob: float = 0.2  # voice contacts put on hold at least once...
    second_hold_prob: float = 0.25  # ...of which twice
    hold_mean: float = 45.0
    transfer_prob: float = 0.05  # voice legs the agent transfers to another voice queue
    max_transfers: int = 2  # per contact
    repeat_prob: float = 0.15  # contacts from a customer who contacted within the repeat window
    repeat_window_hours: float = 4.0
    anonymous_prob: float = 0.03  # contacts with no known customer (customer_id None)
    training_prob: float = 0.1  # shifts that include a training session
    duration_sigma: float = 0.6  # shape of the lognormal talk, hold and ACW times
    weekly_load: tuple[float, ...] = (1.0,) * 7  # Monday..Sunday (UTC) factors of the intraday curve, in [0, 1]
    # The intraday curve happens this many hours later than in UTC: a center whose busy hours fall at another time
    # of day (the live demo moves the busy hour to now). 0: the curve's hours are UTC hours.
    curve_shift_hours: float = 0.0
    # Opening hours (on the curve's clock, Monday to Friday) within which email and tasks arrive
    business_hours: tuple[float, float] = (8.0, 20.0)
    # Agent offers: every answer is the accept of an offer that rang at the answering agent. Before it, a share of
    # the offers ring out unanswered (RONA, after `ring_timeout`) or are rejected, and the contact is offered again.
    # Off (`agent_offers=False`): no offer events, and the rest of the day is the same event for event.
    agent_offers: bool = True
    offer_missed_share: float = 0.03
    offer_rejected_share: float = 0.01
    ring_timeout: float = 20.0

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if self.duration_hours <= 0 or self.shift_hours <= 0:
            raise ValueError("duration_hours and shift_hours must be positive")
        if self.agents < 0 or self.chat_concurrency < 1 or self.rate_scale < 0:
            raise ValueError("agents and rate_scale must be >= 0, chat_concurrency >= 1")
        if len(self.weekly_load) != 7 or not all(0 <= x <= 1 for x in self.weekly_load):
            raise ValueError("weekly_load needs 7 factors (Monday..Sunday) in [0, 1]")
        missed, rejected = self.offer_missed_share, self.offer_rejected_share
        if missed < 0 or rejected < 0 or missed + rejected >= 1:
            raise ValueError("offer_missed_share and offer_rejected_share must be >= 0, their sum below 1")
        if self.ring_timeout <= 0:
            raise ValueError("ring_timeout must be positive")
        if not 0 <= self.chat_agent_share <= 1:
            raise ValueError("chat_agent_share must be between 0 and 1")
        ids = [q.queue_id for q in self.queues]
        if not ids:
            raise ValueError("a center needs at least one queue")
        if len(set(ids)) != len(ids):
            raise ValueError(f"queue ids must be unique: {ids}")

    @property
    def duration(self) -> float:
        """The arrival period in seconds."""
        return self.duration_hours * 3600.0

    @cached_property
    def _start_hour(self) -> float:
        start = self.start.astimezone(UTC)
        return start.hour + start.minute / 60 + start.second / 3600

    def load_at(self, seconds: float) -> float:
        """The intraday curve at a simulated time (seconds since start)."""
        hours = self._start_hour - self.curve_shift_hours + seconds / 3600
        day = (self.start.astimezone(UTC).weekday() + int(hours // 24)) % 7
        return intraday_load(hours % 24) * self.weekly_load[day]

    def is_open(self, seconds: float) -> bool:
        """Within the business hours (Monday to Friday, on the curve's clock) at a simulated time."""
        hours = self._start_hour - self.curve_shift_hours + seconds / 3600
        day = (self.start.astimezone(UTC).weekday() + int(hours // 24)) % 7
        return day < 5 and self.business_hours[0] <= hours % 24 < self.business_hours[1]

    def with_load_of(self, reference: CenterConfig) -> CenterConfig:
        """This center with `rate_scale` set so that customers get about the service of `reference`.

        By square-root staffing: agents = load + margin * sqrt(load) gives about the same waiting at any
        size for the same margin. The margin is the reference's smallest over its quarter hours; the
        new rate scale the largest that keeps every quarter hour of this center at that margin or above.
        So `CenterConfig(agents=1000, duration_hours=24).with_load_of(CenterConfig())` is the default
        center, 25 times bigger (hence busier per agent) and run for a whole day.
        """
        margin = min(
            (agents - load) / math.sqrt(load) for agents, load in _staffing(reference) if agents > 0 and load > 0
        )
        scales = []
        for agents, load in _staffing(replace(self, rate_scale=1.0)):
            if agents > 0 and load > 0:
                root = (-margin + math.sqrt(margin * margin + 4 * agents)) / 2  # sqrt of the load it can take
                scales.append(root * root / load)
        return replace(self, rate_scale=min(scales, default=reference.rate_scale))


ALL_CHANNELS_CHAT_SHARE = 0.4  # the digital queues' work on the chat agents: a bigger share of the staff


def with_all_channels(config: CenterConfig) -> CenterConfig:
    """The center with email, task and messaging queues too, served by a larger share of chat agents."""
    return replace(config, queues=ALL_CHANNEL_QUEUES, chat_agent_share=ALL_CHANNELS_CHAT_SHARE)


def _staffing(config: CenterConfig) -> list[tuple[float, float]]:
    """(agents on shift, offered load in erlangs) per quarter hour of the period. Chat agents count once
    per chat slot; the load is the handling work the arrivals bring, whether answered or not."""
    slots = math.ceil(config.duration / SLOT_SECONDS)
    slot = config.duration / slots
    times = [(i + 0.5) * slot for i in range(slots)]
    chat = chat_agents(config)
    agents = [0.0] * slots
    for count, weight in ((config.agents - chat, 1), (chat, config.chat_concurrency)):
        for roster in agent_sessions(config, count):
            for session in roster:
                for i, t in enumerate(times):
                    if session.start <= t < session.end:
                        agents[i] += weight
    work = sum(q.peak_rate / 3600 * q.mean_handle(config) for q in config.queues) * config.rate_scale
    return [(n, work * config.load_at(t)) for n, t in zip(agents, times, strict=True)]
