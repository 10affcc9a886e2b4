"""The benchmark's peer: Quix Streams over the same pre-loaded events as the worker (`python -m pipeline bench`).

What a Python user would pick instead of this pipeline: Quix Streams (librdkafka's consumer, RocksDB state with a
changelog topic) computing 15-minute tumbling-window counts per Kafka key on event time: per queue on the contact
topic, per agent on the agent topic, as the worker keys them. A batched message (a JSON array of events) is expanded
into its events first. The child reports, as the other reference consumers do, when it could first read, when the
first message was processed and when the last was, on the machine's monotonic clock.

The child imports nothing of ours (only the standard library and Quix Streams, with its own orjson), so it can run
under another interpreter (`--peer-python`): Quix Streams pins pydantic below what the pipeline otherwise resolves
to, so a user may keep it in a virtual environment of its own. `python -m pipeline.tools.bench_peer quix --help`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

PACKAGE = "quixstreams"
INSTALL = "pip install '.[bench]' (or --peer-python PYTHON of a virtual environment that has it)"


def not_available(python: str) -> str | None:
    """Why the peer cannot run under `python` (None: it can): Quix Streams missing there, or no such interpreter."""
    try:
        done = subprocess.run(
            [python, "-c", f"import {PACKAGE}; print({PACKAGE}.__version__)"],
            capture_output=True,
            timeout=120,
            check=False,
        )
    except OSError as exc:
        return f"{python}: {exc.strerror or exc}"
    except subprocess.TimeoutExpired:
        return f"{python}: importing {PACKAGE} took over 120 s"
    if done.returncode != 0:
        return f"Quix Streams is not installed for {python}: {INSTALL}"
    return None


def version(python: str) -> str:
    done = subprocess.run([python, "-c", f"import {PACKAGE}; print({PACKAGE}.__version__)"], capture_output=True)
    return done.stdout.decode().strip()


def child_environment(base: dict[str, str]) -> dict[str, str]:
    """The environment of the peer child: our package importable whatever the interpreter (only this module runs)."""
    root = str(Path(__file__).resolve().parents[2])
    path = base.get("PYTHONPATH")
    return {**base, "PYTHONPATH": root + (os.pathsep + path if path else "")}


def _event_ms(value: dict) -> int:
    # The contract's times are RFC 3339 with "Z"; Python 3.11 reads that directly.
    return int(datetime.fromisoformat(value["time"]).timestamp() * 1000)


def quix(args: argparse.Namespace) -> int:
    """Windowed counts per key over both event topics until `--messages` messages are processed."""
    import orjson
    from quixstreams import Application

    state: dict = {"messages": 0, "events": 0, "idle": None, "first": None}

    def processed(topic: str, partition: int, offset: int) -> None:
        n = state["messages"] = state["messages"] + 1
        if state["first"] is None:  # after the first message: it is not counted, as the others' first fetch
            state["first"] = [time.monotonic(), 1]
            state["cpu"] = [time.process_time(), None]  # every thread's, librdkafka's too (as the worker's)
        if n >= args.messages and "end" not in state:
            state["end"] = time.monotonic()
            state["cpu"][1] = time.process_time()
            app.stop()

    app = Application(
        broker_address=args.broker,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel=args.loglevel,
        on_message_processed=processed,
    )

    def events(value: object) -> list:
        batch = value if isinstance(value, list) else [value]
        state["events"] += len(batch)
        return batch

    for name in args.topic:
        sdf = app.dataframe(app.topic(name, value_deserializer="json", key_deserializer="str"))
        sdf = sdf.apply(events, expand=True)
        sdf = sdf.set_timestamp(lambda value, key, timestamp, headers: _event_ms(value))
        # The same lateness as the worker allows: an event later than that is dropped by both.
        sdf.tumbling_window(args.window_ms, grace_ms=args.grace_ms).count().final()
    state["idle"] = time.monotonic()
    app.run()
    if "end" not in state:
        raise SystemExit(f"quix: stopped after {state['messages']:,} of {args.messages:,} messages")
    tmp = args.out.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(state))
    tmp.rename(args.out)  # atomic: the benchmark never reads half a file
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.tools.bench_peer")
    sub = p.add_subparsers(dest="peer", required=True)
    q = sub.add_parser("quix", help="Quix Streams: 15-minute windowed counts per key (RocksDB state, changelog)")
    q.add_argument("--broker", required=True, help="bootstrap servers (plaintext)")
    q.add_argument("--group", required=True, help="a consumer group of its own")
    q.add_argument("--topic", action="append", required=True, help="an event topic (repeat for each)")
    q.add_argument("--messages", type=int, required=True, help="stop once this many messages are processed")
    q.add_argument("--out", type=Path, required=True, help="where the result goes (JSON)")
    q.add_argument("--state-dir", type=Path, required=True, help="RocksDB's folder")
    q.add_argument("--window-ms", type=int, default=15 * 60 * 1000)
    q.add_argument("--grace-ms", type=int, default=120_000)
    q.add_argument("--loglevel", default="WARNING", help="Quix Streams' log level (INFO says where its start-up goes)")
    args = p.parse_args(argv)
    return quix(args)


if __name__ == "__main__":
    sys.exit(main())
