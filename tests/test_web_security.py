"""Protected HTTP endpoints (a web config file in the Prometheus exporters' format: TLS and bcrypt basic auth) and
the production profile, which refuses to start without a hash key, with plaintext Kafka off the host or with open
endpoints off the host."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pki import Pki, make_pki

from pipeline.core import processes
from pipeline.core.settings import SettingsError, load_settings
from pipeline.monitoring import alerting
from pipeline.runtime.broker import ensure_topics, free_port
from pipeline.runtime.startup import check_at_start, production_problems
from pipeline.runtime.webconfig import WebConfig, credentials_header, load_web_config, web_security
from pipeline.tools.run import worker_process

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "scrape-me-not-shown"
# cost 4: the format and check are the same as cost 10, at a fraction of the time
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$", 1)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def web_config_file(directory: Path, pki: Pki | None = None, users: bool = True) -> Path:
    lines = []
    if pki is not None:  # relative paths are read from the file's own directory, as exporter-toolkit does
        shutil.copy(pki.server_cert, directory / "server.pem")
        shutil.copy(pki.server_key, directory / "server.key")
        lines += ["tls_server_config:", "  cert_file: server.pem", "  key_file: server.key", "  min_version: TLS12"]
    if users:
        lines += ["basic_auth_users:", f"  prometheus: {HASH}"]
    lines += ["http_server_config:", "  headers:", "    X-Content-Type-Options: nosniff"]
    path = directory / "web-config.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


# -- the web config file ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("basic_auth_users:\n  prometheus: plain-password\n", "basic_auth_users.prometheus is not a bcrypt hash"),
        ("basic_auth_user:\n  a: b\n", "unknown field basic_auth_user"),
        (
            "tls_server_config:\n  cert_file: nope.pem\n  key_file: nope.key\n",
            "tls_server_config.cert_file: no such file",
        ),
        ("tls_server_config:\n  key_file: k.pem\n", "tls_server_config.cert_file is required"),
        ("- a list\n", "must be a YAML mapping"),
        ("a: [\n", "is not YAML"),
    ],
)
def test_a_wrong_web_config_fails_with_a_sentence(tmp_path, text, expected):
    path = tmp_path / "web.yml"
    path.write_text(text)
    with pytest.raises(SettingsError) as err:
        load_web_config(path)
    assert str(err.value).startswith(f"PIPELINE_WEB_CONFIG_FILE={path}: ") and expected in str(err.value)
    assert "\n" not in str(err.value)


def test_no_web_config_means_plain_http_without_authentication():
    assert load_web_config(None) == WebConfig()


async def _client(config: WebConfig, open_paths=("/health/live",)) -> TestClient:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(middlewares=[config.middleware(open_paths)])
    app.router.add_get("/metrics", ok)
    app.router.add_get("/health/live", ok)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_metrics_without_credentials_is_401_and_health_stays_open(tmp_path):
    config = load_web_config(web_config_file(tmp_path))
    client = await _client(config)
    try:
        r = await client.get("/metrics")
        assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Basic ")
        assert (
            await client.get("/metrics", headers={"Authorization": credentials_header("prometheus", "x")})
        ).status == 401
        assert (
            await client.get("/metrics", headers={"Authorization": credentials_header("nobody", PASSWORD)})
        ).status == 401
        assert (await client.get("/metrics", headers={"Authorization": "Basic !!not-base64"})).status == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer abc"})).status == 401
        good = await client.get("/metrics", headers={"Authorization": credentials_header("prometheus", PASSWORD)})
        assert good.status == 200 and await good.text() == "ok"
        assert good.headers["X-Content-Type-Options"] == "nosniff"
        assert (await client.get("/health/live")).status == 200  # probes need no credentials
    finally:
        await client.close()


def test_web_security_gives_a_tls_context_and_the_middleware(tmp_path, pki):
    context, middleware = web_security(web_config_file(tmp_path, pki), open_paths=())
    assert isinstance(context, ssl.SSLContext) and context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert callable(middleware)


# -- the production profile -------------------------------------------------------------------------------------------


def _production(monkeypatch, **env: str):
    for var in list(os.environ):
        if var.startswith("PIPELINE_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("PIPELINE_ENV", "production")
    for k, v in env.items():
        monkeypatch.setenv(f"PIPELINE_{k.upper()}", v)
    return load_settings()


def test_production_refuses_each_unsafe_default_with_what_to_set(monkeypatch):
    settings = _production(monkeypatch, broker_url="kafka-1.internal:9092", web_host="0.0.0.0")
    problems = production_problems(settings, load_web_config(None))
    assert problems == [
        "PIPELINE_ENV=production needs PIPELINE_CUSTOMER_HASH_KEY: a long random secret, the same on every worker and"
        " kept across restarts (e.g. `openssl rand -base64 32`, stored in a secret).",
        "PIPELINE_ENV=production refuses PLAINTEXT Kafka to kafka-1.internal, off this host: set"
        " PIPELINE_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL (with PIPELINE_KAFKA_SSL_CA_FILE unless the system's CAs"
        " sign the brokers' certificates).",
        "PIPELINE_ENV=production refuses unauthenticated HTTP endpoints on 0.0.0.0: set PIPELINE_WEB_CONFIG_FILE to"
        " a web config with basic_auth_users (and tls_server_config), or PIPELINE_WEB_HOST=127.0.0.1.",
    ]
    with pytest.raises(SettingsError):
        check_at_start(settings)


def test_production_with_everything_set_starts(monkeypatch, tmp_path, pki):
    settings = _production(
        monkeypatch,
        broker_url="kafka-1.internal:9093",
        web_host="0.0.0.0",
        customer_hash_key="a-long-random-secret-of-ours",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="cc-kpi",
        kafka_sasl_password="x",
        kafka_ssl_ca_file=str(pki.ca),
        web_config_file=str(web_config_file(tmp_path, pki)),
    )
    assert check_at_start(settings).authenticates


def test_production_allows_plaintext_kafka_and_open_endpoints_on_this_host(monkeypatch):
    settings = _production(monkeypatch, broker_url="127.0.0.1:9092", customer_hash_key="a-long-random-secret-of-ours")
    assert production_problems(settings, load_web_config(None)) == []


@pytest.mark.integration
def test_the_worker_command_refuses_production_without_a_hash_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    env.update(PIPELINE_ENV="production", PIPELINE_BROKER_URL="127.0.0.1:1", PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "worker"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 2 and done.stderr.startswith("PIPELINE_ENV=production needs PIPELINE_CUSTOMER_HASH_KEY")
    assert "Traceback" not in done.stderr


# -- the worker's endpoints behind TLS and basic auth, scraped by a real Prometheus --------------------------------


def _get(url: str, context: ssl.SSLContext, auth: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": auth} if auth else {})
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as resp:  # noqa: S310 (loopback)
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _wait_listening(port: int, worker: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert worker.poll() is None, "the worker exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"nothing listening on {port}")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.mark.integration
def test_worker_endpoints_need_credentials_over_tls_and_prometheus_scrapes_them(broker, tmp_path, monkeypatch, pki):
    monkeypatch.setenv("PIPELINE_BROKER_URL", broker.bootstrap)
    port = free_port()
    config = web_config_file(tmp_path, pki)
    overrides = {"app_id": "web-auth", "topic_prefix": "web-auth", "web_port": port, "web_config_file": config}
    settings = load_settings(**overrides)
    asyncio.run(ensure_topics(settings))
    client_context = ssl.create_default_context(cafile=str(pki.ca))
    base = f"https://127.0.0.1:{port}"
    auth = credentials_header("prometheus", PASSWORD)
    with worker_process(settings, tmp_path / "worker.log", **overrides) as worker:
        _wait_listening(port, worker)
        status, _ = _get(f"{base}/metrics", client_context)
        assert status == 401
        assert _get(f"{base}/progress", client_context)[0] == 401  # offsets and watermarks are not public either
        assert _get(f"{base}/metrics", client_context, credentials_header("prometheus", "wrong"))[0] == 401
        status, body = _get(f"{base}/metrics", client_context, auth)
        assert status == 200 and b"cc_pipeline" in body
        assert _get(f"{base}/health/live", client_context)[0] in (200, 503)  # open for probes, not 401
        with pytest.raises(OSError):  # plain HTTP is not served (the connection is dropped)
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)  # noqa: S310

        _hostile_clients(port, client_context)
        assert worker.poll() is None
        assert _get(f"{base}/metrics", client_context, auth)[0] == 200  # still serving
        assert _rss_kib(worker.pid) < 600 * 1024  # a 20 MB body was refused, not buffered

        if shutil.which("prometheus"):
            _prometheus_scrapes(port, pki, tmp_path)


def _hostile_clients(port: int, context: ssl.SSLContext) -> None:
    """Malformed requests, a huge body, a slow client and a TLS-less one: answered or dropped, never a crash."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    raw.sendall(b"\x16\x03\x01garbage that is no TLS\r\n\r\n")
    raw.close()
    for request in (
        b"GARBAGE\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 20000000\r\n"
        + f"Authorization: {credentials_header('prometheus', PASSWORD)}\r\n\r\n".encode()
        + b"x" * 1_000_000,
    ):
        with context.wrap_socket(
            socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="localhost"
        ) as s:
            try:
                s.sendall(request)
                assert s.recv(100).startswith(b"HTTP/1.")  # 400, 401, 405, 413 or 414: an answer
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
                pass  # dropped is fine too
    # random requests: junk bytes, junk in the request line, the headers, the path, huge headers
    rng = random.Random(21)
    for _ in range(120):
        junk = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 600)))
        request = rng.choice(
            [
                junk,
                b"GET /" + junk.replace(b" ", b"") + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-" + junk.replace(b"\r\n", b"") + b"\r\n\r\n",
                b"GET /metrics HTTP/1.1\r\nAuthorization: Basic " + junk.replace(b"\r\n", b"") + b"\r\n\r\n",
                b"GET /health/ready HTTP/1.1\r\nCookie: " + b"a" * rng.randint(8000, 70000) + b"\r\n\r\n",
            ]
        )
        with context.wrap_socket(
            socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="localhost"
        ) as s:
            try:
                s.sendall(request)
                s.recv(100)
            except (OSError, ssl.SSLError):
                pass  # dropped is fine; a crash is what the caller checks for
    # slow clients: each sends half a request and nothing more; they hold only their own connections
    slow = []
    for _ in range(50):
        c = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="localhost")
        c.sendall(b"GET /metrics HTTP/1.1\r\n")
        slow.append(c)
    try:
        with context.wrap_socket(
            socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="localhost"
        ) as s:
            s.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 ")
    finally:
        for c in slow:
            c.close()


def _prometheus_scrapes(port: int, pki: Pki, tmp_path: Path) -> None:
    password_file = tmp_path / "scrape-password"
    password_file.write_text(PASSWORD)
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    # the project's own generator of the Prometheus config, with the credentials and the CA
    generated = alerting.prometheus_config(
        [f"127.0.0.1:{port}"],
        [],
        [],
        scrape_interval="1s",
        basic_auth={"username": "prometheus", "password_file": str(password_file)},
        tls_config={"ca_file": str(pki.ca)},
    )
    config.write_text(json.dumps(generated))
    checked = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    data = Path(tempfile.mkdtemp(dir=tmp_path))
    proc = processes.spawn(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        tmp_path / "prometheus.log",
    )
    try:
        deadline, result = time.monotonic() + 30, []
        while time.monotonic() < deadline:
            try:
                url = f"http://127.0.0.1:{prom_port}/api/v1/query?query=up"
                with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback)
                    result = json.load(resp)["data"]["result"]
                if result and result[0]["value"][1] == "1":
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert result and result[0]["value"][1] == "1", (tmp_path / "prometheus.log").read_text()[-2000:]
    finally:
        processes.stop(proc)


def test_credentials_header_is_basic_auth():
    assert base64.b64decode(credentials_header("a", "b:c").split()[1]) == b"a:b:c"
