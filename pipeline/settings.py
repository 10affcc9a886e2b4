"""All settings of the pipeline, in one typed object read once when a command starts.

Each field is set by the environment variable `PIPELINE_<FIELD NAME IN CAPITALS>` (or an `.env` file in the
working directory). Nothing reads the environment at import time. A wrong value stops the command at start
with a message naming the variable and what is allowed (`load_settings`).

Queues (service-level thresholds and the like) are in a separate TOML file, `PIPELINE_QUEUES_FILE`, because
they are many and structured; see `QueueConfig`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "PIPELINE_"


class SettingsError(SystemExit):
    """A setting is wrong: the message says which and what is allowed. Exits with status 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = 2
        self.message = message

    def __str__(self) -> str:
        return self.message


class QueueSettings(BaseModel):
    """How one queue is measured."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    service_level_threshold_seconds: Annotated[float, Field(gt=0, le=3600)] = 20.0
    """A contact answered within this many seconds of arriving counts towards the service level."""


class QueueConfig(BaseModel):
    """The queue configuration file: defaults, and per-queue overrides under `[queues.<queue_id>]`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    defaults: QueueSettings = QueueSettings()
    queues: dict[str, QueueSettings] = {}

    def for_queue(self, queue_id: str) -> QueueSettings:
        return self.queues.get(queue_id, self.defaults)

    @classmethod
    def load(cls, path: Path | None) -> QueueConfig:
        """Read and check the file; any problem is a SettingsError naming the queue and the field."""
        if path is None:
            return cls()
        try:
            raw = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"{ENV_PREFIX}QUEUES_FILE={path}: cannot be read as TOML: {exc}") from None
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise SettingsError(_explain(exc, f"queue configuration {path}", lambda loc: ".".join(loc))) from None


class Settings(BaseSettings):
    """Every setting, with its environment variable `PIPELINE_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True,
                                      use_attribute_docstrings=True)

    broker_url: str = ""
    """Kafka bootstrap servers, `host:port[,host:port...]`. Empty: `run` and `replay` start the embedded broker."""

    app_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,100}$")] = "cc-kpi"
    """Faust application id: the consumer group and the prefix of state topics."""

    topic_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,100}$")] = "cc"
    """Prefix of every topic: `<prefix>.contact-events`, `.agent-events`, `.kpis`, `.dead-letters`, `.late-events`."""

    partitions: Annotated[int, Field(ge=1, le=1024)] = 4
    """Partitions of the topics the pipeline creates (workers scale out up to this many)."""

    replication_factor: Annotated[int, Field(ge=1, le=10)] = 1
    """Replication factor of the topics the pipeline creates (1 for the embedded broker; 3 in production)."""

    session_timeout_seconds: Annotated[float, Field(ge=3, le=300)] = 10.0
    """Kafka consumer-group session timeout: how soon a dead worker's partitions move to another worker."""

    interval_minutes: Literal[15, 30, 60] = 15
    """Length of a KPI interval, aligned to the hour in UTC."""

    allowed_lateness_seconds: Annotated[float, Field(ge=0, le=86400)] = 120.0
    """How long after an interval's end (in event time) events may still change it before it is final."""

    contact_timeout_seconds: Annotated[float, Field(gt=0, le=7 * 86400)] = 4 * 3600.0
    """A contact with no outcome or no end this long after it arrived is given up (counted as expired)."""

    max_clock_skew_seconds: Annotated[float, Field(ge=0, le=7 * 86400)] = 300.0
    """Events stamped further than this ahead of the worker's clock are rejected (`future_event_time`)."""

    queues_file: Path | None = None
    """TOML file with per-queue settings (service level threshold). Empty: defaults for every queue."""

    web_host: str = "127.0.0.1"
    """Address the worker's HTTP server (/metrics, /progress) binds to. Loopback unless told otherwise."""

    web_port: Annotated[int, Field(ge=0, le=65535)] = 6066
    """Port of the worker's HTTP server."""

    batch_max_messages: Annotated[int, Field(ge=1, le=100_000)] = 2000
    """Most messages the worker takes from Kafka in one batch."""

    flush_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0
    """Longest a batch waits to fill; state is checkpointed and KPI records published at most this often."""

    kpi_update_seconds: Annotated[float, Field(ge=0, le=3600)] = 5.0
    """How often a provisional revision of an open interval's KPI record is published (final ones at once)."""

    max_event_bytes: Annotated[int, Field(ge=256, le=16 * 1024 * 1024)] = 64 * 1024
    """Largest single event accepted; larger ones are dead-lettered as `oversized`."""

    max_message_bytes: Annotated[int, Field(ge=256, le=64 * 1024 * 1024)] = 1024 * 1024
    """Largest Kafka message (one event or a batch of them) accepted."""

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Log level of every process."""

    @field_validator("web_host")
    @classmethod
    def _host_not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must be a host name or address, e.g. 127.0.0.1")
        return v

    def topic(self, name: str) -> str:
        """Full name of one of the pipeline's topics."""
        return f"{self.topic_prefix}.{name}"

    @property
    def interval_seconds(self) -> int:
        return self.interval_minutes * 60


def _explain(exc: ValidationError, where: str, name_of) -> str:
    lines = [f"Invalid {where}:"]
    for err in exc.errors():
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f"={value!r}"
        msg = err["msg"].replace("Input should be", "allowed:").replace("Value error, ", "")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"  {name_of(tuple(str(p) for p in err['loc']))}{shown}: {msg}")
    return "\n".join(lines)


def settings_markdown() -> str:
    """docs/settings.md: every setting with its variable, default and meaning (generated; a test checks it)."""
    out = ["# Settings", "", "Generated from `pipeline/settings.py` by `python -m pipeline catalogue`. Every setting "
           "is an environment variable (or a line in `.env`); a wrong value stops the command at start.", "",
           "| variable | default | meaning |", "| --- | --- | --- |"]
    for name, f in Settings.model_fields.items():
        default = "" if f.default is None else f.default
        out.append(f"| `{ENV_PREFIX}{name.upper()}` | `{default}` | {f.description} |")
    out += ["", "## Queue file (`PIPELINE_QUEUES_FILE`, TOML)", "",
            "`[defaults]` applies to every queue; `[queues.<queue_id>]` overrides it for one queue.", "",
            "| field | default | meaning |", "| --- | --- | --- |"]
    for name, f in QueueSettings.model_fields.items():
        out.append(f"| `{name}` | `{f.default}` | {f.description} |")
    out += ["", "```toml", "[defaults]", "service_level_threshold_seconds = 20", "", "[queues.sales]",
            "service_level_threshold_seconds = 30", "```", ""]
    return "\n".join(out)


def load_settings(**overrides) -> Settings:
    """Read the settings (environment, `.env`, then `overrides`); a wrong one is a SettingsError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(
            _explain(exc, "settings", lambda loc: ENV_PREFIX + "_".join(loc).upper())
        ) from None
