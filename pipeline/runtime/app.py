"""The Faust application: topics, processing tasks, the state tables and the HTTP endpoints. Wiring only.

Hot path: the consumer puts each fetch in its topic's inbox (`pipeline.runtime.transport`), a task per input
topic takes batches of at most `flush_seconds` and the processor applies a whole batch in plain Python, so
/metrics is that fresh. State is checkpointed separately, every `checkpoint_seconds`: a few table writes per
changed partition, its changes since the last checkpoint or now and then its whole state
(`pipeline.runtime.checkpoints`; a table write costs ~150 us in Faust here, so one per event would cap the worker
near 2,000 events/s). The checkpoint carries the offset of the last message it includes, and the consumer
commits the next offset only once the checkpoint is delivered to the changelog, so a committed offset is never
ahead of the stored checkpoint. After a crash the messages since the checkpoint are read again and applied
again; those up to its offset are skipped, so nothing is counted twice. So a checkpoint is taken between
batches only (`Checkpoints.lock`), once the records and forwarded offers of the batches it covers are
delivered: whatever of them a crash lost would never be sent again. Before partitions are revoked, what was
applied is checkpointed and committed and what was fetched is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import faust
import msgspec
from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from pipeline.contract.partitioner import KeyPartitioner
from pipeline.core.settings import QueueConfig, Settings
from pipeline.exposition.board_metrics import AdherenceCollector, TodayCollector
from pipeline.exposition.metrics import build_registry
from pipeline.processing.processor import (
    AgentProcessor,
    BatchResult,
    ContactProcessor,
    DeadLetter,
    PartitionedProcessor,
    PipelineStats,
)
from pipeline.runtime.boards import add_boards
from pipeline.runtime.broker import bootstrap_servers
from pipeline.runtime.checkpoints import Checkpoints, PartitionStateTable
from pipeline.runtime.fcr import wire_fcr
from pipeline.runtime.forecast_job import publish_own_forecast
from pipeline.runtime.health import (
    STALL_SECONDS,
    BrokerProbe,
    Health,
    HealthCollector,
    Throughput,
    WorkerView,
)
from pipeline.runtime.http import add_pages, progress
from pipeline.runtime.kafka_security import client_options, faust_credentials
from pipeline.runtime.memory import release_free_memory
from pipeline.runtime.transport import App, StallMonitor, kafka_urls, raw_topic, rewind
from pipeline.runtime.webconfig import load_web_config

log = logging.getLogger(__name__)
RELEASE_MEMORY_SECONDS = 10.0


def create_app(settings: Settings, queues: QueueConfig) -> App:
    """Build the worker's Faust app. Nothing is started."""
    partitioner = KeyPartitioner()  # Kafka's default partitioning, faster (pipeline.contract.partitioner)
    app = _new_app(settings, partitioner)
    stats = PipelineStats()
    contacts = ContactProcessor(settings, queues, stats)
    agents = AgentProcessor(settings, stats)
    registry = build_registry(contacts, stats, agents)
    throughput = Throughput()
    probe = BrokerProbe(bootstrap_servers(settings), client_options=client_options(settings))

    contact_topic = raw_topic(app, settings.topic("contact-events"), partitions=settings.partitions)
    agent_topic = raw_topic(app, settings.topic("agent-events"), partitions=settings.partitions)
    kpi_topic = raw_topic(app, settings.topic("kpis"))
    dead_letter_topic = raw_topic(app, settings.topic("dead-letters"))
    late_topic = raw_topic(app, settings.topic("late-events"))

    def checkpoints(processor: PartitionedProcessor, name: str, source: str) -> Checkpoints:
        table = PartitionStateTable(
            app,
            name=name,
            key_type=int,
            value_type=bytes,
            partitions=settings.partitions,
            help=f"State checkpoint per {source} partition.",
        )
        app.tables.add(table)
        return Checkpoints(
            processor,
            table,
            settings.checkpoint_seconds,
            settings.partitions,
            chunk_bytes=settings.max_message_bytes // 2,
            commit=lambda offsets: app.commit_read(processor.topic, offsets),
            deliver=lambda: app.producer.flush(),
        )

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
        record, and a batch can hold thousands (an interval's final record for every agent)."""
        send = app.producer.send
        keys = [r.key.encode() for r in result.records]
        partitioner.learn(keys)
        for r, key in zip(result.records, keys, strict=True):
            delivery = await send(kpi_topic_name, key, encode(r), None, None, None)
            delivery.add_done_callback(_undelivered)  # type: ignore[attr-defined]  # typed Awaitable; is a Future
        await _send_dead(dead_letter_topic, result.dead_letters)
        await _send_dead(late_topic, result.late)

    def consume(
        topic: faust.TopicT,
        processor: PartitionedProcessor,
        held: Checkpoints,
        forward: Callable[[BatchResult], Awaitable[None]] | None = None,
    ) -> None:
        """A task that applies the topic's messages in batches of at most `batch_max_messages` taken within
        `flush_seconds` (so /metrics is that fresh), a fetch at a time from the consumer
        (`pipeline.runtime.transport.Inbox`); `forward` sends what a batch owes another topic before the
        checkpoint that covers it."""
        name = topic.get_topic_name()
        inbox = app.inbox(topic, max(settings.stream_buffer_messages, settings.batch_max_messages * 2))

        async def apply_batches() -> None:
            while True:
                batch = await inbox.take(settings.batch_max_messages, settings.flush_seconds)
                revocations, started, started_cpu = app.revocations, time.monotonic(), time.process_time()
                try:
                    async with held.lock:  # no checkpoint of a batch whose results are not sent yet
                        if revocations != app.revocations or app.stopping:  # read again after the rebalance
                            continue
                        result = processor.process(batch, held.stored)
                        if forward is not None:
                            await forward(result)
                        await publish(result)
                        rewind(app, name, result)
                        await held.applied()
                except Exception as exc:
                    app.task_crashed(name, exc)
                    raise
                finally:
                    inbox.done()
                throughput.observe_batch(batch, started=started, started_cpu=started_cpu)
                app.monitor.stream_inbound_time.update(dict.fromkeys(_partitions(name, batch), time.monotonic()))

        app.processing[name] = apply_batches
        app.task(apply_batches)

    contact_checkpoints = checkpoints(contacts, "queue-state", "contact-event")
    agent_checkpoints = checkpoints(agents, "agent-state", "agent-event")
    fcr = wire_fcr(app, settings, queues, stats, registry, checkpoints)  # pipeline/processing/fcr.py
    consume(contact_topic, contacts, contact_checkpoints, lambda result: fcr.forward(result, contacts))
    consume(agent_topic, agents, agent_checkpoints)
    consume(fcr.topic, fcr.processor, fcr.checkpoints)
    inputs = (
        (contact_topic, contacts, contact_checkpoints),
        (agent_topic, agents, agent_checkpoints),
        (fcr.topic, fcr.processor, fcr.checkpoints),
    )
    every_checkpoints = tuple(held for _, _, held in inputs)
    owners = {processor.topic: processor for _, processor, _ in inputs}

    @app.timer(interval=min(settings.checkpoint_seconds, 0.5))
    async def write_due_checkpoints() -> None:
        """Checkpoints of partitions whose input went quiet, and at once in a rebalance: Faust's revocation waits
        until every event taken is acked."""
        for c in every_checkpoints:
            await c.maybe_write(now=bool(app.rebalancing))

    @app.timer(interval=RELEASE_MEMORY_SECONDS)
    async def release_memory() -> None:
        release_free_memory()  # what big transient buffers left free inside the heap (pipeline.runtime.memory)

    if settings.forecast_every_minutes > 0:

        @app.timer(interval=settings.forecast_every_minutes * 60, on_leader=True)
        async def publish_own_forecast_now() -> None:
            try:
                await publish_own_forecast(settings)
            except Exception:  # a failed forecast must not stop the worker; the next run tries again
                log.exception("own forecast failed")

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode types a handler as taking any *args; this signal sends one
    async def on_revoked(sender: faust.App, revoked: set, **kwargs: Any) -> None:
        """Before the partitions go: what was fetched is dropped (the next owner reads it), and what was applied
        is checkpointed and committed, so that the next owner does not apply it again."""
        app.drop_fetched()
        for c in every_checkpoints:
            await c.maybe_write(now=True)
        for tp in revoked:
            if tp.topic in owners:
                owners[tp.topic].drop(tp.partition)
            throughput.forget(tp.topic, tp.partition)

    async def checkpoint_at_stop() -> None:
        for c in every_checkpoints:
            await c.maybe_write(now=True)  # after the batch being applied (the lock)

    app.before_stop.append(checkpoint_at_stop)

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]  # mode types a handler as taking any *args
    async def on_rebalance_complete(sender: faust.App, **kwargs: Any) -> None:
        # State is recovered now: hold every owned partition's state at once, not at its next message, so that
        # /metrics shows all of them after a rebalance even when no new message comes (the sum over workers
        # must equal the truth at every scrape once the rebalance has settled), and so that the consumer reads
        # each from where its state ends (`next_offset`): an input with no next message would stay behind.
        for topic, processor, held in inputs:
            for partition in owned_partitions(topic) - set(processor.partitions):
                processor.load(partition, held.stored(partition))

    def next_offset(tp: TP) -> int | None:
        processor = owners.get(tp.topic)
        state = None if processor is None else processor.partitions.get(tp.partition)
        return None if state is None else state.offset + 1

    app.next_offset = next_offset

    health = _health(app, settings, (contact_topic, contacts), (agent_topic, agents), throughput, probe, assignment)
    registry.register(HealthCollector(health))
    registry.register(TodayCollector(contacts))  # cc_queue_today_*: today so far, in each queue's time zone
    registry.register(AdherenceCollector(agents, queues))  # agents out of adherence now, and exceptions

    @app.task
    async def probe_broker() -> None:
        await probe.run()

    add_pages(app, registry, health, lambda: progress(contacts, fcr.processor, stats, throughput))
    add_boards(app, settings, queues, contacts, agents, throughput)  # the wallboard at / and the agent board

    app.pipeline = contacts
    app.agent_pipeline = agents
    app.health = health
    return app


# answered without credentials when `web_open_health` is on (probes of Kubernetes, compose, a load balancer)
HEALTH_PATHS = ("/health/live", "/health/ready")


def _new_app(settings: Settings, partitioner: KeyPartitioner) -> App:
    """The Faust app with the worker's consumer, producer and web settings."""
    web = load_web_config(settings.web_config_file)  # TLS and basic auth (pipeline.runtime.webconfig)
    return App(
        settings.app_id,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        max_held_bytes=settings.max_held_bytes,  # a bound in bytes on the messages held (pipeline.runtime.transport)
        Monitor=StallMonitor,  # Faust's per-event statistics, only what its stall check reads (pipeline.runtime.transport)
        producer_partitioner=partitioner,
        broker=kafka_urls(settings.broker_url),
        broker_credentials=faust_credentials(settings),  # TLS and SASL (pipeline.runtime.kafka_security)
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_ssl_context=web.ssl_context,
        web_application_options={
            "middlewares": [web.middleware(HEALTH_PATHS if settings.web_open_health else ())],
            "client_max_size": 64 * 1024,  # no page takes a body
        },
        consumer_auto_offset_reset="earliest",
        # The embedded broker holds a new group's first join for half the session timeout.
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=settings.session_timeout_seconds / 3,
        producer_max_request_size=max(1_048_576, settings.max_message_bytes * 2),
        consumer_max_fetch_size=settings.fetch_partition_bytes,
        # Without a bound a poll hands over every record fetched (a catch-up held every decoded record at once);
        # one batch's worth keeps the consumer ahead all the same
        broker_max_poll_records=settings.batch_max_messages,
        # A smaller buffer saves memory in a backlog of large messages, but less than two batches' worth slowed the
        # one-event-per-message rate (docs/performance.md)
        stream_buffer_maxsize=max(settings.stream_buffer_messages, settings.batch_max_messages * 2),
    )


def _health(
    app: App,
    settings: Settings,
    contact: tuple[faust.TopicT, ContactProcessor],
    agent: tuple[faust.TopicT, AgentProcessor],
    throughput: Throughput,
    probe: BrokerProbe,
    assignment: Callable[[], set[TP]],
) -> Health:
    """Liveness and readiness from what the worker owns, has applied and can reach (`pipeline.runtime.health`)."""
    held = {topic.get_topic_name(): processor.partitions for topic, processor in (contact, agent)}

    def highwater(topic: str, partition: int) -> int | None:
        try:
            return app.consumer.highwater(TP(topic, partition))
        except Exception:  # not fetched yet, or not assigned any more
            return None

    def applied(topic: str, partition: int) -> int | None:
        # the state's own offset (held for every owned partition after a rebalance; -1: nothing applied yet)
        state = held.get(topic, {}).get(partition)
        if state is not None:
            return state.offset if state.offset >= 0 else None
        return throughput.processed.get((topic, partition))

    sources = set(held)
    return Health(
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


def _partitions(topic: str, batch: Iterable) -> set[TP]:
    return {TP(topic, p) for p in {m.partition for m in batch}}


def _undelivered(delivery: asyncio.Future) -> None:
    if not delivery.cancelled() and delivery.exception() is not None:
        log.error("a KPI record was not delivered: %r", delivery.exception())


async def _send_dead(topic: faust.TopicT, letters: list[DeadLetter]) -> None:
    for d in letters:
        await topic.send(key=d.key, value=d.original, headers=d.headers())
