"""The KPI topic's consumers: the guide's snippet, and the PostgreSQL and Parquet sinks, on a replayed simulated day.

One replay (a small center over a whole day, through the real worker) leaves its KPI topic on the session's broker,
every revision included; the tests read it with the snippet of docs/consumers.md and with the sinks, as separate
processes, and compare what they stored with the replay's final records, every field. A real PostgreSQL is started
in a temporary directory on loopback (tests/pgserver.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from pipeline.core.settings import load_settings
from pipeline.runtime.broker import ensure_topics
from pipeline.runtime.kpi_topic import KINDS
from pipeline.tools.replay import replay
from pipeline.tools.simulate import CenterConfig, simulate, write_jsonl
from pipeline.tools.sinks.pgserver import PostgresServer, why_not

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
SOURCE_COLUMNS = {"key", "kafka_partition", "kafka_offset", "published_at", "written_at"}


class Day:
    def __init__(self, prefix: str, lines: list[bytes]) -> None:
        self.prefix = prefix
        self.topic = f"{prefix}.kpis"
        self.records = {}  # key -> typed final record
        for line in lines:
            raw = orjson.loads(line)
            r = msgspec.convert(raw, type=KINDS[raw["kind"]])
            self.records[r.key] = r


@pytest.fixture(scope="module")
def day(broker, tmp_path_factory):
    """A simulated day (12 agents, every queue and channel) replayed through the real worker."""
    tmp = tmp_path_factory.mktemp("day")
    events = list(
        simulate(
            CenterConfig(duration_hours=24, agents=12, rate_scale=0.2, start=datetime(2026, 1, 5, tzinfo=UTC)), seed=3
        )
    )
    write_jsonl(events, tmp / "events.jsonl")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PIPELINE_BROKER_URL", broker.bootstrap)
        summary = replay(tmp / "events.jsonl", tmp / "kpis.jsonl", timeout=240)
    d = Day(summary.topic_prefix, (tmp / "kpis.jsonl").read_bytes().splitlines())
    assert {r.kind for r in d.records.values()} == {"queue", "agent", "fcr"}
    return d


@pytest.fixture(scope="module")
def pg():
    reason = why_not()
    if reason:
        pytest.skip(reason)
    with PostgresServer() as server:
        yield server


def database(pg: PostgresServer) -> str:
    """A fresh database on the test server; its DSN."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg.dsn, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    return pg.dsn.rsplit("/", 1)[0] + "/" + name


def sink_env(broker, prefix: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    return {
        **env,
        "PYTHONPATH": str(ROOT),
        "PIPELINE_BROKER_URL": broker.bootstrap,
        "PIPELINE_TOPIC_PREFIX": prefix,
        **extra,
    }


def run_sink(broker, prefix: str, *args: str, **extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pipeline", "sink", *args, "--until-end", "--no-metrics"]
    return subprocess.run(cmd, env=sink_env(broker, prefix, **extra), capture_output=True, text=True, timeout=120)


def start_sink(broker, prefix: str, log: Path, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "pipeline", "sink", *args]
    return subprocess.Popen(cmd, env=sink_env(broker, prefix), stdout=log.open("w"), stderr=subprocess.STDOUT)


def stored(dsn: str) -> dict[str, msgspec.Struct]:
    """Every row of the three tables, as typed records, by key."""
    import psycopg
    from psycopg.rows import dict_row

    out = {}
    with psycopg.connect(dsn, row_factory=dict_row) as c:
        for kind, cls in KINDS.items():
            for row in c.execute(f"SELECT * FROM kpi_{kind}").fetchall():
                out[row["key"]] = msgspec.convert({k: v for k, v in row.items() if k not in SOURCE_COLUMNS}, type=cls)
    return out


def assert_same(got: dict, expected: dict) -> None:
    assert set(got) == set(expected)
    different = [k for k in expected if got[k] != expected[k]]
    if different:
        k = different[0]
        a, b = msgspec.structs.asdict(got[k]), msgspec.structs.asdict(expected[k])
        raise AssertionError(
            f"{len(different)} records differ; {k}: " + str({f: (a[f], b[f]) for f in a if a[f] != b[f]})
        )


def count_rows(dsn: str) -> int:
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=2) as c:
            return sum(c.execute(f"SELECT count(*) FROM kpi_{k}").fetchone()[0] for k in KINDS)
    except psycopg.Error:
        return -1


def wait_for(what, condition, timeout: float = 60, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}; the sink's log ends with:\n{log.read_text()[-3000:] if log else ''}")
        time.sleep(0.02)


# ---- the guide --------------------------------------------------------------------------------------------


def test_the_guides_minimal_consumer_prints_every_final_record_once(broker, day):
    text = (ROOT / "docs/consumers.md").read_text()
    snippet = re.search(r"<!-- consumer-snippet.*?-->\n```python\n(.*?)```", text, re.S).group(1)
    assert len(snippet.strip().splitlines()) <= 22
    env = {**os.environ, "KPI_TOPIC": day.topic, "BOOTSTRAP": broker.bootstrap}
    proc = subprocess.Popen([sys.executable, "-c", snippet], env=env, stdout=subprocess.PIPE, text=True)
    got = {}
    try:
        deadline = time.monotonic() + 60
        while len(got) < len(day.records) and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            raw = orjson.loads(line)
            r = msgspec.convert(raw, type=KINDS[raw["kind"]])
            assert r.key not in got or got[r.key].revision < r.revision
            got[r.key] = r
    finally:
        proc.terminate()
        proc.wait(10)
    assert_same(got, day.records)


# ---- PostgreSQL -------------------------------------------------------------------------------------------


def test_postgres_sink_stores_every_final_record_and_the_views_add_up(broker, day, pg):
    import psycopg

    dsn = database(pg)
    first = run_sink(broker, day.prefix, "postgres", "--dsn", dsn)
    assert first.returncode == 0, first.stderr
    assert f"{len(day.records)} rows written" in first.stderr and "0 bad" in first.stderr
    assert_same(stored(dsn), day.records)
    # the same group again: it resumes from the offsets stored with the rows and reads nothing
    again = run_sink(broker, day.prefix, "postgres", "--dsn", dsn)
    assert again.returncode == 0 and "postgres: 0 records read" in again.stderr, again.stderr
    # a new group reads the whole topic again: every record is there already, nothing changes
    rebuilt = run_sink(broker, day.prefix, "postgres", "--dsn", dsn, "--group", "another")
    assert rebuilt.returncode == 0 and " 0 rows written" in rebuilt.stderr, rebuilt.stderr
    assert_same(stored(dsn), day.records)

    with psycopg.connect(dsn) as c:
        days = c.execute(
            "SELECT queue_id, channel, day, service_level, offered, answered_within_threshold, final "
            "FROM kpi_service_level_by_queue_day"
        ).fetchall()
        weeks = c.execute(
            "SELECT agent_id, week_start, scheduled_seconds, adherent_seconds, adherence FROM kpi_agent_adherence_by_week"
        ).fetchall()
    day_records = [r for r in day.records.values() if r.kind == "queue" and r.window == "day"]
    assert sorted(days) == sorted(
        (r.queue_id, r.channel, r.interval_start.date(), r.service_level, r.offered, r.answered_within_threshold, True)
        for r in day_records
    )
    agents: dict[tuple, list[float]] = {}
    for r in (r for r in day.records.values() if r.kind == "agent"):
        week = r.interval_start.date().fromordinal(r.interval_start.date().toordinal() - r.interval_start.weekday())
        a = agents.setdefault((r.agent_id, week), [0.0, 0.0])
        a[0] += r.scheduled_seconds
        a[1] += r.adherent_seconds
    assert {(a, w) for a, w, *_ in weeks} == set(agents)
    for agent, week, scheduled, adherent, adherence in weeks:
        assert (scheduled, adherent) == pytest.approx(agents[(agent, week)], abs=1e-6)
        assert adherence == (pytest.approx(adherent / scheduled) if scheduled else None)


def test_a_later_revision_replaces_an_earlier_one_never_the_reverse_and_bad_records_are_counted(
    broker, day, pg, tmp_path
):
    """A topic of its own: a record, then an older revision of it (changed) re-delivered; another record, then a newer
    revision of it; a provisional record; and five kinds of bad message."""
    prefix = f"rev-{uuid.uuid4().hex[:8]}"
    settings = load_settings(broker_url=broker.bootstrap, topic_prefix=prefix)
    asyncio.run(ensure_topics(settings))
    a, b, c, d = [r for r in day.records.values() if r.kind == "queue"][:4]
    # valid records that a store cannot hold: a NUL in a text (PostgreSQL), an integer beyond 64 bits (both)
    nul = msgspec.structs.replace(d, queue_id="q\x00ueue")
    huge = msgspec.structs.replace(d, offered=2**64)
    older_a = msgspec.structs.replace(a, revision=a.revision - 1, offered=a.offered + 1000)
    newer_b = msgspec.structs.replace(b, revision=b.revision + 1, offered=b.offered + 7)
    provisional_c = msgspec.structs.replace(c, final=False)
    enc = msgspec.json.encode
    messages = [
        (a.key, enc(a)),
        (a.key, enc(older_a)),
        (b.key, enc(b)),
        (b.key, enc(newer_b)),
        (c.key, enc(provisional_c)),
        (c.key, b"{not json"),
        (c.key, b'{"kind": "forecast", "revision": 1}'),
        (c.key, b'{"kind": "queue", "revision": "x"}'),
        ("wrong|key", enc(c)),
        (c.key, None),
        (nul.key, enc(nul)),
        (huge.key, enc(huge)),
        (d.key, enc(d)),
    ]

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            for key, value in messages:
                await producer.send_and_wait(settings.topic("kpis"), value, key=key.encode())
        finally:
            await producer.stop()

    asyncio.run(produce())
    dsn = database(pg)
    done = run_sink(broker, prefix, "postgres", "--dsn", dsn)
    assert done.returncode == 0, done.stderr
    assert stored(dsn) == {a.key: a, b.key: newer_b, d.key: d}
    summary = done.stderr.strip().splitlines()[-1]
    assert "13 records read" in summary and "4 rows written" in summary and "1 not newer" in summary
    assert "1 provisional skipped" in summary
    assert (
        "7 bad (empty 1, invalid_record 1, key_mismatch 1, not_json 1, rejected_by_target 2, unknown_kind 1)" in summary
    )
    assert done.stderr.count("bad record at") == 7  # each logged with where it is
    # with --provisional the provisional record is written too, final false
    dsn = database(pg)
    with_provisional = run_sink(broker, prefix, "postgres", "--dsn", dsn, "--provisional", "--group", "p")
    assert with_provisional.returncode == 0, with_provisional.stderr
    assert stored(dsn) == {a.key: a, b.key: newer_b, c.key: provisional_c, d.key: d}

    # the Parquet sink keeps the same rules (and can hold the NUL)
    parquet = run_sink(broker, prefix, "parquet", "--dir", str(tmp_path), "--group", "q")
    assert parquet.returncode == 0, parquet.stderr
    assert read_parquet(tmp_path) == {a.key: a, b.key: newer_b, d.key: d, nul.key: nul}
    assert "6 bad (empty 1, invalid_record 1, key_mismatch 1, not_json 1, rejected_by_target 1, unknown_kind 1)" in (
        parquet.stderr
    )


def test_postgres_sink_killed_mid_stream_then_database_restarted_still_equal(broker, day, pg, tmp_path):
    dsn = database(pg)
    total = len(day.records)
    first = start_sink(
        broker, day.prefix, tmp_path / "first.log", "postgres", "--dsn", dsn, "--batch-records", "5", "--no-metrics"
    )
    try:
        wait_for("rows before the kill", lambda: count_rows(dsn) > total // 5, log=tmp_path / "first.log")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()
    at_kill = count_rows(dsn)
    assert 0 < at_kill < total, "the kill must land mid-stream"

    second = start_sink(
        broker,
        day.prefix,
        tmp_path / "second.log",
        "postgres",
        "--dsn",
        dsn,
        "--batch-records",
        "2",  # many small transactions: the database restart lands among them
        "--metrics-port",
        "0",
    )
    try:
        wait_for("rows after the restart", lambda: count_rows(dsn) > at_kill + total // 20)
        pg.stop()  # the database goes away mid-stream...
        time.sleep(3)
        pg.start()  # ...and comes back; the sink waits it out and goes on
        wait_for("every row", lambda: count_rows(dsn) == total, timeout=90)
        time.sleep(0.5)
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0
    finally:
        second.kill()
    log = (tmp_path / "second.log").read_text()
    assert log.count("database unavailable") == 1 and log.count("database back after") == 1, log[-3000:]
    assert_same(stored(dsn), day.records)


def test_postgres_sink_user_mistakes_are_one_sentence_and_exit_2_without_the_password(broker, day, pg):
    from pipeline.runtime.broker import free_port

    unreachable = run_sink(
        broker, day.prefix, "postgres", "--dsn", f"postgresql://kpi:s3cret-pw@127.0.0.1:{free_port('127.0.0.1')}/kpis"
    )
    assert unreachable.returncode == 2
    assert "cannot use the PostgreSQL database" in unreachable.stderr and "s3cret-pw" not in unreachable.stderr
    assert len(unreachable.stderr.strip().splitlines()) == 1, unreachable.stderr
    bad = run_sink(broker, day.prefix, "postgres", "--dsn", "host=127.0.0.1 password=s3cret-pw port=x y")
    assert bad.returncode == 2 and "DSN is not valid" in bad.stderr and "s3cret-pw" not in bad.stderr, bad.stderr
    no_broker = run_sink(
        broker,
        day.prefix,
        "postgres",
        PIPELINE_BROKER_URL=f"127.0.0.1:{free_port('127.0.0.1')}",
        PIPELINE_SINK_DSN=pg.dsn,
    )
    assert no_broker.returncode == 2 and "cannot reach the Kafka broker" in no_broker.stderr, no_broker.stderr
    assert len(no_broker.stderr.strip().splitlines()) == 1, no_broker.stderr
    assert pg.dsn not in no_broker.stderr


# ---- Parquet ----------------------------------------------------------------------------------------------


def files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.parquet"))
    }


def read_parquet(root: Path) -> dict[str, msgspec.Struct]:
    import pyarrow.parquet as pq

    out = {}
    for kind, cls in KINDS.items():
        for path in sorted(root.glob(f"kind={kind}/date=*/records.parquet")):
            for row in pq.read_table(path).to_pylist(maps_as_pydicts="strict"):
                r = msgspec.convert({k: v for k, v in row.items() if k != "key"}, type=cls)
                assert r.key == row["key"] and r.interval_start.date().isoformat() in str(path)
                out[row["key"]] = r
    return out


def test_parquet_sink_files_equal_the_records_survive_a_kill_and_rewrite_identically(broker, day, tmp_path):
    import duckdb

    a, b = tmp_path / "a", tmp_path / "b"
    run = uuid.uuid4().hex[:8]  # the files hold no offsets: each run names its group
    done = run_sink(broker, day.prefix, "parquet", "--dir", str(a), "--group", f"a-{run}")
    assert done.returncode == 0 and f"{len(day.records)} rows written" in done.stderr, done.stderr
    assert_same(read_parquet(a), day.records)
    queue_files = str(a / "kind=queue" / "*" / "*.parquet")
    n, offered = duckdb.sql(
        f"SELECT count(*), sum(offered) FROM read_parquet('{queue_files}', hive_partitioning = true) WHERE \"window\" = 'interval'"
    ).fetchall()[0]
    intervals = [r for r in day.records.values() if r.kind == "queue" and r.window == "interval"]
    assert (n, offered) == (len(intervals), sum(r.offered for r in intervals))
    assert not list(a.rglob("*.tmp"))
    written = files(a)

    # run again over the same topic (a new group): the same bytes
    again = run_sink(broker, day.prefix, "parquet", "--dir", str(a), "--group", f"again-{run}")
    assert again.returncode == 0, again.stderr
    assert files(a) == written

    # killed mid-stream (small batches: many renames), restarted: the same bytes
    first = start_sink(
        broker,
        day.prefix,
        tmp_path / "first.log",
        "parquet",
        "--dir",
        str(b),
        "--batch-records",
        "20",
        "--no-metrics",
        "--group",
        f"b-{run}",
    )
    try:
        wait_for("files before the kill", lambda: len(list(b.rglob("*.parquet"))) >= 2)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()
    partial = files(b)
    assert partial != written, "the kill must land mid-stream"
    rest = run_sink(broker, day.prefix, "parquet", "--dir", str(b), "--group", f"b-{run}")
    assert rest.returncode == 0, rest.stderr
    assert files(b) == written


def test_sink_metrics_page_counts_what_it_wrote(broker, day, tmp_path):
    """A sink's own /metrics: records read and written by kind, bad records, lag, delay."""
    from pipeline.runtime.broker import free_port

    port = free_port("127.0.0.1")
    proc = start_sink(
        broker,
        day.prefix,
        tmp_path / "sink.log",
        "parquet",
        "--dir",
        str(tmp_path / "p"),
        "--metrics-port",
        str(port),
        "--group",
        uuid.uuid4().hex,
    )
    try:

        def page() -> str:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                    return resp.read().decode()
            except OSError:
                return ""

        finals = len(day.records)
        wait_for(
            "every record written",
            lambda: (
                sum(float(v) for v in re.findall(r"cc_sink_records_written_total\{[^}]*\} (\S+)", page())) == finals
            ),
        )
        text = page()
        assert 'cc_sink_lag_records{sink="parquet"} 0.0' in text
        assert 'cc_sink_bad_records_total{reason="not_json",sink="parquet"} 0.0' in text
        assert 'cc_sink_records_written_total{kind="queue",sink="parquet"}' in text
        assert "cc_sink_publication_delay_seconds_count" in text
    finally:
        proc.terminate()
        proc.wait(20)


def test_postgres_sink_waits_out_a_frozen_broker_and_loses_nothing(broker, day, pg, tmp_path):
    """The broker stopped (SIGSTOP) for 10 s mid-stream: the sink neither exits nor skips, and ends equal."""
    dsn = database(pg)
    total = len(day.records)
    log = tmp_path / "sink.log"
    proc = start_sink(broker, day.prefix, log, "postgres", "--dsn", dsn, "--batch-records", "5", "--no-metrics")
    try:
        wait_for("rows before the freeze", lambda: count_rows(dsn) > total // 5, log=log)
        os.kill(broker.proc.pid, signal.SIGSTOP)
        try:
            frozen_at = count_rows(dsn)
            time.sleep(10)
            assert proc.poll() is None and count_rows(dsn) < total
        finally:
            os.kill(broker.proc.pid, signal.SIGCONT)
        wait_for("every row", lambda: count_rows(dsn) == total, timeout=90, log=log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    assert 0 < frozen_at < total
    # a commit in flight when the broker froze times out: the outage is logged once, and its end
    text = log.read_text()
    assert text.count("broker unavailable") == text.count("broker back after") <= 1, text[-3000:]
    assert_same(stored(dsn), day.records)


def test_bench_phase_sinks_reports_throughput_and_delay_of_both_sinks(broker, pg, tmp_path, monkeypatch):
    """`bench --phases sinks` at tiny sizes: every figure there and positive (no timing asserted)."""
    from pipeline.__main__ import main

    monkeypatch.setenv("PIPELINE_BROKER_URL", broker.bootstrap)
    monkeypatch.setenv("PIPELINE_SINK_DSN", pg.dsn)
    out = tmp_path / "bench.json"
    args = [
        "--sink-records",
        "1000",
        "--sink-agents",
        "5",
        "--rounds",
        "1",
        "--sink-rate",
        "100",
        "--sink-seconds",
        "2",
    ]
    assert main(["bench", "--phases", "sinks", *args, "--json", str(out), "--log-dir", str(tmp_path)]) == 0
    rows = orjson.loads(out.read_bytes())["figures"]
    assert [r["figure"].split(":")[0] for r in rows] == ["sink postgres"] * 2 + ["sink parquet"] * 2
    assert all(r["value"] > 0 for r in rows), rows
