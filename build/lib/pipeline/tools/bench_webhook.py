"""Benchmark phase "webhook": requests per second of the webhook receiver (`python -m pipeline bench --phases webhook`).

The receiver runs as it does in production, a child process `python -m pipeline webhook` (one asyncio process:
one core at most), against the benchmark's broker; the client is this process (aiohttp, `--webhook-concurrency`
connections) posting a simulated center's Genesys notifications (one record a request, bearer token), each
answered only once Kafka acknowledged its events. Each round posts `--webhook-requests` requests; the figures
are the median and range over `--rounds` rounds of:
- requests/s: answered requests over the round's wall time (client, receiver and broker share the machine);
- requests per CPU-second of the receiver: the same requests over the receiver's user+system CPU time in the
  round, read from /proc: what one core of the receiver can take when nothing else competes for it.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import aiohttp
import orjson

from pipeline.core.settings import Settings
from pipeline.runtime.broker import ensure_topics, free_port
from pipeline.tools.run import worker_process

TOKEN = "bench-" + uuid.uuid4().hex


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _records(count: int, seed: int) -> list[bytes]:
    from pipeline.tools.simulate import CenterConfig, simulate
    from pipeline.tools.simulate.vendor_formats import to_genesys

    out: list[bytes] = []
    hours = 4.0
    while len(out) < count:
        config = replace(CenterConfig(), agents=200, duration_hours=hours)
        out = [orjson.dumps(r) for r in to_genesys(simulate(config, seed))]
        hours *= 2
    return out[:count]


async def _round(base: str, bodies: list[bytes], concurrency: int) -> tuple[float, dict[str, int]]:
    statuses: dict[str, int] = {}
    queue = iter(bodies)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    async def client(session: aiohttp.ClientSession) -> None:
        for body in queue:
            async with session.post(f"{base}/genesys", data=body, headers=headers) as r:
                await r.read()
                statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        return time.perf_counter() - began, statuses


async def _wait_up(base: str, proc, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the webhook receiver exited with status {proc.returncode}")
            try:
                async with session.get(f"{base}/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("the webhook receiver did not answer within 60 s")


def webhook(settings: Settings, opts, run_id: str, log_dir: Path) -> dict:
    """The phase: receiver child process, `opts.rounds` rounds of `opts.webhook_requests` requests."""
    settings = replace_prefix(settings, f"bench-{run_id}-wh")
    asyncio.run(ensure_topics(settings))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    bodies = _records(opts.webhook_requests, opts.seed)
    _say(f"webhook: {len(bodies):,} Genesys notifications a round, {opts.webhook_concurrency} connections")
    rounds: list[dict] = []
    rates: list[float] = []
    per_cpu: list[float] = []
    answered = 0
    with worker_process(
        settings,
        log_dir / "webhook.log",
        ("pipeline", "webhook"),
        topic_prefix=settings.topic_prefix,
        webhook_port=port,
        webhook_genesys_token=TOKEN,
    ) as proc:
        asyncio.run(_wait_up(base, proc))
        for n in range(opts.rounds):
            cpu0 = _cpu_seconds(proc.pid)
            seconds, statuses = asyncio.run(_round(base, bodies, opts.webhook_concurrency))
            cpu = _cpu_seconds(proc.pid) - cpu0
            ok = statuses.get("200", 0)
            answered += ok
            rates.append(ok / seconds)
            per_cpu.append(ok / cpu)
            rounds.append(
                {"seconds": seconds, "statuses": statuses, "per_second": ok / seconds, "per_cpu_second": ok / cpu}
            )
            _say(
                f"  round {n + 1}: {ok:,} answered 200 in {seconds:.2f} s = {ok / seconds:,.0f} requests/s; "
                f"receiver CPU {cpu:.2f} s = {ok / cpu:,.0f} requests per CPU-second; statuses {statuses}"
            )
    return {
        "requests": len(bodies),
        "concurrency": opts.webhook_concurrency,
        "rounds": rounds,
        "requests_per_second": {"median": statistics.median(rates), "min": min(rates), "max": max(rates)},
        "requests_per_cpu_second": {"median": statistics.median(per_cpu), "min": min(per_cpu), "max": max(per_cpu)},
        "share_answered_200": answered / (len(bodies) * len(rounds)),
    }


def replace_prefix(settings: Settings, prefix: str) -> Settings:
    return settings.model_copy(update={"topic_prefix": prefix})


def figure_rows(result: dict, row) -> None:  # noqa: ANN001 (bench.figures' row function)
    """The phase's rows in the benchmark's table."""
    rate, cpu = result["requests_per_second"], result["requests_per_cpu_second"]
    of = f"median of {len(result['rounds'])} rounds of {result['requests']:,}, range {{:,.0f}}-{{:,.0f}}"
    row(
        "webhook receiver, requests per CPU-second of its one process (" + of.format(cpu["min"], cpu["max"]) + ")",
        cpu["median"],
        "requests/s",
        ">= 2,000 on one core",
        cpu["median"] >= 2000,
    )
    row(
        "  wall rate, client and broker on the same machine (" + of.format(rate["min"], rate["max"]) + ")",
        rate["median"],
        "requests/s",
    )
    share = result["share_answered_200"]
    row("  share of requests answered 200 (acknowledged by Kafka)", share, "", "1", share == 1)
