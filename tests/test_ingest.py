"""`python -m pipeline ingest`: the command line, dead letters, the summary, and user mistakes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.tools.simulate import read_jsonl

ROOT = Path(__file__).resolve().parent.parent
T0 = 1366720340


def ingest(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "ingest", *args],
        cwd=cwd,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_queue_log_with_bad_lines_is_imported_and_the_bad_lines_dead_lettered(tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    log.write_text(
        "\n".join(
            [
                f"{T0 + 30}|c1|sales|SIP/1|COMPLETECALLER|5|25|1",  # out of line order: read in time order
                f"{T0}|c1|sales|NONE|ENTERQUEUE||0611|1",
                "this is not a queue_log line",
                f"{T0 + 5}|c1|sales|SIP/1|CONNECT|5|m|1",
                f"{T0 + 40}|c2|sales|SIP/1|CONNECT|5|m|1",  # no ENTERQUEUE
                f"{T0 + 50}|NONE|NONE|NONE|QUEUESTART|",
            ]
        )
        + "\n"
    )
    done = ingest("asterisk-queue-log", str(log), "--out", "events.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    events = list(read_jsonl(tmp_path / "events.jsonl"))
    # in time order, but for the accepted offer's ringing: its CONNECT line dates it back by its ring time (1 s)
    legs = [e for e in events if type(e).__name__ != "OfferRinging"]
    assert [e.time.timestamp() for e in legs] == sorted(e.time.timestamp() for e in legs)
    ringing = [e.time.timestamp() for e in events if type(e).__name__ == "OfferRinging"]
    assert ringing == [T0 + 4]
    assert sum(1 for e in events if type(e).__name__ == "ContactEnded") == 1
    dead = [json.loads(x) for x in (tmp_path / "events.jsonl.dead-letters.jsonl").read_text().splitlines()]
    assert [(d["line"], d["reason"]) for d in dead] == [(3, "bad_time"), (5, "no_enterqueue")]
    assert "read 6 records" in done.stderr and "dead-lettered 2 (bad_time 1, no_enterqueue 1)" in done.stderr
    assert "ignored 1 (QUEUESTART 1)" in done.stderr and "2 records were out of time order" in done.stderr


def test_user_mistakes_get_one_sentence_and_status_2(tmp_path: Path) -> None:
    missing = ingest("asterisk-queue-log", "nope.log", "--out", "e.jsonl", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.strip() == "ingest: nope.log: no such file"
    (tmp_path / "q").write_text("")
    zone = ingest("asterisk-queue-log", "q", "--out", "e.jsonl", "--time-zone", "Mars/Olympus", cwd=tmp_path)
    assert zone.returncode == 2 and "Mars/Olympus" in zone.stderr and "Traceback" not in zone.stderr
    placeholder = ingest("asterisk-queue-log", "q", "--out", "e.jsonl", "--placeholder-agent", "NONE", cwd=tmp_path)
    assert placeholder.returncode == 2 and "NAME=AGENT_ID" in placeholder.stderr
    no_folder = ingest("asterisk-queue-log", "q", "--out", "nowhere/e.jsonl", cwd=tmp_path)
    assert (
        no_folder.returncode == 2 and no_folder.stderr.strip() == "ingest: nowhere/e.jsonl: No such file or directory"
    )
    no_broker = ingest("asterisk-queue-log", "q", cwd=tmp_path)
    assert no_broker.returncode == 2 and "PIPELINE_BROKER_URL" in no_broker.stderr


def test_the_bench_ingest_phase_reports_records_per_second(tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "pipeline", "bench", "--phases", "ingest", "--ingest-agents", "12"]
    cmd += ["--ingest-rounds", "2", "--log-dir", str(tmp_path), "--json", str(tmp_path / "b.json")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "ingest asterisk-queue-log into JSONL" in done.stdout and "ingest cdr into JSONL" in done.stdout
    result = json.loads((tmp_path / "b.json").read_text())["ingest"]
    for name in ("asterisk-queue-log", "cdr"):
        r = result[name]
        assert r["records"] > 50 and r["dead_lettered"] == 0 and len(r["rates"]) == 2
        assert r["min"] <= r["median"] <= r["max"] and all(x > 0 for x in r["wall_rates"])


@pytest.mark.integration
def test_a_whole_file_goes_to_kafka_and_an_unreachable_broker_is_one_sentence(broker, tmp_path: Path) -> None:
    import asyncio
    import uuid

    import orjson
    from aiokafka import AIOKafkaConsumer

    log = tmp_path / "queue_log"
    log.write_text(
        f"{T0}|c1|sales|NONE|ENTERQUEUE||0611|1\n{T0 + 5}|c1|sales|SIP/1|CONNECT|5|m|1\n"
        f"{T0 + 30}|c1|sales|SIP/1|COMPLETECALLER|5|25|1\n{T0 + 40}|c2|sales|NONE|ENTERQUEUE||0612|1\n"
        f"{T0 + 50}|c2|sales|NONE|ABANDON|1|1|10\n"
    )
    assert ingest("asterisk-queue-log", str(log), "--out", "e.jsonl", cwd=tmp_path).returncode == 0
    expected = {e.event_id for e in read_jsonl(tmp_path / "e.jsonl")}
    prefix = f"ingest-{uuid.uuid4().hex[:6]}"
    done = ingest(
        "asterisk-queue-log",
        str(log),
        cwd=tmp_path,
        env={"PIPELINE_BROKER_URL": broker.bootstrap, "PIPELINE_TOPIC_PREFIX": prefix},
    )
    assert done.returncode == 0, done.stderr

    async def consume() -> list[dict]:
        consumer = AIOKafkaConsumer(
            f"{prefix}.contact-events",
            f"{prefix}.agent-events",
            bootstrap_servers=broker.bootstrap,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        got: list[dict] = []
        try:
            while batches := await consumer.getmany(timeout_ms=3000):
                for msgs in batches.values():
                    for m in msgs:
                        value = orjson.loads(m.value)
                        got += value if isinstance(value, list) else [value]
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(consume())
    assert {e["event_id"] for e in got if e["type"] != "source.heartbeat"} == expected
    assert any(e["type"] == "source.heartbeat" for e in got)  # the end of the file closes quiet partitions

    down = ingest("asterisk-queue-log", str(log), cwd=tmp_path, env={"PIPELINE_BROKER_URL": "127.0.0.1:1"})
    assert down.returncode == 2 and "does not answer" in down.stderr and "Traceback" not in down.stderr
