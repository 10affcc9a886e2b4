"""Kafka's default partitioner (murmur2 of the key, like the Java client and librdkafka), in fewer Python steps.

aiokafka's `murmur2` is pure Python, a loop of byte operations: 8-16 µs a key here. The worker partitions every
KPI record it publishes and every customer contact it forwards, and the event writer every event. This is the
same hash over 32-bit words (about three times faster), and `KeyPartitioner` remembers the hash of recent keys:
an interval's record is published again at every provisional revision and once final, an agent's events all
carry its id. The partitions are aiokafka's own (tests compare them), so any Kafka client keeps agreeing.

A batch's keys are hashed together (`murmur2_each`): each key's hash is a 64-bit lane of one Python integer, so
one multiplication or shift of that integer steps every key at once (a 32-bit lane times the 32-bit constant
fits its 64 bits; masks drop what a shift brings over from the next lane). No maintained C implementation of
Kafka's murmur2 is published for Python, and numpy's import would take memory the worker cannot spare at its
largest sizes (docs/performance.md, issue 22's thirteenth round).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence

SEED = 0x9747B28C
M = 0x5BD1E995
MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), as an unsigned 32-bit value."""
    length = len(data)
    h = (SEED ^ length) & MASK
    words = length >> 2
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * M) & MASK
        k ^= k >> 24
        h = ((h * M) ^ ((k * M) & MASK)) & MASK
    extra = length & 3
    if extra:
        tail = data[words * 4 :]
        if extra == 3:
            h ^= tail[2] << 16
        if extra >= 2:
            h ^= tail[1] << 8
        h = ((h ^ tail[0]) * M) & MASK
    h ^= h >> 13
    h = (h * M) & MASK
    return h ^ (h >> 15)


LANE = 8  # bytes per key in `_murmur2_lanes`: a 32-bit word, and room for its product with M
FEW = 4  # keys of one length hashed one by one below this many: their lanes would cost more


def murmur2_each(keys: Sequence[bytes]) -> list[int]:
    """`murmur2` of every key, those of one length together (`_murmur2_lanes`)."""
    by_length: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        by_length.setdefault(len(key), []).append(i)
    out = [0] * len(keys)
    for length, indexes in by_length.items():
        if len(indexes) < FEW:
            for i in indexes:
                out[i] = murmur2(keys[i])
        else:
            for i, h in zip(indexes, _murmur2_lanes([keys[i] for i in indexes], length), strict=True):
                out[i] = h
    return out


def _murmur2_lanes(keys: list[bytes], length: int) -> list[int]:
    """`murmur2` of keys of one length, each in a lane of `LANE` bytes of one integer (the module docstring)."""
    n = len(keys)
    data = b"".join(keys)
    each = int.from_bytes((b"\x01" + bytes(LANE - 1)) * n, "little")  # 1 in every lane: c * each puts c in all
    ones = MASK * each
    lanes = bytearray(LANE * n)  # bytes 4 to 7 of each lane stay 0

    def column(offset: int, size: int) -> int:
        """Bytes `offset` to `offset + size` of every key (little-endian, as `murmur2` reads them), a key a lane."""
        for m in range(4):
            lanes[m::LANE] = data[offset + m :: length] if m < size else bytes(n)
        return int.from_bytes(lanes, "little")

    h = ((SEED ^ length) & MASK) * each
    words = length >> 2
    for j in range(words):
        k = (column(4 * j, 4) * M) & ones
        k ^= (k >> 24) & ones
        h = ((h * M) & ones) ^ ((k * M) & ones)
    extra = length & 3
    if extra:
        h = ((h ^ column(4 * words, extra)) * M) & ones
    h ^= (h >> 13) & ones
    h = (h * M) & ones
    h ^= (h >> 15) & ones
    return list(struct.unpack(f"<{n}Q", h.to_bytes(LANE * n, "little")))


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a key among `partitions`."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def partitions_of(keys: Sequence[bytes], partitions: int) -> list[int]:
    """`partition_of` of every key (`murmur2_each`)."""
    return [(h & 0x7FFFFFFF) % partitions for h in murmur2_each(keys)]


class KeyPartitioner:
    """A drop-in for aiokafka's `DefaultPartitioner` (also Faust's `producer_partitioner`) that remembers the hash
    of up to `remember` recent keys (forgotten all at once when full: bounded memory, ~150 bytes a key)."""

    def __init__(self, remember: int = 32_768) -> None:
        self.remember = remember
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return random.choice(available or all_partitions)
        h = self._hashes.get(key)
        if h is None:
            if len(self._hashes) >= self.remember:
                self._hashes.clear()
            h = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[h % len(all_partitions)]

    def learn(self, keys: Sequence[bytes]) -> None:
        """Hash keys about to be sent all together (`murmur2_each`), so that each send finds its key's hash: a
        batch's final records have keys never sent before (each names its interval)."""
        hashes = self._hashes
        new = [key for key in dict.fromkeys(keys) if key not in hashes]
        if len(hashes) + len(new) > self.remember:
            hashes.clear()
            new = list(dict.fromkeys(keys))[: self.remember]
        for key, h in zip(new, murmur2_each(new), strict=True):
            hashes[key] = h & 0x7FFFFFFF
