"""`python -m pipeline report --period day|week|month --out DIR`: operations reports as HTML and PDF.

Records from `--records FILE` (what `replay --kpi-out` writes), from `--events FILE` (computed in this process, no
broker), or else from the KPI topic of `PIPELINE_BROKER_URL`. `--send` sends each team's report (its queues) to the
team's recipients in the queue file (SMTP) or its webhook. The maths is `pipeline.kpis.reporting`; here only
reading, rendering, writing and sending.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from pipeline.core.settings import QueueConfig, Settings, SettingsError, load_settings
from pipeline.kpis.reporting.figures import PERIODS, Period, Records, build, latest_period, parse_records, period_of


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipeline report", description=__doc__.splitlines()[0])
    p.add_argument("--period", choices=PERIODS, required=True, help="a day, an ISO week or a calendar month")
    p.add_argument("--date", type=date.fromisoformat, help="a day in the period (default: the newest in the records)")
    p.add_argument("--queues", nargs="+", metavar="QUEUE", help="only these queues (default: all in the records)")
    p.add_argument("--out", type=Path, required=True, help="directory for the HTML and PDF")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--records", type=Path, help="JSON Lines of KPI records (python -m pipeline replay --kpi-out)")
    source.add_argument("--events", type=Path, help="JSON Lines of events: records computed in this process")
    p.add_argument("--send", action="store_true", help="send each team's report to its recipients (queue file)")
    p.add_argument(
        "--watch",
        action="store_true",
        help="with --period day --send: keep polling, and send each day's report once every queue's day record is final",
    )
    p.add_argument("--poll-seconds", type=float, default=60.0, help="how often --watch reads the records (default 60)")
    return p


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 2


def read_records(args: argparse.Namespace, settings: Settings, queues: QueueConfig) -> list[dict[str, Any]]:
    if args.records is not None:
        try:
            lines = args.records.read_bytes().splitlines()
        except OSError as exc:
            raise SettingsError(f"--records {args.records}: cannot be read ({exc.strerror})") from None
        try:
            return [orjson.loads(line) for line in lines if line.strip()]
        except orjson.JSONDecodeError as exc:
            raise SettingsError(f"--records {args.records}: not JSON Lines of KPI records ({exc})") from None
    if args.events is not None:
        from pipeline.tools.report.inprocess import records_from_events
        from pipeline.tools.simulate import read_jsonl

        if not args.events.is_file():
            raise SettingsError(f"--events {args.events}: no such file")
        return records_from_events(read_jsonl(args.events), queues, progress=True)
    if not settings.broker_url:
        raise SettingsError("give --records FILE or --events FILE, or set PIPELINE_BROKER_URL to read the KPI topic")
    from pipeline.runtime.kpi_topic import read_final_records

    return asyncio.run(read_final_records(settings))


def write_report(
    records: Records, raw_count: int, queues: QueueConfig, period: Period, only: list[str] | None, out: Path, name: str
) -> tuple[Path, Path, dict[str, Any]]:
    from pipeline.tools.report.render import html_report, pdf_report

    data = build(records, queues, period, only)
    title = f"Operations report: {period.label}" + (f" ({', '.join(only)})" if only else "")
    out.mkdir(parents=True, exist_ok=True)
    html_path, pdf_path = out / f"{name}.html", out / f"{name}.pdf"
    html_path.write_text(html_report(data, title, raw_count))
    pdf_report(data, title, raw_count, pdf_path)
    return html_path, pdf_path, data


def main_report(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.watch:
        if args.period != "day" or not args.send or args.date:
            return _fail("--watch needs --period day and --send, and no --date")
        return watch(args)
    started = time.monotonic()
    try:
        settings = load_settings()
        queues = QueueConfig.load(settings.queues_file)
        raw = read_records(args, settings, queues)
    except SettingsError as exc:
        return _fail(exc.message)
    records = parse_records(raw)
    if not records.intervals:
        return _fail("no final queue interval records to report on")
    period = period_of(args.period, args.date) if args.date else latest_period(args.period, records, queues)
    known = {r.queue_id for r in records.intervals}
    if args.queues and not set(args.queues) <= known:
        unknown = sorted(set(args.queues) - known)
        return _fail(f"--queues: no records of {', '.join(unknown)}; the records hold {', '.join(sorted(known))}")
    name = f"report-{args.period}-{period.start.isoformat()}"
    print(f"{len(raw):,} records; {args.period} {period.label}", file=sys.stderr)
    html_path, pdf_path, data = write_report(records, len(raw), queues, period, args.queues, args.out, name)
    if not data["queues"]:
        return _fail(f"no records in {period.label} or the {args.period} before it")
    missed = sum(q["intervals_missed"] for q in data["queues"])
    print(
        f"wrote {html_path} and {pdf_path} in {time.monotonic() - started:.1f} s: "
        f"{len(data['queues'])} queues and channels, {missed} intervals below target",
        file=sys.stderr,
    )
    if args.send:
        from pipeline.tools.report.delivery import DeliveryError

        try:
            sent = send_team_reports(settings, queues, records, len(raw), period, args.out)
        except DeliveryError as exc:
            return _fail(str(exc))
        print(f"sent {sent} team reports", file=sys.stderr)
    return 0


def send_team_reports(
    settings: Settings, queues: QueueConfig, records: Records, raw_count: int, period: Period, out: Path
) -> int:
    """Each team with recipients or a webhook gets the report of its queues (those of the records); the count sent."""
    from pipeline.tools.report.delivery import post_webhook, send_email

    present = {r.queue_id for r in records.intervals}
    sent = 0
    for team, target in sorted(queues.teams.items()):
        mine = sorted(q for q in present if queues.for_queue(q).team == team)
        if not mine or not (target.report_recipients or target.report_webhook):
            continue
        name = f"report-{period.kind}-{period.start.isoformat()}-{team}"
        html_path, pdf_path, data = write_report(records, raw_count, queues, period, mine, out, name)
        subject = f"Operations report {period.label}: team {team}"
        if target.report_recipients:
            send_email(
                settings, target.report_recipients, subject, html_path.read_text(), pdf_path.read_bytes(), pdf_path.name
            )
        if target.report_webhook:
            post_webhook(
                target.report_webhook, {"subject": subject, "team": team, "data": data, "html": html_path.read_text()}
            )
        sent += 1
    return sent


def complete_days(records: Records, queues: QueueConfig) -> list[date]:
    """Local days for which every queue and channel with intervals that day has its final day record."""
    from pipeline.kpis.reporting.figures import local_date

    have = {(r.queue_id, r.channel, local_date(r.interval_start, queues.for_queue(r.queue_id))) for r in records.days}
    days: dict[date, bool] = {}
    for r in records.intervals:
        day = local_date(r.interval_start, queues.for_queue(r.queue_id))
        days[day] = days.get(day, True) and (r.queue_id, r.channel, day) in have
    return sorted(d for d, complete in days.items() if complete)


def due_days(records: Records, queues: QueueConfig, state: Path) -> list[date]:
    """Complete days not sent yet: after the newest sent one (the state file), or only the newest on a first start
    (no flood of old reports)."""
    complete = complete_days(records, queues)
    sent = [date.fromisoformat(d) for d in orjson.loads(state.read_bytes())["sent"]] if state.exists() else []
    if not sent:
        return complete[-1:]
    return [d for d in complete if d > max(sent)]


def mark_sent(state: Path, day: date) -> None:
    sent = orjson.loads(state.read_bytes())["sent"] if state.exists() else []
    state.write_bytes(orjson.dumps({"sent": sorted({*sent, day.isoformat()})[-400:]}))


def watch(args: argparse.Namespace) -> int:
    """Poll the records; send each local day's report once its day records are all final."""
    from pipeline.tools.report.delivery import DeliveryError

    try:
        settings = load_settings()
        queues = QueueConfig.load(settings.queues_file)
    except SettingsError as exc:
        return _fail(exc.message)
    args.out.mkdir(parents=True, exist_ok=True)
    state = args.out / "sent-days.json"
    try:
        while True:
            try:
                raw = read_records(args, settings, queues)
            except SettingsError as exc:
                return _fail(exc.message)
            records = parse_records(raw)
            for day in due_days(records, queues, state):
                try:
                    sent = send_team_reports(settings, queues, records, len(raw), period_of("day", day), args.out)
                except DeliveryError as exc:  # the next poll tries again
                    print(f"{day}: {exc}", file=sys.stderr)
                    break
                mark_sent(state, day)
                print(f"{day}: sent {sent} team reports", file=sys.stderr)
            print(f"watching: {len(raw):,} records; next look in {args.poll_seconds:g} s", file=sys.stderr)
            time.sleep(args.poll_seconds)
    except KeyboardInterrupt:
        return 0
