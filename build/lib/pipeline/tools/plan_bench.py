"""`python -m pipeline staffing plan-bench`: how long the staffing plan takes for a day of many queues.

The demand is the simulator's: its five queues' intraday curve and mean handle times, repeated over `--queues`
queues with rates from 0.5x to 2x, every other queue with an observed patience (Erlang A, the slower model),
96 quarter hours. The plan is made `--repeat` times; the median and range are reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from pipeline.core.settings import QueueSettings
from pipeline.kpis.staffing.plan import Demand, plan
from pipeline.tools.simulate.config import DEFAULT_QUEUES, CenterConfig, intraday_load

T0 = 1_767_571_200  # 2026-01-05 00:00 UTC, a Monday


def day_of_demand(queues: int) -> list[Demand]:
    config = CenterConfig()
    out = []
    for n in range(queues):
        spec = DEFAULT_QUEUES[n % len(DEFAULT_QUEUES)]
        scale = 0.5 + 1.5 * (n % 7) / 6
        patience = spec.patience_mean if n % 2 else None
        for k in range(96):
            per_hour = spec.peak_rate * scale * intraday_load((k + 0.5) / 4)
            out.append(Demand(f"q{n}", spec.channel, T0 + 900 * k, per_hour / 4, spec.mean_handle(config), patience))
    return out


def main_plan_bench(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline staffing plan-bench", description=__doc__)
    p.add_argument("--queues", type=int, default=200, help="queues (default 200)")
    p.add_argument("--repeat", type=int, default=5, help="runs (default 5)")
    args = p.parse_args(argv)
    if args.queues < 1 or args.repeat < 1:
        print("python -m pipeline staffing plan-bench: --queues and --repeat must be at least 1", file=sys.stderr)
        return 2
    demands = day_of_demand(args.queues)
    chat = QueueSettings(chat_concurrency=2, service_level_threshold_seconds=60)
    voice = QueueSettings(shrinkage=0.3, max_occupancy=0.9)
    channel = {f"q{n}": DEFAULT_QUEUES[n % len(DEFAULT_QUEUES)].channel for n in range(args.queues)}
    times = []
    for i in range(args.repeat):
        t = time.perf_counter()
        rows = plan(demands, 900, lambda q: chat if channel[q] == "chat" else voice)
        times.append(time.perf_counter() - t)
        print(f"run {i + 1}/{args.repeat}: {len(rows)} intervals in {times[-1]:.2f} s "
              f"({len(rows) / times[-1]:,.0f} intervals/s)", file=sys.stderr)  # fmt: skip
    print(
        f"plan of {args.queues} queues x 96 intervals: median {statistics.median(times):.2f} s "
        f"[{min(times):.2f}, {max(times):.2f}] over {args.repeat} runs (target < 5 s)"
    )
    return 0
