"""The local ops stack: a real Prometheus and Alertmanager on loopback, with the project's rules loaded.

`run` starts it beside the worker when the binaries are installed (Debian: `apt-get install prometheus
prometheus-alertmanager`); the end-to-end test starts it too. Each process gets a free loopback port, a data
directory under a temporary folder and its own process group, and is always stopped on the way out. The rule
files and configs are the generated ones (`pipeline.monitoring.alerting`), with the scrape target set to the
running worker and the Alertmanager's webhooks pointed at a small in-process receiver that logs (and keeps)
every notification, so the demo shows alerts in the terminal without any paging system.

This module must not compute KPIs nor change the rules: it only wires the processes together.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pipeline.core import processes
from pipeline.core.settings import QueueConfig
from pipeline.monitoring import alerting
from pipeline.runtime.broker import free_port

log = logging.getLogger(__name__)


def binaries() -> dict[str, str] | None:
    """Paths of prometheus and alertmanager (Debian names it prometheus-alertmanager), or None if missing."""
    prom = shutil.which("prometheus")
    am = shutil.which("alertmanager") or shutil.which("prometheus-alertmanager")
    return {"prometheus": prom, "alertmanager": am} if prom and am else None


@dataclass
class Notification:
    path: str  # /page/<team> or /ticket/<team>
    body: dict

    @property
    def alerts(self) -> list[dict]:
        return self.body.get("alerts", [])


@dataclass
class WebhookReceiver:
    """An HTTP server on loopback that records Alertmanager's webhook notifications (and calls `on_notify`)."""

    on_notify: Callable[[Notification], None] | None = None
    notifications: list[Notification] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0  # a free one

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                n = Notification(self.path, body)
                receiver.notifications.append(n)
                if receiver.on_notify:
                    receiver.on_notify(n)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer((self.host, self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def print_notification(n: Notification) -> None:
    for a in n.alerts:
        labels = a.get("labels", {})
        where = " ".join(f"{k}={labels[k]}" for k in ("queue", "channel", "team") if k in labels)
        print(
            f"  ALERT {a.get('status', '?').upper():8} {labels.get('alertname')} [{labels.get('severity')}] "
            f"{where} -> {n.path}: {a.get('annotations', {}).get('summary', '')}",
            flush=True,
        )


class OpsStack:
    """Prometheus scraping `targets` with the project's rules, sending to an Alertmanager with the project's
    routes whose webhooks go to `receiver` (started here if not given)."""

    def __init__(
        self,
        targets: list[str],
        queues: QueueConfig,
        work_dir: Path | None = None,
        timing: alerting.Timing = alerting.DEPLOYED,
        scrape_interval: str = "5s",
        evaluation_interval: str = "5s",
        group_wait: str = "10s",
        group_interval: str = "1m",
        receiver: WebhookReceiver | None = None,
        log_dir: Path | None = None,
        runbook: str = alerting.RUNBOOK,
    ) -> None:
        found = binaries()
        if found is None:
            raise RuntimeError(
                "prometheus and alertmanager are not on PATH "
                "(Debian/Ubuntu: apt-get install prometheus prometheus-alertmanager)"
            )
        self.bin = found
        self.targets, self.queues, self.timing, self.runbook = targets, queues, timing, runbook
        self.scrape_interval, self.evaluation_interval = scrape_interval, evaluation_interval
        self.group_wait, self.group_interval = group_wait, group_interval
        self._own_dir = work_dir is None
        self.dir = Path(tempfile.mkdtemp(prefix="cc-ops-")) if work_dir is None else work_dir
        self.log_dir = log_dir or self.dir
        self.receiver = receiver
        self._own_receiver = receiver is None
        self.procs: list[subprocess.Popen[bytes]] = []
        self._names: dict[int, str] = {}  # pid -> the name its log file has
        self.prometheus_port = free_port()
        self.alertmanager_port = free_port()

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.alertmanager_port}"

    def write_configs(self) -> None:
        if self.receiver is None:  # Alertmanager's config names the receiver's URL
            raise RuntimeError("no webhook receiver: start() makes one, or pass one")
        rules = self.dir / "rules"
        rules.mkdir(parents=True, exist_ok=True)
        (rules / "recording.rules.yml").write_text(
            alerting.dump({"groups": alerting.recording_groups(self.queues, self.timing)})
        )
        (rules / "alerts.rules.yml").write_text(
            alerting.dump({"groups": alerting.alert_groups(self.timing, self.runbook)})
        )
        (self.dir / "prometheus.yml").write_text(
            alerting.dump(
                alerting.prometheus_config(
                    self.targets,
                    [f"127.0.0.1:{self.alertmanager_port}"],
                    [str(rules / "*.rules.yml")],
                    self.scrape_interval,
                    self.evaluation_interval,
                )
            )
        )
        (self.dir / "alertmanager.yml").write_text(
            alerting.dump(
                alerting.alertmanager_config(self.queues, self.receiver.url, self.group_wait, self.group_interval, "1h")
            )
        )

    def start(self, timeout: float = 30.0) -> OpsStack:
        if self.receiver is None:
            self.receiver = WebhookReceiver(on_notify=print_notification)
            self.receiver.start()
        self.write_configs()
        try:
            self._spawn(
                "alertmanager",
                [
                    self.bin["alertmanager"],
                    f"--config.file={self.dir / 'alertmanager.yml'}",
                    f"--storage.path={self.dir / 'alertmanager-data'}",
                    f"--web.listen-address=127.0.0.1:{self.alertmanager_port}",
                    "--cluster.listen-address=",  # no gossip port on 0.0.0.0: a single local instance
                ],
            )
            self._spawn(
                "prometheus",
                [
                    self.bin["prometheus"],
                    f"--config.file={self.dir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.dir / 'prometheus-data'}",
                    f"--web.listen-address=127.0.0.1:{self.prometheus_port}",
                    # resend firing alerts often, so a short test or demo sees state changes quickly
                    "--rules.alert.resend-delay=1s" if self.timing.scale < 1 else "--rules.alert.resend-delay=1m",
                ],
            )
            self._wait_ready(f"{self.alertmanager_url}/-/ready", timeout)
            self._wait_ready(f"{self.prometheus_url}/-/ready", timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, argv: list[str]) -> None:
        proc = processes.spawn(argv, self.log_dir / f"{name}.log")
        self.procs.append(proc)
        self._names[proc.pid] = name

    def _wait_ready(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{self._names[p.pid]} exited with status {p.returncode}; see {self.log_dir}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} not ready after {timeout}s; see {self.log_dir}")
            time.sleep(0.2)

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        """Instant query through Prometheus's HTTP API; raises with Prometheus's error on a bad expression."""
        params = {"query": expr, **({"time": str(at)} if at else {})}
        req = urllib.request.Request(
            f"{self.prometheus_url}/api/v1/query", data=urllib.parse.urlencode(params).encode(), method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise ValueError(f"{expr!r}: {json.loads(exc.read()).get('error')}") from None
        if body.get("status") != "success":
            raise ValueError(f"{expr!r}: {body.get('error')}")
        return body["data"]["result"]

    def api(self, path: str) -> dict:
        with urllib.request.urlopen(f"{self.prometheus_url}{path}", timeout=10) as resp:
            return json.loads(resp.read())["data"]

    def stop(self) -> None:
        for p in reversed(self.procs):
            processes.stop(p)
        if self._own_receiver and self.receiver is not None:
            self.receiver.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> OpsStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextmanager
def ops_stack_for(
    web_host: str, web_port: int, queues: QueueConfig, log_dir: Path, runbook: str = alerting.RUNBOOK
) -> Iterator[OpsStack | None]:
    """`run`'s ops stack: Prometheus + Alertmanager scraping the worker, or None (with a hint) when not installed."""
    if binaries() is None:
        print(
            "  (Prometheus and Alertmanager are not installed, so no alerting: "
            "apt-get install prometheus prometheus-alertmanager)",
            flush=True,
        )
        yield None
        return
    target = f"{'127.0.0.1' if web_host in ('0.0.0.0', '::') else web_host}:{web_port}"
    with OpsStack([target], queues, log_dir=log_dir, runbook=runbook) as stack:
        yield stack
