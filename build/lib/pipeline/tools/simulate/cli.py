"""`main_simulate`: write a simulated event log to a JSONL file from the command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from pipeline.contract.events import ContactOffered, Event, event_type
from pipeline.tools.simulate import formats
from pipeline.tools.simulate.center import simulate
from pipeline.tools.simulate.config import CenterConfig, with_all_channels
from pipeline.tools.simulate.jsonl import write_jsonl
from pipeline.tools.simulate.vendor_formats import FORMATS, write_vendor_jsonl

PROGRESS_EVERY = 100_000


def _utc_datetime(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time: {text!r}") from exc
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a UTC offset (e.g. {text}Z): {text!r}")
    return value.astimezone(UTC)


def _parser() -> argparse.ArgumentParser:
    default = CenterConfig()
    parser = argparse.ArgumentParser(
        prog="simulate",
        description="Simulate a contact center and write its contract events as JSON Lines. "
        "Arrival rates follow the number of agents and the period, so agents stay about as busy as in "
        f"the default center ({default.agents} agents, {default.duration_hours:g} h).",
    )
    parser.add_argument("--out", required=True, help="output file (.jsonl)")
    parser.add_argument(
        "--format",
        choices=("contract", "asterisk-queue-log", "cdr", *FORMATS),
        default="contract",
        help="contract events as JSON Lines (default); the voice queues' day as an Asterisk queue_log, or as a "
        "call-detail TSV (with its mapping file written to OUT.mapping.toml); or the records a vendor would send "
        "for the day, one JSON object a line (TaskRouter: its callback's form fields); docs/sources.md",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--hours",
        type=float,
        default=default.duration_hours,
        help="simulated period in hours; the run then drains (default: %(default)s)",
    )
    parser.add_argument("--agents", type=int, default=default.agents, help="agents (default: %(default)s)")
    parser.add_argument(
        "--rate-scale",
        type=float,
        default=1.0,
        help="extra factor on the arrival rates: above 1 overloads the center (default: 1)",
    )
    parser.add_argument(
        "--all-channels",
        action="store_true",
        help="email (arriving in business hours, Monday to Friday 08:00-20:00), back-office tasks and messaging "
        "queues besides the voice and chat ones, served by the chat agents",
    )
    parser.add_argument(
        "--offer-missed-share",
        type=float,
        default=default.offer_missed_share,
        help=f"offers to agents that ring out unanswered (RONA, after {default.ring_timeout:g} s) before the "
        "contact is offered again (default: %(default)s)",
    )
    parser.add_argument(
        "--offer-rejected-share",
        type=float,
        default=default.offer_rejected_share,
        help="offers the agent rejects before the contact is offered again (default: %(default)s)",
    )
    parser.add_argument(
        "--start",
        type=_utc_datetime,
        default=default.start,
        help=f"simulated start, ISO 8601 with offset (default: {default.start.isoformat()})",
    )
    return parser


def main_simulate(argv: list[str]) -> int:
    """Run the simulator as the command line asks; print progress and a summary to stderr."""
    args = _parser().parse_args(argv)
    if args.hours <= 0 or args.agents < 0 or args.rate_scale < 0:
        _parser().error("--hours must be positive, --agents and --rate-scale not negative")
    reference = CenterConfig()
    try:
        config = replace(
            reference,
            agents=args.agents,
            duration_hours=args.hours,
            start=args.start,
            offer_missed_share=args.offer_missed_share,
            offer_rejected_share=args.offer_rejected_share,
        )
    except ValueError as exc:
        _parser().error(str(exc))
    if args.all_channels:
        config = with_all_channels(config)
    config = config.with_load_of(reference)
    config = replace(config, rate_scale=config.rate_scale * args.rate_scale)

    began = time.perf_counter()
    by_type: Counter[str] = Counter()
    contacts: set[str] = set()
    last_time = config.start

    def observed(events: Iterator[Event]) -> Iterator[Event]:
        """Pass the events through, counting them and reporting progress."""
        nonlocal last_time
        for count, event in enumerate(events, start=1):
            by_type[event_type(type(event))] += 1
            if isinstance(event, ContactOffered):
                contacts.add(event.contact_id)
            if count % PROGRESS_EVERY == 0:
                print(
                    f"  {count:>10,} events, at {event.time:%Y-%m-%d %H:%M}, {time.perf_counter() - began:.1f} s",
                    file=sys.stderr,
                )
            last_time = event.time
            yield event

    print(
        f"simulating {config.agents} agents for {config.duration_hours:g} h from {config.start.isoformat()} "
        f"(seed {args.seed}, rate scale {config.rate_scale:.3g}) -> {args.out}",
        file=sys.stderr,
    )
    voice = {q.queue_id for q in config.queues if q.channel == "voice"}
    if args.format == "asterisk-queue-log":
        count = formats.write_asterisk_queue_log(observed(simulate(config, args.seed)), args.out, voice)
    elif args.format == "cdr":
        count = formats.write_cdr(observed(simulate(config, args.seed)), args.out, voice)
        Path(f"{args.out}.mapping.toml").write_text(formats.CDR_MAPPING)
        print(f"mapping file: {args.out}.mapping.toml", file=sys.stderr)
    elif args.format == "contract":
        count = write_jsonl(observed(simulate(config, args.seed)), args.out)
    else:
        count = write_vendor_jsonl(args.format, observed(simulate(config, args.seed)), args.out)
    elapsed = time.perf_counter() - began

    unit = {"contract": "events", "asterisk-queue-log": "queue_log lines", "cdr": "call rows"}.get(
        args.format, f"{args.format} records"
    )
    print(f"wrote {count:,} {unit} in {elapsed:.1f} s", file=sys.stderr)
    for name, n in sorted(by_type.items()):
        print(f"  {name:<22} {n:>10,}", file=sys.stderr)
    if count:
        span = last_time - config.start
        print(
            f"contacts {len(contacts):,}, legs {by_type['contact.offered']:,}, "
            f"abandoned {by_type['contact.abandoned']:,}; "
            f"simulated {span.total_seconds() / 3600:.2f} h including the drain",
            file=sys.stderr,
        )
    return 0
