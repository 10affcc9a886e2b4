"""Benchmark phase "growth": how the worker's memory and checkpoints grow with the center (`--phases growth`).

Each size of `--growth-sizes` (agents x queues) is a simulated `--growth-hours` period (a day by default) through a
fresh worker, as the memory phase runs one (`bench.day_through_worker`): the worker's peak resident memory and
the checkpoint bytes it wrote (`cc_pipeline_checkpoint_bytes_total` on its /metrics at the end, every input
topic). Then a least-squares fit over the sizes, `value = a + b * agents / 1,000 + c * queues / 100`, gives the
growth per 1,000 agents and per 100 queues and the largest residual (how far from linear the sizes are).

The default sizes are the issue's three centers (1,000 agents and 50 queues, 5,000 and 200, 20,000 and 1,000)
and two that vary the queues alone (5,000 agents with 50 and with 1,000 queues): in the three, agents and
queues grow almost in proportion, so on their own they would split the growth between the two by the noise. Opt-in (a day of 20,000 agents is ~19
million events): `--phases growth --growth-hours 2` is a quicker look.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipeline.core.settings import Settings

DEFAULT_SIZES = "1000x50,5000x200,20000x1000,5000x50,5000x1000"
MEMORY_TARGET_MB = 1000  # the target for a 20,000-agent, 1,000-queue day: 1 GB (MB: 10^6 bytes)


def sizes(text: str) -> tuple[tuple[int, int], ...]:
    """`--growth-sizes 1000x50,5000x200`: (agents, queues) pairs."""
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        m = re.fullmatch(r"(\d+)x(\d+)", part)
        if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
            raise argparse.ArgumentTypeError(f"{part!r}: AGENTSxQUEUES, e.g. 5000x200")
        out.append((int(m.group(1)), int(m.group(2))))
    if not out:
        raise argparse.ArgumentTypeError("at least one size, e.g. 5000x200")
    return tuple(dict.fromkeys(out))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--growth-sizes",
        type=sizes,
        default=sizes(DEFAULT_SIZES),
        help=f"centers of the growth phase, AGENTSxQUEUES separated by commas (default {DEFAULT_SIZES})",
    )
    p.add_argument(
        "--growth-hours", type=float, default=24.0, help="simulated hours of each growth run (default a day)"
    )


@dataclass(frozen=True)
class Fit:
    """`value = intercept + per_1000_agents * agents / 1,000 + per_100_queues * queues / 100`, least squares.

    A slope is None when its variable took one value over the sizes (nothing to fit it on)."""

    intercept: float
    per_1000_agents: float | None
    per_100_queues: float | None
    largest_residual: float  # the largest |measured - fitted| over the sizes
    sizes: int


def fit(points: list[tuple[int, int, float]]) -> Fit | None:
    """Least squares over (agents, queues, value) points; None when the points cannot determine the slopes (fewer
    points than unknowns, or agents and queues in one proportion at every size)."""
    agents_vary = len({a for a, _, _ in points}) > 1
    queues_vary = len({q for _, q, _ in points}) > 1
    rows = [[1.0] + ([a / 1000] if agents_vary else []) + ([q / 100] if queues_vary else []) for a, q, _ in points]
    x, y = np.array(rows), np.array([v for _, _, v in points])
    if len(points) < x.shape[1] or np.linalg.matrix_rank(x) < x.shape[1]:
        return None  # too few sizes, or sizes that do not tell the variables apart
    beta = [float(b) for b in np.linalg.lstsq(x, y, rcond=None)[0]]
    residual = float(np.max(np.abs(y - x @ beta)))
    slopes = iter(beta[1:])
    return Fit(
        intercept=beta[0],
        per_1000_agents=next(slopes) if agents_vary else None,
        per_100_queues=next(slopes) if queues_vary else None,
        largest_residual=residual,
        sizes=len(points),
    )


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def growth(base: Settings, opts: argparse.Namespace, run_id: str, log_dir: Path) -> dict:
    """The phase: one worker per size, then the fits. Each size on a fresh embedded broker (unless
    PIPELINE_BROKER_URL names one): Tansu keeps every record in memory, and the sizes add up to ~34 million events."""
    from pipeline.tools.bench import day_through_worker
    from pipeline.tools.run import broker_for

    runs = []
    for i, (agents, queues) in enumerate(opts.growth_sizes, start=1):
        _say(f"growth: size {i}/{len(opts.growth_sizes)}")
        with broker_for(base, log_dir) as settings:
            r = day_through_worker(
                settings,
                run_id,
                log_dir,
                f"growth-{agents}x{queues}",
                agents,
                queues,
                opts.growth_hours,
                opts.events_per_message,
                opts.seed,
            )
        _say(
            f"growth: {agents:,} agents, {queues:,} queues: peak {r['peak_rss_mb']:.0f} MB, checkpoints "
            f"{r['checkpoint_bytes'] / 1e6:,.3f} MB written in {r['checkpoints']:,.0f}"
        )
        runs.append(r)
    memory = fit([(r["agents"], r["queues"], r["peak_rss_mb"]) for r in runs])
    written = fit([(r["agents"], r["queues"], r["checkpoint_bytes"] / 1e6) for r in runs])
    return {
        "hours": opts.growth_hours,
        "events_per_message": opts.events_per_message,
        "runs": runs,
        "peak_rss_mb_fit": asdict(memory) if memory else None,
        "checkpoint_mb_fit": asdict(written) if written else None,
    }


def scraped(run: dict) -> float | str:
    """A run's median /metrics scrape, or how many of its scrapes failed."""
    failed = run.get("scrapes_failed", 0)
    if run["scrape_seconds"] is None:
        return f"every scrape failed ({failed})"
    return run["scrape_seconds"] if not failed else f"{run['scrape_seconds']:.2f} ({failed} of {run['scrapes']} failed)"


def figure_rows(result: dict, row) -> None:  # noqa: ANN001 (bench.figures' row function)
    """The phase's rows in the benchmark's table."""
    runs = result["runs"]
    largest = max(runs, key=lambda r: (r["agents"], r["queues"]))
    for r in runs:
        what = f"{r['agents']:,} agents, {r['queues']:,} queues, {result['hours']:g} h ({r['events']:,} events)"
        target = r is largest and r["agents"] >= 20_000 and result["hours"] >= 24
        row(
            f"growth: worker peak resident memory, {what}",
            r["peak_rss_mb"],
            "MB",
            f"<= {MEMORY_TARGET_MB:,} MB" if target else "",
            r["peak_rss_mb"] <= MEMORY_TARGET_MB if target else None,
        )
        row(f"growth: checkpoint bytes written, {what}", r["checkpoint_bytes"] / 1e6, "MB")
        row(f"growth: full /metrics scrape at the end ({r['series']:,} series), median", scraped(r), "s")
    for name, key in (
        ("worker peak resident memory", "peak_rss_mb_fit"),
        ("checkpoint bytes written", "checkpoint_mb_fit"),
    ):
        f = result[key]
        if f is None:
            row(
                f"growth: {name} per 1,000 agents / per 100 queues",
                "not fitted: fewer sizes than unknowns, or agents and queues in one proportion at every size",
                "",
            )
            continue
        of = f"least squares over {f['sizes']} sizes, largest residual {f['largest_residual']:.1f} MB"
        if f["per_1000_agents"] is not None:
            row(f"  {name} per 1,000 agents ({of})", f["per_1000_agents"], "MB")
        if f["per_100_queues"] is not None:
            row(f"  {name} per 100 queues ({of})", f["per_100_queues"], "MB")
