"""Faust's app and Kafka transport, changed where Faust's per-message machinery or its defaults cost the worker.

Messages a fetch at a time. Faust turns every message into an event of its own and passes it through a
queue, a stream and an ack; at one event per message that cost about eight times the pipeline's own work (figures in
docs/performance.md). The worker's processors take lists of messages, so the consumer's fetch loop puts each
partition's fetched records into its topic's `Inbox` as one list, and a task of the app takes them in batches.
Faust still does what it does well: group membership and rebalances, the fetcher, tables and their recovery
(changelog records still go through Faust's own path), timers and the web server. Offsets are committed by the
checkpoints once one covers them (`pipeline.runtime.checkpoints`), not from acks: nothing is held per message.

A bound in bytes on the messages held: the consumer fetches nothing more while the inboxes hold
`max_held_bytes` (`PIPELINE_MAX_HELD_BYTES`) or one holds its messages' worth; sized in messages only, a
backlog of large messages was gigabytes.

Faust builds its aiokafka consumer with `fetch_max_wait_ms=1500` and offers no setting for it. Kafka answers a
waiting fetch as soon as records arrive, but the embedded Tansu broker (like some other Kafka-compatible
brokers) holds it for the whole wait, so a record could sit up to 1.5 s before the worker sees it.
`PIPELINE_FETCH_MAX_WAIT_MS` sets it; on Kafka a short wait only means more empty fetches when idle.

Faust's `Monitor` sensor does bookkeeping for every message for Faust's own web views, which the worker does
not serve (`StallMonitor` keeps what Faust's stall check reads), and only the app's own routes are served.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import cast

import faust
from faust.sensors import Monitor
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver
from faust.types import TP
from faust.web import drivers as web_drivers
from faust.web.base import Web

from pipeline.processing.processor import AgentProcessor, BatchResult, ContactProcessor, Message
from pipeline.runtime.health import Health


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):  # noqa: ANN001, ANN202
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms  # read when the consumer starts its fetcher
        return consumer


class Held:
    """Bytes (keys and values) of the messages in the inboxes, and an event set whenever some are taken."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.bytes = 0
        self.freed = asyncio.Event()


class Inbox:
    """One input topic's messages on their way from the consumer's fetch loop to its processing task: each
    partition's fetch put as one list, taken in batches (see the module docstring)."""

    def __init__(self, held: Held, max_messages: int) -> None:
        self.held = held
        self.max_messages = max_messages
        self.chunks: deque[tuple[int, list[Message], int]] = deque()  # (partition, messages, bytes)
        self.messages = 0
        self.bytes = 0  # of the messages it holds
        self.taken = 0  # bytes of the batch taken and not yet `done`: held until it is applied
        self.arrived = asyncio.Event()

    def full(self) -> bool:
        return self.messages >= self.max_messages or self.held.bytes >= self.held.bound

    def put(self, partition: int, messages: list[Message], size: int) -> None:
        self.chunks.append((partition, messages, size))
        self.messages += len(messages)
        self.bytes += size
        self.held.bytes += size
        self.arrived.set()

    async def take(self, max_messages: int, within: float) -> list[Message]:
        """At least one message and at most `max_messages` (and a quarter of the bytes held at most), waiting at
        most `within` seconds after the first for more while the batch is not full (Faust's `take`). Call `done` once
        the batch is applied: until then its bytes count as held."""
        while not self.chunks:
            self.arrived.clear()
            await self.arrived.wait()
        deadline = monotonic() + within
        # A quarter of the bound at most (at least one fetch): the batch's dead letters are copied to the producer,
        # and the inboxes go on fetching meanwhile, all in the same memory.
        most_bytes = self.held.bound // 4
        while self.messages < max_messages and self.bytes < most_bytes and not self.held.bytes >= self.held.bound:
            left = deadline - monotonic()
            if left <= 0:
                break
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except TimeoutError:
                break
        batch: list[Message] = []
        while self.chunks and len(batch) < max_messages and (not batch or self.taken < most_bytes):
            partition, messages, size = self.chunks.popleft()
            self.bytes -= size
            room = max_messages - len(batch)
            if len(messages) > room:  # the rest stays first in line
                rest = messages[room:]
                rest_size = sum(len(m.value or b"") + len(m.key or b"") for m in rest)
                self.chunks.appendleft((partition, rest, rest_size))
                self.bytes += rest_size
                messages, size = messages[:room], size - rest_size
            batch.extend(messages)
            self.messages -= len(messages)
            self.taken += size
        return batch

    def done(self) -> None:
        """The batch taken last is applied (or dropped): its bytes are no longer held."""
        self.held.bytes -= self.taken
        self.taken = 0
        self.held.freed.set()

    def discard(self, partition: int | None = None) -> None:
        """Forget the messages of a partition (all: None): read again from elsewhere, or not owned any more."""
        kept = deque(c for c in self.chunks if partition is not None and c[0] != partition)
        for p, messages, size in self.chunks:
            if partition is None or p == partition:
                self.messages -= len(messages)
                self.bytes -= size
                self.held.bytes -= size
        self.chunks = kept
        self.held.freed.set()


class _Consumer(driver.Consumer):
    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.rewinds: dict[TP, int] = {}  # partition -> the offset to read again from, at the next fetch

    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher) -> None:  # noqa: ANN001
        """Faust's fetch loop (`faust.transport.consumer.Consumer._drain_messages`), handing each fetch of an input
        topic's partition to its inbox whole; other topics (the tables' changelogs in a recovery) go message by
        message to Faust as before."""
        inboxes = cast(App, self.app).inboxes
        if not inboxes:  # an app of Faust agents only (the bench's empty reference agent)
            return await super()._drain_messages(fetcher)
        held = cast(App, self.app).held
        read_offset = self._read_offset
        new = tuple.__new__
        consumer_stopped, fetcher_stopped = self._stopped.is_set, fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                while any(inbox.full() for inbox in inboxes.values()) and not self.should_stop:
                    held.freed.clear()  # fetch nothing until a processing task takes some
                    await self.wait_first(held.freed.wait(), self.suspend_flow.wait())
                if self.rewinds:
                    await self._rewind_now(inboxes)
                records, active = await self._wait_next_records(1.0)
                await self.sleep(0)
                if not records or self.should_stop:
                    continue
                for tp, fetched in records.items():
                    if not self.flow_active:  # a rebalance began: what was fetched is read again after it
                        break
                    if active is not None and tp not in active:
                        continue
                    inbox = inboxes.get(tp.topic)
                    if inbox is None:
                        await self._deliver_each(tp, fetched)
                        continue
                    start = read_offset.get(tp)
                    if start is not None and fetched and fetched[0].offset < start:
                        fetched = [r for r in fetched if r.offset >= start]
                    # a tuple each, made without the named tuple's Python-level constructor (a frame per message)
                    messages = [
                        new(
                            Message,
                            (r.topic, r.partition, r.offset, r.key, r.value, r.timestamp and r.timestamp / 1000),
                        )
                        for r in fetched
                    ]
                    size = sum(len(r.value or b"") + len(r.key or b"") for r in fetched)
                    if messages:
                        read_offset[tp] = messages[-1].offset + 1
                        inbox.put(tp.partition, messages, size)
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)  # as Faust's: the fetcher stops, the worker crashes
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _deliver_each(self, tp: TP, fetched: list) -> None:
        """Faust's own path for one partition's records: a message each, to the conductor's callback."""
        for record in fetched:
            message = self._to_message(tp, record)
            start = self._read_offset.get(tp)
            if start is None or message.offset >= start:
                if start and message.offset - start > 1 and self.app.topics.acks_enabled_for(tp.topic):
                    await self._add_gap(tp, start + 1, message.offset)
                await self.wait_first(self.callback(message), self.suspend_flow.wait())
                self._read_offset[tp] = message.offset

    async def perform_seek(self) -> None:
        """Faust's seek to the committed offsets at the end of a rebalance, then every input partition whose state
        is held to the offset after the state's last message. They differ after a crash between a checkpoint and
        its commit (the state is ahead: nothing to apply again) and when the changelog's last checkpoint was not
        recovered (behind: Tansu's ListOffsets can report a changelog partition's end short of its last record,
        and Faust then restores up to there only). The processor would ask for the same at its next message, but
        an input with no next message would stay behind for good."""
        await super().perform_seek()
        app = cast(App, self.app)
        for tp in self.assignment():
            offset = app.next_offset(tp) if tp.topic in app.inboxes else None
            committed = self._read_offset.get(tp)
            if offset is not None and offset != committed:
                if committed is not None and offset < committed:  # the checkpoint that covers it was not restored
                    log.warning(
                        "%s[%d]: committed %d where %d was due; reading again from %d", *tp, committed, offset, offset
                    )
                self.rewind(tp, offset)

    def rewind(self, tp: TP, offset: int) -> None:
        """Read a partition again from an offset, from the next fetch on."""
        self.rewinds[tp] = offset

    async def _rewind_now(self, inboxes: dict[str, Inbox]) -> None:
        """Seek between fetches, in the consumer's thread, and forget what was fetched before. Faust's own seek
        calls aiokafka's from the app's thread while the consumer thread may be draining the same fetcher, which
        is not thread-safe (a rewind crashed the fetcher: KeyError in `fetched_records`), and records fetched
        before it could still come after it. A partition a rebalance took away after the rewind was asked for is
        skipped: aiokafka's seek would raise (not assigned) and stop the fetcher, and its next owner reads it from
        the committed offset."""
        thread = self._thread
        rewinds, self.rewinds = self.rewinds, {}
        for tp, offset in rewinds.items():

            async def seek_there(tp: TP = tp, offset: int = offset) -> bool:  # runs in the consumer's thread
                if tp not in thread.assignment():  # checked in the thread that changes the assignment
                    return False
                thread.seek(tp, offset)
                return True

            if not await thread.call_thread(seek_there):
                log.info("%s[%d]: not assigned any more; not read again from %d", tp.topic, tp.partition, offset)
                continue
            self._read_offset[tp] = offset
            if tp.topic in inboxes:
                inboxes[tp.topic].discard(tp.partition)

    async def commit_offsets(self, offsets: dict[TP, int]) -> None:
        """Commit these offsets (the next message to read), of partitions still assigned: a checkpoint covers
        everything before them (`pipeline.runtime.checkpoints`)."""
        if offsets:
            await self._commit_offsets(offsets)


class _Transport(driver.Transport):
    Consumer = _Consumer


log = logging.getLogger(__name__)
# On SIGTERM or SIGINT the worker finishes the batch it applies and checkpoints it (`App.on_stop`); a stuck batch
# or broker would hold it for ever (and a supervisor's SIGKILL comes anyway). Stopping hard is safe: what was not
# checkpointed is read again.
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
        self.held = Held(max_held_bytes)
        self.inboxes: dict[str, Inbox] = {}  # input topic -> its inbox (`inbox`)
        self.crashed_agents: list[str] = []  # processing tasks that raised
        self.revocations = 0  # rebalances that took partitions away: a batch taken before one is dropped
        self.processing: dict[str, Callable[[], Awaitable[None]]] = {}  # input topic -> its task (tests)
        self.stopping = False  # set at a stop: processing tasks apply no new batch
        self.before_stop: list[Callable[[], Awaitable[None]]] = []  # run at a stop, before the consumer stops
        # the offset after the last message an input partition's state holds (None: not held); set by `create_app`
        self.next_offset: Callable[[TP], int | None] = lambda tp: None
        # Tables are in memory (and Kafka); Faust still makes a directory for table files, in the working
        # directory by default: one per app id, and tests and benches use many.
        if "datadir" not in kwargs:
            base = os.path.join(tempfile.gettempdir(), "cc-kpi-pipeline")
            os.makedirs(base, exist_ok=True)  # Faust makes the directory itself, not its parents
            kwargs["datadir"] = os.path.join(base, "{conf.name}-data")
        super().__init__(*args, **kwargs)

    def task_crashed(self, name: str, exc: BaseException) -> None:
        """A processing task raised (a bug: input never raises): its partitions stall. The worker reports itself
        not live from now on (`crashed_agents`): a supervisor restarts it and the messages are read again."""
        log.error("%s processing crashed (%r): this worker reports itself not live", name, exc)
        self.crashed_agents.append(name)

    def inbox(self, topic: faust.TopicT, max_messages: int) -> Inbox:
        """Subscribe to a topic whose messages the consumer puts in an inbox, a fetch at a time, for a task of
        the app to take (`Inbox`), instead of handing them to Faust agents one by one."""
        self.topics.add(topic)  # the conductor subscribes the consumer to its topics
        inbox = self.inboxes[topic.get_topic_name()] = Inbox(self.held, max_messages)
        return inbox

    async def on_stop(self) -> None:
        """At a stop (SIGTERM), before Faust stops the consumer and the producer: the batch being applied finishes
        and what was applied is checkpointed and committed (`before_stop`), so a restart reads nothing again."""
        self.stopping = True
        for hook in self.before_stop:
            await hook()
        await super().on_stop()

    def drop_fetched(self) -> None:
        """Forget what was fetched and not taken yet, and the rewinds asked for: partitions are being revoked, and
        their next owner reads from the committed offsets. A batch taken before is dropped (`revocations`)."""
        self.revocations += 1
        cast(_Consumer, self.consumer).rewinds.clear()
        for inbox in self.inboxes.values():
            inbox.discard()

    async def commit_read(self, topic: str, offsets: dict[int, int]) -> None:
        """Commit the offset of the next message to read of these partitions of an inbox's topic."""
        await cast(_Consumer, self.consumer).commit_offsets({TP(topic, p): o for p, o in offsets.items()})

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


def rewind(app: App, topic: str, result: BatchResult) -> None:
    """Read again the partitions whose next offset was not delivered (`PartitionedProcessor._in_sequence`)."""
    consumer = cast(_Consumer, app.consumer)
    for partition, offset in result.rewind.items():
        consumer.rewind(TP(topic, partition), offset)
