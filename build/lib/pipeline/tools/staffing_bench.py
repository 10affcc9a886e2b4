"""Benchmark of `required_agents`: `python -m pipeline.tools.staffing_bench [--repeat 5]`.

Times the fewest-agents search for one queue at 10, 200 and 2,000 Erlangs (AHT 180 s, target 80/20), under
Erlang C and under Erlang A (mean patience 60 s and 600 s), and prints microseconds per call (the median of
several timed batches, each long enough to dwarf the timer). A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import timeit

from pipeline.kpis.staffing.erlang import required_agents

LOADS = (10.0, 200.0, 2000.0)
PATIENCES: tuple[float | None, ...] = (None, 60.0, 600.0)
AHT = 180.0
THRESHOLD = 20.0
TARGET = 0.8


def time_call(load: float, patience: float | None, repeat: int) -> tuple[float, int]:
    """Median microseconds per required_agents call, and its answer."""
    rate = load / AHT

    def call() -> int:
        return required_agents(rate, AHT, THRESHOLD, TARGET, patience=patience).agents

    timer = timeit.Timer(call)
    number, _ = timer.autorange()  # calls per batch so that a batch takes >= 0.2 s
    batches = timer.repeat(repeat=repeat, number=number)
    return 1e6 * statistics.median(batches) / number, call()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.tools.staffing_bench", description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="timed batches per case (default: %(default)s)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    print(
        f"required_agents, AHT {AHT:g} s, target {TARGET:.0%} within {THRESHOLD:g} s; "
        f"median of {args.repeat} batches, Python {sys.version.split()[0]}"
    )
    print(f"{'load (Erlangs)':>15} {'model':>24} {'agents':>7} {'us per call':>12}")
    for load in LOADS:
        for patience in PATIENCES:
            micros, agents = time_call(load, patience, args.repeat)
            model = "Erlang C" if patience is None else f"Erlang A, patience {patience:g} s"
            print(f"{load:>15g} {model:>24} {agents:>7} {micros:>12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
