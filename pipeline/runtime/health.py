"""The worker's own health: liveness, readiness, broker reachability, consumer lag and processing latency.

- `BrokerProbe` asks Kafka for its metadata every few seconds on a connection of its own, so an unreachable
  or frozen broker shows as `cc_pipeline_broker_up 0` (and not ready) within one probe, with one log line when
  it goes away and one when it is back. It only observes: Faust's consumer and producer retry by themselves.
- `Throughput` is fed once per batch by the agents: the latency from a message's Kafka timestamp (when it was
  written) to the end of its batch, and the last offset processed per source partition (for the lag).
- `Health` answers `/health/live` and `/health/ready` and `HealthCollector` exports all of it at scrape time.

What it must not do: touch the queue state or the KPI topic, or make a worker exit. It reads the Faust app only
through the callables it is given (`WorkerView`), so it is tested without a broker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from pipeline.exposition.described import Described
from pipeline.processing.processor import Message

log = logging.getLogger(__name__)

# Latency buckets in seconds: from a fast batch (tens of ms) to a backlog after an outage (minutes).
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)

# Not live: messages are waiting on an owned partition, the broker answers, no rebalance runs, and no batch has
# finished for this long (at least; the app uses 10 x the session timeout when that is longer). A worker in that
# state is stuck and is better restarted: after a kill -9, a restarted worker has now and then joined, recovered
# and reported ready but never fetched (cf. faust-streaming #523, #629; #175 stalled agents).
STALL_SECONDS = 60.0


class Throughput:
    """Per-batch bookkeeping of the agents: processing latency and the last offset processed per partition."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self.bucket_counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.latency_sum = 0.0
        self.latency_count = 0
        self.processed: dict[tuple[str, int], int] = {}  # (topic, partition) -> last offset processed
        self.last_batch_at = 0.0  # wall clock of the end of the last batch (0: none yet)
        # for the benchmark, which reads them from /progress instead of timing the worker by polling it often:
        self.messages = 0  # source messages processed
        # (time.monotonic(), 0) when the earliest batch began: not always the first to end, as the input topics' tasks
        # interleave (one publishing its records while another applies its batch)
        self.first_batch: tuple[float, int] | None = None
        self.last_batch_monotonic = 0.0
        # the process's CPU seconds (every thread's: the consumer's fetches too) when the earliest batch began and the
        # last one ended: CPU per event, which other processes on the machine do not change as they change the rate
        self.first_batch_cpu: float | None = None
        self.last_batch_cpu = 0.0

    def observe_batch(
        self,
        messages: Sequence[Message],
        now: float | None = None,
        started: float | None = None,
        started_cpu: float | None = None,
    ) -> None:
        """The messages of a finished batch (their Kafka timestamps give the latency), and when it began
        (`time.monotonic()`, and `time.process_time()`)."""
        now = time.time() if now is None else now
        processed = self.processed
        counts = self.bucket_counts
        buckets = self.buckets
        n = len(messages)
        latency_sum, latency_count = 0.0, 0
        for topic, partition, offset, _, _, written in messages:  # per message: kept plain, it is the hot path
            if offset > processed.get((topic, partition), -1):
                processed[(topic, partition)] = offset
            if written is not None:
                latency = now - written if now > written else 0.0
                counts[bisect_left(buckets, latency)] += 1
                latency_sum += latency
                latency_count += 1
        self.latency_sum += latency_sum
        self.latency_count += latency_count
        self.last_batch_at = now
        self.messages += n
        self.last_batch_monotonic, self.last_batch_cpu = time.monotonic(), time.process_time()
        began = self.last_batch_monotonic if started is None else started
        if self.first_batch is None or began < self.first_batch[0]:  # nothing ended before the earliest began
            self.first_batch = (began, 0)
            self.first_batch_cpu = self.last_batch_cpu if started_cpu is None else started_cpu

    def forget(self, topic: str, partition: int) -> None:
        """A revoked partition: its lag is no longer this worker's to report."""
        self.processed.pop((topic, partition), None)


class BrokerProbe:
    """Is Kafka answering? A metadata request on a connection of our own, every `interval` seconds."""

    def __init__(
        self, bootstrap: str, interval: float = 2.0, timeout: float = 5.0, client_options: dict | None = None
    ) -> None:
        self.bootstrap = bootstrap
        self.client_options = client_options or {}  # TLS and SASL (pipeline.runtime.kafka_security)
        self.interval = interval
        self.timeout = timeout
        self.up = False
        self.checks = 0
        self.failures = 0
        self.outages = 0  # transitions from up to down
        self.down_since: float | None = None  # monotonic time of the first failed probe of the current outage
        self.last_error = ""
        self._bootstrapped = False
        self.ever_up = False

    async def check(self, client) -> bool:  # noqa: ANN001  (an aiokafka client)
        try:
            if not self._bootstrapped:
                await asyncio.wait_for(client.bootstrap(), self.timeout)
                self._bootstrapped = True
            await asyncio.wait_for(client.fetch_all_metadata(), self.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure means "not answering"; the reason goes to the log
            self._failed(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            return False
        self._answered()
        return True

    def _failed(self, error: str) -> None:
        self.checks += 1
        self.failures += 1
        self.last_error = error
        if self.down_since is None:
            self.down_since = time.monotonic()
            if self.ever_up:
                self.outages += 1
                log.warning(
                    "Kafka at %s is not answering (%s); Faust keeps retrying, this worker is not ready",
                    self.bootstrap,
                    error,
                )
            else:
                log.warning("Kafka at %s is not answering yet (%s); waiting", self.bootstrap, error)
        self.up = False

    def _answered(self) -> None:
        self.checks += 1
        if self.down_since is not None and self.ever_up:
            log.warning(
                "Kafka at %s is answering again after %.0f s", self.bootstrap, time.monotonic() - self.down_since
            )
        elif not self.up:
            log.info("Kafka at %s is answering", self.bootstrap)
        self.ever_up = True
        self.down_since = None
        self.up = True
        self.last_error = ""

    async def run(self) -> None:
        """Probe until cancelled (a Faust app task)."""
        from aiokafka.client import AIOKafkaClient

        client = AIOKafkaClient(
            bootstrap_servers=self.bootstrap,
            request_timeout_ms=int(self.timeout * 1000),
            client_id="cc-kpi-health",
            **self.client_options,
        )
        try:
            while True:
                await self.check(client)
                await asyncio.sleep(self.interval)
        finally:
            await client.close()


@dataclass
class WorkerView:
    """What health needs to know of the Faust worker, as callables (the app module wires them)."""

    assigned: Callable[[], Iterable[tuple[str, int]]]  # (topic, partition) of the source topics owned now
    highwater: Callable[[str, int], int | None]  # next offset to be written, as last fetched; None: unknown
    applied: Callable[[str, int], int | None]  # last offset applied (state's own, else the last processed)
    joined: Callable[[], bool]  # has joined the consumer group at least once
    rebalancing: Callable[[], bool]  # a rebalance or the recovery of state is in progress
    crashed: Callable[[], bool]  # the Faust app, or one of its agents, has crashed


@dataclass
class HealthReport:
    ok: bool
    checks: dict[str, object] = field(default_factory=dict)


class Health:
    def __init__(
        self, view: WorkerView, probe: BrokerProbe, throughput: Throughput, stall_seconds: float = STALL_SECONDS
    ) -> None:
        self.view = view
        self.probe = probe
        self.throughput = throughput
        self.stall_seconds = stall_seconds
        self.started_at = time.time()

    def lag(self) -> dict[tuple[str, int], int]:
        """Messages written but not yet applied, per owned source partition (where the high watermark is known)."""
        out = {}
        for topic, partition in self.view.assigned():
            high = self.view.highwater(topic, partition)
            if high is None:
                continue
            applied = self.view.applied(topic, partition)
            out[(topic, partition)] = max(0, high - (applied + 1 if applied is not None else 0))
        return out

    def live(self, now: float | None = None) -> HealthReport:
        """Restart me if false: the app crashed, or messages wait and nothing has been processed for too long."""
        now = time.time() if now is None else now
        crashed = self.view.crashed()
        waiting = sum(self.lag().values())
        last = self.throughput.last_batch_at or self.started_at
        stalled = waiting > 0 and self.probe.up and not self.view.rebalancing() and now - last > self.stall_seconds
        return HealthReport(
            not crashed and not stalled,
            {
                "crashed": crashed,
                "stalled": stalled,
                "messages_waiting": waiting,
                "seconds_since_last_batch": round(now - last, 3),
            },
        )

    def ready(self) -> HealthReport:
        """Send me traffic (scrapes) if true: Kafka answers, the group is joined and state is recovered."""
        checks: dict[str, object] = {
            "broker_up": self.probe.up,
            "joined": self.view.joined(),
            "rebalancing": self.view.rebalancing(),
            "crashed": self.view.crashed(),
        }
        if self.probe.last_error:
            checks["broker_error"] = self.probe.last_error
        ok = checks["broker_up"] and checks["joined"] and not checks["rebalancing"] and not checks["crashed"]
        return HealthReport(bool(ok), checks)


class HealthCollector(Described):
    """Health metrics at scrape time (registered next to the KPI collector)."""

    def __init__(self, health: Health) -> None:
        self.health = health

    def collect(self) -> Iterator[Metric]:
        h = self.health
        yield GaugeMetricFamily(
            "cc_pipeline_broker_up", "1 while Kafka answers this worker's metadata probe.", value=1 if h.probe.up else 0
        )
        yield CounterMetricFamily(
            "cc_pipeline_broker_outages", "Times Kafka stopped answering after answering.", value=h.probe.outages
        )
        yield CounterMetricFamily(
            "cc_pipeline_broker_probe_failures", "Failed Kafka metadata probes.", value=h.probe.failures
        )
        yield GaugeMetricFamily(
            "cc_pipeline_ready", "1 when /health/ready answers 200.", value=1 if h.ready().ok else 0
        )
        lag = GaugeMetricFamily(
            "cc_pipeline_consumer_lag_messages",
            "Messages written to an owned source partition and not yet processed.",
            labels=["topic", "partition"],
        )
        for (topic, partition), n in sorted(h.lag().items()):
            lag.add_metric([topic, str(partition)], n)
        yield lag
        t = h.throughput
        cumulative, buckets = 0, []
        for bound, n in zip((*map(str, t.buckets), "+Inf"), t.bucket_counts, strict=True):
            cumulative += n
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(
            "cc_pipeline_processing_latency_seconds",
            "From a message's Kafka timestamp (written) to the end of its batch (processed).",
            buckets=buckets,
            sum_value=t.latency_sum,
        )
        yield GaugeMetricFamily(
            "cc_pipeline_last_batch_timestamp_seconds",
            "Wall-clock time the last batch finished (0: none yet).",
            value=t.last_batch_at,
        )
