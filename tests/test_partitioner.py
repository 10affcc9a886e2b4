"""Our murmur2 partitioner against aiokafka's (Kafka's default partitioner, ported from the Java client)."""

import random

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as reference_murmur2
from hypothesis import given
from hypothesis import strategies as st

from pipeline.contract.partitioner import FEW, KeyPartitioner, murmur2, murmur2_each, partition_of, partitions_of


def test_murmur2_is_kafkas_for_every_length_and_tail():
    rnd = random.Random(7)
    for length in range(130):
        for _ in range(5):
            key = rnd.randbytes(length)
            assert murmur2(key) == reference_murmur2(key), key


def test_keys_hashed_together_get_kafkas_hash_for_every_length_and_tail():
    rnd = random.Random(9)
    for length in range(70):
        for n in (1, FEW - 1, FEW, 40):  # one by one, and in lanes
            keys = [rnd.randbytes(length) for _ in range(n)]
            assert murmur2_each(keys) == [reference_murmur2(k) for k in keys], (length, n)
    # the forwarder's keys: 64-character customer hashes, and `anon:` + contact ids of any length, mixed
    keys = [
        rnd.randbytes(32).hex().encode() if rnd.random() < 0.8 else f"anon:{rnd.random()}".encode() for _ in range(500)
    ]
    assert partitions_of(keys, 12) == [DefaultPartitioner()(k, list(range(12)), list(range(12))) for k in keys]


@given(st.lists(st.binary(max_size=12), max_size=80))  # few lengths: most share theirs with enough keys for lanes
def test_any_keys_hashed_together_keep_their_order_and_kafkas_hash(keys):
    assert murmur2_each(keys) == [reference_murmur2(k) for k in keys]


def test_keys_learnt_in_advance_are_partitioned_as_kafka_does_and_the_memory_stays_bounded():
    rnd = random.Random(10)
    keys = [f"agent-{i}|2026-11-30T09:{rnd.randrange(60):02d}:00+00:00".encode() for i in range(120)]
    ours, theirs, partitions = KeyPartitioner(remember=100), DefaultPartitioner(), list(range(7))
    ours.learn(keys[:60])
    assert set(ours._hashes) == set(keys[:60])
    assert all(ours(k, partitions, partitions) == theirs(k, partitions, partitions) for k in keys[:60])
    ours.learn(keys)  # more than it may remember: it forgets, then learns as many as it may
    assert len(ours._hashes) == 100
    assert all(ours(k, partitions, partitions) == theirs(k, partitions, partitions) for k in keys)
    assert len(ours._hashes) <= 100


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
