"""Faust's app and Kafka transport with two changes: how long a fetch may wait at the broker for new records, and
no per-event statistics nobody reads.

Faust builds its aiokafka consumer with `fetch_max_wait_ms=1500` and offers no setting for it. Kafka answers a
waiting fetch as soon as records arrive, but the embedded Tansu broker (like some other Kafka-compatible
brokers) holds it for the whole wait, so a record could sit up to 1.5 s before the worker sees it: measured here
with one record every 50 ms, p50 / p99 delivery 0.37 / 0.74 s at 1,500 ms, 0.03 / 0.05 s at 100 ms.
`PIPELINE_FETCH_MAX_WAIT_MS` sets it; on Kafka a short wait only means more empty fetches when idle.

Faust's `Monitor` sensor does bookkeeping for every message, event and record sent (counters, timestamps, a
dict per event) for Faust's own web views, which the worker does not serve: its own figures are on /metrics.
The worker leaves it out (`monitor_sensor=False`); the bench's empty reference agent keeps Faust's default.
"""

from __future__ import annotations

import faust
from faust.transport.drivers import aiokafka as driver


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):  # noqa: ANN001, ANN202
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms  # read when the consumer starts its fetcher
        return consumer


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(driver.Transport):
    Consumer = _Consumer


class App(faust.App):
    """A Faust app on Kafka (aiokafka) whose consumer waits at most `fetch_max_wait_ms` per fetch, with or without
    Faust's `Monitor` sensor."""

    def __init__(self, *args, fetch_max_wait_ms: int, monitor_sensor: bool = True, **kwargs) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.monitor_sensor = monitor_sensor
        super().__init__(*args, **kwargs)

    def on_init_dependencies(self):  # noqa: ANN201
        dependencies = super().on_init_dependencies()  # adds the Monitor to the sensors
        if not self.monitor_sensor:
            self.sensors.remove(self.monitor)
        return dependencies

    def _new_transport(self) -> _Transport:
        return _Transport(self.conf.broker_consumer, self)
