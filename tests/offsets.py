"""The consumer group's committed offsets, as the fault and bench tests read them."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.core.settings import Settings


async def committed(settings: Settings, topic: str) -> dict[int, int]:
    """The worker group's committed offsets (next offset to read) of a topic's partitions; it does not join the
    group."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.broker_url, group_id=settings.app_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        out = {}
        for p in range(settings.partitions):
            offset = await consumer.committed(TopicPartition(topic, p))
            if offset is not None and offset >= 0:
                out[p] = offset
        return out
    finally:
        await consumer.stop()
