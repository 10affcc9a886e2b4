"""The Faust app subclass: where Faust's table directory goes."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time

import pytest

from pipeline.runtime.transport import App


def test_faust_table_directory_is_under_the_temp_directory_which_exists(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path / "fresh"))
    app = App("some-app", fetch_max_wait_ms=100, broker="kafka://127.0.0.1:1", store="memory://")
    assert app.conf.datadir == tmp_path / "fresh" / "cc-kpi-pipeline" / "some-app-data"
    assert app.conf.datadir.parent.is_dir()  # Faust makes the directory itself only, at start


def test_a_worker_that_does_not_stop_after_the_signal_is_stopped_hard():
    """Faust waits for every event taken to be acked before it stops: a stuck agent would hold the worker for ever."""
    code = (
        "import logging, time; from pipeline.runtime.transport import _stop_hard_after; logging.basicConfig();"
        "_stop_hard_after(0.5); time.sleep(30)"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert done.returncode == 1 and time.monotonic() - started < 10
    assert "did not stop within" in done.stderr


async def test_a_crashed_processing_task_makes_the_worker_not_live_and_not_ready_at_once():
    from pipeline.core.settings import QueueConfig, load_settings
    from pipeline.processing.processor import Message
    from pipeline.runtime.app import create_app

    app = create_app(load_settings(broker_url="127.0.0.1:1", app_id="crash-test"), QueueConfig())
    assert app.health.live().ok and app.health.live().checks["crashed"] is False
    topic = next(t for t in app.processing if t.endswith("contact-events"))

    def bug(*args, **kwargs):  # input never raises; a bug does
        raise RecursionError("maximum recursion depth exceeded")

    app.pipeline.process = bug  # type: ignore[method-assign]
    app.inboxes[topic].put(0, [Message(topic, 0, 0, b"q1", b"{}")], 4)
    with pytest.raises(RecursionError):
        await app.processing[topic]()
    assert not app.health.live().ok and app.health.live().checks["crashed"] is True
    assert not app.health.ready().ok and app.health.ready().checks["crashed"] is True


def _messages(partition: int, offsets: range, size: int = 10):
    from pipeline.processing.processor import Message

    return [Message("t", partition, o, None, b"x" * size) for o in offsets]


async def test_an_inbox_hands_over_whole_fetches_in_order_up_to_the_batch_size():
    from pipeline.runtime.transport import Held, Inbox

    inbox = Inbox(Held(1 << 20), max_messages=100)
    inbox.put(0, _messages(0, range(0, 3)), 30)
    inbox.put(1, _messages(1, range(5, 10)), 50)
    batch = await inbox.take(4, within=0.0)
    assert [(m.partition, m.offset) for m in batch] == [(0, 0), (0, 1), (0, 2), (1, 5)]
    assert inbox.messages == 4  # the rest of the fetch stays first in line
    assert inbox.held.bytes == 80  # a batch taken is held until it is applied
    inbox.done()
    assert inbox.held.bytes == 40
    batch = await inbox.take(100, within=0.01)
    assert [m.offset for m in batch] == [6, 7, 8, 9] and inbox.messages == 0
    inbox.done()
    assert inbox.held.bytes == 0


async def test_an_inbox_waits_within_the_flush_time_for_more_and_no_longer():
    import asyncio

    from pipeline.runtime.transport import Held, Inbox

    inbox = Inbox(Held(1 << 20), max_messages=100)

    async def later() -> None:
        await asyncio.sleep(0.05)
        inbox.put(0, _messages(0, range(1, 2)), 10)

    inbox.put(0, _messages(0, range(0, 1)), 10)
    asyncio.get_running_loop().create_task(later())
    started = time.monotonic()
    batch = await inbox.take(100, within=0.5)  # not full: waits the flush time for more
    assert [m.offset for m in batch] == [0, 1] and 0.45 <= time.monotonic() - started < 2
    inbox.done()
    inbox.put(0, _messages(0, range(2, 4)), 20)
    started = time.monotonic()
    assert len(await inbox.take(2, within=5.0)) == 2 and time.monotonic() - started < 0.5  # full: at once
    inbox.done()


async def test_an_inbox_waits_no_longer_once_it_holds_a_batch_of_bytes():
    """A batch takes a quarter of the bytes held at most: waiting for more than that only idles the worker while
    the fetches it cannot take pile up."""
    from pipeline.runtime.transport import Held, Inbox

    inbox = Inbox(Held(4000), max_messages=100)
    inbox.put(0, _messages(0, range(0, 2)), 1000)  # a quarter of the bound: a whole batch
    started = time.monotonic()
    batch = await inbox.take(100, within=5.0)
    assert [m.offset for m in batch] == [0, 1] and time.monotonic() - started < 1
    assert inbox.bytes == 0 and inbox.taken == 1000
    inbox.done()
    inbox.put(0, _messages(0, range(2, 3)), 600)
    inbox.put(1, _messages(1, range(0, 1)), 600)
    started = time.monotonic()
    batch = await inbox.take(100, within=5.0)  # 1,200 bytes held: more than a batch takes, so at once
    assert [(m.partition, m.offset) for m in batch] == [(0, 2), (1, 0)] and time.monotonic() - started < 1


def test_an_inbox_is_full_at_its_messages_or_at_the_bytes_held_by_all_inboxes():
    from pipeline.runtime.transport import Held, Inbox

    held = Held(100)
    contacts, agents = Inbox(held, max_messages=3), Inbox(held, max_messages=50)
    contacts.put(0, _messages(0, range(0, 2)), 20)
    assert not contacts.full()
    contacts.put(0, _messages(0, range(2, 3)), 10)
    assert contacts.full() and not agents.full()
    agents.put(1, _messages(1, range(0, 7), size=10), 70)
    assert agents.full() and held.bytes == 100  # the bytes are shared
    contacts.discard(0)
    assert not contacts.full() and not agents.full() and held.bytes == 70 and contacts.messages == 0
    agents.discard()
    assert held.bytes == 0 and agents.messages == 0 and not agents.chunks


def test_discarding_one_partition_keeps_the_others():
    from pipeline.runtime.transport import Held, Inbox

    inbox = Inbox(Held(1 << 20), max_messages=100)
    inbox.put(0, _messages(0, range(0, 2)), 20)
    inbox.put(1, _messages(1, range(0, 3)), 30)
    inbox.put(0, _messages(0, range(2, 4)), 20)
    inbox.discard(0)
    assert [c[0] for c in inbox.chunks] == [1] and inbox.messages == 3 and inbox.held.bytes == 30


async def test_a_batch_takes_a_quarter_of_the_held_bytes_bound_at_most_and_one_fetch_at_least():
    from pipeline.runtime.transport import Held, Inbox

    inbox = Inbox(Held(400), max_messages=1000)
    for offset in range(0, 30, 3):
        inbox.put(0, _messages(0, range(offset, offset + 3), size=20), 60)  # 60 bytes a fetch, 600 held
    batch = await inbox.take(1000, within=0.0)
    assert len(batch) == 6 and inbox.taken == 120  # two fetches: the first alone is under 100 bytes
    inbox.done()
    big = Inbox(Held(400), max_messages=1000)
    big.put(0, _messages(0, range(0, 1), size=500), 500)
    assert len(await big.take(1000, within=0.0)) == 1  # one fetch over the bound still comes


@pytest.mark.integration
async def test_a_rewind_of_a_partition_taken_away_is_skipped_and_the_others_are_read_again(broker, caplog):
    """A rebalance can take a partition away between a batch asking to read it again and the fetch loop's seek;
    aiokafka's seek raises for a partition not assigned (IllegalStateError), which would stop the fetcher."""
    import logging
    import uuid

    from aiokafka import AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from faust.types import TP

    from pipeline.processing.processor import Message
    from pipeline.runtime.transport import App, Held, Inbox

    topic = f"rewind-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 2, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        for offset in range(5):
            await producer.send_and_wait(topic, b"m%d" % offset, partition=0)
    finally:
        await producer.stop()

    app = App(topic, fetch_max_wait_ms=100, broker=f"kafka://{broker.bootstrap}", store="memory://")
    consumer = app.consumer
    thread = consumer._thread  # the real consumer thread and its aiokafka consumer
    owned, taken_away = TP(topic, 0), TP(topic, 1)

    async def in_thread(call):  # aiokafka's consumer is used from its own thread only, as the fetch loop does
        async def run():
            return await call(thread._ensure_consumer())

        return await thread.call_thread(run)

    async def assign(kafka):  # what the rebalance leaves this worker: partition 0 only
        kafka.assign([TopicPartition(*owned)])

    async def fetch(kafka):
        got: list[int] = []
        for _ in range(20):
            got += [r.offset for r in (await kafka.getmany(TopicPartition(*owned), timeout_ms=500)).get(owned, [])]
            if got and got[-1] == 4:
                break
        return got

    await thread.start()
    try:
        await in_thread(assign)
        assert await in_thread(fetch) == [0, 1, 2, 3, 4]
        inbox = Inbox(Held(1 << 20), max_messages=100)
        inbox.put(0, [Message(topic, 0, 4, None, b"m4")], 2)  # fetched before the seek: forgotten at it
        consumer.rewind(taken_away, 2)
        consumer.rewind(owned, 3)
        with caplog.at_level(logging.INFO, logger="pipeline.runtime.transport"):
            await consumer._rewind_now({topic: inbox})
        assert consumer.rewinds == {} and inbox.messages == 0
        assert consumer._read_offset.get(owned) == 3 and taken_away not in consumer._read_offset
        assert await in_thread(fetch) == [3, 4]  # the partition still assigned is read again from where asked
        skipped = [r.getMessage() for r in caplog.records if r.name == "pipeline.runtime.transport"]
        assert skipped == [f"{topic}[1]: not assigned any more; not read again from 2"]
    finally:
        await thread.stop()
