"""`main_staffing`: the planners' what-if command, `python -m pipeline staffing --calls 100 --per 30m ...`.

Prints a table of agents against service level, ASA, occupancy, P(wait) (and P(abandon) with --patience)
around the answer, then the fewest agents that meet the target, after the occupancy cap and shrinkage.
Only argument parsing and printing live here; the maths is `pipeline.kpis.staffing.erlang`.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path
from typing import TextIO, TypedDict

from pipeline.kpis.staffing.erlang import VARIANTS, Prediction, Staffing, Variant, predict, required_agents

_UNITS = {"s": 1, "m": 60, "h": 3600}
ROWS_EACH_SIDE = 4


class _Abandons(TypedDict):
    """How abandons are modelled and counted: the same for the answer and for every row of the table."""

    patience: float | None
    variant: Variant
    short_abandon_seconds: float


def _period(text: str) -> float:
    """'30m' -> 1800.0 seconds; also '15m', '1h', '900s'."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh])\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            f"allowed: a positive number with a unit s, m or h, e.g. 15m, 30m, 1h; got {text!r}"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def _target(text: str) -> tuple[float, float]:
    """'80/20' -> (0.8, 20.0): 80% answered within 20 seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%?\s*/\s*(\d+(?:\.\d+)?)\s*s?\s*", text)
    if not match or not 0 < float(match.group(1)) < 100:
        raise argparse.ArgumentTypeError(
            f"allowed: PERCENT/SECONDS with 0 < PERCENT < 100, e.g. 80/20 (80% answered within 20 s); got {text!r}"
        )
    return float(match.group(1)) / 100, float(match.group(2))


def _fraction(*, low_open: bool, high_open: bool):
    """A share given as 0.3 or 30%, within [0, 1] with either end open as asked."""
    interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text[:-1]) / 100 if text.strip().endswith("%") else float(text)
        except ValueError:
            value = math.nan
        above = value > 0 if low_open else value >= 0
        below = value < 1 if high_open else value <= 1
        if not (above and below):
            raise argparse.ArgumentTypeError(f"allowed: a fraction in {interval}, as 0.3 or 30%; got {text!r}")
        return value

    return parse


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"allowed: a number > 0; got {text!r}")
    return value


def _not_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"allowed: a number >= 0; got {text!r}")
    return value


def _agents(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"allowed: a whole number of agents >= 0; got {text!r}")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline staffing",
        description="What-if staffing for one queue: the fewest agents that meet a service level target "
        "(Erlang C, or Erlang A with --patience), and what each number of agents gives. Formulas: docs/staffing.md.",
    )
    parser.add_argument("--calls", type=_not_negative, required=True, help="contacts offered per period")
    parser.add_argument(
        "--per",
        type=_period,
        default=_period("30m"),
        metavar="PERIOD",
        help="the period of --calls: 15m, 30m, 1h, ... (default: 30m)",
    )
    parser.add_argument("--aht", type=_positive, required=True, help="average handle time, seconds")
    parser.add_argument(
        "--target",
        type=_target,
        required=True,
        metavar="PERCENT/SECONDS",
        help="service level target, e.g. 80/20: 80%% answered within 20 s",
    )
    parser.add_argument(
        "--shrinkage",
        type=_fraction(low_open=False, high_open=True),
        default=0.0,
        help="share of scheduled time off the phones (breaks, training), e.g. 0.3 or 30%% (default: 0)",
    )
    parser.add_argument(
        "--max-occupancy",
        type=_fraction(low_open=True, high_open=False),
        default=1.0,
        help="occupancy cap, e.g. 0.85 or 85%%: add agents until occupancy is at most this (default: 1, no cap)",
    )
    parser.add_argument(
        "--patience",
        type=_positive,
        default=None,
        help="mean patience in seconds: Erlang A, where callers abandon (default: Erlang C)",
    )
    parser.add_argument(
        "--variant",
        choices=VARIANTS,
        default="abandons_against",
        help="service level definition, as in the queue file (matters only with --patience; default: %(default)s)",
    )
    parser.add_argument(
        "--short-abandon",
        type=_not_negative,
        default=5.0,
        metavar="SECONDS",
        help="short abandon limit for short_abandons_excluded (default: 5)",
    )
    parser.add_argument(
        "--chart",
        type=Path,
        default=None,
        metavar="FILE",
        help="also draw service level, ASA, occupancy (and cost) against agents to FILE (.png, .svg or .pdf)",
    )
    parser.add_argument(
        "--agent-hour-cost",
        type=_not_negative,
        default=None,
        help="loaded cost of an agent hour, for the cost curve of --chart",
    )
    parser.add_argument(
        "--agents",
        type=_agents,
        default=None,
        help="also show what this many agents on the phones give (e.g. those staffed now)",
    )
    return parser


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def _seconds(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.1f}"


def _period_text(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _row(p: Prediction, with_abandons: bool, note: str) -> str:
    stable = p.model == "erlang_a" or p.agents > p.load or p.load == 0
    cells = [
        f"{p.agents:>7}",
        f"{_percent(p.service_level) if stable else 'unstable':>9}",
        f"{_seconds(p.asa):>8}",
        f"{_percent(p.occupancy):>10}",
        f"{_percent(p.p_wait):>8}",
    ]
    if with_abandons:
        cells.append(f"{_percent(p.p_abandon):>11}")
    return " ".join(cells) + (f"  {note}" if note else "")


def _table_agents(answer: Staffing, extra: int | None) -> list[int]:
    centre = answer.for_target
    low = max(0 if answer.model == "erlang_a" else math.floor(answer.load), centre - ROWS_EACH_SIDE)
    rows = set(range(max(low, 0), centre + ROWS_EACH_SIDE + 1))
    rows.add(answer.agents)
    if extra is not None:
        rows.add(extra)
    return sorted(rows)


def report(
    calls: float,
    per_seconds: float,
    aht: float,
    target: float,
    threshold: float,
    *,
    shrinkage: float = 0.0,
    max_occupancy: float = 1.0,
    patience: float | None = None,
    variant: Variant = "abandons_against",
    short_abandon_seconds: float = 5.0,
    agents_now: int | None = None,
    out: TextIO | None = None,
) -> Staffing:
    """Print the what-if table and the answer (to `out`, default stdout); return the answer."""
    out = sys.stdout if out is None else out
    rate = calls / per_seconds
    options: _Abandons = {"patience": patience, "variant": variant, "short_abandon_seconds": short_abandon_seconds}
    answer = required_agents(rate, aht, threshold, target, shrinkage=shrinkage, max_occupancy=max_occupancy, **options)
    with_abandons = patience is not None
    model = (
        f"Erlang A, mean patience {patience:g} s, service level {variant}"
        if with_abandons
        else "Erlang C: nobody abandons"
    )
    print(
        f"{calls:g} contacts per {_period_text(per_seconds)} = {rate:.4g}/s, AHT {aht:g} s "
        f"-> load {answer.load:.2f} Erlangs ({model})",
        file=out,
    )
    print(f"target: {target * 100:g}% answered within {threshold:g} s", file=out)
    print(file=out)
    header = f"{'agents':>7} {'SL':>9} {'ASA (s)':>8} {'occupancy':>10} {'P(wait)':>8}"
    print(header + (f" {'P(abandon)':>11}" if with_abandons else ""), file=out)
    for n in _table_agents(answer, agents_now):
        notes = []
        if n == answer.for_target:
            notes.append(f"<- fewest for {target * 100:g}/{threshold:g}")
        if n == answer.agents and answer.agents != answer.for_target:
            notes.append(f"<- fewest with occupancy <= {_percent(max_occupancy)}")
        if n == agents_now:
            notes.append("<- --agents")
        print(_row(predict(n, rate, aht, threshold, **options), with_abandons, ", ".join(notes)), file=out)
    print(file=out)
    if answer.limited_by == "no load":
        print("answer: 0 agents (nothing offered)", file=out)
        return answer
    print(
        f"answer: {answer.agents} agents on the phones: SL {_percent(answer.service_level)}, "
        f"ASA {_seconds(answer.asa)} s, occupancy {_percent(answer.occupancy)}, P(wait) {_percent(answer.p_wait)}"
        + (f", P(abandon) {_percent(answer.p_abandon)}" if with_abandons else ""),
        file=out,
    )
    if answer.limited_by == "occupancy cap":
        print(
            f"  the target alone needs {answer.for_target}; the occupancy cap of {_percent(max_occupancy)} "
            f"needs {answer.agents}",
            file=out,
        )
    if shrinkage:
        print(
            f"  with {_percent(shrinkage)} shrinkage, schedule {answer.scheduled} = "
            f"ceil({answer.agents} / (1 - {shrinkage:g}))",
            file=out,
        )
    return answer


def main_staffing(argv: list[str]) -> int:
    """Run the what-if command as the command line asks."""
    if argv[:1] == ["plan-bench"]:
        from pipeline.tools.plan_bench import main_plan_bench

        return main_plan_bench(argv[1:])
    if argv[:1] == ["plan"]:
        from pipeline.tools.staffing_plan import main_plan

        return main_plan(argv[1:])
    args = _parser().parse_args(argv)
    target, threshold = args.target
    report(
        args.calls,
        args.per,
        args.aht,
        target,
        threshold,
        shrinkage=args.shrinkage,
        max_occupancy=args.max_occupancy,
        patience=args.patience,
        variant=args.variant,
        short_abandon_seconds=args.short_abandon,
        agents_now=args.agents,
    )
    if args.chart is not None:
        if args.chart.suffix not in (".png", ".svg", ".pdf"):
            print(f"--chart {args.chart}: give a file ending in .png, .svg or .pdf", file=sys.stderr)
            return 2
        from pipeline.core.settings import QueueSettings
        from pipeline.kpis.reporting.figures import tradeoff
        from pipeline.tools.report import charts

        rules = QueueSettings(
            service_level_threshold_seconds=threshold, service_level_target=target, agent_hour_cost=args.agent_hour_cost
        )
        fig = charts.tradeoff(tradeoff(args.calls, args.per, args.aht, rules))
        fig.savefig(args.chart, dpi=110, bbox_inches="tight")
        print(f"chart: {args.chart}")
    return 0
