"""Checkpoint storage: whole checkpoints and the changes since, chunked into alternating regions of keys."""

from __future__ import annotations

import asyncio
import os

import orjson
import pytest

from pipeline.processing.processor import Change, PipelineStats
from pipeline.runtime.checkpoints import REGION, Checkpoints


class Table(dict):
    """What Checkpoints uses of a Faust table: item assignment (the changelog write) and `.data` (the store)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[int] = []
        self.deletes: list[int] = []
        self.fail_at: int | None = None  # a key whose write fails, as a crash would
        self.in_changelog: asyncio.Event | None = None  # set: the writes so far are delivered (None: at once)

    async def delivered(self) -> None:
        if self.in_changelog is not None:
            await self.in_changelog.wait()

    @property
    def data(self) -> dict:
        return self

    def __setitem__(self, key: int, value: bytes) -> None:
        if key == self.fail_at:
            raise ConnectionError("the worker died here")
        self.writes.append(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: int) -> None:
        self.deletes.append(key)
        super().__delitem__(key)


class Processor:
    topic = "t"

    def __init__(self) -> None:
        self.stats = PipelineStats()


def store(c: Checkpoints, partition: int, whole: bytes, delta: bytes | None = None) -> None:
    c._write(partition, Change(lambda: whole, delta))


def header(c: Checkpoints, partition: int) -> dict:
    return orjson.loads(c.table[partition])


@pytest.fixture
def checkpoints() -> Checkpoints:
    return Checkpoints(Processor(), Table(), every=2.0, partitions=4, chunk_bytes=1000, commit=Commits())


def test_a_small_checkpoint_is_one_chunk_and_a_header(checkpoints):
    store(checkpoints, 3, b"x" * 1000)
    assert checkpoints.stored(3) == [b"x" * 1000] and checkpoints.stored(2) is None
    assert checkpoints.table.writes == [3 + 4, 3]  # the data, then the header naming it
    assert header(checkpoints, 3) == {"region": 0, "blobs": [[1, 1, 1000]]}


def test_a_big_checkpoint_is_chunked_on_its_partition_and_read_back_whole(checkpoints):
    first, second = os.urandom(4500), os.urandom(2500)
    store(checkpoints, 1, first)
    assert checkpoints.stored(1) == [first]
    # every key lands on the same changelog partition, the header last
    assert all(k % 4 == 1 for k in checkpoints.table.writes) and checkpoints.table.writes[-1] == 1
    assert header(checkpoints, 1)["blobs"] == [[1, 5, 4500]]
    region0 = set(checkpoints.table) - {1}
    checkpoints.table.writes.clear()
    store(checkpoints, 1, second)  # the other region, then the header, then the first region's chunks go
    assert header(checkpoints, 1)["blobs"] == [[1 + REGION, 3, 2500]]
    assert checkpoints.stored(1) == [second]
    assert checkpoints.table.writes.index(1) == 3 and checkpoints.table.deletes == sorted(region0)
    assert not region0 & set(checkpoints.table) and len(checkpoints.table) == 4  # header and 3 chunks


def test_changes_are_appended_until_they_reach_a_share_of_the_whole_then_a_whole_one_replaces_them(checkpoints):
    whole = os.urandom(3000)
    store(checkpoints, 2, whole)
    changes = [os.urandom(600), os.urandom(700)]
    for delta in changes:
        store(checkpoints, 2, b"never asked for", delta)
    assert checkpoints.stored(2) == [whole, *changes]
    assert header(checkpoints, 2)["blobs"] == [[1, 3, 3000], [4, 1, 600], [5, 1, 700]]
    # 600 + 700 + 300 > half of 3000: the whole state instead, in the other region; the first one's keys go
    later = os.urandom(2000)
    store(checkpoints, 2, later, os.urandom(300))
    assert checkpoints.stored(2) == [later]
    assert sorted(checkpoints.table) == [2, *(2 + 4 * (1 + REGION + i) for i in range(2))]
    assert checkpoints.table.deletes == [2 + 4 * i for i in range(1, 6)]


def test_a_whole_state_not_due_this_round_waits_and_the_changes_are_appended(checkpoints):
    whole = os.urandom(1000)
    store(checkpoints, 2, whole)
    late = os.urandom(800)  # past half of the whole: a whole one is due, but another partition took this round's
    assert checkpoints._write(2, Change(lambda: b"not now", late), whole_due=False) == (800, False)
    assert checkpoints.stored(2) == [whole, late]
    assert checkpoints._write(2, Change(lambda: b"now", b"x"), whole_due=True) == (3, True)
    assert checkpoints.stored(2) == [b"now"]


class Commits(list):
    """The offsets committed, as the consumer would be asked to."""

    async def __call__(self, offsets: dict[int, int]) -> None:
        self.append(offsets)


async def test_a_round_writes_one_partitions_whole_state_at_most_and_then_commits_past_what_it_covers(checkpoints):
    for p in range(3):
        store(checkpoints, p, os.urandom(1000))
    checkpoints.every = 0.0
    offsets = {0: 41, 1: -1, 2: 7}  # partition 1: nothing applied yet
    checkpoints.processor.checkpoint = lambda: {
        p: Change(lambda p=p: b"whole %d" % p, os.urandom(600), offsets[p]) for p in range(3)
    }
    await checkpoints.applied()
    assert [len(checkpoints.stored(p)) for p in range(3)] == [1, 2, 2]  # partition 0 whole, the others appended
    assert checkpoints.commit == [{0: 42, 2: 8}] and not checkpoints.pending
    stats = checkpoints.processor.stats
    assert stats.checkpoints["t"] == 3 and stats.checkpoint_bytes["t"] == len(b"whole 0") + 2 * 600
    offsets[1] = 3
    await checkpoints.applied()
    assert [len(checkpoints.stored(p)) for p in range(3)] == [2, 1, 3]  # by turns: partition 1 first this round
    assert checkpoints.commit[-1] == {0: 42, 1: 4, 2: 8}
    await checkpoints.applied()
    assert [len(checkpoints.stored(p)) for p in range(3)] == [3, 2, 1]


async def test_nothing_is_checkpointed_or_committed_before_it_is_due(checkpoints):
    checkpoints.processor.checkpoint = lambda: {0: Change(lambda: b"whole", None, 5)}
    await checkpoints.applied()  # `every` is 2 s
    assert checkpoints.commit == [] and checkpoints.pending and checkpoints.stored(0) is None
    await checkpoints.maybe_write(now=True)  # as before partitions are revoked
    assert checkpoints.commit == [{0: 6}] and not checkpoints.pending


async def test_no_offset_is_committed_before_the_checkpoint_is_delivered_to_the_changelog(checkpoints):
    """If the checkpoint covering a committed offset were still on its way, a crash would leave the offset
    committed and the messages it covers applied nowhere."""
    checkpoints.every = 0.0
    checkpoints.processor.checkpoint = lambda: {0: Change(lambda: b"whole", None, 9)}
    checkpoints.table.in_changelog = asyncio.Event()
    writing = asyncio.create_task(checkpoints.applied())
    await asyncio.sleep(0.05)
    assert checkpoints.stored(0) == [b"whole"] and checkpoints.commit == []  # written, not yet known delivered
    checkpoints.table.in_changelog.set()
    await writing
    assert checkpoints.commit == [{0: 10}]


def test_changes_without_a_stored_checkpoint_store_the_whole_state(checkpoints):
    store(checkpoints, 0, b"whole", b"changes")
    assert checkpoints.stored(0) == [b"whole"]


@pytest.mark.parametrize("delta", [None, os.urandom(200)], ids=["whole", "changes"])
def test_a_crash_before_the_header_leaves_the_previous_checkpoint_whole(checkpoints, delta):
    first = os.urandom(4500)
    store(checkpoints, 1, first)
    before = checkpoints.table[1]
    checkpoints.table.fail_at = 1  # the header write of the next checkpoint never happens

    with pytest.raises(ConnectionError):
        store(checkpoints, 1, os.urandom(2500), delta)
    assert checkpoints.table[1] == before and checkpoints.stored(1) == [first]
