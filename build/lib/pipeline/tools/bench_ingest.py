"""The `ingest` phase of `python -m pipeline bench`: file import speed, source records per second into JSON Lines.

A simulated day of a center (`--ingest-agents`) is written once as an Asterisk queue_log and once as a
call-detail TSV (pipeline/tools/simulate/formats.py); each is imported `--ingest-rounds` times with the
`ingest` command's own code (read, order in time, translate, write JSON Lines), in this process, on one core.
The figure is the median records per CPU second of the importing process (one core: the import is
single-threaded, and CPU time does not count the time other processes of a shared machine take), with the range
over the rounds; the elapsed-time rates are kept in the JSON results too. Also on its own:
`python -m pipeline.tools.bench_ingest [--agents N] [--rounds R]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from pipeline.sources import cdr
from pipeline.sources.asterisk import AsteriskConfig
from pipeline.tools import ingest
from pipeline.tools.simulate import CenterConfig, formats, simulate

TARGET = 50_000  # source records per second, one core


def run(agents: int, rounds: int, seed: int, folder: Path) -> dict:
    """{format: {records, events, rates: [records/s per round], median, min, max}}."""
    reference = CenterConfig()
    config = replace(reference, agents=agents, duration_hours=24.0).with_load_of(reference)
    voice = {q.queue_id for q in config.queues if q.channel == "voice"}
    events = list(simulate(config, seed))
    queue_log, calls, mapping = folder / "queue_log", folder / "calls.tsv", folder / "calls.mapping.toml"
    formats.write_asterisk_queue_log(events, queue_log, voice)
    formats.write_cdr(events, calls, voice)
    mapping.write_text(formats.CDR_MAPPING)
    makers: dict[str, tuple[Path, Callable[[], ingest.Format]]] = {
        "asterisk-queue-log": (
            queue_log,
            lambda: ingest.AsteriskFormat(AsteriskConfig(callback_keys=frozenset({formats.CALLBACK_KEY}))),
        ),
        "cdr": (calls, lambda: ingest.CdrFormat(cdr.load_mapping(mapping))),
    }
    results: dict = {}
    for name, (path, make) in makers.items():
        rates, wall, summary = [], [], None
        for _ in range(rounds):
            began, cpu = time.perf_counter(), time.process_time()
            summary = ingest.import_file(make(), path, folder / "out.jsonl", folder / "dead.jsonl")
            rates.append(summary.read / (time.process_time() - cpu))
            wall.append(summary.read / (time.perf_counter() - began))
        assert summary is not None
        results[name] = {
            "records": summary.read,
            "events": summary.events,
            "dead_lettered": sum(summary.dead.values()),
            "rates": rates,  # records per CPU second of this process: one core, whatever else runs
            "wall_rates": wall,  # records per second of elapsed time (lower on a loaded machine)
            "median": statistics.median(rates),
            "min": min(rates),
            "max": max(rates),
        }
    return results


def ingest_phase(opts: argparse.Namespace, data_dir: Path) -> dict:
    folder = data_dir / "ingest"
    folder.mkdir(parents=True, exist_ok=True)
    return run(opts.ingest_agents, opts.ingest_rounds, opts.seed, folder)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ingest-agents", type=int, default=300, help="agents of the ingest phase's simulated day")
    p.add_argument("--ingest-rounds", type=int, default=5, help="imports of each file in the ingest phase")


def rows(result: dict) -> list[tuple[str, float, str, str, bool | None]]:
    """(figure, value, unit, target, met) for the benchmark's table."""
    out: list[tuple[str, float, str, str, bool | None]] = []
    for name, r in result.items():
        rounds = len(r["rates"])
        out.append(
            (
                f"ingest {name} into JSONL, {r['records']:,} records (median of {rounds}; "
                f"range {r['min']:,.0f}-{r['max']:,.0f}; elapsed-time median {statistics.median(r['wall_rates']):,.0f})",
                r["median"],
                "records/CPU-s",
                f">= {TARGET:,}",
                r["median"] >= TARGET,
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.tools.bench_ingest", description=__doc__)
    parser.add_argument("--agents", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="cc-bench-ingest-") as folder:
        result = run(args.agents, args.rounds, args.seed, Path(folder))
    for figure, value, unit, target, ok in rows(result):
        print(f"{figure}: {value:,.0f} {unit} (target {target}: {'met' if ok else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
