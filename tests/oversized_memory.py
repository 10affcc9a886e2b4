"""Resident memory of a real worker catching up on big messages (each under the message limit, over the event
limit: every one is dead-lettered `oversized` with its original bytes).

`python tests/oversized_memory.py --runs 3 --messages 1000 --kb 900` starts the embedded broker, and per run: a
worker on empty topics (its idle RSS), then the messages pre-loaded on a fresh pipeline's contact-event topic and a
worker started on them (its peak RSS, VmHWM, once every message is applied and dead-lettered). Prints one line per
run and the medians. The hostile-input test uses `preload` and `run_worker` with its own bound.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from pipeline.core.settings import Settings, load_settings
from pipeline.runtime.broker import EmbeddedBroker, ensure_topics, free_port
from pipeline.tools.bench import proc_status_kb
from pipeline.tools.run import worker_process


def big_message(i: int, size: int) -> bytes:
    """A JSON event object padded to `size` bytes (valid JSON, too large to be one event)."""
    head = b'{"type":"contact.offered","event_id":"big-%d","pad":"' % i
    return head + b"x" * (size - len(head) - 2) + b'"}'


async def preload(settings: Settings, messages: int, size: int) -> None:
    """`messages` big messages on the contact-event topic, spread over its partitions."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.broker_url, max_request_size=2 * size + 4096, linger_ms=0, acks="all"
    )
    await producer.start()
    try:
        topic = settings.topic("contact-events")
        pending = []
        for i in range(messages):
            pending.append(
                await producer.send(topic, big_message(i, size), key=b"q%d" % i, partition=i % settings.partitions)
            )
            if len(pending) >= 64:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (loopback)
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def new_pipeline(bootstrap: str, name: str, **extra) -> tuple[Settings, dict]:
    run = f"{name}-{uuid.uuid4().hex[:6]}"
    overrides = {"app_id": run, "topic_prefix": run, "session_timeout_seconds": 6, "kpi_update_seconds": 3600, **extra}
    return load_settings(broker_url=bootstrap, **overrides), overrides


def run_worker(settings: Settings, overrides: dict, log: Path, until, timeout: float = 240.0) -> dict:
    """A worker until `until(progress)` holds: its RSS samples (MB), VmHWM (MB) and seconds to get there."""
    port = free_port()
    with worker_process(settings, log, **overrides, web_port=port) as proc:
        base = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        samples: list[float] = []
        while True:
            assert proc.poll() is None, f"worker exited with status {proc.returncode}; see {log}"
            assert time.monotonic() - started < timeout, f"not done within {timeout} s; see {log}"
            kb = proc_status_kb(proc.pid, "VmRSS")
            if kb:
                samples.append(kb / 1024)
            try:
                if until(get_json(f"{base}/progress")[1]):
                    break
            except OSError:
                pass
            time.sleep(0.1)
        return {
            "seconds": time.monotonic() - started,
            "rss_mb": samples,
            "hwm_mb": (proc_status_kb(proc.pid, "VmHWM") or 0) / 1024,
        }


def measure(bootstrap: str, messages: int, size: int, log_dir: Path, **extra) -> dict:
    # idle: a worker on empty topics, ready and done with its first checkpoints
    settings, overrides = new_pipeline(bootstrap, "idle", **extra)
    asyncio.run(ensure_topics(settings))
    idle_since: list[float] = []

    def idle(progress: dict) -> bool:
        if not idle_since:
            idle_since.append(time.monotonic())
        return time.monotonic() - idle_since[0] > 5

    idle_run = run_worker(settings, overrides, log_dir / "idle.log", idle)
    settings, overrides = new_pipeline(bootstrap, "oversized", **extra)
    asyncio.run(ensure_topics(settings))
    asyncio.run(preload(settings, messages, size))
    topic = settings.topic("contact-events")

    def done(progress: dict) -> bool:
        return (
            progress["messages"].get(topic, 0) >= messages
            and sum(n for k, n in progress["rejected"].items() if k.endswith("|oversized")) >= messages
        )

    busy = run_worker(settings, overrides, log_dir / "oversized.log", done)
    return {
        "idle_mb": idle_run["rss_mb"][-1],
        "peak_mb": max(busy["hwm_mb"], *busy["rss_mb"]),
        "seconds": busy["seconds"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--kb", type=int, default=900)
    parser.add_argument("--set", action="append", default=[], help="a worker setting, name=value (repeatable)")
    args = parser.parse_args()
    extra = dict(s.split("=", 1) for s in args.set)
    log_dir = Path(tempfile.mkdtemp(prefix="oversized-"))
    results = []
    with EmbeddedBroker(log_file=log_dir / "broker.log") as broker:
        for i in range(args.runs):
            r = measure(broker.bootstrap, args.messages, args.kb * 1000, log_dir, **extra)
            results.append(r)
            print(
                f"run {i + 1}: idle {r['idle_mb']:.0f} MB, peak {r['peak_mb']:.0f} MB, "
                f"{args.messages} x {args.kb} KB in {r['seconds']:.1f} s",
                flush=True,
            )
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(
        f"median of {args.runs}: idle {med['idle_mb']:.0f} MB, peak {med['peak_mb']:.0f} MB, "
        f"{med['seconds']:.1f} s (logs: {log_dir})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
