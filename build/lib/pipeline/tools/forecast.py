"""`python -m pipeline forecast`: the pipeline's own forecast, and `python -m pipeline forecast backtest`.

Forecast: from a file of KPI records (JSON Lines, as `replay --kpi-out` writes them) or from the KPI topic,
per queue and channel, offered contacts and AHT for every interval from the end of the history to the end of
the 14th day after today (pipeline.kpis.forecast). Written as `forecast.published` events with
`source: "pipeline"` (JSON Lines to a file or stdout), or published to the contact-event topic (`--publish`),
where the worker compares them with the actuals like any forecast; an external WFM's forecast of the same
interval wins over it.

Backtest: train on the first weeks of a history, forecast the next week, and report WAPE and bias per queue at
30- and 60-minute intervals for the method and two baselines in the same run (seasonal naive: same interval
last week; the plain average of the same weekday), on the simulator's days (whose true arrival curve is known,
so the noise floor is reported too) or on a file of KPI records.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import orjson

from pipeline.contract import events as ev
from pipeline.kpis import forecast as fc
from pipeline.kpis.forecast import DAY, History, forecast_events, histories_from_records

Key = tuple[str, str]  # queue, channel


def _usage(message: str) -> int:
    print(f"python -m pipeline forecast: {message}", file=sys.stderr)
    return 2


# ---- histories ----------------------------------------------------------------------------------------------


def read_records(path: Path) -> Iterator[dict]:
    with open(path, "rb") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{number}: not JSON ({exc})") from exc


def _topic_records() -> list[dict]:
    from pipeline.core.settings import load_settings
    from pipeline.runtime.forecast_job import read_queue_records

    return asyncio.run(read_queue_records(load_settings()))


# ---- forecast -----------------------------------------------------------------------------------------------


async def _publish(events: list[ev.ForecastPublished]) -> int:
    from pipeline.core.settings import load_settings
    from pipeline.runtime.broker import bootstrap_servers
    from pipeline.runtime.producer import EventWriter

    settings = load_settings()
    async with EventWriter(settings, bootstrap_servers(settings)) as writer:
        await writer.write(events)
    return len(events)


def main_make(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    try:
        records = list(read_records(args.kpis)) if args.kpis else _topic_records()
        histories = histories_from_records(records)
    except (OSError, ValueError, KeyError) as exc:
        return _usage(f"cannot read the history: {exc}")
    events, skipped = forecast_events(histories, args.days, reforecast=not args.no_reforecast)
    for q, ch in skipped:
        print(f"skipped {q} ({ch}): no contact handled in the history, so no AHT to forecast", file=sys.stderr)
    if args.publish:
        n = asyncio.run(_publish(events))
        where = "the contact-event topic"
    else:
        out = open(args.out, "wb") if args.out else sys.stdout.buffer  # noqa: SIM115 (stdout is not closed)
        for e in events:
            out.write(ev.encode(e) + b"\n")
        if args.out:
            out.close()
        n, where = len(events), str(args.out or "stdout")
    print(
        f"forecast: {len(histories)} queue/channel histories, {n} intervals written to {where} "
        f"in {time.perf_counter() - t0:.1f} s",
        file=sys.stderr,
    )
    return 0


# ---- backtest -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    """WAPE and bias of one forecast of one queue over the held-out week, at one interval size."""

    wape: float
    bias: float


def score(actual: list[float], predicted: list[float], factor: int) -> Scores:
    a, p = fc.coarsen(actual, factor), fc.coarsen(predicted, factor)
    return Scores(fc.wape(a, p), fc.bias(a, p))


def backtest_one(h: History, train_days: int, test_days: int, truth: list[float] | None) -> dict[str, list[float]]:
    """The held-out days' actuals and each method's forecast of them (and the true curve when known)."""
    per = h.per_day
    train = replace(
        h,
        offered=h.offered[: train_days * per],
        handled=h.handled[: train_days * per],
        handle_seconds=h.handle_seconds[: train_days * per],
    )
    held = slice(train_days * per, (train_days + test_days) * per)
    out = {
        "actual": list(h.offered[held]),
        "method": fc.model_forecast(train, test_days),
        "seasonal_naive": fc.seasonal_naive(train, test_days),
        "weekday_average": fc.weekday_average(train, test_days),
    }
    if truth is not None:
        out["true_curve"] = truth[held]
    return out


METHODS = ("method", "seasonal_naive", "weekday_average", "true_curve")
FACTORS = {"30m": 2, "60m": 4}  # from 15-minute intervals


@dataclass(frozen=True)
class SimulatedDays:
    histories: dict[Key, History]
    truth: dict[Key, list[float]]


DEMO_WEEK = (1.0, 0.95, 0.9, 0.9, 0.85, 0.45, 0.25)
"""Monday..Sunday factors the backtest gives the simulator (its center has no weekly pattern of its own)."""


def simulated_days(seed: int, days: int, step: int = 900, weekly: tuple[float, ...] = DEMO_WEEK) -> SimulatedDays:
    """The simulator's arrivals (a contact's first offer) per queue and interval over `days` days from a Monday,
    with the AHT of what was handled, and the true expected arrivals of each interval (its intraday curve)."""
    from pipeline.tools.simulate.center import simulate
    from pipeline.tools.simulate.config import CenterConfig

    start = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
    config = CenterConfig(start=start, duration_hours=days * 24, weekly_load=weekly)
    day0 = int(start.timestamp())
    n = days * DAY // step
    channel = {q.queue_id: q.channel for q in config.queues}
    offered = {q: [0.0] * n for q in channel}
    handled = {q: [0.0] * n for q in channel}
    handle = {q: [0.0] * n for q in channel}
    seen: set[str] = set()
    answered: dict[tuple[str, str], float] = {}
    for e in simulate(config, seed):
        if isinstance(e, ev.ContactOffered):
            if e.contact_id not in seen:
                seen.add(e.contact_id)
                k = (int(e.time.timestamp()) - day0) // step
                if 0 <= k < n:
                    offered[e.queue_id][k] += 1
        elif isinstance(e, ev.ContactAnswered):
            answered[(e.contact_id, e.queue_id)] = e.time.timestamp()
        elif isinstance(e, ev.AcwEnded):
            began = answered.pop((e.contact_id, e.queue_id), None)
            k = (int(e.time.timestamp()) - day0) // step
            if began is not None and 0 <= k < n:
                handled[e.queue_id][k] += 1
                handle[e.queue_id][k] += e.time.timestamp() - began
    truth: dict[Key, list[float]] = {}
    histories: dict[Key, History] = {}
    for spec in config.queues:
        key = (spec.queue_id, channel[spec.queue_id])
        rate = spec.peak_rate * config.rate_scale / 3600
        sub = 15  # midpoint rule over 1-minute slices of a 15-minute interval: far below the Poisson noise
        truth[key] = [
            rate * step / sub * math.fsum(config.load_at(k * step + (j + 0.5) * step / sub) for j in range(sub))
            for k in range(n)
        ]
        q = spec.queue_id
        histories[key] = History(day0, step, offered[q], handled[q], handle[q])
    return SimulatedDays(histories, truth)


def _fmt(x: float) -> str:
    return "   n/a" if math.isnan(x) else f"{x * 100:5.1f}%"


def main_backtest(args: argparse.Namespace) -> int:
    train_days, test_days = args.train_weeks * 7, 7
    runs: list[tuple[str, dict[Key, History], dict[Key, list[float]] | None]] = []
    if args.kpis:
        try:
            runs.append((str(args.kpis), histories_from_records(read_records(args.kpis)), None))
        except (OSError, ValueError, KeyError) as exc:
            return _usage(f"cannot read the history: {exc}")
    else:
        t0 = time.perf_counter()
        for i, seed in enumerate(args.seeds, start=1):
            sim = simulated_days(seed, train_days + test_days)
            runs.append((f"simulator seed {seed}", sim.histories, sim.truth))
            rate = i / (time.perf_counter() - t0)
            print(f"simulated {i}/{len(args.seeds)} seeds ({rate:.2f} seeds/s)", file=sys.stderr)
    # per run, the WAPE of every method over all queues together (the sum of errors over the sum of actuals)
    overall: dict[str, dict[str, list[float]]] = {f: {m: [] for m in METHODS} for f in FACTORS}
    for name, histories, truth in runs:
        print(f"\n{name}: train {args.train_weeks} weeks, forecast the next week")
        print(f"{'queue':<14} {'interval':>8} " + " ".join(f"{m + ' WAPE':>21} {'bias':>6}" for m in METHODS))
        totals: dict[str, dict[str, list[float]]] = {f: {m: [] for m in ["actual", *METHODS]} for f in FACTORS}
        for key, h in sorted(histories.items()):
            if h.complete_days < train_days + test_days:
                print(f"{key[0]:<14} skipped: {h.complete_days} complete days, {train_days + test_days} needed")
                continue
            series = backtest_one(h, train_days, test_days, truth.get(key) if truth else None)
            for label, factor in FACTORS.items():
                cells = []
                for m in METHODS:
                    if m in series:
                        s = score(series["actual"], series[m], factor)
                        cells.append(f"{_fmt(s.wape):>21} {_fmt(s.bias):>6}")
                        totals[label][m] += fc.coarsen(series[m], factor)
                    else:
                        cells.append(f"{'-':>21} {'-':>6}")
                totals[label]["actual"] += fc.coarsen(series["actual"], factor)
                print(f"{key[0]:<14} {label:>8} " + " ".join(cells))
        for label in FACTORS:
            for m in METHODS:
                if totals[label][m]:
                    overall[label][m].append(fc.wape(totals[label]["actual"], totals[label][m]))
    print(f"\nall queues together, over {len(runs)} run(s): median WAPE [min, max]")
    for label in FACTORS:
        for m in METHODS:
            values = overall[label][m]
            if values:
                print(
                    f"  {label:>4} {m:<16} {_fmt(statistics.median(values))} [{_fmt(min(values))}, {_fmt(max(values))}]"
                )
    if overall["30m"]["seasonal_naive"]:
        gain = [1 - a / b for a, b in zip(overall["30m"]["method"], overall["30m"]["seasonal_naive"], strict=True)]
        print(
            f"  30m: method below seasonal naive by {_fmt(statistics.median(gain))} "
            f"[{_fmt(min(gain))}, {_fmt(max(gain))}] (target >= 20%)"
        )
    if overall["30m"]["true_curve"]:
        gap = [a / b - 1 for a, b in zip(overall["30m"]["method"], overall["30m"]["true_curve"], strict=True)]
        print(
            f"  30m: method above the true curve's WAPE by {_fmt(statistics.median(gap))} "
            f"[{_fmt(min(gap))}, {_fmt(max(gap))}] (target <= 10%)"
        )
    return 0


# ---- command line -------------------------------------------------------------------------------------------


def _days(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days") from None
    if not 1 <= n <= 60:
        raise argparse.ArgumentTypeError(f"days must be 1..60, got {n}")
    return n


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are whole numbers separated by commas, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError("at least one seed")
    return seeds


def main_forecast(argv: list[str]) -> int:
    if argv[:1] == ["backtest"]:
        p = argparse.ArgumentParser(prog="python -m pipeline forecast backtest", description=__doc__)
        p.add_argument("--kpis", type=Path, help="a file of KPI records (JSON Lines); default: the simulator's days")
        p.add_argument("--train-weeks", type=int, choices=range(1, 9), default=3, metavar="1..8", help="default 3")
        p.add_argument("--seeds", type=_seeds, default=[1, 2, 3, 4, 5], help="simulator seeds (default 1,2,3,4,5)")
        return main_backtest(p.parse_args(argv[1:]))
    p = argparse.ArgumentParser(prog="python -m pipeline forecast", description=__doc__)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--kpis", type=Path, help="a file of KPI records (JSON Lines)")
    source.add_argument("--from-topic", action="store_true", help="the final records on the KPI topic")
    p.add_argument("--days", type=_days, default=14, help="days after today to forecast (default 14)")
    p.add_argument("--no-reforecast", action="store_true", help="do not scale the rest of today by how it runs")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--out", type=Path, help="write the events to this file (default: stdout)")
    out.add_argument("--publish", action="store_true", help="publish the events to the contact-event topic")
    return main_make(p.parse_args(argv))
