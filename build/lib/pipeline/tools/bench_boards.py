"""Benchmark of the board data: `python -m pipeline.tools.bench_boards [--queues 200] [--agents 5000] [--repeat 15]`.

Builds the state of a large center in memory (by applying contract events, as the worker does): `--queues`
voice queues with a morning of traffic (closed intervals in today's rollup, an open interval, contacts waiting
and in conversation), and `--agents` agents with a schedule and a morning of state changes, spread over 12
partitions of each topic. Then times what the worker does for each poll of a board page: build the wallboard
or the agent board (`pipeline.exposition.boards`) and encode it as JSON, and prints the median and range in
milliseconds with the body's size: wall time, and the process's CPU time (what the build costs when the machine
is shared; the worst builds are those that set off a full garbage collection over the whole state). The pages themselves are static bytes read once at start. A benchmark, not
a test: it asserts nothing (the target is 50 ms at 200 queues and 5,000 agents).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from pipeline.contract import events as ev
from pipeline.core.settings import QueueConfig, QueueSettings
from pipeline.exposition.boards import agent_board, wallboard
from pipeline.state.agents import AgentState
from pipeline.state.queues import QueueState

PARTITIONS = 12
INTERVAL, LATENESS, TIMEOUT = 900, 120, 3600
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
HOURS = 3.0  # of traffic before "now"


def build(queues: int, agents: int, seed: int = 1) -> tuple[list[QueueState], list[AgentState], QueueConfig]:
    rnd = random.Random(seed)
    zones = ("UTC", "Europe/Paris", "America/New_York")
    config = QueueConfig(
        queues={f"q{i:03d}": QueueSettings(time_zone=zones[i % 3], team=f"team-{i % 10}") for i in range(queues)}
    )
    qstates = [QueueState(INTERVAL, LATENESS, TIMEOUT, config.for_queue) for _ in range(PARTITIONS)]
    astates = [AgentState(INTERVAL, LATENESS) for _ in range(PARTITIONS)]
    now = START + timedelta(hours=HOURS)
    ids = iter(range(10**9))

    def t(seconds: float) -> datetime:
        return START + timedelta(seconds=seconds)

    agent_ids = [f"agent-{i:05d}" for i in range(agents)]
    per_queue = max(1, agents // max(queues, 1))
    contact_events: list[tuple[int, ev.Event]] = []
    for i in range(queues):
        q = f"q{i:03d}"
        staff = agent_ids[i * per_queue : (i + 1) * per_queue] or agent_ids[:1]
        for n in range(int(40 * HOURS)):  # 40 contacts an hour
            c, at = f"c{q}-{n}", rnd.uniform(0, HOURS * 3600)
            common: dict[str, Any] = {"queue_id": q, "contact_id": c, "channel": "voice"}
            wait, talk, acw = rnd.expovariate(1 / 25), rnd.expovariate(1 / 240), rnd.expovariate(1 / 40)
            agent = rnd.choice(staff)
            chain: list[ev.Event] = [ev.ContactOffered(event_id=f"e{next(ids)}", time=t(at), **common)]
            steps: tuple[tuple[float, type, dict], ...] = (
                (wait, ev.ContactAnswered, {"agent_id": agent}),
                (talk, ev.ContactEnded, {"agent_id": agent}),
                (acw, ev.AcwEnded, {"agent_id": agent, "disposition": "ok"}),
            )
            for dt, kind, extra in steps:
                at += dt
                if at >= HOURS * 3600:  # still waiting or talking now
                    break
                chain.append(kind(event_id=f"e{next(ids)}", time=t(at), **common, **extra))
            contact_events += [(i % PARTITIONS, e) for e in chain]
    contact_events.sort(key=lambda pe: pe[1].time)
    for p, e in contact_events:
        qstates[p].apply(e)  # type: ignore[arg-type]  # contact events only here
    agent_events: list[tuple[int, ev.Event]] = []
    states: tuple[Any, ...] = ("available", "on_contact", "acw", "not_ready")
    for n, a in enumerate(agent_ids):
        p = n % PARTITIONS
        q = f"q{min(n // per_queue, queues - 1):03d}"
        agent_events.append((p, ev.ScheduleActivityPlanned(
            event_id=f"s{next(ids)}", time=START, agent_id=a, schedule_id="s", version=1,
            activity="contact_handling", start=START, end=START + timedelta(hours=8))))  # fmt: skip
        agent_events.append((p, ev.AgentLoggedIn(event_id=f"a{next(ids)}", time=t(rnd.uniform(0, 60)),
                                                 agent_id=a, queue_ids=[q])))  # fmt: skip
        at = 60.0
        while True:
            at += rnd.expovariate(1 / 300)
            if at >= HOURS * 3600:
                break
            state = rnd.choice(states)
            reason = "break" if state == "not_ready" else None
            agent_events.append((p, ev.AgentStateChanged(
                event_id=f"a{next(ids)}", time=t(at), agent_id=a, state=state, reason_code=reason)))  # fmt: skip
    agent_events.sort(key=lambda pe: pe[1].time)
    for p, e in agent_events:
        astates[p].apply(e)  # type: ignore[arg-type]  # agent events only here
    wm = round(now.timestamp() * 1000)
    for s in qstates:
        s.observe_time(wm)
        s.advance()
    for a_state in astates:
        a_state.observe_time(wm)
        a_state.advance()
    return qstates, astates, config


def time_board(kind: str, qs: list[QueueState], ags: list[AgentState], config: QueueConfig, repeat: int):
    build_board = wallboard if kind == "wallboard" else agent_board
    wall, cpu, size = [], [], 0
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        body = orjson.dumps(build_board(qs, ags, config))
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
        size = len(body)
    return wall, cpu, size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.tools.bench_boards", description=__doc__)
    parser.add_argument("--queues", type=int, default=200)
    parser.add_argument("--agents", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=15, help="timed builds per board (default: %(default)s)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    qs, ags, config = build(args.queues, args.agents)
    legs = sum(len(s.legs) for s in qs)
    print(
        f"state: {args.queues} queues, {args.agents} agents, {legs} contact legs "
        f"(built in {time.perf_counter() - started:.1f} s)"
    )
    for kind in ("wallboard", "agents"):
        wall, cpu, size = time_board(kind, qs, ags, config, args.repeat)
        print(
            f"/api/{kind:<9}  median {statistics.median(wall):6.1f} ms  range {min(wall):6.1f}-{max(wall):6.1f} ms"
            f"  (CPU: median {statistics.median(cpu):6.1f} ms, max {max(cpu):6.1f} ms)"
            f"  {args.repeat} builds, {size / 1024:.0f} KiB JSON"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
