"""Faust's app and Kafka transport with four changes: how long a fetch may wait at the broker for new records, a
bound in bytes on the messages held, no per-event statistics that nobody reads, and no web views but the app's own.

Faust builds its aiokafka consumer with `fetch_max_wait_ms=1500` and offers no setting for it. Kafka answers a
waiting fetch as soon as records arrive, but the embedded Tansu broker (like some other Kafka-compatible
brokers) holds it for the whole wait, so a record could sit up to 1.5 s before the worker sees it (the figures
are in docs/performance.md). `PIPELINE_FETCH_MAX_WAIT_MS` sets it; on Kafka a short wait only means more empty fetches when idle.

Faust's `Monitor` sensor does bookkeeping for every message, event and record sent (counters, timestamps, a
dict per event) for Faust's own web views, which the worker does not serve: its own figures are on /metrics.
Faust bounds what it holds in messages, not bytes: each stream buffers up to `stream_buffer_maxsize` messages, a
batch takes up to `batch_max_messages`, and the worker keeps a batch's events until the checkpoint that covers
them (`pipeline.runtime.checkpoints`). Sized for small events, that is gigabytes of large ones (figures in
docs/performance.md). So the consumer counts the
bytes of the messages alive (from the fetch until the last reference goes) and fetches nothing more while they
exceed `max_held_bytes` (`PIPELINE_MAX_HELD_BYTES`); batches and checkpoints go on and free them. Small events
never reach the bound, so their path only gains a count per message.

The worker's `StallMonitor` keeps only what Faust's stall check reads (when each partition's stream last took an
event; without it Faust logs "Stream has not started processing" for busy partitions). The bench's empty
reference agent keeps Faust's default.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import tempfile
import threading
from time import monotonic
from typing import cast

import faust
from faust.sensors import Monitor
from faust.transport.drivers import aiokafka as driver
from faust.types import TP
from faust.types.tuples import ConsumerMessage
from faust.web import drivers as web_drivers
from faust.web.base import Web

from pipeline.processing.processor import AgentProcessor, BatchResult, ContactProcessor, Message
from pipeline.runtime.health import Health


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):  # noqa: ANN001, ANN202
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms  # read when the consumer starts its fetcher
        return consumer


class HeldBytes:
    """Bytes (keys and values) of the consumer's messages alive in this process."""

    n = 0


class _HeldMessage(ConsumerMessage):
    """A consumed message that counts its bytes in `HeldBytes` for as long as anything references it."""

    __slots__ = ("_size",)
    _size: int

    def __del__(self) -> None:
        HeldBytes.n -= self._size


# how long the consumer waits before looking at the held bytes again when they are over the bound, and how often
# it runs the cyclic garbage collector while they are
HELD_WAIT_SECONDS = 0.02
COLLECT_SECONDS = 1.0


class _Consumer(driver.Consumer):
    _collected = 0.0  # monotonic time of the last collection forced by the bound

    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _getmany(self, active_partitions, timeout: float):  # noqa: ANN001, ANN202
        bound = cast(App, self.app).max_held_bytes
        if HeldBytes.n >= bound and monotonic() - self._collected >= COLLECT_SECONDS:
            # Some messages end in reference cycles, which only the cyclic collector frees, and a worker that fetches
            # nothing allocates too little to trigger it: seen holding the bound for minutes, every partition stalled
            self._collected = monotonic()
            gc.collect()
        if HeldBytes.n >= bound:
            # fetch nothing until batches and checkpoints free some; Faust calls again at once
            await asyncio.sleep(min(timeout, HELD_WAIT_SECONDS))
            return {}
        return await super()._getmany(active_partitions, timeout)

    async def seek_safely(self, tp: TP, offset: int) -> None:
        """Faust's `seek`, run in the consumer's thread. Faust's own calls aiokafka's seek from the app's thread
        while the consumer thread may be draining the same fetcher, which is not thread-safe: a rewind crashed
        the fetcher (KeyError in `fetched_records`) and stopped the worker."""
        thread = self._thread

        async def seek_there() -> None:  # runs in the consumer's thread
            thread.seek(tp, offset)

        await thread.call_thread(seek_there)
        self._read_offset[tp] = offset if offset else None  # as Faust's `seek`: messages below it are dropped

    def _to_message(self, tp, record) -> _HeldMessage:  # noqa: ANN001
        # Faust's own conversion (faust.transport.drivers.aiokafka.Consumer._to_message), into a counted message
        timestamp = record.timestamp
        message = _HeldMessage(
            record.topic,
            record.partition,
            record.offset,
            None if timestamp is None else timestamp / 1000.0,  # type: ignore[arg-type]  # as Faust's own: its hint says float
            record.timestamp_type,
            record.headers,
            record.key,
            record.value,
            record.checksum,
            record.serialized_key_size,
            record.serialized_value_size,
            tp,
            generation_id=self.app.consumer_generation_id,
        )
        size = message._size = len(record.value or b"") + len(record.key or b"")
        HeldBytes.n += size
        return message


class _Transport(driver.Transport):
    Consumer = _Consumer


log = logging.getLogger(__name__)
# On SIGTERM or SIGINT Faust waits until every event taken is acked; a stuck agent would hold the worker for ever
# (and a supervisor's SIGKILL comes anyway). Stopping hard is safe: what was not checkpointed is re-delivered.
STOP_GRACE_SECONDS = 20.0


class Worker(faust.Worker):
    """Faust's worker, stopped for good at most `STOP_GRACE_SECONDS` after SIGTERM or SIGINT."""

    def _on_sigterm(self) -> None:
        _stop_hard_after(STOP_GRACE_SECONDS)
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        _stop_hard_after(STOP_GRACE_SECONDS)
        super()._on_sigint()


def _stop_hard_after(seconds: float) -> None:
    def stop() -> None:
        log.error("the worker did not stop within %.0f s of the signal; exiting now", seconds)
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(seconds, stop)
    timer.daemon = True
    timer.start()


class StallMonitor(Monitor):
    """Faust's Monitor without the per-message statistics: only the time each partition's stream last took an
    event, which Faust's consumer checks to report a stalled stream (`verify_event_path`)."""

    def on_message_in(self, tp, offset, message) -> None:  # noqa: ANN001
        pass

    def on_stream_event_in(self, tp, offset, stream, event) -> None:  # noqa: ANN001
        self.stream_inbound_time[tp] = monotonic()

    def on_stream_event_out(self, tp, offset, stream, event, state=None) -> None:  # noqa: ANN001
        pass

    def on_message_out(self, tp, offset, message) -> None:  # noqa: ANN001
        pass

    def on_send_initiated(self, producer, topic, message, keysize, valsize) -> None:  # noqa: ANN001
        pass

    def on_send_completed(self, producer, state, metadata) -> None:  # noqa: ANN001
        pass


class App(faust.App):
    """A Faust app on Kafka (aiokafka) whose consumer waits at most `fetch_max_wait_ms` per fetch and stops fetching
    while the messages it holds exceed `max_held_bytes`."""

    # set by `pipeline.runtime.app.create_app`: the worker's parts, for tests and tools
    pipeline: ContactProcessor
    agent_pipeline: AgentProcessor
    health: Health

    def __init__(self, *args, fetch_max_wait_ms: int, max_held_bytes: int = 1 << 62, **kwargs) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.max_held_bytes = max_held_bytes
        self.crashed_agents: list[str] = []
        # Tables are in memory (and Kafka); Faust still makes a directory for table files, in the working
        # directory by default: one per app id, and tests and benches use many.
        if "datadir" not in kwargs:
            base = os.path.join(tempfile.gettempdir(), "cc-kpi-pipeline")
            os.makedirs(base, exist_ok=True)  # Faust makes the directory itself, not its parents
            kwargs["datadir"] = os.path.join(base, "{conf.name}-data")
        super().__init__(*args, **kwargs)

    async def _on_agent_error(self, agent: faust.types.AgentT, exc: BaseException) -> None:
        """An agent's loop raised: Faust restarts the actor, but the acks it held are never released, so its
        partitions stall. The worker reports itself not live from now on (`crashed_agents`): a supervisor
        restarts it and the events are re-delivered."""
        log.error("agent %s crashed (%r): this worker reports itself not live", agent.name, exc)
        self.crashed_agents.append(agent.name)
        await super()._on_agent_error(agent, exc)

    def _new_transport(self) -> _Transport:
        return _Transport(self.conf.broker_consumer, self)

    def _new_web(self) -> Web:
        return _web_of_our_routes_only(web_drivers.by_url(self.conf.web))(self)


def _web_of_our_routes_only(driver: type[Web]) -> type[Web]:
    """Faust's web driver without Faust's own views: `/router/` and `/table/<name>/...` list internal topics and
    serve table contents, and `/` would shadow ours. Only the pages the app adds are served."""

    class OurRoutesOnly(driver):  # type: ignore[valid-type, misc]
        default_blueprints = production_blueprints = debug_blueprints = optional_blueprints = ()

    return OurRoutesOnly


def kafka_urls(broker_url: str) -> list[str]:
    """`host:port,host:port` (optionally with `kafka://`) as Faust broker URLs."""
    hosts = [h.strip().removeprefix("kafka://") for h in broker_url.replace(";", ",").split(",") if h.strip()]
    return [f"kafka://{h}" for h in hosts]


def raw_topic(app: faust.App, name: str, **options) -> faust.TopicT:
    """A topic of raw bytes: Faust must not deserialise (a non-JSON message would stall the agent); our decoder
    applies the error policy instead."""
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw", **options)


async def rewind(app: faust.App, topic: str, result: BatchResult, batch: list[faust.EventT]) -> list[faust.EventT]:
    """Read again the partitions whose next offset was not delivered (`PartitionedProcessor._in_sequence`), and
    return the batch's events to ack once checkpointed: not those set aside, which come again.

    The seek is repeated for every message set aside: those fetched before it move Faust's read position past the
    offset asked for, and Faust would drop the re-read messages below it."""
    consumer = cast(_Consumer, app.consumer)
    for partition, offset in result.rewind.items():
        await consumer.seek_safely(TP(topic, partition), offset)
    if not result.unapplied:
        return batch
    return [e for e in batch if (e.message.partition, e.message.offset) not in result.unapplied]


def to_message(e: faust.EventT) -> Message:
    m = e.message
    return Message(m.topic, m.partition, m.offset, m.key, m.value)
