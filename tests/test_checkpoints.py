"""Checkpoints too big for one Kafka message: chunked into alternating slots, read back whole."""

from __future__ import annotations

import os

import pytest

from pipeline.app import CHUNKED, Checkpoints


class Table(dict):
    """What Checkpoints uses of a Faust table: item assignment (the changelog write) and `.data` (the store)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[int] = []
        self.deletes: list[int] = []
        self.fail_at: int | None = None  # a key whose write fails, as a crash would

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
    def __init__(self) -> None:
        self.pending: dict[int, bytes] = {}

    def checkpoint(self) -> dict[int, bytes]:
        out, self.pending = self.pending, {}
        return out


def store(c: Checkpoints, partition: int, data: bytes) -> None:
    c.processor.pending = {partition: data}
    for p, d in c.processor.checkpoint().items():
        c._store(p, d)


@pytest.fixture
def checkpoints() -> Checkpoints:
    return Checkpoints(Processor(), Table(), every=2.0, partitions=4, chunk_bytes=1000)


def test_a_small_checkpoint_is_one_value_at_the_partition_key(checkpoints):
    store(checkpoints, 3, b"x" * 1000)
    assert checkpoints.table == {3: b"x" * 1000}
    assert checkpoints.stored(3) == b"x" * 1000 and checkpoints.stored(2) is None


def test_a_big_checkpoint_is_chunked_on_its_partition_and_read_back_whole(checkpoints):
    first, second = os.urandom(4500), os.urandom(2500)
    store(checkpoints, 1, first)
    assert checkpoints.stored(1) == first
    # every key lands on the same changelog partition, the header last
    assert all(k % 4 == 1 for k in checkpoints.table.writes) and checkpoints.table.writes[-1] == 1
    assert checkpoints.table[1] == CHUNKED + b"0,5"
    slot0 = set(checkpoints.table) - {1}
    checkpoints.table.writes.clear()
    store(checkpoints, 1, second)  # the other slot, then the header, then the first slot's chunks go
    assert checkpoints.table[1] == CHUNKED + b"1,3"
    assert checkpoints.stored(1) == second
    assert checkpoints.table.writes.index(1) == 3 and checkpoints.table.deletes == sorted(slot0)
    assert not slot0 & set(checkpoints.table) and len(checkpoints.table) == 4  # header and 3 chunks
    store(checkpoints, 1, b"small again")
    assert checkpoints.stored(1) == b"small again" and checkpoints.table == {1: b"small again"}


def test_a_crash_before_the_header_leaves_the_previous_checkpoint_whole(checkpoints):
    first = os.urandom(4500)
    store(checkpoints, 1, first)
    header = checkpoints.table[1]
    checkpoints.table.fail_at = 1  # the header write of the next checkpoint never happens

    with pytest.raises(ConnectionError):
        store(checkpoints, 1, os.urandom(2500))
    assert checkpoints.table[1] == header and checkpoints.stored(1) == first
