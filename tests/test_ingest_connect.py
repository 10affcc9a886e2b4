"""Amazon Connect records from a file (pipeline/tools/ingest_connect.py): JSON Lines or a JSON array, in any line
order, with bad lines dead-lettered by line number; the events give the day's queue KPIs as the contract does."""

from __future__ import annotations

import random
import uuid
from dataclasses import replace

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from batch_kpis import compute
from test_sources_vendors import carried, differing

from pipeline.core.settings import load_settings
from pipeline.runtime.broker import ensure_topics
from pipeline.runtime.producer import EventWriter
from pipeline.tools.ingest_connect import ingest_connect_file
from pipeline.tools.simulate import CenterConfig, read_jsonl, simulate
from pipeline.tools.simulate.vendor_formats import to_connect


@pytest.fixture(scope="module")
def day():
    return list(simulate(replace(CenterConfig(), duration_hours=3.0, agents=15), 9))


async def test_a_shuffled_file_with_bad_lines_gives_the_days_kpis(day, tmp_path):
    lines = [orjson.dumps(r) for r in to_connect(day)]
    random.Random(1).shuffle(lines)  # exported out of order
    lines.insert(10, b"{broken")
    lines.insert(20, b'{"detail-type": "Amazon Connect Contact Event", "detail": {"eventType": "QUEUED"}}')
    source = tmp_path / "connect.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "events.jsonl"
    summary = await ingest_connect_file(source, out, progress=None)
    assert summary.records == len(lines)
    assert summary.rejected == {"malformed_json": 1, "missing_field": 1}
    events = list(read_jsonl(out))
    assert len(events) == summary.events
    assert [e.time for e in events] == sorted(e.time for e in events)  # event-time order, whatever the file's
    adapted, _ = compute(events, 900, lambda q: 20.0)
    told, _ = compute(carried(day, "connect"), 900, lambda q: 20.0)
    assert differing(adapted, told) == set()
    dead = [orjson.loads(line) for line in (tmp_path / "events.jsonl.dead-letters.jsonl").read_bytes().splitlines()]
    assert [(d["line"], d["reason"]) for d in dead] == [(11, "malformed_json"), (21, "missing_field")]


async def test_a_json_array_file_reads_the_same(day, tmp_path):
    records = list(to_connect(day))
    (tmp_path / "a.json").write_bytes(orjson.dumps(records))
    (tmp_path / "l.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    a = await ingest_connect_file(tmp_path / "a.json", tmp_path / "a.out", progress=None)
    b = await ingest_connect_file(tmp_path / "l.jsonl", tmp_path / "l.out", progress=None)
    assert (a.events, a.ignored) == (b.events, b.ignored)
    assert (tmp_path / "a.out").read_bytes() == (tmp_path / "l.out").read_bytes()  # same ids, same order


@pytest.mark.integration
async def test_to_kafka_every_event_and_dead_letter_is_acknowledged(day, tmp_path, broker):
    settings = load_settings(broker_url=broker.bootstrap, topic_prefix=f"ic{uuid.uuid4().hex[:8]}")
    await ensure_topics(settings)
    source = tmp_path / "connect.jsonl"
    source.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in list(to_connect(day))[:300]) + b"[1]\n")
    async with EventWriter(settings, broker.bootstrap) as writer:
        summary = await ingest_connect_file(source, writer, progress=None)
    assert summary.rejected == {"not_an_object": 1}
    consumer = AIOKafkaConsumer(
        settings.topic("contact-events"),
        settings.topic("agent-events"),
        settings.topic("dead-letters"),
        bootstrap_servers=broker.bootstrap,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    seen, dead = 0, []
    try:
        for _ in range(40):
            for messages in (await consumer.getmany(timeout_ms=250)).values():
                for m in messages:
                    if m.topic.endswith("dead-letters"):
                        dead.append(dict(m.headers))
                    else:
                        seen += 1
            if seen >= summary.events and dead:
                break
    finally:
        await consumer.stop()
    assert seen == summary.events > 100
    assert dead[0]["dlq.reason"] == b"not_an_object" and dead[0]["dlq.source"].endswith(b"connect.jsonl:301")
