"""Amazon Connect records from a file (`python -m pipeline ingest connect`): JSON Lines or a JSON array, in any line
order, with bad lines dead-lettered by line number; the events give the day's queue KPIs as the contract does."""

from __future__ import annotations

import random
from dataclasses import replace

import orjson
import pytest
from batch_kpis import compute
from test_sources_vendors import carried, differing

from pipeline.tools.ingest import main_ingest
from pipeline.tools.simulate import CenterConfig, read_jsonl, simulate
from pipeline.tools.simulate.vendor_formats import to_connect


@pytest.fixture(scope="module")
def day():
    return list(simulate(replace(CenterConfig(), duration_hours=3.0, agents=15), 9))


def test_a_shuffled_file_with_bad_lines_gives_the_days_kpis(day, tmp_path, capsys):
    lines = [orjson.dumps(r) for r in to_connect(day)]
    random.Random(1).shuffle(lines)  # exported out of order
    lines.insert(10, b"{broken")
    lines.insert(20, b'{"detail-type": "Amazon Connect Contact Event", "detail": {"eventType": "QUEUED"}}')
    lines.insert(30, b"[1]")
    source = tmp_path / "connect.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "events.jsonl"
    assert main_ingest(["connect", str(source), "--out", str(out)]) == 0
    summary = capsys.readouterr().err
    assert f"read {len(lines):,} records" in summary and "out of time order" in summary
    events = list(read_jsonl(out))
    # in the time order of the records, whatever the file's: a record's events are at most seconds apart, well
    # inside the worker's allowed lateness
    backwards = max((a.time - b.time).total_seconds() for a, b in zip(events, events[1:], strict=False))
    assert 0 <= backwards <= 60
    adapted, _ = compute(events, 900, lambda q: 20.0)
    told, _ = compute(carried(day, "connect"), 900, lambda q: 20.0)
    assert differing(adapted, told) == set()
    dead = [orjson.loads(line) for line in (tmp_path / "events.jsonl.dead-letters.jsonl").read_bytes().splitlines()]
    assert sorted((d["line"], d["reason"]) for d in dead) == [
        (11, "malformed_json"),
        (21, "missing_field"),
        (31, "not_an_object"),
    ]


def test_a_json_array_file_reads_the_same(day, tmp_path):
    records = list(to_connect(day))
    (tmp_path / "a.json").write_bytes(orjson.dumps(records))
    (tmp_path / "l.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    assert main_ingest(["connect", str(tmp_path / "a.json"), "--out", str(tmp_path / "a.out")]) == 0
    assert main_ingest(["connect", str(tmp_path / "l.jsonl"), "--out", str(tmp_path / "l.out")]) == 0
    assert (tmp_path / "a.out").read_bytes() == (tmp_path / "l.out").read_bytes()  # same ids, same order
