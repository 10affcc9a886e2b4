"""Process orchestration: the worker on its own, and `run` (embedded broker + worker + live simulator).

Children run in their own process groups and are always stopped on the way out (Ctrl-C, SIGTERM, errors),
so no broker or worker outlives the command.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core import processes
from pipeline.core.settings import ENV_PREFIX, QueueConfig, Settings, load_settings
from pipeline.runtime.broker import EmbeddedBroker, ensure_topics
from pipeline.runtime.worker import configure_logging

if TYPE_CHECKING:
    from pipeline.tools.simulate import CenterConfig

log = logging.getLogger("pipeline")


@contextmanager
def broker_for(settings: Settings, log_dir: Path) -> Iterator[Settings]:
    """Yield settings pointing at a broker: the configured one, or an embedded one started for the block."""
    if settings.broker_url:
        yield settings
        return
    broker = EmbeddedBroker(log_file=log_dir / "broker.log").start()
    try:
        yield load_settings(broker_url=broker.bootstrap)
    finally:
        broker.stop()


@contextmanager
def worker_process(
    settings: Settings,
    log_file: Path,
    module_args: tuple[str, ...] = ("pipeline", "worker"),
    /,  # so that no setting override can land in module_args
    **env_overrides: object,
) -> Iterator[subprocess.Popen]:
    """A worker child process with these settings (passed through the environment).

    `module_args` is what follows `python -m`: the pipeline's worker unless told otherwise (the benchmark starts
    its reference consumers this way)."""
    env = {**os.environ, f"{ENV_PREFIX}BROKER_URL": settings.broker_url}
    env.update({f"{ENV_PREFIX}{k.upper()}": str(v) for k, v in env_overrides.items()})
    # A temporary folder of its own, removed with it: Faust makes a table folder per app id even with tables in
    # memory, and the benches and tests start hundreds of app ids.
    with tempfile.TemporaryDirectory(prefix="cc-worker-") as tmp:
        env["TMPDIR"] = tmp
        proc = processes.spawn([sys.executable, "-m", *module_args], log_file, env)
        try:
            yield proc
        finally:
            processes.stop(proc)


def _busiest_hour() -> float:
    """The hour of the simulated day (0-23, on the curve's own clock) that brings the most contacts."""
    from pipeline.tools.simulate import intraday_load

    return max(range(24), key=lambda h: sum(intraday_load(h + m / 60) for m in range(60)))


def demo_center(now: datetime, hours: float, speed: float, agents: int | None = None) -> CenterConfig:
    """The simulated center `run` plays: its busiest hour re-timed to begin at `now` (to the second).

    At real time (speed 1) the events are stamped as they are sent, so Prometheus windows, `for:` durations and
    "today" mean what they say. Faster, the period starts `hours * (1 - 1/speed)` earlier, so no event is ever
    ahead of the wall clock (the worker rejects those); the busy hour is then that far in the past."""
    from pipeline.tools.simulate import CenterConfig

    start = now.astimezone(UTC).replace(microsecond=0)
    start -= timedelta(hours=max(0.0, hours * (1 - 1 / speed)))
    hour = start.hour + start.minute / 60 + start.second / 3600
    config = CenterConfig(start=start, duration_hours=hours, curve_shift_hours=(hour - _busiest_hour()) % 24)
    if agents:
        config = replace(config, agents=agents)
    # Arrivals follow the staffing, so agents stay about as busy as in the default center at any size.
    return config.with_load_of(CenterConfig())


def run_demo(hours: float, speed: float, seed: int, agents: int | None, log_dir: Path) -> int:
    """`python -m pipeline run`: broker + worker + simulator + metrics, until Ctrl-C."""
    if speed <= 0:
        raise SystemExit("--speed must be positive")
    settings = load_settings()
    queues = QueueConfig.load(settings.queues_file)  # fail now, not in the worker, on a bad queue file
    configure_logging(settings)
    processes.interrupt_on_sigterm()
    log_dir.mkdir(parents=True, exist_ok=True)
    config = demo_center(datetime.now(UTC), hours, speed, agents)
    try:
        with broker_for(settings, log_dir) as settings:
            asyncio.run(ensure_topics(settings))
            from pipeline.tools.opsstack import ops_stack_for

            with (
                worker_process(settings, log_dir / "worker.log") as worker,
                ops_stack_for(settings.web_host, settings.web_port, queues, log_dir, settings.runbook_url) as ops,
            ):
                base = f"http://{settings.web_host}:{settings.web_port}"
                print(
                    f"\nContact-center KPI pipeline is running.\n"
                    f"  Kafka:    {settings.broker_url} ({'embedded Tansu' if not os.environ.get(ENV_PREFIX + 'BROKER_URL') else 'external'})\n"
                    f"  Wallboard: {base}/    agent board: {base}/agents  (open in a browser)\n"
                    f"  Metrics:  {base}/metrics    progress: {base}/progress\n"
                    f"  Topics:   {', '.join(settings.topic(t) for t in ('contact-events', 'agent-events', 'kpis', 'dead-letters', 'late-events'))}\n"
                    f"  Simulated center: {config.agents} agents, {hours:g} h from {config.start:%Y-%m-%d %H:%M} UTC"
                    f" (its busiest hour first) at {speed:g}x{' (real time)' if speed == 1 else ''} (seed {seed})\n"
                    f"  Logs:     {log_dir}/\n  Stop with Ctrl-C.\n",
                    flush=True,
                )
                if ops:  # alerts are printed here as Alertmanager notifies them
                    print(
                        f"  Prometheus:   {ops.prometheus_url}  (the project's rules loaded)\n"
                        f"  Alertmanager: {ops.alertmanager_url}  (alerts print below)\n",
                        flush=True,
                    )
                asyncio.run(_simulate_live(settings, config, seed, speed, worker))
                print("Simulation finished; the worker keeps serving metrics. Ctrl-C to stop.", flush=True)
                while worker.poll() is None:
                    time.sleep(1)
                print(f"worker exited with status {worker.returncode}; see {log_dir}/worker.log", file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        print("\nStopped.", flush=True)
        return 0


async def _simulate_live(settings: Settings, config, seed: int, speed: float, worker: subprocess.Popen) -> None:
    from pipeline.runtime.producer import EventWriter
    from pipeline.tools.simulate import paced, simulate

    async with EventWriter(settings, settings.broker_url) as writer:
        last_report = time.monotonic()
        async for batch in paced(simulate(config, seed), speed):
            if worker.poll() is not None:
                raise SystemExit(f"worker exited with status {worker.returncode}")
            await writer.write(batch)
            await writer.heartbeat(batch[-1].time)
            if time.monotonic() - last_report >= 10:
                last_report = time.monotonic()
                print(f"  simulated time {batch[-1].time:%H:%M:%S}  events sent {writer.sent_events}", flush=True)
        print(f"  simulation done: {writer.sent_events} events sent", flush=True)
