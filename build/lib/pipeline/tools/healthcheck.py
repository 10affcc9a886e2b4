"""`python -m pipeline.tools.healthcheck`: a container's health check of its worker, which restarts a stalled one.

Docker marks a container unhealthy but (outside Swarm) never restarts it, so with `--restart` this check ends the
worker itself (SIGTERM to process 1, the worker: it checkpoints and exits, and the `restart: unless-stopped`
policy starts it again) when /health/live says no, or nothing answers, `--attempts` times in a row. Never within
`--grace` seconds of the worker's start: recovering its state takes a while, and its HTTP server comes up last.
A 401 (health pages behind credentials, `PIPELINE_WEB_OPEN_HEALTH=false`) is reported and never acted on.
"""

from __future__ import annotations

import argparse
import os
import signal
import ssl
import sys
import time
import urllib.error
import urllib.request

from pipeline.core.settings import load_settings


def process_age_seconds(pid: int = 1) -> float:
    """Seconds since process `pid` started (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def live(url: str, context: ssl.SSLContext | None, timeout: float) -> tuple[bool | None, str]:
    """(True: live, False: not live or not answering, None: cannot tell), and what was seen."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:  # noqa: S310 (own worker)
            return resp.status == 200, f"HTTP {resp.status}"
    except urllib.error.HTTPError as err:
        return (None if err.code == 401 else False), f"HTTP {err.code}"
    except OSError as exc:
        return False, str(exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.tools.healthcheck", description=__doc__)
    parser.add_argument("--restart", action="store_true", help="SIGTERM process 1 (the worker) when not live")
    parser.add_argument("--attempts", type=int, default=3)
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between attempts")
    parser.add_argument("--grace", type=float, default=180.0, help="seconds after the worker's start never acted on")
    parser.add_argument("--pid", type=int, default=1, help="the worker's process id (1 in its container)")
    args = parser.parse_args(argv)
    settings = load_settings()
    host = "127.0.0.1" if settings.web_host in ("0.0.0.0", "::", "") else settings.web_host
    tls = settings.web_config_file is not None and "tls_server_config" in settings.web_config_file.read_text()
    context = None
    if tls:  # our own worker on this host, by address: its certificate names the service, not 127.0.0.1
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    url = f"{'https' if tls else 'http'}://{host}:{settings.web_port}/health/live"
    seen = ""
    for attempt in range(args.attempts):
        ok, seen = live(url, context, timeout=5)
        if ok:
            return 0
        if ok is None:
            print(f"{url}: {seen}: health pages need credentials; set PIPELINE_WEB_OPEN_HEALTH=true", file=sys.stderr)
            return 1
        if attempt + 1 < args.attempts:
            time.sleep(args.interval)
    print(f"{url}: not live after {args.attempts} attempts ({seen})", file=sys.stderr)
    if args.restart and process_age_seconds(args.pid) > args.grace:
        print(f"stopping the worker (process {args.pid}) so that the container restarts", file=sys.stderr)
        os.kill(args.pid, signal.SIGTERM)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
