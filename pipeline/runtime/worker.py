"""`python -m pipeline worker`: one worker process (Faust) against the configured Kafka."""

from __future__ import annotations

import asyncio
import gc
import logging

from pipeline.core.settings import ENV_PREFIX, QueueConfig, Settings, SettingsError, load_settings
from pipeline.runtime.broker import ensure_topics, wait_for_broker
from pipeline.runtime.startup import check_at_start


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


class HeldAcksAtStop(logging.Filter):
    """Faust's report of the messages it waits for, shortened on a stop (SIGTERM, SIGINT).

    On a stop Faust waits until every message taken is acked, and acks no longer come: the worker acks only once a
    checkpoint covers a message, and writes none once stopping (what no checkpoint covers is read again after a
    restart: nothing is lost). Meanwhile Faust logs every 10 s each message it waits for (8,224 of them, one 0.9 MB
    line, in a benchmark) and every agent's stack. On a stop this is one line with their count instead; a wait in
    a rebalance, where the acks must come, keeps Faust's whole report. (In the benches the count is every message
    of the run, although their offsets were committed: Faust's consumer still lists them as unacked, a question
    for the transport.)"""

    def __init__(self, app: object) -> None:
        super().__init__()
        self.app = app

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(self.app, "should_stop", False):
            return True
        text = str(record.msg)
        if "wait_empty: Waiting for tasks" in text:
            held = record.args[0] if isinstance(record.args, tuple) and record.args else ()  # [(refcount, message)]
            record.msg = (
                "stopping: Faust waits for the acks of %d messages taken; what no checkpoint covers is read again "
                "after a restart"
            )
            record.args = (len(held) if isinstance(held, list) else 0,)
            return True
        return "Agent tracebacks:" not in text


def run_worker() -> int:
    """`python -m pipeline worker`: one Faust worker against PIPELINE_BROKER_URL."""
    from pipeline.runtime import transport
    from pipeline.runtime.app import create_app
    from pipeline.runtime.memory import tune_allocator
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
    logging.getLogger(transport.__name__).addFilter(HeldAcksAtStop(app))  # the consumer's logger (mode names it so)
    # The imported libraries' ~100,000 objects live as long as the process: out of the collector's sight, its full
    # collections (one every 1.4 s at 2,000 events/s) pause the worker for 42 ms on average instead of 95.
    gc.collect()
    gc.freeze()
    worker = Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()
    return 0
