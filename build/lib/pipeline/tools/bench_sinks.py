"""Bench phase `sinks` (`python -m pipeline bench --phases sinks`): how fast the two sinks write, and how soon a
record published on the KPI topic is in its table or file.

The records are the real ones: a simulated day run through the contact and agent processors in this process (no
worker needed), every revision they publish, provisional and final, in order. To reach `--sink-records`, the day
is repeated with every record moved on by a day per copy (new keys, same content). The database is a throw-away
PostgreSQL server started here (`pipeline.tools.sinks.pgserver`) unless `PIPELINE_SINK_DSN` names one.

- throughput: the records pre-loaded on a fresh KPI topic, then `python -m pipeline sink <sink> --until-end`
  (a child process, as a user runs it) into an empty database or directory, `--rounds` times: messages read per
  second, from the sink's own summary (start-up of the process and the group not counted);
- delay: the sink running on an empty topic while records are published at a steady rate: the median time from a
  record's publication (its Kafka timestamp) to the commit of its write, from the sink's summary.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import msgspec
from aiokafka import AIOKafkaProducer

from pipeline.core.settings import QueueConfig, Settings, load_settings
from pipeline.runtime.broker import bootstrap_servers, ensure_topics
from pipeline.runtime.kpi_topic import Record
from pipeline.tools.sinks.pgserver import PostgresServer, why_not

SINKS = ("postgres", "parquet")
SUMMARY = re.compile(r"(\d+) records read in ([\d.]+)s \((\d+)/s\), (\d+) rows written.*?(?:median ([\d.]+)s)?$", re.M)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def day_records(agents: int, seed: int) -> list[Record]:
    """Every record the contact and agent processors publish for a simulated day, in order."""
    from pipeline.contract.partitioner import partition_of
    from pipeline.processing.processor import AgentProcessor, ContactProcessor, Message, PipelineStats
    from pipeline.runtime.producer import route
    from pipeline.tools.simulate import CenterConfig, simulate

    settings = load_settings(max_clock_skew_seconds=7 * 86400)
    processors = {
        "contact": ContactProcessor(settings, QueueConfig(), PipelineStats()),
        "agent": AgentProcessor(settings, PipelineStats()),
    }
    messages: dict[str, list[Message]] = {"contact": [], "agent": []}
    offsets: Counter[tuple[str, int]] = Counter()  # each partition's offsets follow on, as Kafka's do
    for e in simulate(CenterConfig(duration_hours=24, agents=agents), seed):
        topic, key = route(e)
        p = partition_of(key, settings.partitions)
        messages[topic.removesuffix("-events")].append(
            Message(topic, p, offsets[topic, p], key, msgspec.json.encode(e))
        )
        offsets[topic, p] += 1
    records: list[Record] = []
    for name, processor in processors.items():
        wall = 0.0
        batch = messages[name]
        for i in range(0, len(batch), 1000):
            wall += 5.0  # a provisional revision per open interval every batch
            records += processor.process(batch[i : i + 1000], wall_now=wall).records
    return records


def copies(records: list[Record], n: int) -> list[Record]:
    """`n` records: the day again and again, each copy a day later (new keys)."""
    if not records:
        raise ValueError("the simulated day gave no records to copy")
    out: list[Record] = []
    for k in itertools.count():
        for r in records:
            if len(out) == n:
                return out
            shift = timedelta(days=k)
            out.append(
                msgspec.structs.replace(r, interval_start=r.interval_start + shift, interval_end=r.interval_end + shift)
            )
    return out


async def publish(settings: Settings, records: list[Record], rate: float | None = None) -> None:
    """The records on the settings' KPI topic, keyed as the worker keys them; at `rate` per second if given."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers(settings), linger_ms=5)
    await producer.start()
    encode = msgspec.json.Encoder().encode
    started = time.monotonic()
    try:
        for i, r in enumerate(records):
            if rate:
                await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            await producer.send(settings.topic("kpis"), encode(r), key=r.key.encode())
        await producer.flush()
    finally:
        await producer.stop()


def _command(sink: str, target: str, group: str) -> list[str]:
    where = ["--dsn", target] if sink == "postgres" else ["--dir", target]
    return [sys.executable, "-m", "pipeline", "sink", sink, *where, "--group", group, "--no-metrics"]


def _summary(text: str) -> dict:
    m = list(SUMMARY.finditer(text))
    if not m:
        raise RuntimeError(f"no summary from the sink; its output ends with:\n{text[-2000:]}")
    read, seconds, _, written, delay = m[-1].groups()
    return {
        "read": int(read),
        "seconds": float(seconds),
        "written": int(written),
        "median_delay_s": float(delay) if delay else None,
    }


def _env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "PIPELINE_BROKER_URL": settings.broker_url, "PIPELINE_TOPIC_PREFIX": settings.topic_prefix}


def bench_sinks(settings: Settings, opts: argparse.Namespace, run_id: str, log_dir: Path, data_dir: Path) -> dict:
    _say(f"sinks: the records of a simulated {opts.sink_agents}-agent day")
    day = day_records(opts.sink_agents, opts.seed)
    records = copies(day, opts.sink_records)
    finals = sum(1 for r in records if r.final)
    _say(f"sinks: {len(records)} records ({finals} final) from {len(day)} of the day")
    results: dict = {"records": len(records), "final": finals, "day_records": len(day)}
    with ExitStack() as stack:
        dsn = os.environ.get("PIPELINE_SINK_DSN", "")
        server: PostgresServer | None = None
        if not dsn:
            reason = why_not()
            if reason:
                raise SystemExit(f"bench sinks: {reason}; or set PIPELINE_SINK_DSN")
            server = stack.enter_context(PostgresServer())
            dsn = server.dsn
        results["database"] = "throw-away local PostgreSQL" if server else "PIPELINE_SINK_DSN"
        loaded = load_settings(broker_url=settings.broker_url, topic_prefix=f"bench-{run_id}-sinks")
        asyncio.run(ensure_topics(loaded))
        asyncio.run(publish(loaded, records))
        for sink in SINKS:
            rounds = []
            for i in range(opts.rounds):
                target = _fresh_target(sink, dsn, data_dir, f"{run_id}-{i}")
                proc = subprocess.run(
                    [*_command(sink, target, f"bench-{run_id}-{sink}-{i}"), "--until-end"],
                    env=_env(loaded),
                    capture_output=True,
                    text=True,
                    timeout=1800,
                )
                if proc.returncode != 0:
                    raise RuntimeError(f"sink {sink} failed: {proc.stderr[-2000:]}")
                s = _summary(proc.stderr)
                s["per_second"] = s["read"] / s["seconds"]
                rounds.append(s)
                _say(f"sinks: {sink} round {i + 1}: {s['read']} records in {s['seconds']:.1f}s")
            rates = [r["per_second"] for r in rounds]
            results[f"{sink}_throughput"] = {
                "rounds": rounds,
                "median": statistics.median(rates),
                "min": min(rates),
                "max": max(rates),
            }
            results[f"{sink}_delay"] = delay(settings, sink, dsn, (log_dir, data_dir), run_id, day, opts)
    return results


def _fresh_target(sink: str, dsn: str, data_dir: Path, name: str) -> str:
    if sink == "parquet":
        return str(Path(tempfile.mkdtemp(prefix=f"parquet-{name}-", dir=data_dir)))
    import psycopg

    db = "bench_" + re.sub(r"\W", "_", name)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {db}")
    return dsn.rsplit("/", 1)[0] + "/" + db


def delay(
    settings: Settings,
    sink: str,
    dsn: str,
    folders: tuple[Path, Path],
    run_id: str,
    day: list[Record],
    opts,  # noqa: ANN001
) -> dict:
    """The sink live on an empty topic while records are published at `--sink-rate`/s for `--sink-seconds`;
    `folders`: (logs, data files)."""
    log_dir, data_dir = folders
    live = load_settings(broker_url=settings.broker_url, topic_prefix=f"bench-{run_id}-{sink}-live")
    asyncio.run(ensure_topics(live))
    target = _fresh_target(sink, dsn, data_dir, f"{run_id}-{sink}-live")
    log = log_dir / f"sink-{sink}-live.log"
    proc = subprocess.Popen(
        _command(sink, target, f"bench-{run_id}-{sink}-live"), env=_env(live), stderr=log.open("w"), text=True
    )
    try:
        deadline = time.monotonic() + 60
        while "sink: reading" not in log.read_text():  # started, and at its offsets
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sink {sink} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        n = int(opts.sink_rate * opts.sink_seconds)
        finals = [r for r in day if r.final]
        asyncio.run(publish(live, copies(finals, n), rate=opts.sink_rate))
        time.sleep(1)  # the last batches written
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    s = _summary(log.read_text())
    _say(f"sinks: {sink} live at {opts.sink_rate:.0f}/s: median publication to written {s['median_delay_s']}s")
    return {"rate": opts.sink_rate, "seconds": opts.sink_seconds, **s}


def figures(results: dict, row) -> None:  # noqa: ANN001
    """The table rows of the phase (`row(name, value, unit)` of pipeline.tools.bench.figures)."""
    for sink in SINKS:
        t = results[f"{sink}_throughput"]
        rounds = len(t["rounds"])
        row(
            f"sink {sink}: KPI records/s, {results['records']} pre-loaded (median of {rounds}; range "
            f"{t['min']:.0f}-{t['max']:.0f})",
            t["median"],
            "records/s",
        )
        d = results[f"{sink}_delay"]
        row(f"sink {sink}: publication to written, median, live at {d['rate']:.0f} records/s", d["median_delay_s"], "s")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sink-records", type=int, default=50_000, help="records pre-loaded for the sinks phase")
    p.add_argument("--sink-agents", type=int, default=100, help="agents of the sinks phase's simulated day")
    p.add_argument("--sink-rate", type=float, default=200.0, help="records/s published in the sinks' delay run")
    p.add_argument("--sink-seconds", type=float, default=10.0, help="length of the sinks' delay run")
