"""`python -m pipeline <command>`: run, worker, replay, simulate, sink, staffing, schemas, catalogue, ops-config."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.core.settings import SettingsError


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="embedded broker + worker + live simulator + metrics, until Ctrl-C")
    p.add_argument("--hours", type=float, default=24.0, help="simulated hours, ending now (default 24)")
    p.add_argument("--speed", type=float, default=60.0, help="simulated seconds per second (default 60)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--agents", type=int, default=None, help="agents in the simulated center")
    p.add_argument("--log-dir", type=Path, default=Path("out/run"), help="where broker and worker logs go")

    sub.add_parser("worker", help="one Faust worker against PIPELINE_BROKER_URL")

    p = sub.add_parser("replay", help="push a JSONL file of events through a worker; write the final KPI records")
    p.add_argument("events", type=Path)
    p.add_argument("--kpi-out", type=Path, required=True)
    p.add_argument(
        "--events-per-message",
        type=int,
        default=100,
        help="events batched into one Kafka message (the contract's batching option)",
    )

    sub.add_parser("simulate", help="write a simulated center's events to a JSONL file", add_help=False)
    sub.add_parser("bench", help="throughput, latency and memory of the real worker, with references", add_help=False)
    sub.add_parser(
        "staffing", help="what-if staffing: agents for a service level target (Erlang C / A)", add_help=False
    )
    sub.add_parser("sink", help="write the KPI topic into PostgreSQL or Parquet, exactly once", add_help=False)
    sub.add_parser("schemas", help="regenerate schemas/*.json from the contract's classes")
    sub.add_parser("catalogue", help="regenerate docs/kpis.md and docs/settings.md from the code")
    sub.add_parser("ops-config", help="regenerate deploy/ rules and configs, and grafana/ dashboards", add_help=False)

    if argv[:1] == ["simulate"]:
        from pipeline.tools.simulate import main_simulate

        return main_simulate(argv[1:])
    if argv[:1] == ["staffing"]:
        from pipeline.tools.staffing import main_staffing

        return main_staffing(argv[1:])
    if argv[:1] == ["bench"]:
        from pipeline.tools.bench import main_bench

        return main_bench(argv[1:])
    if argv[:1] == ["sink"]:
        from pipeline.tools.sinks.cli import main_sink

        return main_sink(argv[1:])
    if argv[:1] == ["ops-config"]:
        from pipeline.tools.ops_config import main_ops_config

        return main_ops_config(argv[1:])
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except SettingsError as exc:
        print(exc.message, file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "worker":
        from pipeline.runtime.worker import run_worker

        return run_worker()
    if args.command == "run":
        from pipeline.tools.run import run_demo

        return run_demo(args.hours, args.speed, args.seed, args.agents, args.log_dir)
    if args.command == "replay":
        from pipeline.tools.replay import replay

        s = replay(args.events, args.kpi_out, args.events_per_message)
        print(
            f"\nreplayed {s.events} events ({s.messages} messages) in {s.seconds:.1f}s: "
            f"{s.final_records} final KPI records -> {args.kpi_out}; "
            f"rejected {s.rejected}, duplicates {s.duplicates}, late {s.late}"
        )
        return 0
    if args.command == "schemas":
        from pipeline.tools import schemas

        for path in schemas.write():
            print(path)
        return 0
    if args.command == "catalogue":
        from pipeline.core.settings import settings_markdown
        from pipeline.kpis.catalogue import markdown

        docs = Path(__file__).resolve().parent.parent / "docs"
        for name, text in (("kpis.md", markdown()), ("settings.md", settings_markdown())):
            (docs / name).write_text(text)
            print(docs / name)
        return 0
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
