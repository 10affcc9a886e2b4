"""`python -m pipeline sink postgres|parquet`: the command line of the sinks."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from pipeline.core.settings import SettingsError, load_settings
from pipeline.tools.sinks.loop import SinkError, SinkOptions, Target, run_sink


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipeline sink",
        description="Write the KPI topic (PIPELINE_TOPIC_PREFIX.kpis on PIPELINE_BROKER_URL) into PostgreSQL or "
        "Parquet files, exactly once: see docs/consumers.md.",
    )
    sub = p.add_subparsers(dest="sink", required=True)
    pg = sub.add_parser("postgres", help="upsert records into tables per kind (kpi_queue, kpi_agent, kpi_fcr)")
    pg.add_argument(
        "--dsn",
        help="postgresql://user:password@host:port/db (default PIPELINE_SINK_DSN, which keeps the password out of "
        "the process list)",
    )
    pg.add_argument("--provisional", action="store_true", help="also write provisional records (final false)")
    pq = sub.add_parser("parquet", help="final records as Parquet files, partitioned by kind and local date")
    pq.add_argument("--dir", type=Path, required=True, help="root directory of the files")
    pq.add_argument(
        "--time-zone", default="UTC", help="the zone whose dates partition the files (default UTC), e.g. Europe/Paris"
    )
    for s in (pg, pq):
        s.add_argument("--group", help="Kafka consumer group (default PIPELINE_APP_ID-sink-<sink>)")
        s.add_argument("--batch-records", type=int, default=None, help="most messages per write")
        s.add_argument("--until-end", action="store_true", help="stop once caught up with the end of the topic")
        s.add_argument(
            "--metrics-port", type=int, default=None, help="port of /metrics (default PIPELINE_SINK_WEB_PORT)"
        )
        s.add_argument("--no-metrics", action="store_true", help="serve no /metrics")
    return p


def main_sink(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        settings = load_settings()
        logging.getLogger().setLevel(settings.log_level.upper())
        group = args.group or f"{settings.app_id}-sink-{args.sink}"
        target: Target
        if args.sink == "postgres":
            from pipeline.tools.sinks.postgres import PostgresTarget

            dsn = args.dsn or (settings.sink_dsn.get_secret_value() if settings.sink_dsn else "")
            if not dsn:
                raise SinkError("no database: give --dsn or set PIPELINE_SINK_DSN")
            target = PostgresTarget(dsn, group)
            batch = args.batch_records or 1000
        else:
            from pipeline.tools.sinks.parquet import ParquetTarget

            target = ParquetTarget(args.dir, args.time_zone)
            batch = args.batch_records or 20_000
        options = SinkOptions(
            group=group,
            provisional=getattr(args, "provisional", False),
            batch_records=batch,
            until_end=args.until_end,
            metrics_port=None
            if args.no_metrics
            else (args.metrics_port if args.metrics_port is not None else settings.sink_web_port),
        )
        summary = asyncio.run(run_sink(settings, target, options))
    except SettingsError as exc:
        print(exc.message, file=sys.stderr)
        return 2
    except SinkError as exc:
        print(f"sink {args.sink}: {exc}", file=sys.stderr)
        return 2
    print(summary.line(args.sink), file=sys.stderr)
    return 0
