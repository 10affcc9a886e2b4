"""The FCR side's wiring: the internal customer-contacts topic, its processor, checkpoints and metrics collector.
The logic is `pipeline.processing.fcr`; this only wires."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from pipeline.core.settings import QueueConfig, Settings
from pipeline.exposition.quality_metrics import FcrCollector
from pipeline.processing.fcr import TOPIC, CustomerContactForwarder, FcrProcessor, hash_key
from pipeline.processing.processor import BatchResult, ContactProcessor, PipelineStats
from pipeline.runtime.transport import raw_topic


@dataclass
class FcrWiring:
    """What `create_app` needs back: the forward hook for the contact agent, the processor (tests) and its
    checkpoints."""

    processor: FcrProcessor
    forwarder: CustomerContactForwarder
    topic: Any  # faust.TopicT
    checkpoints: Any  # pipeline.runtime.checkpoints.Checkpoints

    async def forward(self, result: BatchResult, contacts: ContactProcessor) -> None:
        """Send a contact batch's applied offers and its partitions' watermarks. Call before the contact
        checkpoint that covers the batch, so that a checkpoint never covers an offer that was not sent."""
        watermarks = {p: contacts.complete_upto(p) for p in result.touched if p in contacts.partitions}
        for o in self.forwarder.messages(result.offered, watermarks):
            await self.topic.send(key=o.key, value=o.value, partition=o.partition)


def wire_fcr(
    app: faust.App,
    settings: Settings,
    queues: QueueConfig,
    stats: PipelineStats,
    registry: CollectorRegistry,
    checkpoints,
) -> FcrWiring:
    """The internal topic, the FCR processor and its checkpoints, and the FCR metrics collector; `create_app`
    consumes the topic like its others (`checkpoints` is its own)."""
    processor = FcrProcessor(settings, queues, stats)
    forwarder = CustomerContactForwarder(hash_key(settings), settings.partitions, settings.max_message_bytes)
    topic = raw_topic(app, settings.internal_topic(TOPIC), partitions=settings.partitions)
    held = checkpoints(processor, "fcr-state", "customer-contacts")
    registry.register(FcrCollector(processor))
    return FcrWiring(processor, forwarder, topic, held)
