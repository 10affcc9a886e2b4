"""`replay` with real-world files: lenient by default (bad lines dead-lettered with their line numbers),
`--strict` all-or-nothing, out-of-order files replayed in time order, inputs checked before the broker starts,
no `cc-replay-*` folder left behind. One integration case runs an Asterisk queue_log's events through the worker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from batch_kpis import compute

from pipeline.contract.events import ContactOffered
from pipeline.core.settings import load_settings
from pipeline.kpis.record import decode_record
from pipeline.processing.decode import REJECTION_REASONS
from pipeline.runtime.broker import ensure_topics, free_port
from pipeline.sources.asterisk import AsteriskConfig
from pipeline.tools import ingest
from pipeline.tools.replay import (
    ClosingHeartbeatRejected,
    Rate,
    _produce,
    progress_line,
    read_events,
    replay,
    wait_until_done,
)
from pipeline.tools.run import worker_process
from pipeline.tools.simulate import CenterConfig, read_jsonl, simulate
from pipeline.tools.simulate.formats import CALLBACK_KEY, write_asterisk_queue_log
from pipeline.tools.simulate.jsonl import write_jsonl

ROOT = Path(__file__).resolve().parent.parent
GOOD = (
    '{"type":"contact.offered","event_id":"e1","time":"2026-01-05T10:00:05Z","contact_id":"c1","queue_id":"q","channel":"voice"}',
    '{"type":"contact.abandoned","event_id":"e2","time":"2026-01-05T10:00:30Z","contact_id":"c1","queue_id":"q","channel":"voice"}',
    '{"type":"contact.offered","event_id":"e0","time":"2026-01-05T09:59:00Z","contact_id":"c0","queue_id":"q","channel":"voice"}',
)
BAD = (
    "not json at all",
    '{"type":"contact.teleported","event_id":"x","time":"2026-01-05T10:00:00Z"}',
    '{"type":"contact.offered","event_id":"e9","time":"yesterday","contact_id":"c9","queue_id":"q","channel":"voice"}',
)


def test_bad_lines_are_dead_lettered_with_their_numbers_and_the_file_is_put_in_time_order(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([GOOD[0], BAD[0], GOOD[1], BAD[1], GOOD[2], "", BAD[2]]) + "\n")
    read = read_events(path)
    assert [(n, reason) for n, reason, _ in read.dead] == [(2, "malformed_json"), (4, "unknown_type"), (7, "invalid")]
    assert [e.event_id for e in read.events] == ["e0", "e1", "e2"]
    assert read.out_of_order == 1


def _replay_cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "pipeline", "replay", *args, "--kpi-out", "k.jsonl"]
    return subprocess.run(cmd, cwd=tmp_path, env={**base, **(env or {})}, capture_output=True, text=True, timeout=60)


def test_mistakes_are_refused_before_the_broker_starts_and_leave_no_folder(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_text("\n".join([GOOD[0], BAD[0], BAD[1]]) + "\n")
    strict = _replay_cli(tmp_path, "events.jsonl", "--strict")
    assert strict.returncode == 2
    assert "line 2: malformed_json; line 3: unknown_type" in strict.stderr and "nothing was sent" in strict.stderr
    missing = _replay_cli(tmp_path, "nope.jsonl")
    assert missing.returncode == 2 and missing.stderr.strip().startswith("replay: nope.jsonl:")
    (tmp_path / "queues.toml").write_text("[defaults]\nservice_level_threshold_seconds = -1\n")
    queues = _replay_cli(tmp_path, "events.jsonl", env={"PIPELINE_QUEUES_FILE": "queues.toml"})
    assert queues.returncode == 2 and "service_level_threshold_seconds" in queues.stderr
    for done in (strict, missing, queues):
        assert "Traceback" not in done.stderr
    assert list((tmp_path / "tmp").iterdir()) == []  # no cc-replay-* folder, no broker log


@pytest.mark.integration
def test_an_asterisk_day_replayed_leniently_out_of_order_through_the_worker(
    broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPELINE_BROKER_URL", broker.bootstrap)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    config = replace(CenterConfig(), agents=12, duration_hours=1.5).with_load_of(CenterConfig())
    voice = {q.queue_id for q in config.queues if q.channel == "voice"}
    write_asterisk_queue_log(simulate(config, 5), tmp_path / "queue_log", voice)
    fmt = ingest.AsteriskFormat(AsteriskConfig(callback_keys=frozenset({CALLBACK_KEY})))
    ingest.import_file(fmt, tmp_path / "queue_log", tmp_path / "events.jsonl", tmp_path / "dead.jsonl")
    events = list(read_jsonl(tmp_path / "events.jsonl"))
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    random.Random(1).shuffle(lines)  # any order: replayed in time order, nothing counted late
    lines[10:10] = [BAD[0], BAD[1]]
    (tmp_path / "shuffled.jsonl").write_text("\n".join(lines) + "\n")

    summary = replay(tmp_path / "shuffled.jsonl", tmp_path / "kpis.jsonl", timeout=240)

    assert summary.dead_lettered == {"malformed_json": [11], "unknown_type": [12]}
    assert summary.out_of_order > 0 and summary.late == summary.rejected == summary.duplicates == 0
    assert not list(tmp_path.glob("cc-replay-*"))
    dead = [json.loads(x) for x in (tmp_path / "kpis.jsonl.dead-letters.jsonl").read_text().splitlines()]
    assert [d["line"] for d in dead] == [11, 12]
    expected, _ = compute(events, 900, lambda q: 20.0)
    lines_out = (tmp_path / "kpis.jsonl").read_bytes().splitlines()
    records = [decode_record(x) for x in lines_out if orjson.loads(x)["kind"] == "queue"]
    got = {
        (r.queue_id, r.channel, int(r.interval_start.timestamp()) * 1000): r for r in records if r.window == "interval"
    }
    assert set(got) == set(expected)
    for key, c in expected.items():
        r = got[key]
        assert (r.offered, r.answered, r.abandoned, r.handled) == (c.offered, c.answered, c.abandoned, c.handled)


def test_progress_lines_are_for_a_person() -> None:
    rate = Rate(window=10)
    assert rate.add(100.0, 0) is None  # one sample: no rate yet
    assert rate.add(102.0, 6_420) == 3_210
    assert rate.add(120.0, 6_420) == 0  # the window moved on: nothing new in the last 10 s
    line = progress_line(2, 4, False, 12_345, 40_000, 3_210.4)
    assert line == "worker: 2/4 partitions done, FCR pending, 12,345/40,000 messages consumed (3,210/s)"


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_a_refused_closing_heartbeat_ends_the_wait_at_once_with_its_reason(broker, tmp_path: Path) -> None:
    # A center ending an hour ago closes a day later: ahead of the worker's clock by more than the allowed skew.
    # The wait used to poll for 600 s and more, every message consumed, no partition ever done.
    run = uuid.uuid4().hex[:6]
    overrides = {"app_id": f"refused-{run}", "topic_prefix": f"refused-{run}", "web_port": free_port("127.0.0.1")}
    settings = load_settings(broker_url=broker.bootstrap, web_host="127.0.0.1", **overrides)
    asyncio.run(ensure_topics(settings))
    at = datetime.now(UTC) - timedelta(hours=1)
    offered = ContactOffered(event_id="e1", time=at, contact_id="c1", queue_id="q", channel="voice")
    produced = asyncio.run(_produce(settings, [offered], 1))
    assert produced.closing > datetime.now(UTC) + timedelta(seconds=settings.max_clock_skew_seconds)

    with worker_process(settings, tmp_path / "worker.log", web_host="127.0.0.1", **overrides) as worker:
        started = time.monotonic()
        with pytest.raises(ClosingHeartbeatRejected) as refused:
            wait_until_done(f"http://127.0.0.1:{overrides['web_port']}", produced, worker, timeout=600)
        assert time.monotonic() - started < 90

    message = str(refused.value)
    assert "closing heartbeat" in message and "future_event_time" in message
    assert REJECTION_REASONS["future_event_time"] in message


def _started_by(marker: str) -> set[int]:
    """Processes whose environment carries `marker`: the brokers and workers a command started (each in a process
    group of its own, so not in the command's)."""
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker.encode() in (proc / "environ").read_bytes():
                found.add(int(proc.name))
        except OSError:  # gone, or not ours to read
            continue
    return found


@pytest.mark.integration
@pytest.mark.parametrize("command", ["replay", "bench"])
def test_a_command_stopped_with_sigterm_stops_the_broker_and_worker_it_started(tmp_path: Path, command: str) -> None:
    """A CI job's timeout or `kill` sends SIGTERM: the command's children must not outlive it (they held ports, GBs of
    broker memory and the temporary folders)."""
    events = tmp_path / "events.jsonl"
    write_jsonl(
        simulate(CenterConfig(agents=300, duration_hours=8.0, start=datetime(2026, 1, 5, 9, tzinfo=UTC)), 3), events
    )
    argv = {
        "replay": ["replay", str(events), "--kpi-out", str(tmp_path / "kpis.jsonl")],
        "bench": ["bench", "--phases", "throughput", "--events", "200000", "--rounds", "3"],
    }[command]
    token = uuid.uuid4().hex
    marker = f"CC_SIGTERM_TEST={token}"  # as it reads in /proc/PID/environ
    env = {**os.environ, "CC_SIGTERM_TEST": token}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 180
        while len(_started_by(marker) - {proc.pid}) < 2:  # the broker and a worker are up
            assert proc.poll() is None, f"{command} ended before its worker started"
            assert time.monotonic() < deadline, f"{command} never started a broker and a worker"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) != 0
        deadline = time.monotonic() + 30
        while _started_by(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _started_by(marker), "children left running after the command stopped"
    finally:
        for pid in _started_by(marker) | {proc.pid}:  # nothing left behind by a failure either
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


SPAWN_INTERRUPTED = """
import os, signal, subprocess, sys
from pipeline.core import processes

class Interrupted(subprocess.Popen):
    # the stop signal lands while the child is being started: it exists, and Popen has not returned it yet
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        os.kill(os.getpid(), signal.SIG{signal})

processes.interrupt_on_sigterm()
subprocess.Popen = Interrupted
try:
    processes.spawn(["sleep", "60"], None)
except KeyboardInterrupt:
    sys.exit(3)
"""


@pytest.mark.parametrize("stop", ["TERM", "INT"])
def test_a_stop_while_a_child_is_being_started_stops_that_child(stop: str) -> None:
    """A command stopped right as it starts its broker or worker: the child exists before `Popen` returns it,
    and an interrupt in between would lose the only handle on it (a worker was left running so in CI)."""
    token = uuid.uuid4().hex
    env = {**os.environ, "CC_SIGTERM_TEST": token}
    try:
        script = SPAWN_INTERRUPTED.replace("{signal}", stop)
        done = subprocess.run([sys.executable, "-c", script], env=env, timeout=60, text=True, capture_output=True)
        assert done.returncode == 3, done.stderr  # interrupted, as the signal asked
        assert not _started_by(f"CC_SIGTERM_TEST={token}"), "the child was left running"
    finally:
        for pid in _started_by(f"CC_SIGTERM_TEST={token}"):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


START_FAILS_INTERRUPTED = """
import os, signal, subprocess, sys
from pipeline.core import processes

class Interrupted(subprocess.Popen):
    def __init__(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # the stop lands, then the start fails
        super().__init__(*args, **kwargs)

processes.interrupt_on_sigterm()
real, subprocess.Popen = subprocess.Popen, Interrupted
try:
    processes.spawn(["/nonexistent/broker"], None)
except KeyboardInterrupt:
    subprocess.Popen = real
    proc = processes.spawn(["sleep", "0"], None)  # the next start is not stopped by the old signal
    sys.exit(3 if proc.wait(10) == 0 else 4)
"""


def test_a_stop_while_a_start_fails_still_stops_the_command() -> None:
    done = subprocess.run([sys.executable, "-c", START_FAILS_INTERRUPTED], timeout=60, text=True, capture_output=True)
    assert done.returncode == 3, done.stderr
