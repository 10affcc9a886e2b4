"""The webhook receiver's settings as they arrive from the environment (strings), and its start-up refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core.settings import SettingsError, load_settings


def test_webhook_settings_from_environment_strings(monkeypatch):
    monkeypatch.setenv("PIPELINE_WEBHOOK_PORT", "8089")
    monkeypatch.setenv("PIPELINE_WEBHOOK_MAX_BODY_BYTES", "65536")
    monkeypatch.setenv("PIPELINE_WEBHOOK_PRODUCE_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("PIPELINE_TWILIO_AUTH_TOKEN", "twilio-secret-value")
    monkeypatch.setenv("PIPELINE_WEBHOOK_CONNECT_TOKEN", "")  # empty: the source is off
    monkeypatch.setenv("PIPELINE_WEBHOOK_HEARTBEAT_DELAY_SECONDS", "45")
    s = load_settings()
    assert (s.webhook_port, s.webhook_max_body_bytes, s.webhook_produce_timeout_seconds) == (8089, 65536, 2.5)
    assert s.webhook_host == "127.0.0.1"  # loopback unless told
    assert s.webhook_connect_token is None and s.webhook_heartbeat_delay_seconds == 45.0
    monkeypatch.setenv("PIPELINE_WEBHOOK_HEARTBEAT_DELAY_SECONDS", "")
    assert load_settings().webhook_heartbeat_delay_seconds is None  # empty: no heartbeats
    assert s.twilio_auth_token is not None and s.twilio_auth_token.get_secret_value() == "twilio-secret-value"
    assert "twilio-secret-value" not in repr(s) and "twilio-secret-value" not in str(s.model_dump())


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PIPELINE_WEBHOOK_PORT", "http"),
        ("PIPELINE_WEBHOOK_MAX_BODY_BYTES", "10"),
        ("PIPELINE_WEBHOOK_HOST", " "),
        ("PIPELINE_WEBHOOK_HEARTBEAT_DELAY_SECONDS", "-5"),
    ],
)
def test_wrong_webhook_settings_name_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert name in info.value.message and info.value.code == 2


def test_the_command_refuses_to_start_without_a_broker_or_a_source(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    run = lambda **extra: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "pipeline", "webhook"],
        env={**env, **extra},
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    no_broker = run()
    assert no_broker.returncode == 2 and "PIPELINE_BROKER_URL" in no_broker.stderr
    no_source = run(PIPELINE_BROKER_URL="127.0.0.1:1")
    assert no_source.returncode == 2 and "PIPELINE_TWILIO_AUTH_TOKEN" in no_source.stderr
    assert "Traceback" not in no_source.stderr
