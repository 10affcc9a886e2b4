"""Benchmark phase "scale": 1, 2 and 4 workers of one consumer group over the same events (`--phases scale`).

For each worker count the same `--events` (one per message unless `--scale-events-per-message`) go to fresh
topics of at least 4 partitions (`--scale-workers` may ask for more workers; partitions are then as many), read
by that many real worker processes sharing one `PIPELINE_APP_ID`. The group is formed first: heartbeats go to
every partition until each worker owns a share and the shares cover every partition once, twice in a row, so
that no rebalance falls into the measured span. Then the events are written, and the group's rate is the
messages over the time from the first written to the last applied (the latest end of a batch among the
workers, on the machine's monotonic clock). Done: every contact partition applied to its end, and the workers
together consumed every message written since (a partition moved to another worker would make them read some
twice: the phase notes when the assignment changed). On a machine of few cores the broker, the writer and the
workers share them (the table says how many), so each run also takes the CPU the workers and the whole machine
used per event, from which `projection` gives the rate on more cores.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import orjson

from pipeline.core.settings import Settings
from pipeline.runtime.broker import bootstrap_servers, ensure_topics, free_port
from pipeline.tools.replay import Rate, _get
from pipeline.tools.run import worker_process

FORM_TIMEOUT = 120.0  # seconds for a group to form (Faust's rebalances take a few seconds each)


def worker_counts(text: str) -> tuple[int, ...]:
    """`--scale-workers 1,2,4`: distinct positive counts, in the order given."""
    try:
        counts = tuple(dict.fromkeys(int(x) for x in text.split(",") if x.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: worker counts separated by commas, e.g. 1,2,4") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: at least one worker count, each at least 1")
    return counts


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scale-workers",
        type=worker_counts,
        default=(1, 2, 4),
        help="worker counts of the scale phase, one consumer group each (default 1,2,4)",
    )
    p.add_argument(
        "--scale-events-per-message", type=int, default=1, help="events per message of the scale phase (default 1)"
    )


class Group:
    """The workers of one consumer group, each with its /progress."""

    def __init__(self, urls: list[str], procs: list, logs: list[Path]) -> None:
        self.urls, self.procs, self.logs = urls, procs, logs

    def progress(self) -> list[dict | None]:
        for proc, log in zip(self.procs, self.logs, strict=True):
            if proc.poll() is not None:
                raise RuntimeError(f"a worker exited with status {proc.returncode}; see {log}")
        out: list[dict | None] = []
        for url in self.urls:
            try:
                out.append(orjson.loads(_get(f"{url}/progress")))
            except OSError:
                out.append(None)
        return out

    @staticmethod
    def assignment(progress: list[dict | None]) -> tuple[frozenset[int], ...] | None:
        """Each worker's contact partitions, or None when a worker did not answer."""
        if any(p is None for p in progress):
            return None
        return tuple(frozenset(int(k) for k in p["partitions"]) for p in progress if p is not None)


def formed(assignment: tuple[frozenset[int], ...] | None, partitions: int) -> bool:
    """Every partition owned by exactly one worker, and every worker owning one (when there are enough)."""
    if assignment is None:
        return False
    owned = [p for share in assignment for p in share]
    if sorted(owned) != list(range(partitions)):
        return False
    return all(share for share in assignment) or len(assignment) > partitions


async def _form_and_load(
    settings: Settings, group: Group, events: list, per_message: int, label: str, timeout: float
) -> dict:
    """Form the group (heartbeats until the assignment is stable), then write the events and wait until every
    message is applied. Returns the span and what each worker consumed."""
    from pipeline.runtime.producer import EventWriter

    at = events[0].time
    async with EventWriter(settings, bootstrap_servers(settings), per_message) as writer:
        deadline = time.monotonic() + FORM_TIMEOUT
        previous = None
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{label}: the group did not form within {FORM_TIMEOUT:.0f}s (each worker's contact partitions: "
                    f"{_shares(previous)}); see {', '.join(map(str, group.logs))}"
                )
            await writer.heartbeat(at)
            await asyncio.sleep(1.0)
            now = Group.assignment(await asyncio.to_thread(group.progress))
            if now is not None and formed(now, settings.partitions) and now == previous:
                break
            previous = now
        assignment = now
        # What the workers consumed before the events: heartbeats (read once the last ones are applied).
        before = await _settled(group)
        cpu_before, busy_before = [cpu_seconds(p.pid) for p in group.procs], machine_busy_seconds()
        began, sent_before = time.monotonic(), writer.sent_messages
        for i in range(0, len(events), 10_000):  # chunks: the workers start on the first ones
            await writer.write(events[i : i + 10_000])
        written_at = time.monotonic()
        messages = writer.sent_messages - sent_before
        ends = dict(writer.ends[settings.topic("contact-events")])
    deadline = time.monotonic() + timeout
    rate = Rate()
    last_note = time.monotonic()
    consumed = 0
    while True:
        progress = await asyncio.to_thread(group.progress)
        if all(p is not None for p in progress):
            counts = [p["source_messages"] - b for p, b in zip(progress, before, strict=True) if p is not None]
            consumed = sum(counts)
            offsets = {int(k): v["offset"] for p in progress if p for k, v in p["partitions"].items()}
            if consumed >= messages and all(offsets.get(p, -1) >= end - 1 for p, end in ends.items()):
                break
            now_t = time.monotonic()
            per_second = rate.add(now_t, consumed)
            if now_t - last_note >= 5:
                last_note = now_t
                _say(f"    {label}: {consumed:,}/{messages:,} messages ({per_second or 0:,.0f}/s)")
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{label}: gave up after {timeout:.0f}s with {consumed:,}/{messages:,} messages consumed; "
                f"see {', '.join(map(str, group.logs))}"
            )
        await asyncio.sleep(0.25)
    # The CPU each worker used from the first event written to the last applied (and a poll or so of idling after:
    # timers and heartbeats, a few ms), and the whole machine's (broker, writer, bench and system alike).
    worker_cpu = sum(cpu_seconds(p.pid) - b for p, b in zip(group.procs, cpu_before, strict=True))
    busy = machine_busy_seconds() - busy_before
    end = max(p["last_batch_monotonic"] for p in progress if p)
    return {
        "worker_cpu_seconds": worker_cpu,
        "machine_busy_seconds": busy,
        "messages": messages,
        "seconds": end - began,
        "write_seconds": written_at - began,
        "consumed_per_worker": counts,
        "assignment": [sorted(share) for share in assignment],
        "reassigned": Group.assignment(progress) != assignment,
    }


async def _settled(group: Group) -> list[int]:
    """Each worker's source messages once they stop changing (the last heartbeats applied)."""
    last: list[int] = []
    for _ in range(20):
        now = [p["source_messages"] if p else -1 for p in await asyncio.to_thread(group.progress)]
        if now == last and -1 not in now:
            return now
        last = now
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the workers were still consuming heartbeats after 10s: {last}")


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds a process has used so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent busy so far (/proc/stat: all but idle and I/O wait)."""
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def projection(runs: list[dict], cores: tuple[int, ...] = (4, 8, 16)) -> dict:
    """Events/s on a machine of more cores, one worker per core, from what the runs measured on this one: with the
    broker on other machines, each worker applies one core's worth (a worker is one Python thread: 1 / its CPU
    per event); with everything on the one machine, the cores over the CPU per event of everything (workers,
    broker, writer). Holds while the CPU per event stays as measured with more workers (the runs show whether it
    did from 1 to 4 workers), the partitions are at least the workers, and the broker keeps up."""
    worker = max(r["worker_cpu_us_per_event"] for r in runs)  # the costliest run: the safe side
    machine = max(r["machine_cpu_us_per_event"] for r in runs)
    return {
        "worker_cpu_us_per_event": worker,
        "machine_cpu_us_per_event": machine,
        "cores": [{"cores": n, "workers_alone": 1e6 * n / worker, "with_the_broker": 1e6 * n / machine} for n in cores],
    }


def _shares(assignment: tuple[frozenset[int], ...] | None) -> str:
    if assignment is None:
        return "not every worker answered"
    return "; ".join(f"worker {i + 1}: {sorted(s) or 'none'}" for i, s in enumerate(assignment))


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def scale(base: Settings, opts: argparse.Namespace, run_id: str, log_dir: Path) -> dict:
    """The phase: one group per worker count over the same events."""
    from pipeline.tools.bench import agents_for, events_of, phase_settings

    counts: tuple[int, ...] = opts.scale_workers
    partitions = max(4, base.partitions, *counts)
    per_message = opts.scale_events_per_message
    n = opts.events
    _say(f"scale: simulating {n} events; {', '.join(map(str, counts))} worker(s) over {partitions} partitions")
    events = list(itertools.islice(events_of(agents_for(n), 24, opts.seed), n))
    runs = []
    for count in counts:
        name = f"scale{count}"
        settings, overrides = phase_settings(base, name, run_id, partitions=partitions)
        del overrides["web_port"]  # one each, below
        asyncio.run(ensure_topics(settings))
        label = f"scale-out, {count} worker(s)"
        _say(f"scale: {count} worker(s), forming the group")
        with ExitStack() as stack:
            urls, procs, logs = [], [], []
            for i in range(count):
                port = free_port(settings.web_host)
                log = log_dir / f"worker-{name}-{i + 1}.log"
                procs.append(stack.enter_context(worker_process(settings, log, web_port=port, **overrides)))
                urls.append(f"http://{settings.web_host}:{port}")
                logs.append(log)
            timeout = 120 + len(events) / per_message / 200
            r = asyncio.run(_form_and_load(settings, Group(urls, procs, logs), events, per_message, label, timeout))
        r.update(workers=count, events=len(events), events_per_second=len(events) / r["seconds"])
        r.update(
            worker_cpu_us_per_event=1e6 * r["worker_cpu_seconds"] / r["events"],
            machine_cpu_us_per_event=1e6 * r["machine_busy_seconds"] / r["events"],
        )
        _say(
            f"scale: {count} worker(s): {r['events_per_second']:,.0f} events/s (written in {r['write_seconds']:.1f}s "
            f"of {r['seconds']:.1f}s); messages per worker {', '.join(f'{c:,}' for c in r['consumed_per_worker'])}; "
            f"CPU per event: workers {r['worker_cpu_us_per_event']:.1f} us, machine "
            f"{r['machine_cpu_us_per_event']:.1f} us"
            + ("; the assignment changed during the run" if r["reassigned"] else "")
        )
        runs.append(r)
    by_count = {r["workers"]: r for r in runs}
    return {
        "partitions": partitions,
        "events_per_message": per_message,
        "cores": os.cpu_count(),
        "runs": runs,
        "projection": projection(runs),
        "ratio_2_to_1": (
            by_count[2]["events_per_second"] / by_count[1]["events_per_second"] if {1, 2} <= by_count.keys() else None
        ),
    }


def figure_rows(result: dict, row) -> None:  # noqa: ANN001 (bench.figures' row function)
    """The phase's rows in the benchmark's table."""
    where = (
        f"one consumer group, {result['partitions']} partitions, {result['events_per_message']} event(s)/message, "
        f"{result['cores']} cores shared with the broker and the writer"
    )
    for r in result["runs"]:
        moved = "; partitions moved during the run" if r["reassigned"] else ""
        row(f"scale-out: {r['workers']} worker(s), {where}{moved}", r["events_per_second"], "events/s")
        row("  CPU per event, the workers together", r["worker_cpu_us_per_event"], "us")
        row("  CPU per event, the whole machine", r["machine_cpu_us_per_event"], "us")
    if result["ratio_2_to_1"] is not None:
        row(f"  ratio 2 workers / 1 worker (on {result['cores']} cores)", result["ratio_2_to_1"], "")
    for p in result["projection"]["cores"]:
        row(
            f"scale-out projected: {p['cores']} cores, a worker each, the broker elsewhere",
            p["workers_alone"],
            "events/s",
        )
        row(
            f"scale-out projected: {p['cores']} cores, a worker each, the broker on them",
            p["with_the_broker"],
            "events/s",
        )
