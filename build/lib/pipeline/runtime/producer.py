"""Writes contract events to Kafka the way the pipeline expects them: the simulator and replay use it, and it
shows adapters how to produce.

- contact events go to `<prefix>.contact-events` keyed by `queue_id`, agent events to `<prefix>.agent-events`
  keyed by `agent_id` (Kafka's default partitioner, so any Kafka client produces compatible keys);
- with `events_per_message > 1`, consecutive events bound for the same partition are sent as one JSON array
  message (the batching option of the contract): fewer, larger messages are what lifts a Faust worker's
  ceiling. The partition is the one Kafka's default partitioner gives each event's key, so a batch holds events
  of several agents (or queues) only when they share a partition anyway. A batch
  never spans more than `max_batch_span` of event time (default 60 s), so batching reorders events of a
  partition by at most that much: keep it well under the allowed lateness (default 120 s);
- `heartbeat(t)` tells every contact and agent partition that the source's clock has reached `t`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

import msgspec
from aiokafka import AIOKafkaProducer

from pipeline.contract import events as ev
from pipeline.contract.partitioner import KeyPartitioner
from pipeline.core.settings import Settings
from pipeline.runtime.kafka_security import client_options


def route(e: ev.Event) -> tuple[str, bytes]:
    """The topic (unprefixed name) and Kafka key an event goes to."""
    if isinstance(e, ev.ContactEvent | ev.SurveyCompleted | ev.IvrSessionEnded | ev.ForecastPublished):
        return "contact-events", e.queue_id.encode()  # everything of a queue on one partition
    if isinstance(e, ev.AgentEvent):
        return "agent-events", e.agent_id.encode()
    raise ValueError(f"{type(e).__name__} is not routed by key; use heartbeat()")


class EventWriter:
    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        events_per_message: int = 1,
        max_batch_span: timedelta = timedelta(seconds=60),
    ) -> None:
        self.contact_topic = settings.topic("contact-events")
        self.agent_topic = settings.topic("agent-events")
        self.events_per_message = max(1, events_per_message)
        self.max_batch_span = max_batch_span
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            linger_ms=5,
            max_batch_size=1 << 20,
            max_request_size=max(1 << 20, settings.max_message_bytes),
            acks="all",
            enable_idempotence=False,
            **client_options(settings),  # TLS and SASL
        )
        self._encoder = msgspec.json.Encoder()
        self._partitioner = KeyPartitioner()  # murmur2, as Kafka's Java and librdkafka clients do
        self._partitions: dict[str, list[int]] = {}
        self.sent_events = 0
        self.sent_messages = 0
        # topic -> partition -> next offset, from the produce acknowledgements (Tansu's ListOffsets(latest) is
        # short by the last batch's other records, so readers that must see everything wait on these)
        self.ends: dict[str, dict[int, int]] = {}

    async def __aenter__(self) -> EventWriter:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.producer.stop()

    def _route(self, e: ev.Event) -> tuple[str, bytes]:
        name, key = route(e)
        return self.contact_topic if name == "contact-events" else self.agent_topic, key

    async def write(self, events: Iterable[ev.Event]) -> None:
        """Send events, in order per key; returns once Kafka has acknowledged them all."""
        pending: dict[tuple[str, int], list[ev.Event]] = {}
        futures = []
        oldest: datetime | None = None
        for e in events:
            if oldest is None or not pending:
                oldest = e.time
            elif e.time - oldest > self.max_batch_span:
                for route, group in pending.items():
                    futures.append(await self._send(route, group))
                pending.clear()
                oldest = e.time
            route = await self._partition(*self._route(e))
            group = pending.setdefault(route, [])  # one batch per partition
            group.append(e)
            if len(group) >= self.events_per_message:
                futures.append(await self._send(route, pending.pop(route)))
        for route, group in pending.items():
            futures.append(await self._send(route, group))
        await self._acknowledged(futures)

    async def _acknowledged(self, futures: list) -> None:
        for md in await asyncio.gather(*futures):
            ends = self.ends.setdefault(md.topic, {})
            ends[md.partition] = max(ends.get(md.partition, 0), md.offset + 1)

    async def _partition(self, topic: str, key: bytes) -> tuple[str, int]:
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = self._partitions[topic] = sorted(await self.producer.partitions_for(topic))
        return topic, self._partitioner(key, partitions, partitions)

    async def _send(self, route: tuple[str, int], group: list[ev.Event]):
        topic, partition = route
        key = self._route(group[0])[1]  # the first event's key (the partition is what counts)
        value = self._encoder.encode(group[0] if self.events_per_message == 1 else group)
        self.sent_events += len(group)
        self.sent_messages += 1
        return await self.producer.send(topic, value, key=key, partition=partition)

    async def heartbeat(self, at: datetime) -> None:
        """A `source.heartbeat` at time `at` to every partition of the contact- and agent-event topics, so that
        quiet partitions (a night with few agents) still close their intervals."""
        futures = []
        for topic in (self.contact_topic, self.agent_topic):
            for p in sorted(await self.producer.partitions_for(topic)):
                beat = ev.SourceHeartbeat(event_id=f"hb-{uuid.uuid4()}", time=at)
                futures.append(await self.producer.send(topic, ev.encode(beat), partition=p))
        await self._acknowledged(futures)
