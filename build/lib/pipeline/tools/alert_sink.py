"""`python -m pipeline.tools.alert_sink`: the compose stack's stand-in for a paging and ticketing system.

Alertmanager's generated routes post to `http://oncall-webhook:9095/{page,ticket}/<team>`; this service receives
them and prints one line per alert (and the whole notification as JSON with `--json`), so that the stack's
alerting path ends somewhere real and visible in `docker compose logs oncall-webhook`. Replace it with your
paging and ticketing bridges, or route Alertmanager to PagerDuty, Opsgenie or email (deploy/README.md).
"""

from __future__ import annotations

import argparse
import json
import signal
import threading

from pipeline.tools.opsstack import Notification, WebhookReceiver, print_notification


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.tools.alert_sink", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=9095)
    parser.add_argument("--json", action="store_true", help="print each notification as one JSON line too")
    args = parser.parse_args(argv)

    def show(n: Notification) -> None:
        print_notification(n)
        if args.json:
            print(json.dumps({"path": n.path, **n.body}, sort_keys=True), flush=True)

    receiver = WebhookReceiver(on_notify=show, host=args.host, port=args.port).start()
    print(f"alert sink listening on {args.host}:{receiver.server.server_address[1]}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    receiver.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
