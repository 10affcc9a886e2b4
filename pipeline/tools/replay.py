"""`python -m pipeline replay EVENTS.jsonl --kpi-out KPIS.jsonl`: push a file of events through the real worker
and write every final KPI record it produced.

Steps: broker (embedded unless PIPELINE_BROKER_URL is set) → fresh topics under a unique prefix → the file's
events → a closing heartbeat past every interval → a worker → wait until the worker has applied everything and
closed every interval → read the KPI topic → write the final records, sorted, one JSON object per line.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import orjson

from pipeline.core.settings import QueueConfig, Settings, load_settings
from pipeline.runtime.broker import bootstrap_servers, ensure_topics, free_port
from pipeline.runtime.producer import EventWriter
from pipeline.tools.kpi_topic import read_final_records
from pipeline.tools.run import broker_for, worker_process


@dataclass
class ReplaySummary:
    events: int
    messages: int
    final_records: int
    rejected: int
    duplicates: int
    late: int
    seconds: float
    metrics: str  # the worker's /metrics text at the end
    topic_prefix: str = ""  # the replay's topics (left on the broker): `<prefix>.kpis` holds every revision


def read_events(path: Path):
    from pipeline.tools.simulate import read_jsonl

    return list(read_jsonl(path))


async def _produce(
    settings: Settings, events, events_per_message: int, horizon_seconds: float = 0.0
) -> tuple[int, dict[int, int]]:
    """Write the events and a closing heartbeat; the messages written and the contact topic's end offsets."""
    last = max(e.time for e in events)
    # Past every interval, the allowed lateness and the longest of the contact timeout, `horizon_seconds` (the
    # longest FCR window) and a day (every local day record): the worker closes everything.
    longest = max(settings.contact_timeout_seconds, horizon_seconds, 86400.0)
    closing = last + timedelta(seconds=settings.interval_seconds * 2 + settings.allowed_lateness_seconds + longest)
    async with EventWriter(settings, bootstrap_servers(settings), events_per_message) as writer:
        step = 50_000
        for i in range(0, len(events), step):
            await writer.write(events[i : i + step])
            _progress(f"sent {min(i + step, len(events))}/{len(events)} events")
        await writer.heartbeat(closing)
        return writer.sent_messages, writer.ends[settings.topic("contact-events")]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (loopback only)
        return resp.read()


def wait_until_done(base_url: str, ends: dict[int, int], worker, timeout: float) -> dict:
    """Poll the worker's /progress until every partition is applied to its end and has nothing open."""
    deadline = time.monotonic() + timeout
    last: dict = {}
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"worker exited with status {worker.returncode} during the replay")
        try:
            last = orjson.loads(_get(f"{base_url}/progress"))
        except OSError:
            time.sleep(0.5)
            continue
        parts = last["partitions"]
        done = sum(
            1
            for p, end in ends.items()
            if str(p) in parts
            and parts[str(p)]["offset"] >= end - 1
            and parts[str(p)]["legs"] == 0
            and parts[str(p)]["open_intervals"] == 0
            and parts[str(p)].get("open_rollups", 0) == 0
        )
        # every contact partition forwards its watermark to every FCR partition, so all of them get messages
        fcr = last.get("fcr_partitions", {})
        fcr_done = len(fcr) == len(ends) and all(x["open_intervals"] == 0 for x in fcr.values())
        _progress(
            f"worker: {done}/{len(ends)} partitions done, FCR {'done' if fcr_done else 'pending'}, "
            f"{last.get('messages', {})} messages consumed"
        )
        if done == len(ends) and fcr_done:
            return last
        time.sleep(0.5)
    raise TimeoutError(f"replay not finished after {timeout}s; last progress: {last}")


def replay(events_file: Path, kpi_out: Path, events_per_message: int = 100, timeout: float = 1800) -> ReplaySummary:
    started = time.monotonic()
    base = load_settings()
    events = read_events(events_file)
    if not events:
        raise SystemExit(f"{events_file}: no events")
    run_id = uuid.uuid4().hex[:8]
    log_dir = Path(tempfile.mkdtemp(prefix="cc-replay-"))
    with broker_for(base, log_dir) as settings:
        # A fresh consumer group and fresh topics: a replay never mixes with live data on a shared cluster.
        port = free_port(settings.web_host)
        overrides = {
            "app_id": f"replay-{run_id}",
            "topic_prefix": f"replay-{run_id}",
            "web_port": port,
            "max_clock_skew_seconds": 7 * 86400,
            "kpi_update_seconds": 3600,
        }
        settings = load_settings(broker_url=settings.broker_url, **overrides)
        asyncio.run(ensure_topics(settings))
        queues = QueueConfig.load(settings.queues_file)
        fcr_window = max(r.fcr_window_hours for r in (queues.defaults, *queues.queues.values())) * 3600
        messages, ends = asyncio.run(_produce(settings, events, events_per_message, fcr_window))
        with worker_process(settings, log_dir / "worker.log", **overrides) as worker:
            base_url = f"http://{settings.web_host}:{port}"
            progress = wait_until_done(base_url, ends, worker, timeout)
            metrics = _get(f"{base_url}/metrics").decode()
        records = asyncio.run(read_final_records(settings))
    kpi_out.parent.mkdir(parents=True, exist_ok=True)
    with open(kpi_out, "wb") as f:
        for r in records:
            f.write(orjson.dumps(r) + b"\n")
    return ReplaySummary(
        events=len(events),
        messages=messages,
        final_records=len(records),
        rejected=sum(progress.get("rejected", {}).values()),
        duplicates=progress.get("duplicates", 0),
        late=progress.get("late", 0),
        seconds=time.monotonic() - started,
        metrics=metrics,
        topic_prefix=settings.topic_prefix,
    )


def _progress(text: str) -> None:
    print(f"\r  {text}\033[K", end="", file=sys.stderr, flush=True)
