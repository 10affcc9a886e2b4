"""The compose stack holds together: the hash key from an env file, the workers' endpoints behind basic auth that
Prometheus is given, a health check that restarts a stalled worker, an Alertmanager receiver that exists, and a TLS
overlay whose workers reach the brokers' TLS listener and pass the production profile."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from pipeline.core.settings import load_settings
from pipeline.monitoring import alerting
from pipeline.runtime.broker import free_port
from pipeline.runtime.startup import production_problems
from pipeline.runtime.transport import STOP_GRACE_SECONDS
from pipeline.runtime.webconfig import load_web_config
from pipeline.tools.healthcheck import process_age_seconds

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE_SCHEMA = Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")  # Debian's docker-compose
needs_compose = pytest.mark.skipif(not shutil.which("docker-compose"), reason="docker-compose not installed")


def merged(tmp_path: Path, *files: str) -> dict:
    """`docker-compose config` of the files, from a copy of deploy/ with the env file made from its example."""
    copy = shutil.copytree(DEPLOY, tmp_path / "deploy")
    shutil.copy(copy / "secrets.env.example", copy / "secrets.env")
    argv = ["docker-compose"] + [a for f in files for a in ("-f", str(copy / f))] + ["config"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_the_tls_overlay_follows_the_compose_specification():
    if not COMPOSE_SCHEMA.exists():
        pytest.skip("docker-compose's compose_spec.json not installed")
    import jsonschema

    jsonschema.validate(
        yaml.safe_load((DEPLOY / "compose.tls.yaml").read_text()), json.loads(COMPOSE_SCHEMA.read_text())
    )


@needs_compose
def test_workers_get_the_hash_key_a_health_check_and_credentials_prometheus_shares(tmp_path):
    stack = merged(tmp_path, "compose.yaml")
    services = stack["services"]
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    scrape = prometheus["scrape_configs"][0]
    for name in ("worker-1", "worker-2", "worker-3"):
        worker = services[name]
        assert worker["environment"]["PIPELINE_CUSTOMER_HASH_KEY"]  # from secrets.env
        assert worker["healthcheck"]["test"][:4] == ["CMD", "python", "-m", "pipeline.tools.healthcheck"]
        assert "--restart" in worker["healthcheck"]["test"] and worker["restart"] == "unless-stopped"
        assert int(worker["stop_grace_period"].rstrip("s")) > STOP_GRACE_SECONDS
        assert worker["environment"]["PIPELINE_WEB_CONFIG_FILE"] == "/run/secrets/web_config"
        assert [s["source"] for s in worker["secrets"]] == ["web_config"]
    # Prometheus reads the password where compose mounts its secret
    assert scrape["basic_auth"]["password_file"] == "/run/secrets/scrape_password"
    assert [s["source"] for s in services["prometheus"]["secrets"]] == ["scrape_password"]
    assert {"web_config", "scrape_password", "grafana_admin_password"} <= set(stack["secrets"])


@needs_compose
def test_alertmanager_posts_to_a_service_that_exists_and_listens_there(tmp_path):
    services = merged(tmp_path, "compose.yaml")["services"]
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    urls = {c["url"] for r in config["receivers"] for c in r.get("webhook_configs", [])}
    hosts = {u.split("//")[1].split("/")[0] for u in urls}
    assert hosts == {"oncall-webhook:9095"}
    command = services["oncall-webhook"]["command"]
    assert (
        command[:3] == ["python", "-m", "pipeline.tools.alert_sink"] and command[command.index("--port") + 1] == "9095"
    )


@needs_compose
def test_the_tls_overlay_points_workers_at_the_brokers_tls_listener_in_production(tmp_path, monkeypatch):
    services = merged(tmp_path, "compose.yaml", "compose.tls.yaml")["services"]
    advertised = {}
    for name in ("kafka-1", "kafka-2", "kafka-3"):
        env = services[name]["environment"]
        protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
        for listener in env["KAFKA_ADVERTISED_LISTENERS"].split(","):
            label, address = listener.split("://")
            advertised[address] = protocols[label]
            assert "SSL" not in label  # the apache/kafka image's start script wants JKS files for those
        assert any(v.endswith(":/etc/kafka/tls/broker.pem:ro") for v in services[name]["volumes"])
    worker = services["worker-1"]["environment"]
    assert all(advertised[a] == "SSL" for a in worker["PIPELINE_BROKER_URL"].split(","))
    assert any(v.endswith(":" + worker["PIPELINE_KAFKA_SSL_CA_FILE"] + ":ro") for v in services["worker-1"]["volumes"])
    # the workers' settings, as compose gives them, pass the production profile (with the web config's users)
    for var in [v for v in os.environ if v.startswith("PIPELINE_")]:
        monkeypatch.delenv(var)
    for k, v in worker.items():
        monkeypatch.setenv(k, str(v))
    monkeypatch.delenv("PIPELINE_WEB_CONFIG_FILE")
    monkeypatch.delenv("PIPELINE_QUEUES_FILE")
    settings = load_settings()
    assert settings.env == "production"
    web = load_web_config(DEPLOY / "secrets" / "web-config.yml.example")
    assert production_problems(settings, web) == []


# -- the health check and the alert sink, run for real -------------------------------------------------------------


class _Health:
    def __init__(self, status: int) -> None:
        self.status = status

        class Handler(BaseHTTPRequestHandler):
            def do_GET(handler) -> None:  # noqa: N802, N805
                handler.send_response(self.status)
                handler.end_headers()

            def log_message(handler, *args) -> None:  # noqa: N805
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]


def _check(port: int, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    env.update(PIPELINE_WEB_PORT=str(port), PYTHONPATH=str(ROOT))
    argv = [sys.executable, "-m", "pipeline.tools.healthcheck", "--attempts", "2", "--interval", "0.1", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.integration
def test_the_health_check_stops_a_worker_that_is_not_live_and_only_then():
    live, stalled = _Health(200), _Health(503)
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.3)
        assert process_age_seconds(worker.pid) >= 0
        assert _check(live.port, "--restart", "--grace", "0", "--pid", str(worker.pid)).returncode == 0
        young = _check(stalled.port, "--restart", "--grace", "3600", "--pid", str(worker.pid))
        assert young.returncode == 1 and worker.poll() is None  # within its start grace: left alone
        done = _check(stalled.port, "--restart", "--grace", "0", "--pid", str(worker.pid))
        assert done.returncode == 1 and "not live after 2 attempts (HTTP 503)" in done.stderr
        assert worker.wait(10) == -signal.SIGTERM
        assert _check(free_port()).returncode == 1  # nothing answering counts as not live
    finally:
        worker.kill()
        live.server.shutdown()
        stalled.server.shutdown()


@pytest.mark.integration
def test_the_alert_sink_prints_what_alertmanager_posts(tmp_path):
    port = free_port()
    sink = subprocess.Popen(
        [sys.executable, "-m", "pipeline.tools.alert_sink", "--port", str(port)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sink.stdout is not None and "listening" in sink.stdout.readline()
        body = {
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "CCQueueServiceLevelBelowTargetFast", "severity": "critical", "queue": "q"},
                    "annotations": {"summary": "Service level dropped."},
                }
            ]
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/page/support", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 (loopback)
            assert resp.status == 200
        line = sink.stdout.readline()
        assert "FIRING" in line and "CCQueueServiceLevelBelowTargetFast" in line and "/page/support" in line
    finally:
        sink.terminate()
        sink.wait(10)


def test_the_generated_prometheus_config_still_scrapes_the_three_workers():
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["scrape_configs"][0]["job_name"] == alerting.JOB
