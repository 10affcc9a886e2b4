"""`python -m pipeline staffing plan`: the day's staffing plan per queue and interval (pipeline.kpis.staffing.plan).

Demand from a forecast (`forecast.published` events, JSON Lines, as `python -m pipeline forecast` writes them;
an external WFM's forecast of an interval wins over the pipeline's own) or from a CSV file of counts
(`queue,channel,interval_start,offered,aht_seconds[,patience_seconds]`). Patience for Erlang A: the CSV's
column, else observed on a file of KPI records (`--kpis`: total wait / abandons per queue), else Erlang C.
Agents scheduled from a file of agent-topic events (`--schedule`): its `schedule.activity_planned` entries,
and each agent's queues from its newest `agent.logged_in`. Queue settings (target, threshold, shrinkage,
occupancy cap, chat concurrency) from the queue file.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import orjson

from pipeline.contract import events as ev
from pipeline.core.settings import QueueConfig
from pipeline.kpis.staffing.plan import Demand, Entry, PlanRow, plan, scheduled_agents

DAY = 86400


class UsageError(Exception):
    """A mistake in the command line or its files: one sentence for the user."""


def _ts(t: datetime) -> int:
    return int(t.timestamp())


def demands_from_forecast(path: Path) -> list[Demand]:
    """The newest forecast of each queue, channel and interval; a WFM's wins over the pipeline's own."""
    from pipeline.tools.simulate.jsonl import read_jsonl

    best: dict[tuple[str, str, int], ev.ForecastPublished] = {}
    for e in read_jsonl(path):
        if not isinstance(e, ev.ForecastPublished):
            continue
        key = (e.queue_id, e.channel, _ts(e.interval_start))
        old = best.get(key)
        if old is None or (e.source == "wfm", e.time) >= (old.source == "wfm", old.time):
            best[key] = e
    return [Demand(q, ch, s, e.offered, e.aht_seconds) for (q, ch, s), e in best.items()]


def demands_from_counts(path: Path) -> list[Demand]:
    out = []
    with open(path, newline="") as f:
        for n, row in enumerate(csv.DictReader(f), start=2):
            try:
                patience = row.get("patience_seconds") or None
                out.append(
                    Demand(
                        row["queue"],
                        row["channel"],
                        _ts(datetime.fromisoformat(row["interval_start"])),
                        float(row["offered"]),
                        float(row["aht_seconds"]),
                        float(patience) if patience else None,
                    )
                )
            except (KeyError, ValueError, TypeError) as exc:
                raise UsageError(
                    f"{path}:{n}: expected queue,channel,interval_start,offered,aht_seconds[,patience_seconds] ({exc})"
                ) from None
    return out


def observed_patience(path: Path) -> dict[str, float]:
    """Per queue, over its final interval records: total wait / abandons (the live estimate's formula)."""
    waited: dict[str, float] = {}
    abandoned: dict[str, int] = {}
    newest: dict[tuple[str, str, str], dict] = {}
    with open(path, "rb") as lines:
        for line in lines:
            if not line.strip():
                continue
            r = orjson.loads(line)
            if r.get("kind", "queue") != "queue" or r.get("window") != "interval" or not r.get("final"):
                continue
            key = (r["queue_id"], r["channel"], r["interval_start"])
            if key not in newest or r["revision"] >= newest[key]["revision"]:
                newest[key] = r
    for (q, _, _), r in newest.items():
        waited[q] = waited.get(q, 0.0) + r["answer_wait_seconds_sum"] + r["abandon_wait_seconds_sum"]
        abandoned[q] = abandoned.get(q, 0) + r["abandoned"]
    return {q: waited[q] / abandoned[q] for q in waited if abandoned[q] > 0 and waited[q] > 0}


def schedule_of(path: Path) -> tuple[list[Entry], dict[str, tuple[str, ...]]]:
    from pipeline.tools.simulate.jsonl import read_jsonl

    entries: dict[str, Entry] = {}
    logins: dict[str, tuple[datetime, tuple[str, ...]]] = {}
    for e in read_jsonl(path):
        if isinstance(e, ev.ScheduleActivityPlanned):
            entries[e.event_id] = Entry(
                e.agent_id, e.activity, e.start.timestamp(), e.end.timestamp(), e.version, e.event_id
            )
        elif isinstance(e, ev.AgentLoggedIn):
            if e.agent_id not in logins or e.time >= logins[e.agent_id][0]:
                logins[e.agent_id] = (e.time, tuple(e.queue_ids))
    return list(entries.values()), {a: q for a, (_, q) in logins.items()}


def _row(r: PlanRow) -> str:
    start = datetime.fromtimestamp(r.start, UTC).strftime("%H:%M")
    have = "-" if r.scheduled is None else f"{r.scheduled:.1f}"
    gap = "-" if r.gap is None else f"{r.gap:+.1f}"
    return (
        f"{r.queue:<14} {r.channel:<6} {start:>5} {r.offered:>9.1f} {r.aht:>6.0f} {r.required:>9} {r.needed:>7} "
        f"{have:>10} {gap:>7}  {r.model}"
    )


def record(r: PlanRow, interval_seconds: int) -> dict:
    """A `kind: "plan"` record: planned vs required for one queue, channel and interval."""
    return {
        "kind": "plan",
        "queue_id": r.queue,
        "channel": r.channel,
        "interval_start": datetime.fromtimestamp(r.start, UTC).isoformat(),
        "interval_end": datetime.fromtimestamp(r.start + interval_seconds, UTC).isoformat(),
        "forecast_offered": r.offered,
        "forecast_aht_seconds": r.aht,
        "agents_required": r.required,
        "agents_needed": r.needed,
        "agents_scheduled": r.scheduled,
        "gap": r.gap,
        "model": r.model,
    }


def _interval(demands: Iterable[Demand]) -> int:
    starts = sorted({d.start for d in demands})
    steps = {b - a for a, b in zip(starts, starts[1:], strict=False)}
    step = min(steps) if steps else 900
    if DAY % step:
        raise UsageError(f"intervals of {step} s do not divide a day")
    return step


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    config = QueueConfig.load(args.queues) if args.queues else QueueConfig()
    demands = demands_from_forecast(args.forecast) if args.forecast else demands_from_counts(args.counts)
    if not demands:
        raise UsageError("the file has no forecast intervals")
    day = args.day or datetime.fromtimestamp(min(d.start for d in demands), UTC).date()
    first = _ts(datetime(day.year, day.month, day.day, tzinfo=UTC))
    demands = [d for d in demands if first <= d.start < first + DAY and (not args.queue or d.queue in args.queue)]
    if not demands:
        raise UsageError(f"nothing is forecast on {day} for the queues asked")
    step = _interval(demands)
    if args.kpis:
        patience = observed_patience(args.kpis)
        demands = [d if d.patience is not None else replace(d, patience=patience.get(d.queue)) for d in demands]
    scheduled = None
    if args.schedule:
        entries, queues_of = schedule_of(args.schedule)
        unknown = {e.agent for e in entries} - set(queues_of)
        if unknown:
            print(
                f"{len(unknown)} scheduled agents never logged in: their queues are unknown, not counted",
                file=sys.stderr,
            )
        scheduled = scheduled_agents(entries, queues_of, step)
    rows = plan(demands, step, config.for_queue, scheduled)
    elapsed = time.perf_counter() - t0
    if args.records_out:
        with open(args.records_out, "wb") as out:
            for r in rows:
                out.write(orjson.dumps(record(r, step)) + b"\n")
    if not args.quiet:
        print(f"staffing plan for {day} (UTC), {step // 60}-minute intervals")
        print(
            f"{'queue':<14} {'chan':<6} {'start':>5} {'forecast':>9} {'AHT':>6} {'required':>9} {'needed':>7} "
            f"{'scheduled':>10} {'gap':>7}  model"
        )
        for r in rows:
            print(_row(r))
    queues = len({(r.queue, r.channel) for r in rows})
    short = [r for r in rows if r.gap is not None and r.gap > 0]
    print(
        f"{queues} queues x {len(rows) // max(queues, 1)} intervals planned in {elapsed:.2f} s"
        + (f"; {len(short)} intervals understaffed" if scheduled is not None else ""),
        file=sys.stderr,
    )
    return 0


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def main_plan(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline staffing plan", description=__doc__)
    demand = p.add_mutually_exclusive_group(required=True)
    demand.add_argument("--forecast", type=Path, help="forecast.published events (JSON Lines)")
    demand.add_argument(
        "--counts", type=Path, help="CSV: queue,channel,interval_start,offered,aht_seconds[,patience_seconds]"
    )
    p.add_argument("--schedule", type=Path, help="agent-topic events (JSON Lines): schedule entries and logins")
    p.add_argument("--kpis", type=Path, help="KPI records (JSON Lines) for each queue's observed patience (Erlang A)")
    p.add_argument("--queues", type=Path, help="queue file (default: the built-in defaults for every queue)")
    p.add_argument("--day", type=_day, help="the UTC day to plan (default: the forecast's first day)")
    p.add_argument("--queue", action="append", help="only this queue (repeatable)")
    p.add_argument("--records-out", type=Path, help='write `kind: "plan"` records (JSON Lines) here')
    p.add_argument("--quiet", action="store_true", help="no table, only the summary line")
    args = p.parse_args(argv)
    try:
        return run(args)
    except (UsageError, OSError, ValueError) as exc:
        print(f"python -m pipeline staffing plan: {exc}", file=sys.stderr)
        return 2
