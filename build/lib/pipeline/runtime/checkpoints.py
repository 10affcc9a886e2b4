"""State checkpoints in a Faust table: a whole checkpoint now and then, the changes since in between.

Each source partition p has a header at key p and its data at keys p + k × partitions (so everything lands in
changelog partition p, in the order written; see `PartitionStateTable`). The data is a list of blobs, each
written in chunks of at most `chunk_bytes` (a large center's FCR state outgrows the producer's largest
message): the first blob is a whole checkpoint, the
others the changes since, oldest first. The header names them and is written last, so a crash before it
leaves the previous checkpoint readable.

A state that can tell what changed (`pipeline.processing.processor.Change`) gets a blob of its changes appended until
they add up to `LOG_RATIO` of the whole; then a whole one is written in the other region of keys and the
previous region's keys are deleted, so the table (held in memory) keeps one whole checkpoint and its changes
per partition (a crash between a header and those deletes leaves the keys until their region is written again).
Writing every partition's state whole every few seconds would grow with the state: days of FCR contacts make
a checkpoint round take seconds, and a broker that keeps every changelog record fills up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
import msgspec

from pipeline.processing.processor import Change, PartitionedProcessor

REGION = 10_000  # key indexes per region (a region holds the chunks of one whole checkpoint and its changes)
LOG_RATIO = 0.5  # changes are appended until their bytes reach this share of the whole checkpoint's


class Header(msgspec.Struct):
    """A partition's stored blobs (JSON at key p): the region of keys they are in, and each blob's first key
    index, chunks and bytes; the first blob is a whole checkpoint, the others the changes since."""

    region: int
    blobs: list[tuple[int, int, int]]


_HEADER = msgspec.json.Decoder(Header)


class PartitionStateTable(faust.Table):
    """State checkpoints keyed by the source partition they belong to.

    The key modulo the partition count *is* the partition (the header at key p, its data at p + k × partitions),
    so each lives in the changelog partition of the same number and Faust restores it to whichever worker is
    assigned that source partition. This lets us write it from a batch or a timer, where Faust has no current
    event to take the partition from.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Changelog writes not yet known delivered. Faust's producer flush is no proof: its buffer gives up
        # waiting after 0.1 s with writes still queued, and an offset committed then outlives the checkpoint
        # that covers it in a crash (its events are never applied again).
        self.sent: list[asyncio.Future] = []

    def partition_for_key(self, key: Any) -> int:
        assert self.partitions is not None  # `create_app` gives every checkpoint table its partition count
        return int(key) % self.partitions

    # Faust's own, keeping the delivery futures (no key TTLs here)
    def on_key_set(self, key: Any, value: Any) -> None:
        self.sent.append(self.send_changelog(self.partition_for_key(key), key, value))
        self._sensor_on_set(self, key, value)

    def on_key_del(self, key: Any) -> None:
        self.sent.append(self.send_changelog(self.partition_for_key(key), key, value=None, value_serializer="raw"))
        self._sensor_on_del(self, key)

    async def delivered(self) -> None:
        """Wait until every write so far is in the changelog (raises if one failed: its acks must not go)."""
        sent, self.sent = self.sent, []
        if sent:
            await asyncio.gather(*sent)


class Checkpoints:
    """One processor's checkpoints and the offsets they let the consumer commit (see `pipeline.runtime.app` and
    the module docstring)."""

    def __init__(
        self,
        processor: PartitionedProcessor,
        table: PartitionStateTable,
        every: float,
        partitions: int,
        chunk_bytes: int,
        commit: Callable[[dict[int, int]], Awaitable[None]],
        deliver: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.processor = processor
        self.table = table
        self.every = every
        self.partitions = partitions
        self.chunk_bytes = chunk_bytes
        # commits the offsets of the next message to read, by partition, once a checkpoint covers those before
        self.commit = commit
        self.pending = False  # batches applied that no stored checkpoint covers yet
        self.since = 0.0  # monotonic time the oldest of them was applied
        self.turn = 0  # the partition first in line for its whole state this round
        # Held by the agent from applying a batch until `applied`, and by a checkpoint: a checkpoint taken while a
        # batch's records or forwarded offers are still unsent would skip its offsets after a crash, so nothing
        # would ever send them.
        self.lock = asyncio.Lock()
        # Delivers everything sent so far (the producer's flush): a checkpoint stored before the records of the
        # batches it covers could outlive them in a crash.
        self.deliver = deliver

    def _key(self, partition: int, index: int) -> int:
        return partition + self.partitions * index

    def _header(self, partition: int) -> Header | None:
        """The partition's stored blobs (None: nothing stored)."""
        value = self.table.data.get(partition)
        return None if value is None else _HEADER.decode(value)

    def stored(self, partition: int) -> list[bytes] | None:
        """The stored checkpoint: the last whole one, then the changes since, oldest first."""
        header = self._header(partition)
        if header is None:
            return None
        data = self.table.data
        return [
            b"".join(data[self._key(partition, first + i)] for i in range(count)) for first, count, _ in header.blobs
        ]

    def _write(self, partition: int, change: Change, whole_due: bool = True) -> tuple[int, bool]:
        """Store a partition's change, or its whole state if there is none or if `whole_due` and the changes
        reach `LOG_RATIO` of the whole. Returns the bytes written and whether they were the whole state."""
        header = self._header(partition)
        if change.delta is not None and header is not None:
            whole_bytes = header.blobs[0][2]
            logged = sum(size for _, _, size in header.blobs[1:]) + len(change.delta)
            first, count, _ = header.blobs[-1]
            end = first + count + -(-len(change.delta) // self.chunk_bytes)
            if (logged <= LOG_RATIO * whole_bytes or not whole_due) and end <= _first_index(header.region + 1):
                self._put(partition, first + count, change.delta)
                blob = (first + count, end - first - count, len(change.delta))
                self._put_header(partition, Header(header.region, [*header.blobs, blob]))
                return len(change.delta), False
        data = change.whole()
        region = 0 if header is None else 1 - header.region
        first = _first_index(region)
        count = self._put(partition, first, data)
        self._put_header(partition, Header(region, [(first, count, len(data))]))
        for old_first, old_count, _ in header.blobs if header else ():  # superseded by what was just written
            for i in range(old_count):
                del self.table[self._key(partition, old_first + i)]
        return len(data), True

    def _put(self, partition: int, first: int, data: bytes) -> int:
        chunks = [data[i : i + self.chunk_bytes] for i in range(0, len(data), self.chunk_bytes)] or [b""]
        if first + len(chunks) > _first_index((first - 1) // REGION + 1):
            raise ValueError(f"checkpoint of partition {partition} is {len(data)} bytes, over {REGION} chunks")
        for i, chunk in enumerate(chunks):
            self.table[self._key(partition, first + i)] = chunk
        return len(chunks)

    def _put_header(self, partition: int, header: Header) -> None:
        self.table[partition] = msgspec.json.encode(header)

    async def applied(self) -> None:
        """A batch was applied and its results sent (call holding `lock`, taken before applying it): checkpoint
        when one is due."""
        if not self.pending:
            self.since = time.monotonic()
            self.pending = True
        await self._write_if_due(False)

    async def maybe_write(self, now: bool = False) -> None:
        """Checkpoint and commit if `every` has passed (or `now`: before partitions are revoked)."""
        async with self.lock:
            await self._write_if_due(now)

    async def _write_if_due(self, now: bool) -> None:
        if not self.pending or not (now or time.monotonic() - self.since >= self.every):
            return
        started = time.perf_counter()
        if self.deliver is not None:
            await self.deliver()
        # No await from here until `pending` is cleared: the lock keeps batches out, but be plain about it.
        changes = self.processor.checkpoint()
        self.pending = False
        # One partition's whole state per round at most, by turns: partitions fed alike reach the ratio together,
        # and a contact partition's whole state took ~0.15 s at 5,000 agents (the worker processes nothing
        # meanwhile). The others append their changes this round.
        order = sorted(changes, key=lambda p: (p - self.turn) % self.partitions)
        self.turn += 1
        written, whole_due = 0, True
        for partition in order:
            size, whole = self._write(partition, changes[partition], whole_due)
            written += size
            whole_due = whole_due and not (whole and changes[partition].delta is not None)
        await self.table.delivered()  # before the commit: a committed offset must never be ahead of its checkpoint
        stats, topic = self.processor.stats, self.processor.topic
        stats.checkpoints[topic] += len(changes)
        stats.checkpoint_bytes[topic] += written
        stats.checkpoint_seconds[topic] += time.perf_counter() - started
        await self.commit({p: c.offset + 1 for p, c in changes.items() if c.offset >= 0})


def _first_index(region: int) -> int:
    """The first key index of a region (index 0, the key p itself, is the header)."""
    return 1 + region * REGION
