"""First contact resolution across queues: forwarding offers by customer, and the FCR processor. No Faust.

Contact events are keyed by queue, but FCR needs every contact of one customer, whatever the queue or channel.
So the contact worker forwards each `contact.offered` it applied, with the customer id replaced by a keyed
hash (HMAC-SHA256, `PIPELINE_CUSTOMER_HASH_KEY`), to the internal topic `<app id>-customer-contacts` keyed by
that hash, plus its partitions' watermarks to every partition of it; the FCR agent keeps the customers' recent
contacts (`pipeline.state.repeats`) and publishes FCR records on the KPI topic.

Privacy: the customer id never leaves the contact worker's memory; the hash stays in the internal topic and the
FCR state checkpoint, is forgotten with the window (see `pipeline.state.repeats`), and is never in a record, a
metric label or a log line.

The Faust wiring (the internal topic, the FCR agent, its checkpoints) is `pipeline.runtime.fcr`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections import Counter
from typing import TYPE_CHECKING, NamedTuple

import msgspec

from pipeline.contract import events as ev
from pipeline.contract.partitioner import partitions_of
from pipeline.core.settings import ENV_PREFIX, QueueConfig, Settings, SettingsError
from pipeline.core.time import epoch_ms
from pipeline.kpis.quality import FcrRecord, build_fcr_record
from pipeline.processing.processor import BatchResult, Message, PartitionedProcessor, PipelineStats
from pipeline.state.repeats import (
    DUPLICATE,
    LATE,
    CustomerContact,
    CustomerContactMessage,
    RepeatState,
    SourceWatermark,
)

if TYPE_CHECKING:
    from pipeline.processing.processor import BatchResult

log = logging.getLogger(__name__)

TOPIC = "customer-contacts"
ANONYMOUS = "anon:"  # message key prefix of a contact without a customer id (a hex hash never contains ':')
# Public on purpose: a deployment that does not set PIPELINE_CUSTOMER_HASH_KEY has no secret at all.
DEVELOPMENT_HASH_KEY = b"cc-kpi development key: NOT SECRET, set PIPELINE_CUSTOMER_HASH_KEY in production"


def hash_key(settings: Settings) -> bytes:
    """The HMAC key: the configured secret, or the public development key with a loud warning."""
    if settings.customer_hash_key is None:
        log.warning(
            "%sCUSTOMER_HASH_KEY is not set: customer ids are hashed with the PUBLIC development key, "
            "which anyone can reverse by guessing ids. Set a long random secret in production.",
            ENV_PREFIX,
        )
        return DEVELOPMENT_HASH_KEY
    key = settings.customer_hash_key.get_secret_value()
    if len(key) < 16:  # checked here, not in Settings, so that the error message never shows the value
        raise SettingsError(
            f"{ENV_PREFIX}CUSTOMER_HASH_KEY: must be at least 16 characters (a long random "
            "secret), or empty for the development key"
        )
    return key.encode()


def customer_hash(key: bytes, customer_id: str) -> str:
    return hmac.new(key, customer_id.encode(), hashlib.sha256).hexdigest()


class Outgoing(NamedTuple):
    key: bytes | None
    value: bytes
    partition: int  # always given: a batch of watermarks alone has no key


class CustomerContactForwarder:
    """Contact-worker side: applied offers and the partitions' watermarks → messages for the internal topic."""

    def __init__(self, key: bytes, partitions: int, max_message_bytes: int = 1_048_576) -> None:
        self.key = key
        self.partitions = partitions  # of the customer-contacts topic
        # a record is at most ~600 bytes (ids of at most 128 characters), so 1 KiB each keeps a message within
        # the limit the FCR agent enforces: a contact batch of 200,000 events once made 1.1 MB messages
        self.max_records = max(1, max_message_bytes // 1024)
        self.sent_watermarks: dict[int, int] = {}
        self._encode = msgspec.json.Encoder().encode

    def messages(self, offered: list[ev.ContactOffered], watermarks: dict[int, int]) -> list[Outgoing]:
        """Per partition of the internal topic, JSON arrays of the batch's offers keyed to it (by customer
        hash, with Kafka's default partitioner), then the watermarks that moved, so that a watermark never
        overtakes an offer it covers. As few messages as the size limit allows, not one per offer: a Faust
        worker's cost is per message."""
        every = list(range(self.partitions))
        batches: dict[int, list] = {}
        keys: dict[int, bytes] = {}
        records, record_keys = [], []
        for e in offered:
            customer = customer_hash(self.key, e.customer_id) if e.customer_id else None
            records.append(
                CustomerContact(
                    customer=customer,
                    contact_id=e.contact_id,
                    queue_id=e.queue_id,
                    channel=e.channel,
                    time_ms=epoch_ms(e.time),
                    event_id=e.event_id,
                )
            )
            record_keys.append((customer if customer is not None else ANONYMOUS + e.contact_id).encode())
        for record, key, p in zip(records, record_keys, partitions_of(record_keys, self.partitions), strict=True):
            batches.setdefault(p, []).append(record)
            keys.setdefault(p, key)
        moved = []
        for source, wm in sorted(watermarks.items()):
            if wm > self.sent_watermarks.get(source, -(2**62)):
                self.sent_watermarks[source] = wm
                moved.append(SourceWatermark(partition=source, watermark_ms=wm))
        if moved:
            for p in every:
                batches.setdefault(p, []).extend(moved)
        n = self.max_records
        return [
            Outgoing(keys.get(p), self._encode(records[i : i + n]), p)
            for p, records in sorted(batches.items())
            for i in range(0, len(records), n)
        ]


class FcrProcessor(PartitionedProcessor[CustomerContact | SourceWatermark]):
    """Customer-contact messages → repeat state per partition → FCR records. No Faust."""

    def __init__(self, settings: Settings, queues: QueueConfig, stats: PipelineStats) -> None:
        super().__init__(settings, stats, settings.internal_topic(TOPIC), CustomerContactMessage)
        self.queues = queues
        self.late: Counter = Counter()  # (queue, channel): offers that came after the FCR horizon

    def window_hours(self, queue_id: str) -> float:
        return self.queues.for_queue(queue_id).fcr_window_hours

    def new_state(self) -> RepeatState:
        s = self.settings
        return RepeatState(
            s.interval_seconds, s.allowed_lateness_seconds, s.contact_timeout_seconds, self.window_hours, s.partitions
        )

    def _record(self, update, partition: int) -> FcrRecord:
        return build_fcr_record(update, self.settings.interval_seconds, self.window_hours(update.queue_id), partition)

    def _original(self, m: Message, item: CustomerContact | SourceWatermark) -> bytes:
        return msgspec.json.encode(item)

    def _handle(
        self, state: RepeatState, r: CustomerContact | SourceWatermark, m: Message, out: BatchResult, max_future: int
    ) -> None:
        if isinstance(r, SourceWatermark):
            state.observe_source(r.partition, r.watermark_ms)
            return
        result = state.apply(r)
        if result == DUPLICATE:
            self.stats.duplicates[self.topic] += 1
        elif result == LATE:
            self.late[(r.queue_id, r.channel)] += 1
