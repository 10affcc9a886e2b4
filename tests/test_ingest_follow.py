"""`ingest asterisk-queue-log FILE --follow`: killed (SIGKILL) and restarted mid-file, and the log rotated while
it is down and while it runs, the events written are exactly those of the whole log read once, in order: no
duplicate, no gap."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.sources.asterisk import QueueLogAdapter
from pipeline.tools.simulate import CenterConfig, read_jsonl, simulate
from pipeline.tools.simulate.formats import write_asterisk_queue_log

ROOT = Path(__file__).resolve().parent.parent


def _lines(tmp_path: Path) -> list[str]:
    config = replace(CenterConfig(), agents=16, duration_hours=4).with_load_of(CenterConfig())
    voice = {q.queue_id for q in config.queues if q.channel == "voice"}
    write_asterisk_queue_log(simulate(config, 3), tmp_path / "all", voice)
    return (tmp_path / "all").read_text().splitlines(keepends=True)


def _start(tmp_path: Path, out: bool = True, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "pipeline", "ingest", "asterisk-queue-log", "queue_log", "--follow"]
    if out:
        cmd += ["--out", "events.jsonl"]
    full = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", **(env or {})}
    return subprocess.Popen(cmd, cwd=tmp_path, env=full, stderr=subprocess.PIPE, text=True)


def _wait_for(tmp_path: Path, count: int, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    out = tmp_path / "events.jsonl"
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        if out.exists() and sum(1 for _ in open(out, "rb")) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} events after {timeout}s")


def test_follow_survives_kill_and_rotation_without_duplicates_or_gaps(tmp_path: Path) -> None:
    lines = _lines(tmp_path)
    assert len(lines) > 500
    adapter = QueueLogAdapter()
    expected: list[str] = []
    after: list[int] = []  # events expected once the first n lines are read
    for line in lines:
        expected += [e.event_id for e in adapter.translate(line)]
        after.append(len(expected))
    a, b, c, d = (len(lines) * k // 5 for k in (1, 2, 3, 4))
    log = tmp_path / "queue_log"

    log.write_text("".join(lines[:a]))
    first = _start(tmp_path)
    _wait_for(tmp_path, after[a - 1], first)
    with open(log, "a") as f:  # more lines and half a line: Asterisk is writing when the follower dies
        f.write("".join(lines[a:b]) + lines[b][:7])
    _wait_for(tmp_path, after[b - 1], first)
    first.send_signal(signal.SIGKILL)
    first.wait()

    with open(log, "a") as f:  # while it is down: the rest, then a rotation and a new file
        f.write(lines[b][7:] + "".join(lines[b + 1 : c]))
    os.rename(log, tmp_path / "queue_log.1")
    log.write_text("".join(lines[c:d]))
    second = _start(tmp_path)
    _wait_for(tmp_path, after[d - 1], second)

    os.rename(log, tmp_path / "queue_log.2")  # rotated while it runs
    log.write_text("".join(lines[d:]))
    _wait_for(tmp_path, after[-1], second)
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=20) == 0
    stderr = second.stderr.read() if second.stderr else ""
    assert "records" in stderr and "Traceback" not in stderr

    written = [e.event_id for e in read_jsonl(tmp_path / "events.jsonl")]
    assert written == expected


@pytest.mark.integration
def test_follow_produces_to_kafka_through_a_kill_and_restart(broker, tmp_path: Path) -> None:
    """To Kafka: everything arrives; a batch sent again after SIGKILL carries the same ids (the worker counts them
    once), and the quiet log sends heartbeats."""
    import asyncio
    import uuid

    import orjson
    from aiokafka import AIOKafkaConsumer

    lines = _lines(tmp_path)
    adapter = QueueLogAdapter()
    expected = {e.event_id for line in lines for e in adapter.translate(line)}
    prefix = f"follow-{uuid.uuid4().hex[:6]}"
    env = {"PIPELINE_BROKER_URL": broker.bootstrap, "PIPELINE_TOPIC_PREFIX": prefix}
    log = tmp_path / "queue_log"
    half = len(lines) // 2
    log.write_text("".join(lines[:half]))
    state = tmp_path / "ingest-asterisk-queue-log.follow-state.json"

    def wait_line(n: int, proc: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            if state.exists() and json.loads(state.read_text())["line"] >= n:
                return
            time.sleep(0.1)
        raise AssertionError(f"line {n} not reached")

    first = _start(tmp_path, out=False, env=env)
    wait_line(half, first)
    first.send_signal(signal.SIGKILL)
    first.wait()
    with open(log, "a") as f:
        f.write("".join(lines[half:]))
    second = _start(tmp_path, out=False, env=env)
    wait_line(len(lines), second)
    time.sleep(11)  # one idle heartbeat
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=20) == 0

    async def consume() -> list[dict]:
        consumer = AIOKafkaConsumer(
            f"{prefix}.contact-events",
            f"{prefix}.agent-events",
            bootstrap_servers=broker.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        got: list[dict] = []
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=3000)
                if not batches:
                    return got
                for msgs in batches.values():
                    for m in msgs:
                        value = orjson.loads(m.value)
                        got += value if isinstance(value, list) else [value]
        finally:
            await consumer.stop()

    got = asyncio.run(consume())
    ids = [e["event_id"] for e in got if e["type"] != "source.heartbeat"]
    assert set(ids) == expected
    assert any(e["type"] == "source.heartbeat" for e in got)
