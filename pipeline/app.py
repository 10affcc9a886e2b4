"""The Faust application: topics, agents, the state table and the HTTP endpoints. Wiring only.

Hot path: agents take messages in batches of at most `flush_seconds` and the processor applies a whole batch in
plain Python, so /metrics is that fresh. State is checkpointed separately, every `checkpoint_seconds`: a few
table writes per changed partition, its changes since the last checkpoint or now and then its whole state
(`pipeline.checkpoints`; a table write costs ~150 us in Faust here, so one per event would cap the worker near
2,000 events/s). The checkpoint carries the offset of the last message it includes, and the events it covers
are acked only once it is written: Faust commits acked offsets only, and flushes the producer before it
commits, so a committed offset is never ahead of the stored checkpoint. After a crash the events since the
checkpoint are re-delivered and applied again; those up to its offset are skipped, so nothing is counted twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
import msgspec
from faust.exceptions import ConsumerNotStarted
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST

from pipeline.broker import bootstrap_servers
from pipeline.checkpoints import Checkpoints, PartitionStateTable
from pipeline.fcr import wire_fcr
from pipeline.memory import release_free_memory
from pipeline.outputs.health import (
    STALL_SECONDS,
    BrokerProbe,
    Health,
    HealthCollector,
    HealthReport,
    Throughput,
    WorkerView,
)
from pipeline.outputs.metrics import build_registry, exposition
from pipeline.partitioner import KeyPartitioner
from pipeline.processor import (
    AgentProcessor,
    BatchResult,
    ContactProcessor,
    DeadLetter,
    Message,
    PartitionedProcessor,
    PipelineStats,
)
from pipeline.settings import QueueConfig, Settings
from pipeline.transport import App, StallMonitor

log = logging.getLogger(__name__)
RELEASE_MEMORY_SECONDS = 10.0


def kafka_urls(broker_url: str) -> list[str]:
    """`host:port,host:port` (optionally with `kafka://`) as Faust broker URLs."""
    hosts = [h.strip().removeprefix("kafka://") for h in broker_url.replace(";", ",").split(",") if h.strip()]
    return [f"kafka://{h}" for h in hosts]


def raw_topic(app: faust.App, name: str, **options) -> faust.TopicT:
    """A topic of raw bytes: Faust must not deserialise (a non-JSON message would stall the agent); our decoder
    applies the error policy instead."""
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw", **options)


def create_app(settings: Settings, queues: QueueConfig) -> faust.App:
    """Build the worker's Faust app. Nothing is started."""
    app = App(
        settings.app_id,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        max_held_bytes=settings.max_held_bytes,  # a bound in bytes on what the stream buffers hold (pipeline.transport)
        Monitor=StallMonitor,  # Faust's per-event statistics, only what its stall check reads (pipeline.transport)
        producer_partitioner=KeyPartitioner(),  # Kafka's default partitioning, faster (pipeline.partitioner)
        broker=kafka_urls(settings.broker_url),
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        consumer_auto_offset_reset="earliest",
        # The embedded broker holds a new group's first join for half the session timeout.
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=settings.session_timeout_seconds / 3,
        producer_max_request_size=max(1_048_576, settings.max_message_bytes * 2),
        consumer_max_fetch_size=settings.fetch_partition_bytes,
        # Without a bound a poll hands over every record fetched (measured: ~120,000 decoded records held in a
        # catch-up at one event per message); one batch's worth keeps the consumer ahead all the same
        broker_max_poll_records=settings.batch_max_messages,
        # Measured: 256 instead of 4,096 saved ~85 MB of a 5,000-agent backlog at 100 events per message, but one
        # batch's worth (2,000) cut the 1-event-per-message rate by ~10%
        stream_buffer_maxsize=max(settings.stream_buffer_messages, settings.batch_max_messages * 2),
    )
    stats = PipelineStats()
    contacts = ContactProcessor(settings, queues, stats)
    agents = AgentProcessor(settings, stats)
    registry = build_registry(contacts, stats, agents)
    throughput = Throughput()
    probe = BrokerProbe(bootstrap_servers(settings))

    contact_topic = raw_topic(app, settings.topic("contact-events"), partitions=settings.partitions)
    agent_topic = raw_topic(app, settings.topic("agent-events"), partitions=settings.partitions)
    kpi_topic = raw_topic(app, settings.topic("kpis"))
    dead_letter_topic = raw_topic(app, settings.topic("dead-letters"))
    late_topic = raw_topic(app, settings.topic("late-events"))

    def checkpoints(processor: PartitionedProcessor, name: str, source: str) -> Checkpoints:
        table = app.tables.add(
            PartitionStateTable(
                app,
                name=name,
                key_type=int,
                value_type=bytes,
                partitions=settings.partitions,
                help=f"State checkpoint per {source} partition.",
            )
        )
        return Checkpoints(
            processor,
            table,
            settings.checkpoint_seconds,
            settings.partitions,
            chunk_bytes=settings.max_message_bytes // 2,
        )

    contact_checkpoints = checkpoints(contacts, "queue-state", "contact-event")
    agent_checkpoints = checkpoints(agents, "agent-state", "agent-event")

    def assignment() -> set[TP]:
        try:
            return app.consumer.assignment()
        except ConsumerNotStarted:  # a health check or scrape before the consumer started: nothing owned yet
            return set()

    def owned_partitions(topic: faust.TopicT) -> set[int]:
        return {tp.partition for tp in assignment() if tp.topic == topic.get_topic_name()}

    kpi_topic_name, encode = kpi_topic.get_topic_name(), msgspec.json.Encoder().encode

    async def publish(result: BatchResult) -> None:
        """A batch's records (every kind is a msgspec struct with a `key`), dead letters and late events.

        Records go straight to the producer: `topic.send` adds a promise, serializer look-ups and a callback per
        record, and a batch can hold thousands (an interval's final record for every agent). Faust still flushes
        the producer before it commits offsets."""
        send = app.producer.send
        for r in result.records:
            delivery = await send(kpi_topic_name, r.key.encode(), encode(r), None, None, None)
            delivery.add_done_callback(_undelivered)
        await _send_dead(dead_letter_topic, result.dead_letters)
        await _send_dead(late_topic, result.late)

    def batches(stream: faust.StreamT):
        # acks are ours: `Checkpoints` releases them once a checkpoint covers the events
        return stream.noack_take(settings.batch_max_messages, within=settings.flush_seconds)

    fcr = wire_fcr(app, settings, queues, stats, registry, publish, checkpoints, batches)  # pipeline/fcr.py
    every_checkpoints = (contact_checkpoints, agent_checkpoints, fcr.checkpoints)

    @app.agent(contact_topic, name="contact-events")
    async def contact_events(stream: faust.StreamT) -> None:
        async for batch in batches(stream):
            started = time.monotonic()
            result = contacts.process([to_message(e) for e in batch], contact_checkpoints.stored)
            await fcr.forward(result, contacts)  # before the checkpoint that covers these offers
            await publish(result)
            await contact_checkpoints.applied(stream, batch)
            throughput.observe_batch(_positions(batch), started=started)

    @app.agent(agent_topic, name="agent-events")
    async def agent_events(stream: faust.StreamT) -> None:
        async for batch in batches(stream):
            started = time.monotonic()
            result = agents.process([to_message(e) for e in batch], agent_checkpoints.stored)
            await publish(result)
            await agent_checkpoints.applied(stream, batch)
            throughput.observe_batch(_positions(batch), started=started)

    @app.timer(interval=min(settings.checkpoint_seconds, 0.5))
    async def write_due_checkpoints() -> None:
        """Checkpoints of partitions whose input went quiet, and at once in a rebalance: Faust's revocation waits
        until every event taken is acked."""
        for c in every_checkpoints:
            await c.maybe_write(now=bool(app.rebalancing))

    @app.timer(interval=RELEASE_MEMORY_SECONDS)
    async def release_memory() -> None:
        release_free_memory()  # what big transient buffers left free inside the heap (pipeline.memory)

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: faust.App, revoked: set, **kwargs: Any) -> None:
        for tp in revoked:
            if tp.topic == contact_topic.get_topic_name():
                contacts.drop(tp.partition)
            elif tp.topic == agent_topic.get_topic_name():
                agents.drop(tp.partition)
            throughput.forget(tp.topic, tp.partition)

    @app.on_rebalance_complete.connect
    async def on_rebalance_complete(sender: faust.App, **kwargs: Any) -> None:
        # State is recovered now: hold every owned partition's state at once, not at its next message, so that
        # /metrics shows all of them after a rebalance even when no new message comes (the sum over workers
        # must equal the truth at every scrape once the rebalance has settled).
        for partition in owned_partitions(contact_topic) - set(contacts.partitions):
            contacts.load(partition, contact_checkpoints.stored(partition))
        for partition in owned_partitions(agent_topic) - set(agents.partitions):
            agents.load(partition, agent_checkpoints.stored(partition))

    def highwater(topic: str, partition: int) -> int | None:
        try:
            return app.consumer.highwater(TP(topic, partition))
        except Exception:  # not fetched yet, or not assigned any more
            return None

    def applied(topic: str, partition: int) -> int | None:
        # the state's own offset (held for every owned partition after a rebalance; -1: nothing applied yet)
        held = {contact_topic.get_topic_name(): contacts.partitions, agent_topic.get_topic_name(): agents.partitions}
        state = held.get(topic, {}).get(partition)
        if state is not None:
            return state.offset if state.offset >= 0 else None
        return throughput.processed.get((topic, partition))

    sources = {contact_topic.get_topic_name(), agent_topic.get_topic_name()}
    health = Health(
        WorkerView(
            assigned=lambda: [(tp.topic, tp.partition) for tp in assignment() if tp.topic in sources],
            highwater=highwater,
            applied=applied,
            joined=lambda: app.rebalancing_count > 0,
            rebalancing=lambda: bool(app.rebalancing),
            crashed=lambda: bool(app.crashed or app.crashed_agents),
        ),
        probe,
        throughput,
        stall_seconds=max(STALL_SECONDS, 10 * settings.session_timeout_seconds),
    )
    registry.register(HealthCollector(health))

    @app.task
    async def probe_broker() -> None:
        await probe.run()

    @app.page("/metrics")
    async def metrics(web, request):  # noqa: ANN001
        names = request.query.getall("name[]", [])  # Prometheus' own filter: only these metrics
        return web.bytes(exposition(registry, names), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/health/live")
    async def live(web, request):  # noqa: ANN001
        return _health_response(web, health.live())

    @app.page("/health/ready")
    async def ready(web, request):  # noqa: ANN001
        return _health_response(web, health.ready())

    @app.page("/progress")
    async def progress(web, request):  # noqa: ANN001
        """Per owned partition: last offset applied, watermark, open intervals, hour/day rollups and legs, and the
        FCR partitions' open intervals (replay waits on them)."""
        return web.json(
            {
                "partitions": {
                    str(p): {
                        "offset": s.offset,
                        "watermark_ms": s.watermark,
                        "open_intervals": len(s.intervals),
                        "open_rollups": len(s.rollups),
                        "legs": len(s.legs),
                    }
                    for p, s in sorted(contacts.partitions.items())
                },
                "fcr_partitions": {
                    str(p): {"offset": s.offset, "open_intervals": len(s.intervals)}
                    for p, s in sorted(fcr.processor.partitions.items())
                },
                "messages": dict(stats.messages),
                "source_messages": throughput.messages,
                "first_batch": throughput.first_batch,
                "last_batch_monotonic": throughput.last_batch_monotonic,
                "batches": stats.batches,
                "rejected": {f"{topic}|{reason}": n for (topic, reason), n in stats.rejected.items()},
                "duplicates": sum(stats.duplicates.values()),
                "late": sum(stats.late.values()),
            }
        )

    app.pipeline = contacts  # type: ignore[attr-defined]  (for tests and the replay command)
    app.agent_pipeline = agents  # type: ignore[attr-defined]
    app.health = health  # type: ignore[attr-defined]
    return app


def _health_response(web, report: HealthReport):  # noqa: ANN001
    return web.json({"ok": report.ok, **report.checks}, status=200 if report.ok else 503)


def _positions(batch: list[faust.EventT]):
    for e in batch:
        m = e.message
        yield m.topic, m.partition, m.offset, m.timestamp


def to_message(e: faust.EventT) -> Message:
    m = e.message
    return Message(m.topic, m.partition, m.offset, m.key, m.value)


def _undelivered(delivery: asyncio.Future) -> None:
    if not delivery.cancelled() and delivery.exception() is not None:
        log.error("a KPI record was not delivered: %r", delivery.exception())


async def _send_dead(topic: faust.TopicT, letters: list[DeadLetter]) -> None:
    for d in letters:
        await topic.send(key=d.key, value=d.original, headers=d.headers())
