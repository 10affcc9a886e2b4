"""`python -m pipeline worker`: one worker process (Faust) against the configured Kafka."""

from __future__ import annotations

import asyncio
import logging

from pipeline.core.settings import ENV_PREFIX, QueueConfig, Settings, SettingsError, load_settings
from pipeline.runtime.broker import ensure_topics, wait_for_broker
from pipeline.runtime.startup import check_at_start


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_worker() -> int:
    """`python -m pipeline worker`: one Faust worker against PIPELINE_BROKER_URL."""
    from pipeline.runtime.app import create_app
    from pipeline.runtime.memory import tune_allocator, tune_collector
    from pipeline.runtime.transport import Worker

    settings = load_settings()
    queues = QueueConfig.load(settings.queues_file)
    if not settings.broker_url:
        raise SettingsError(
            f"{ENV_PREFIX}BROKER_URL is empty: a worker needs a Kafka broker (host:port[,host:port]);"
            " `run` and `replay` start the embedded broker for you"
        )
    check_at_start(settings)  # certificate files, the web config, the production profile: a sentence each
    configure_logging(settings)
    # Faust exits with status 1 when Kafka is down at start (seen with 0.15.3), so wait for it here.
    asyncio.run(wait_for_broker(settings))
    asyncio.run(ensure_topics(settings))
    tune_allocator()  # before Faust starts its threads (pipeline.runtime.memory)
    app = create_app(settings, queues)
    # The imported libraries' ~100,000 objects live as long as the process: out of the collector's sight, its full
    # collections pause the worker for less than half as long; and its youngest generation is collected less often
    # (pipeline.runtime.memory, docs/performance.md).
    tune_collector()
    worker = Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
    return 0
