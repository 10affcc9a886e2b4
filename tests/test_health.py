"""Liveness, readiness, lag and latency logic of pipeline.runtime.health, without a broker (the fault suite
checks the same endpoints against the embedded broker)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry

from pipeline.processing.processor import Message
from pipeline.runtime.health import BrokerProbe, Health, HealthCollector, Throughput, WorkerView


def _m(partition: int, offset: int, written: float | None) -> Message:
    """A message of topic "t" as a batch carries it (`written`: its Kafka timestamp in seconds)."""
    return Message("t", partition, offset, None, b"{}", written)


def view(assigned=(("t", 0),), high=None, joined=True, rebalancing=False, crashed=False, applied=None):
    high = high or {}
    applied = applied or {}
    return WorkerView(
        assigned=lambda: list(assigned),
        highwater=lambda t, p: high.get((t, p)),
        applied=lambda t, p: applied.get((t, p)),
        joined=lambda: joined,
        rebalancing=lambda: rebalancing,
        crashed=lambda: crashed,
    )


def up_probe() -> BrokerProbe:
    probe = BrokerProbe("127.0.0.1:1")
    probe._answered()
    return probe


def test_lag_is_the_high_watermark_minus_the_next_offset_to_apply():
    h = Health(
        view(assigned=[("t", 0), ("t", 1), ("t", 2)], high={("t", 0): 10, ("t", 1): 10}, applied={("t", 0): 9}),
        up_probe(),
        Throughput(),
    )
    # partition 0 applied to its end; partition 1 never applied: all 10 wait; partition 2: high unknown, no series
    assert h.lag() == {("t", 0): 0, ("t", 1): 10}


def test_ready_needs_the_broker_the_group_and_no_rebalance():
    t = Throughput()
    assert Health(view(), up_probe(), t).ready().ok
    assert not Health(view(), BrokerProbe("127.0.0.1:1"), t).ready().ok
    assert not Health(view(joined=False), up_probe(), t).ready().ok
    assert not Health(view(rebalancing=True), up_probe(), t).ready().ok
    assert not Health(view(crashed=True), up_probe(), t).ready().ok


def test_not_live_when_crashed_or_stalled_with_messages_waiting():
    t = Throughput()
    t.observe_batch([_m(0, 4, 100.0)], now=100.0)
    waiting = view(high={("t", 0): 10}, applied={("t", 0): 4})
    assert Health(waiting, up_probe(), t, stall_seconds=60).live(now=150.0).ok
    stalled = Health(waiting, up_probe(), t, stall_seconds=60).live(now=161.0)
    assert not stalled.ok and stalled.checks["stalled"] and stalled.checks["messages_waiting"] == 5
    # nothing waiting, or the broker away, or a rebalance: a quiet worker is not a stuck one
    assert Health(view(high={("t", 0): 5}, applied={("t", 0): 4}), up_probe(), t, stall_seconds=60).live(now=999).ok
    assert Health(waiting, BrokerProbe("127.0.0.1:1"), t, stall_seconds=60).live(now=999).ok
    rebalancing = view(high={("t", 0): 10}, applied={("t", 0): 4}, rebalancing=True)
    assert Health(rebalancing, up_probe(), t, stall_seconds=60).live(now=999).ok
    assert not Health(view(crashed=True), up_probe(), t).live().ok


def test_probe_counts_an_outage_once_and_logs_both_transitions(caplog):
    probe = BrokerProbe("127.0.0.1:1")
    probe._failed("refused")  # not up yet: waiting, not an outage
    probe._answered()
    probe._failed("timeout")
    probe._failed("timeout")
    assert (probe.up, probe.outages, probe.failures) == (False, 1, 3)
    probe._answered()
    assert probe.up and probe.last_error == ""
    messages = [r.getMessage() for r in caplog.records]
    assert sum("is not answering (" in m for m in messages) == 1
    assert sum("answering again" in m for m in messages) == 1


def test_latency_histogram_and_exported_series():
    t = Throughput()
    t.observe_batch([_m(0, 1, 99.995), _m(0, 2, 99.0), _m(1, 7, None)], now=100.0)
    assert t.processed == {("t", 0): 2, ("t", 1): 7}
    registry = CollectorRegistry()
    registry.register(HealthCollector(Health(view(high={("t", 0): 3}, applied={("t", 0): 2}), up_probe(), t)))
    get = registry.get_sample_value
    assert get("cc_pipeline_processing_latency_seconds_count") == 2
    assert get("cc_pipeline_processing_latency_seconds_bucket", {"le": "0.01"}) == 1
    assert get("cc_pipeline_processing_latency_seconds_bucket", {"le": "1.0"}) == 2
    assert abs(get("cc_pipeline_processing_latency_seconds_sum") - 1.005) < 1e-9
    assert get("cc_pipeline_consumer_lag_messages", {"topic": "t", "partition": "0"}) == 0
    assert get("cc_pipeline_broker_up") == 1 and get("cc_pipeline_ready") == 1
    t.forget("t", 0)
    assert ("t", 0) not in t.processed


def test_throughput_times_its_own_batches_for_the_benchmark():
    t = Throughput()
    assert (t.messages, t.first_batch) == (0, None)
    t.observe_batch([_m(0, 4, None)])
    first = t.first_batch
    t.observe_batch([_m(0, 5, None), _m(1, 0, None)])
    assert t.messages == 3 and first is not None and first[1] == 0 and t.first_batch == first
    assert t.last_batch_monotonic >= first[0]


def test_the_first_batch_is_timed_from_when_it_began():
    t = Throughput()
    t.observe_batch([_m(0, 0, None)], started=5.0)  # the agent passes time.monotonic() at the batch's start
    t.observe_batch([_m(0, 1, None)], started=9.0)
    assert t.first_batch == (5.0, 0) and t.messages == 2


def test_the_first_batch_is_the_one_that_began_first_not_the_first_to_end():
    # A topic's task can begin a long batch, then await its records' delivery while another topic's short batch
    # begins and ends: timed from the short one, the benchmark left the long one's work out of its time and CPU
    # but counted its events.
    t = Throughput()
    t.observe_batch([_m(0, 0, None)], started=5.4, started_cpu=3.2)  # began second, ended first
    t.observe_batch([_m(1, 0, None)], started=5.0, started_cpu=3.0)
    t.observe_batch([_m(1, 1, None)], started=6.0, started_cpu=4.0)
    assert t.first_batch == (5.0, 0) and t.first_batch_cpu == 3.0 and t.messages == 3


def test_the_batches_cpu_is_the_process_time_from_the_first_batchs_start_to_the_last_ones_end():
    t = Throughput()
    assert t.first_batch_cpu is None
    began = time.process_time()
    t.observe_batch([_m(0, 0, None)], started_cpu=began)
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:  # CPU spent between two batches counts
        pass
    t.observe_batch([_m(0, 1, None)], started_cpu=began + 1.0)  # only the first batch's start is kept
    assert t.first_batch_cpu == began and t.last_batch_cpu - began >= 0.05
    assert t.last_batch_cpu <= time.process_time()
