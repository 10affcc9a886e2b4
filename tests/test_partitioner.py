"""Our murmur2 partitioner against aiokafka's (Kafka's default partitioner, ported from the Java client)."""

import random

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as reference_murmur2

from pipeline.contract.partitioner import KeyPartitioner, murmur2, partition_of


def test_murmur2_is_kafkas_for_every_length_and_tail():
    rnd = random.Random(7)
    for length in range(130):
        for _ in range(5):
            key = rnd.randbytes(length)
            assert murmur2(key) == reference_murmur2(key), key


def test_partitions_are_the_default_partitioners_and_remembered_keys_stay_right():
    rnd = random.Random(8)
    keys = [
        f"agent-{rnd.randrange(10_000)}|2026-11-30T09:{rnd.randrange(60):02d}:00+00:00".encode() for _ in range(300)
    ] + [b"", b"a", b"ab", b"abc"]
    ours, theirs = KeyPartitioner(remember=50), DefaultPartitioner()
    for partitions in ([0], [0, 1, 2], list(range(12))):
        for key in keys + keys:  # the second pass hits remembered hashes (and forgets them when full)
            assert ours(key, partitions, partitions) == theirs(key, partitions, partitions)
            assert partition_of(key, len(partitions)) == theirs(key, partitions, partitions)
    assert len(ours._hashes) <= 50


def test_a_key_of_none_goes_to_an_available_partition():
    assert KeyPartitioner()(None, [0, 1, 2], [2]) == 2
    assert KeyPartitioner()(None, [0, 1, 2], []) in (0, 1, 2)
