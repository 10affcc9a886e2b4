"""Settings: one typed object; a wrong value fails at start naming the variable and what is allowed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.core.settings import QueueConfig, SettingsError, load_settings


def test_defaults_bind_to_loopback_and_use_the_embedded_broker(monkeypatch):
    monkeypatch.delenv("PIPELINE_BROKER_URL", raising=False)
    s = load_settings()
    assert s.web_host == "127.0.0.1" and s.broker_url == "" and s.interval_minutes == 15


@pytest.mark.parametrize(
    "var, value, expected",
    [
        ("PIPELINE_INTERVAL_MINUTES", "20", "PIPELINE_INTERVAL_MINUTES='20': allowed: 15, 30 or 60"),
        ("PIPELINE_PARTITIONS", "0", "PIPELINE_PARTITIONS='0'"),
        ("PIPELINE_ALLOWED_LATENESS_SECONDS", "soon", "PIPELINE_ALLOWED_LATENESS_SECONDS='soon'"),
        ("PIPELINE_LOG_LEVEL", "loud", "'debug', 'info', 'warning' or 'error'"),
        ("PIPELINE_TOPIC_PREFIX", "bad prefix!", "PIPELINE_TOPIC_PREFIX"),
        ("PIPELINE_RUNBOOK_URL", "docs/runbook.md", "PIPELINE_RUNBOOK_URL='docs/runbook.md': must be an absolute"),
        ("PIPELINE_RUNBOOK_URL", "https://x.example/runbook#top", "without a #fragment"),
        ("PIPELINE_RUNBOOK_URL", "", "PIPELINE_RUNBOOK_URL='': must be an absolute http:// or https:// URL"),
    ],
)
def test_wrong_setting_names_variable_and_allowed_values(monkeypatch, var, value, expected):
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert expected in str(err.value)
    assert err.value.code == 2


def test_the_runbook_url_arrives_as_a_string_and_defaults_to_the_project_copy(monkeypatch):
    monkeypatch.delenv("PIPELINE_RUNBOOK_URL", raising=False)
    assert load_settings().runbook_url == "https://github.com/cc-kpi/cc-kpi-pipeline/blob/main/docs/runbook.md"
    monkeypatch.setenv("PIPELINE_RUNBOOK_URL", "https://git.example.com/ops/cc-kpi/-/blob/main/docs/runbook.md\n")
    assert load_settings().runbook_url == "https://git.example.com/ops/cc-kpi/-/blob/main/docs/runbook.md"


@pytest.mark.parametrize("minutes", ["15", "30", "60"])
def test_interval_length_arrives_as_a_string(monkeypatch, minutes):
    monkeypatch.setenv("PIPELINE_INTERVAL_MINUTES", minutes)
    settings = load_settings()
    assert settings.interval_minutes == int(minutes) and settings.interval_seconds == int(minutes) * 60


def test_queue_file_overrides_and_defaults(tmp_path):
    path = tmp_path / "queues.toml"
    path.write_text(
        "[defaults]\nservice_level_threshold_seconds = 30\n[queues.sales]\nservice_level_threshold_seconds = 10\n"
    )
    config = QueueConfig.load(path)
    assert config.for_queue("sales").service_level_threshold_seconds == 10
    assert config.for_queue("other").service_level_threshold_seconds == 30


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[queues.sales]\nservice_level_threshold_seconds = -5\n", "queues.sales.service_level_threshold_seconds=-5"),
        ("[queues.sales]\nsl_threshold = 20\n", "queues.sales.sl_threshold=20: unknown field"),
        ("[queues.sales\n", "cannot be read as TOML"),
    ],
)
def test_bad_queue_file_names_queue_and_field(tmp_path, text, expected):
    path = tmp_path / "queues.toml"
    path.write_text(text)
    with pytest.raises(SettingsError) as err:
        QueueConfig.load(path)
    assert expected in str(err.value)


def test_a_queue_section_inherits_the_defaults_it_does_not_override(tmp_path) -> None:
    path = tmp_path / "queues.toml"
    path.write_text(
        '[defaults]\ntime_zone = "Europe/Paris"\nservice_level_target = 0.9\n'
        "[queues.sales]\nservice_level_target = 0.7\n"
    )
    sales = QueueConfig.load(path).for_queue("sales")
    assert (sales.time_zone, sales.service_level_target) == ("Europe/Paris", 0.7)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[queues.sales]\ntime_zone = "Mars/Olympus"\n', "queues.sales.time_zone"),
        ('[queues.sales]\nservice_level_variant = "best"\n', "queues.sales.service_level_variant"),
        ("[queues.sales]\nopens = 18:00:00\ncloses = 08:00:00\n", "closes"),
        ("[defaults]\nservice_level_target = 80\n", "defaults.service_level_target"),
    ],
)
def test_a_wrong_queue_field_names_the_queue_and_the_field(tmp_path, text, named) -> None:
    path = tmp_path / "queues.toml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=re.escape(named)):
        QueueConfig.load(path)


def test_the_demo_queue_file_loads() -> None:
    config = QueueConfig.load(Path(__file__).parent.parent / "deploy" / "queues.toml")
    assert config.for_queue("sales").team == "sales"


@pytest.mark.parametrize(("buffer", "batch", "expected"), [(300, 100, 300), (300, 200, 400), (4096, 2000, 4096)])
def test_the_stream_buffer_is_the_setting_but_at_least_two_batches(buffer, batch, expected) -> None:
    from pipeline.runtime.app import create_app

    settings = load_settings(broker_url="127.0.0.1:1", stream_buffer_messages=buffer, batch_max_messages=batch)
    app = create_app(settings, QueueConfig.load(settings.queues_file))
    assert app.conf.stream_buffer_maxsize == expected


def test_the_worker_app_takes_the_fetch_size_the_partitioner_and_a_lean_monitor() -> None:
    from pipeline.contract.partitioner import KeyPartitioner
    from pipeline.runtime.app import create_app
    from pipeline.runtime.transport import StallMonitor

    settings = load_settings(broker_url="127.0.0.1:1", fetch_partition_bytes=65536)
    app = create_app(settings, QueueConfig.load(settings.queues_file))
    assert app.conf.consumer_max_fetch_size == 65536
    assert app.conf.broker_max_poll_records == settings.batch_max_messages
    assert isinstance(app.conf.producer_partitioner, KeyPartitioner)
    app.on_init_dependencies()  # where Faust adds its Monitor to the sensors
    assert isinstance(app.monitor, StallMonitor) and app.monitor in set(app.sensors)


def test_a_queue_open_until_midnight_closes_at_24_00(tmp_path) -> None:
    """Opening hours are written "until 24:00"; TOML's time literal stops at 23:59:59, so the file gives a string."""
    from pipeline.monitoring.alerting import _open_expr

    path = tmp_path / "queues.toml"
    path.write_text('[queues.night]\nopens = 18:00:00\ncloses = "24:00:00"\n[queues.day]\ncloses = "24:00"\n')
    config = QueueConfig.load(path)
    night = config.for_queue("night")
    assert night.closes_minute == 1440 and night.closes > night.opens
    assert config.for_queue("day").closes_minute == 1440
    assert "< 1440" in _open_expr(["night"], night)  # the alert rules count the last minute as open
    assert QueueConfig().defaults.closes_minute == 20 * 60
    path.write_text('[queues.night]\ncloses = "25:00:00"\n')
    with pytest.raises(SettingsError, match=re.escape("queues.night.closes")):
        QueueConfig.load(path)
