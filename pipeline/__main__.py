"""`python -m pipeline <command>`: run, worker, webhook, replay, simulate, ingest, sink, staffing, forecast, report,
schemas, catalogue, ops-config."""

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
    p.add_argument(
        "--hours", type=float, default=8.0, help="simulated hours, from the center's busiest hour (default 8)"
    )
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated seconds per wall-clock second (default 1: real time). Faster distorts what you see: "
        "Prometheus windows, alerts' for: durations and business hours stay on the wall clock (at 60 a 5-minute "
        "window spans five simulated hours), and the simulated period starts in the past so that no event is "
        "ahead of the clock",
    )
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
    p.add_argument("--strict", action="store_true", help="refuse the whole file if any line is not a contract event")
    p.add_argument("--log-dir", type=Path, default=None, help="keep the broker and worker logs here")

    sub.add_parser("webhook", help="HTTP receiver for Amazon Connect, Twilio TaskRouter and Genesys Cloud callbacks")

    sub.add_parser("simulate", help="write a simulated center's events to a JSONL file", add_help=False)
    sub.add_parser(
        "ingest", help="a contact center's files in (Asterisk queue_log, call-detail CSV): events out", add_help=False
    )
    sub.add_parser("bench", help="throughput, latency and memory of the real worker, with references", add_help=False)
    sub.add_parser(
        "staffing", help="what-if staffing: agents for a service level target (Erlang C / A)", add_help=False
    )
    sub.add_parser("report", help="day/week/month operations report (HTML and PDF) from KPI records", add_help=False)
    sub.add_parser(
        "forecast", help="forecast offered and AHT per queue and interval; `forecast backtest`", add_help=False
    )
    sub.add_parser("sink", help="write the KPI topic into PostgreSQL or Parquet, exactly once", add_help=False)
    sub.add_parser("schemas", help="regenerate schemas/*.json from the contract's classes")
    sub.add_parser("catalogue", help="regenerate docs/kpis.md and docs/settings.md from the code")
    sub.add_parser("ops-config", help="regenerate deploy/ rules and configs, and grafana/ dashboards", add_help=False)

    if argv[:1] == ["simulate"]:
        from pipeline.tools.simulate import main_simulate

        return main_simulate(argv[1:])
    if argv[:1] == ["ingest"]:
        from pipeline.tools.ingest import main_ingest

        return main_ingest(argv[1:])
    if argv[:1] == ["staffing"]:
        from pipeline.tools.staffing import main_staffing

        return main_staffing(argv[1:])
    if argv[:1] == ["report"]:
        from pipeline.tools.report import main_report

        return main_report(argv[1:])
    if argv[:1] == ["forecast"]:
        from pipeline.tools.forecast import main_forecast

        return main_forecast(argv[1:])
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
    if args.command == "webhook":
        from pipeline.runtime.webhook import main_webhook

        return main_webhook()
    if args.command == "run":
        from pipeline.tools.run import run_demo

        return run_demo(args.hours, args.speed, args.seed, args.agents, args.log_dir)
    if args.command == "replay":
        from pipeline.core.processes import interrupt_on_sigterm
        from pipeline.tools.replay import ReplayRefused, replay

        interrupt_on_sigterm()  # the broker and worker it starts stop with it
        try:
            s = replay(args.events, args.kpi_out, args.events_per_message, strict=args.strict, log_dir=args.log_dir)
        except ReplayRefused as exc:
            print(f"replay: {exc}", file=sys.stderr)
            return 2
        print(
            f"\nreplayed {s.events} events ({s.messages} messages) in {s.seconds:.1f}s: "
            f"{s.final_records} final KPI records -> {args.kpi_out}; "
            f"rejected {s.rejected}, duplicates {s.duplicates}, late {s.late}"
        )
        for reason, lines in sorted(s.dead_lettered.items()):
            shown = ", ".join(map(str, lines[:10])) + (" ..." if len(lines) > 10 else "")
            print(f"dead-lettered {len(lines)} lines ({reason}): lines {shown} -> {args.kpi_out}.dead-letters.jsonl")
        if s.out_of_order:
            print(f"{s.out_of_order} events were out of time order in the file: replayed in time order")
        if s.log_dir:
            print(f"logs: {s.log_dir}")
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
