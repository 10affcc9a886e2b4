"""All settings of the pipeline, in one typed object read once when a command starts.

Each field is set by the environment variable `PIPELINE_<FIELD NAME IN CAPITALS>` (or an `.env` file in the
working directory). Nothing reads the environment at import time. A wrong value stops the command at start
with a message naming the variable and what is allowed (`load_settings`).

Queues (service-level thresholds and the like) are in a separate TOML file, `PIPELINE_QUEUES_FILE`, because
they are many and structured; see `QueueConfig`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.contract.events import ChannelName
from pipeline.contract.records import ServiceLevelClock, Variant
from pipeline.core.time import open_ms

ENV_PREFIX = "PIPELINE_"
RUNBOOK_URL = "https://github.com/cc-kpi/cc-kpi-pipeline/blob/main/docs/runbook.md"
"""Default of `PIPELINE_RUNBOOK_URL`: docs/runbook.md as the project's repository renders it."""


def _one_of(*allowed: int) -> Callable[[int], int]:
    def check(value: int) -> int:
        if value not in allowed:
            raise ValueError("allowed: " + ", ".join(map(str, allowed[:-1])) + f" or {allowed[-1]}")
        return value

    return check


class SettingsError(SystemExit):
    """A setting is wrong: the message says which and what is allowed. Exits with status 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = 2
        self.message = message

    def __str__(self) -> str:
        return self.message


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Ratio = Annotated[float, Field(ge=0, le=1)]
# Up to a week: email and task queues promise answers in hours or days (e.g. 86400 = one day).
ThresholdSeconds = Annotated[float, Field(gt=0, le=7 * 86400)]
ShortAbandonSeconds = Annotated[float, Field(ge=0, le=600)]
# A segment or disposition code becomes a label value: a short name from a bounded, configured set.
LabelName = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
OTHER = "other"
"""The label value every segment or disposition code outside a queue's configured set is counted under."""


class ChannelSettings(BaseModel):
    """How one channel of a queue is measured where it differs from the queue (`[queues.<id>.channels.<channel>]`,
    or `[defaults.channels.<channel>]`): a field left out is the queue's."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    service_level_threshold_seconds: ThresholdSeconds | None = None
    """The channel's service level threshold (email: hours, e.g. 14400 = 4 h)."""
    service_level_clock: ServiceLevelClock | None = None
    """`elapsed` or `business_hours`: how the wait is measured against the threshold (see the queue's field)."""
    service_level_variant: Variant | None = None
    """The channel's headline service level variant."""
    short_abandon_seconds: ShortAbandonSeconds | None = None
    """The channel's short-abandon threshold."""
    service_level_target: Ratio | None = None
    """The channel's service level target (0..1)."""
    abandon_rate_target: Ratio | None = None
    """The channel's highest acceptable abandonment rate (0..1)."""
    asa_target_seconds: ThresholdSeconds | None = None
    """The channel's highest acceptable average speed of answer."""
    oldest_wait_target_seconds: ThresholdSeconds | None = None
    """The channel's longest acceptable wait of its oldest contact."""
    callback_service_level_target: Ratio | None = None
    """The channel's callback service level target (0..1)."""
    callback_overdue_seconds: ThresholdSeconds | None = None
    """How long past its promise the channel's earliest promised callback may wait undialled before a page."""


class QueueSettings(BaseModel):
    """How one queue is measured, and the targets that dashboards and alerts read."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    service_level_threshold_seconds: ThresholdSeconds = 20.0
    """A contact answered within this many seconds of arriving counts towards the service level (at most a week)."""
    service_level_clock: ServiceLevelClock = "elapsed"
    """How a wait is measured against the service level threshold: `elapsed` (wall-clock time) or `business_hours`
    (only the time within the queue's `open_days`, `opens`-`closes` counts, e.g. for email answered next morning).
    ASA, waits and short abandons are always elapsed time."""
    service_level_variant: Variant = "abandons_against"
    """The headline service level (the others are computed too): `abandons_ignored`, `abandons_against`,
    `short_abandons_excluded` or `abandons_in_favour` (see docs/kpis.md)."""
    short_abandon_seconds: ShortAbandonSeconds = 5.0
    """Abandons within this many seconds of arriving are short abandons (misdials, instant hang-ups)."""
    time_zone: str = "UTC"
    """IANA time zone of the queue (e.g. `Europe/Paris`): its hours and "today" are aligned to it."""
    fcr_window_hours: Annotated[float, Field(gt=0, le=30 * 24)] = 24.0
    """A customer contacting again (any queue, any channel) within this many hours means not resolved first time."""
    service_level_target: Ratio = 0.8
    """Target share of contacts within the service level threshold (0..1)."""
    abandon_rate_target: Ratio = 0.05
    """Highest acceptable abandonment rate (0..1)."""
    asa_target_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    """Highest acceptable average speed of answer."""
    oldest_wait_target_seconds: Annotated[float, Field(gt=0, le=86400)] = 120.0
    """Longest acceptable wait of the oldest contact in the queue now."""
    callback_service_level_target: Ratio = 0.9
    """Target share of promised callbacks first dialled at or before the promised time, over the last hour (0..1):
    below it, `CCQueueCallbackServiceLevelBelowTarget` opens a ticket."""
    callback_overdue_seconds: ThresholdSeconds = 300.0
    """A promised callback not dialled this long after its promise pages (`CCQueueCallbackPromiseOverdue`)."""
    team: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")] = "operations"
    """The team that answers for this queue: alerts are routed by it."""
    adherence_exception_seconds: Annotated[float, Field(gt=0, le=86400)] = 300.0
    """An agent of the queue out of adherence (state against its scheduled activity) this long is an exception
    on the agent board."""
    open_days: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")
    """Days the queue is open (in its time zone); outside them no traffic is expected."""
    opens: time = time(8, 0)
    """Opening time on open days (local)."""
    closes: time = time(20, 0)
    """Closing time on open days (local); must be after `opens`. `"24:00:00"` (a string) is the end of the day."""

    @field_validator("closes", mode="before")
    @classmethod
    def _end_of_day(cls, value: object) -> object:
        # Opening hours say "until 24:00"; a time of day stops at 23:59:59.999999, which stands for it.
        if isinstance(value, str) and value.strip() in ("24:00", "24:00:00"):
            return time.max
        return value

    @property
    def closes_minute(self) -> int:
        """Minutes from midnight to closing: 1440 for 24:00."""
        return 1440 if self.closes == time.max else self.closes.hour * 60 + self.closes.minute

    agent_hour_cost: Annotated[float, Field(ge=0)] | None = None
    """Loaded cost of one agent hour (wage, overhead) of the agents serving this queue, in `currency`. Empty: the
    reports show no cost for the queue (docs/reports.md)."""
    telephony_cost_per_minute: Annotated[float, Field(ge=0)] = 0.0
    """Telephony cost per minute a voice contact is on the line (queue wait, talk and hold), in `currency`."""
    self_service_session_cost: Annotated[float, Field(ge=0)] = 0.0
    """Cost of one IVR / bot session (licence, telephony), in `currency`."""
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "EUR"
    """ISO 4217 code the costs are given in."""
    chat_concurrency: Annotated[int, Field(ge=1, le=20)] = 1
    """Contacts an agent handles at once on this queue (chat; 1 for voice): each agent gives this many Erlang
    servers, so required agents = Erlang servers / concurrency, rounded up (docs/staffing.md)."""
    shrinkage: Annotated[float, Field(ge=0, lt=1)] = 0.0
    """Share of scheduled time not available for contacts (breaks, training...), for the staffing plan: scheduled
    agents needed = required / (1 - shrinkage)."""
    max_occupancy: Annotated[float, Field(gt=0, le=1)] = 1.0
    """Occupancy cap (0..1] for required agents: agents are added until the predicted occupancy is at most this."""
    channels: dict[ChannelName, ChannelSettings] = {}
    """Per channel (`[queues.<id>.channels.email]`): thresholds, clock, variant and targets that differ from the
    queue's. The queue's own values hold for every channel not listed (docs/settings.md#channels)."""
    segments: tuple[LabelName, ...] = ()
    """Customer segments (priority classes) counted apart: a `contact.offered` with a `segment` outside this list
    counts as `other`, one without a segment in no segment."""
    dispositions: tuple[LabelName, ...] = ()
    """Wrap-up codes (`contact.acw_ended`'s `disposition`) counted apart; any other code counts as `other`."""

    def __hash__(self) -> int:
        # hashable although `channels` is a dict: settings key caches (pipeline.exposition.metrics)
        return hash(tuple(tuple(sorted(v.items())) if isinstance(v, dict) else v for v in self.__dict__.values()))

    def for_channel(self, channel: str) -> QueueSettings:
        """These settings with the channel's overrides applied (the queue's own for a channel not listed)."""
        own = self.channels.get(channel)  # type: ignore[call-overload]  # any string; unknown ones have none
        if own is None:
            return self
        return self.model_copy(update=own.model_dump(exclude_none=True))

    def business_ms(self, start_ms: int, end_ms: int) -> int:
        """Milliseconds of [start, end) within the queue's opening hours (its time zone, open days, opens-closes)."""
        days = frozenset(WEEKDAYS.index(d) for d in self.open_days)
        return open_ms(start_ms, end_ms, self.zone, days, self.opens, self.closes)

    def segment(self, name: str | None) -> str | None:
        """The label a contact's segment is counted under: configured, `other`, or None without one."""
        if name is None:
            return None
        return name if name in self.segments else OTHER

    def disposition(self, code: str) -> str:
        """The label a wrap-up code is counted under: configured or `other`."""
        return code if code in self.dispositions else OTHER

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. UTC, Europe/Paris, America/New_York)") from None
        return value

    @model_validator(mode="after")
    def _opens_before_closes(self) -> QueueSettings:
        if self.closes <= self.opens:
            raise ValueError(f"closes ({self.closes}) must be after opens ({self.opens})")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


class TeamSettings(BaseModel):
    """Who receives a team's reports (`[teams.<team>]` in the queue file; a queue names its team)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    report_recipients: tuple[Annotated[str, Field(pattern=r"^[^@\s<>]+@[^@\s<>]+$")], ...] = ()
    """E-mail addresses the team's reports are sent to (`python -m pipeline report --send`)."""
    report_webhook: Annotated[str, Field(pattern=r"^https?://")] | None = None
    """URL the team's reports are posted to (JSON with the report's data and its HTML), instead of or besides e-mail."""


def _inherit(base: dict[str, Any], queue: dict[str, Any]) -> dict[str, Any]:
    """A queue's section over `[defaults]`; a channel's table over the defaults' table of that channel."""
    merged = {**base, **queue}
    if isinstance(base.get("channels"), dict) and isinstance(queue.get("channels"), dict):
        merged["channels"] = {
            ch: {**base["channels"].get(ch, {}), **v} if isinstance(v, dict) else v
            for ch, v in {**base["channels"], **queue["channels"]}.items()
        }
    return merged


class QueueConfig(BaseModel):
    """The queue configuration file: `[defaults]`, and per-queue overrides under `[queues.<queue_id>]`.

    A queue's section only needs the fields that differ from `[defaults]`. `[teams.<team>]` says who gets the
    reports of the team's queues.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    defaults: QueueSettings = QueueSettings()
    queues: dict[str, QueueSettings] = {}
    teams: dict[str, TeamSettings] = {}

    @model_validator(mode="before")
    @classmethod
    def _inherit_defaults(cls, raw: object) -> object:
        if isinstance(raw, dict) and isinstance(raw.get("queues"), dict):
            base = raw.get("defaults") or {}
            if isinstance(base, dict):
                raw = {
                    **raw,
                    "queues": {q: _inherit(base, v) if isinstance(v, dict) else v for q, v in raw["queues"].items()},
                }
        return raw

    def for_queue(self, queue_id: str) -> QueueSettings:
        """The queue's settings (its channels' overrides not applied: see `rules`)."""
        return self.queues.get(queue_id, self.defaults)

    def rules(self, queue_id: str, channel: str) -> QueueSettings:
        """How one queue's channel is measured: the queue's settings with the channel's overrides. The one lookup of
        thresholds, clock, variant and targets by (queue, channel)."""
        return self.for_queue(queue_id).for_channel(channel)

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

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True, use_attribute_docstrings=True
    )

    broker_url: str = ""
    """Kafka bootstrap servers, `host:port[,host:port...]`. Empty: `run` and `replay` start the embedded broker."""

    app_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,100}$")] = "cc-kpi"
    """Faust application id: the consumer group and the prefix of the topics it owns (`<app id>-customer-contacts`
    and Faust's changelogs), so that a new group reprocessing the same input starts from nothing of an old one's."""

    topic_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,100}$")] = "cc"
    """Prefix of every topic: `<prefix>.contact-events`, `.agent-events`, `.kpis`, `.dead-letters`, `.late-events`."""

    partitions: Annotated[int, Field(ge=1, le=1024)] = 4
    """Partitions of the topics the pipeline creates (workers scale out up to this many)."""

    replication_factor: Annotated[int, Field(ge=1, le=10)] = 1
    """Replication factor of the topics the pipeline creates (1 for the embedded broker; 3 in production)."""

    session_timeout_seconds: Annotated[float, Field(ge=3, le=300)] = 10.0
    """Kafka consumer-group session timeout: how soon a dead worker's partitions move to another worker."""

    # An int checked against the three lengths, not `Literal[15, 30, 60]`: the environment gives a string, which
    # a Literal never accepts.
    interval_minutes: Annotated[int, AfterValidator(_one_of(15, 30, 60))] = 15
    """Length of a KPI interval, aligned to the hour in UTC."""

    allowed_lateness_seconds: Annotated[float, Field(ge=0, le=86400)] = 120.0
    """How long after an interval's end (in event time) events may still change it before it is final."""

    contact_timeout_seconds: Annotated[float, Field(gt=0, le=7 * 86400)] = 4 * 3600.0
    """A contact with no outcome or no end this long after it arrived is given up (counted as expired)."""

    max_clock_skew_seconds: Annotated[float, Field(ge=0, le=7 * 86400)] = 300.0
    """Events stamped further than this ahead of the worker's clock are rejected (`future_event_time`)."""

    clamp_skew_seconds: Annotated[float, Field(ge=0, le=3600)] = 5.0
    """An answer or exit stamped before its contact's offer by at most this much (two clocks at the source) is
    moved to the offer time and counted in `cc_pipeline_clamped_events_total`; further before, it is rejected
    (`impossible_sequence`). 0: reject them all."""

    queues_file: Path | None = None
    """TOML file with per-queue settings (service level threshold). Empty: defaults for every queue."""

    web_host: str = "127.0.0.1"
    """Address the worker's HTTP server (/metrics, /progress) binds to. Loopback unless told otherwise."""

    web_port: Annotated[int, Field(ge=0, le=65535)] = 6066
    """Port of the worker's HTTP server."""

    sink_dsn: SecretStr | None = None
    """PostgreSQL DSN of `sink postgres` (`postgresql://user:password@host/db`), when `--dsn` is not given."""

    sink_web_port: Annotated[int, Field(ge=0, le=65535)] = 6067
    """Port of a sink's /metrics (on `PIPELINE_WEB_HOST`); 0 picks a free one."""

    prometheus_url: str = ""
    """Prometheus the wallboard at `/` reads (the same recording rules as the Grafana wallboard), e.g.
    `http://127.0.0.1:9090`: the whole center across workers. Empty: the wallboard shows this worker's state."""

    runbook_url: str = RUNBOOK_URL
    """Absolute URL of the runbook (docs/runbook.md as your team reads it): every alert's `runbook_url` is this plus
    `#<alert name in lower case>`, so the link in a page or a ticket opens the alert's section from anywhere. The
    default is the project's copy (a relative path opens nothing outside the repository); point it at your own copy
    once you add your escalation contacts to it, then run `python -m pipeline ops-config` again."""

    export_agent_metrics: bool = True
    """Export per-agent series (`cc_agent_*`) to Prometheus. Per-agent KPIs always go to the KPI topic."""

    forecast_every_minutes: Annotated[float, Field(ge=0, le=1440)] = 0.0
    """How often the consumer group's leader makes the pipeline's own forecast from the KPI topic and publishes
    it (`source: "pipeline"`; docs/staffing.md). 0: never (statsmodels is then never imported by the worker)."""

    forecast_days: Annotated[int, Field(ge=1, le=60)] = 14
    """Days after today the worker's own forecast covers (with the rest of today, reforecast)."""

    batch_max_messages: Annotated[int, Field(ge=1, le=100_000)] = 2000
    """Most messages the worker takes from Kafka in one batch."""

    stream_buffer_messages: Annotated[int, Field(ge=1, le=1_000_000)] = 4096
    """Most messages each of the worker's three inputs holds fetched ahead of its batches (at least two batches'
    worth is used; `max_held_bytes` bounds them in bytes). During a catch-up they are full."""

    flush_seconds: Annotated[float, Field(gt=0, le=60)] = 0.02
    """Longest a batch waits to fill: how stale /metrics may be behind Kafka (plus the batch's own time). Short on
    purpose: while a batch waits, the worker idles with the messages it already holds (docs/performance.md)."""

    fetch_max_wait_ms: Annotated[int, Field(ge=1, le=10_000)] = 100
    """Longest a Kafka fetch waits at the broker for new records. Tansu answers only when this is up (Kafka at
    once when records arrive), so on Tansu it adds up to this much latency (Faust's own value: 1,500)."""

    fetch_partition_bytes: Annotated[int, Field(ge=16 * 1024, le=64 * 1024 * 1024)] = 1024 * 1024
    """Most bytes one Kafka fetch reads per partition (Kafka's `max.partition.fetch.bytes`). What is fetched and
    not yet applied is held in memory, so during a catch-up about this much per source partition is buffered. A
    bigger message still comes whole (Kafka and Tansu return an oversized first batch)."""

    max_held_bytes: Annotated[int, Field(ge=1024 * 1024, le=1 << 40)] = 64 * 1024 * 1024
    """Most bytes of Kafka messages the worker holds fetched ahead of its batches. Above it the worker fetches
    nothing until a batch is taken. Small events stay far below it; it bounds a catch-up on large messages (one
    larger fetch still comes whole). The batch being applied (at most a quarter of it, decoded), Kafka's fetch buffers
    (about `fetch_partition_bytes` per partition) and the producer's come on top. Lower it for a worker short of
    memory: a catch-up then goes in smaller batches, more slowly (docs/performance.md)."""

    checkpoint_seconds: Annotated[float, Field(gt=0, le=300)] = 2.0
    """How often changed state is checkpointed; input offsets are committed only up to a checkpoint, so this
    is also about how much input a restarted worker reads and applies again."""

    kpi_update_seconds: Annotated[float, Field(ge=0, le=3600)] = 5.0
    """How often a provisional revision of an open interval's KPI record is published (final ones at once)."""

    max_event_bytes: Annotated[int, Field(ge=256, le=16 * 1024 * 1024)] = 64 * 1024
    """Largest single event accepted; larger ones are dead-lettered as `oversized`."""

    max_message_bytes: Annotated[int, Field(ge=256, le=64 * 1024 * 1024)] = 1024 * 1024
    """Largest Kafka message (one event or a batch of them) accepted."""

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Log level of every process."""

    # Required in production: a long random secret (at least 16 characters), the same on every worker and kept
    # across restarts (a new key stops repeat contacts matching across the change, for one window). Empty: a fixed,
    # public development key, with a warning at every start (demo and tests only). See pipeline/processing/fcr.py.
    customer_hash_key: SecretStr | None = None
    """Key of the HMAC-SHA256 that replaces customer ids (FCR). Required in production; empty: a public dev key."""

    # The webhook receiver (`python -m pipeline webhook`, pipeline/runtime/webhook.py, docs/sources.md). A source
    # whose secret is empty is switched off: its route answers 404.
    webhook_host: str = "127.0.0.1"
    """Address the webhook receiver binds to. Loopback unless told otherwise (put a TLS proxy in front)."""

    webhook_port: Annotated[int, Field(ge=0, le=65535)] = 8088
    """Port of the webhook receiver."""

    webhook_connect_token: SecretStr | None = None
    """Bearer token the Amazon EventBridge API destination sends (`Authorization: Bearer ...`) on `/connect`."""

    webhook_genesys_token: SecretStr | None = None
    """Bearer token Genesys Cloud deliveries send (`Authorization: Bearer ...`) on `/genesys`."""

    twilio_auth_token: SecretStr | None = None
    """Twilio account auth token: `/taskrouter` checks each callback's `X-Twilio-Signature` with it."""

    webhook_public_url: str = ""
    """The receiver's URL as Twilio calls it (e.g. `https://hooks.example.com`), when a proxy sits in front: the
    signature covers the full URL. Empty: the URL of the request as received."""

    webhook_max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    """Largest request body accepted; a larger one is answered 413."""

    webhook_produce_timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0
    """Longest a request waits for Kafka to acknowledge its events; then it is answered 503 (the source retries)."""

    webhook_heartbeat_delay_seconds: Annotated[float, Field(ge=0, le=86400)] | None = None
    """When set, the receiver tells every partition every 5 s that the source's clock is now minus this much
    (`source.heartbeat`), so quiet partitions close their intervals: vendor events delayed by more than this plus
    the allowed lateness then count as late. Empty: no heartbeats (intervals close as events arrive)."""

    @field_validator("webhook_heartbeat_delay_seconds", mode="before")
    @classmethod
    def _empty_is_none(cls, v: object) -> object:
        return None if v == "" else v

    @field_validator("webhook_connect_token", "webhook_genesys_token", "twilio_auth_token", mode="before")
    @classmethod
    def _empty_secret_is_off(cls, v: object) -> object:
        return None if v == "" else v

    # -- Security and the production profile (deploy/README.md; pipeline/runtime/kafka_security.py maps these onto
    # aiokafka's and Faust's own objects for every Kafka client; pipeline/runtime/webconfig.py reads the web config)
    env: Literal["development", "production"] = "development"
    """`production` refuses to start without a customer hash key, with plaintext Kafka to a broker off this host, or
    with unauthenticated HTTP endpoints on an address off this host."""

    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """How every Kafka client connects: `PLAINTEXT`, `SSL` (TLS), `SASL_PLAINTEXT` or `SASL_SSL` (SASL over TLS)."""

    kafka_ssl_ca_file: Path | None = None
    """PEM file of the CA(s) that signed the brokers' certificates. Empty: the system's trusted CAs."""

    kafka_ssl_cert_file: Path | None = None
    """PEM client certificate for mutual TLS (with `PIPELINE_KAFKA_SSL_KEY_FILE`). Empty: no client certificate."""

    kafka_ssl_key_file: Path | None = None
    """PEM private key of the client certificate."""

    kafka_ssl_key_password: SecretStr | None = None
    """Password of the client key, if it is encrypted."""

    kafka_ssl_check_hostname: bool = True
    """Check that the broker's certificate names the host connected to. Turn off only for a test CA."""

    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] = "PLAIN"
    """SASL mechanism with `SASL_PLAINTEXT` / `SASL_SSL`: `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` or `OAUTHBEARER`."""

    kafka_sasl_username: str = ""
    """SASL user name (PLAIN and SCRAM; the API key on Confluent Cloud, `$ConnectionString` on Event Hubs)."""

    kafka_sasl_password: SecretStr | None = None
    """SASL password (PLAIN and SCRAM; the API secret on Confluent Cloud, the connection string on Event Hubs)."""

    kafka_oauth_token_file: Path | None = None
    """OAUTHBEARER: a file holding the current access token, read again at every new connection (a sidecar renews it)."""

    kafka_oauth_token_command: str = ""
    """OAUTHBEARER: a command that prints an access token (run at every new connection, 30 s at most)."""

    web_config_file: Path | None = None
    """Web config of the HTTP server, in the Prometheus exporters' format (`tls_server_config`, `basic_auth_users`
    with bcrypt hashes). Empty: plain HTTP without authentication."""

    web_open_health: bool = True
    """Serve /health/live and /health/ready without credentials (for probes), even with `basic_auth_users` set."""

    # An empty variable (`PIPELINE_KAFKA_SSL_CA_FILE=` in an env file) means unset, not the current directory
    @field_validator(
        "kafka_ssl_key_password",
        "kafka_sasl_password",
        "kafka_ssl_ca_file",
        "kafka_ssl_cert_file",
        "kafka_ssl_key_file",
        "kafka_oauth_token_file",
        "web_config_file",
        "queues_file",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, v: object) -> object:
        return None if v == "" else v

    @model_validator(mode="after")
    def _kafka_security_complete(self) -> Settings:
        sasl = self.kafka_security_protocol.startswith("SASL_")
        if sasl and self.kafka_sasl_mechanism == "OAUTHBEARER":
            if not self.kafka_oauth_token_file and not self.kafka_oauth_token_command:
                raise ValueError(
                    "SASL OAUTHBEARER needs PIPELINE_KAFKA_OAUTH_TOKEN_FILE or PIPELINE_KAFKA_OAUTH_TOKEN_COMMAND"
                )
        elif sasl and (not self.kafka_sasl_username or self.kafka_sasl_password is None):
            raise ValueError(
                f"SASL {self.kafka_sasl_mechanism} needs PIPELINE_KAFKA_SASL_USERNAME and PIPELINE_KAFKA_SASL_PASSWORD"
            )
        if (self.kafka_ssl_cert_file is None) != (self.kafka_ssl_key_file is None):
            raise ValueError(
                "a client certificate needs both PIPELINE_KAFKA_SSL_CERT_FILE and PIPELINE_KAFKA_SSL_KEY_FILE"
            )
        return self

    smtp_host: str = ""
    """SMTP server the reports are sent through (`python -m pipeline report --send`). Empty: reports are not e-mailed."""

    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 587
    """Port of the SMTP server."""

    smtp_starttls: bool = True
    """Upgrade the SMTP connection with STARTTLS before logging in (turn off only for a loopback test server)."""

    smtp_user: str = ""
    """SMTP user name; empty: no login."""

    smtp_password: SecretStr | None = None
    """SMTP password (never logged or printed)."""

    smtp_from: str = "cc-kpi-reports@localhost"
    """Sender address of the report e-mails."""

    @field_validator("web_host", "webhook_host")
    @classmethod
    def _host_not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must be a host name or address, e.g. 127.0.0.1")
        return v

    @field_validator("prometheus_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if v and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", v):
            raise ValueError("must be empty or an http:// or https:// URL, e.g. http://127.0.0.1:9090")
        return v

    @field_validator("runbook_url")
    @classmethod
    def _absolute_url(cls, v: str) -> str:
        v = v.strip()
        # the alert's anchor is appended, so the URL must not carry one of its own
        if not re.fullmatch(r"https?://[^\s/#]+(/[^\s#]*)?", v):
            raise ValueError(
                "must be an absolute http:// or https:// URL without a #fragment, "
                "e.g. https://git.example.com/ops/cc-kpi/blob/main/docs/runbook.md"
            )
        return v

    @field_validator("customer_hash_key", "sink_dsn", mode="before")
    @classmethod
    def _empty_is_development_key(cls, v: object) -> object:
        return None if v == "" else v

    def topic(self, name: str) -> str:
        """Full name of one of the pipeline's topics."""
        return f"{self.topic_prefix}.{name}"

    def internal_topic(self, name: str) -> str:
        """Full name of a topic the consumer group owns, as Faust names its changelogs (and Kafka Streams its
        repartition topics): what one group forwarded to itself is never read by another."""
        return f"{self.app_id}-{name}"

    @property
    def interval_seconds(self) -> int:
        return self.interval_minutes * 60


def _explain(exc: ValidationError, where: str, name_of: Callable[[tuple[str, ...]], str]) -> str:
    lines = [f"Invalid {where}:"]
    for err in exc.errors():
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f"={value!r}"
        msg = err["msg"].replace("Input should be", "allowed:").replace("Value error, ", "")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"  {name_of(tuple(str(p) for p in err['loc']))}{shown}: {msg}")
    return "\n".join(lines)


def _row(name: str, default: object, description: str | None) -> str:
    """A table row; a multi-line docstring would end the row at its first line break."""
    return f"| `{name}` | `{default}` | {' '.join((description or '').split())} |"


def settings_markdown() -> str:
    """docs/settings.md: every setting with its variable, default and meaning (generated; a test checks it)."""
    out = [
        "# Settings",
        "",
        "Generated from `pipeline/core/settings.py` by `python -m pipeline catalogue`. Every setting "
        "is an environment variable (or a line in `.env`); a wrong value stops the command at start.",
        "",
        "| variable | default | meaning |",
        "| --- | --- | --- |",
    ]
    for name, f in Settings.model_fields.items():
        default = "" if f.default is None else f.default
        out.append(_row(f"{ENV_PREFIX}{name.upper()}", default, f.description))
    out += [
        "",
        "## Queue file (`PIPELINE_QUEUES_FILE`, TOML)",
        "",
        "`[defaults]` applies to every queue; `[queues.<queue_id>]` overrides it for one queue.",
        "",
        "| field | default | meaning |",
        "| --- | --- | --- |",
    ]
    for name, f in QueueSettings.model_fields.items():
        default = ", ".join(f.default) if isinstance(f.default, tuple) else f.default
        out.append(_row(name, "" if default is None else default, f.description))
    out += [
        "",
        "## Channels",
        "",
        "A queue may carry several channels (`voice`, `chat`, `email`, `task`, `messaging`). A table "
        "`[queues.<queue_id>.channels.<channel>]` (or `[defaults.channels.<channel>]`, inherited field by field) "
        "overrides, for that channel only, the fields below; every field it leaves out, and every channel "
        "without a table, keeps the queue's value, so a file without channel tables means what it always meant. "
        "KPI records, the staffing model and the collectors read a channel's values by (queue, channel) "
        "(`QueueConfig.rules`), and so do the alerts: each queue and channel is compared with its own target (the "
        "worker's target gauges `cc_queue_*_target_*` are labelled by queue and channel; the recorded "
        "`queue_channel:cc_queue_*_target:*` hold the channels' own targets, `queue:cc_queue_*_target:*` the "
        "queue's, which every other channel of the queue takes).",
        "",
        'With `service_level_clock = "business_hours"` the wait compared with the threshold counts only the '
        "queue's opening hours (`open_days`, `opens`-`closes` in `time_zone`): an email that arrives at 19:00 on a "
        "Friday and is answered at 09:00 on Monday waited 2 business hours (08:00-20:00 opening). ASA, the wait "
        "histogram, the longest wait and short abandons stay in elapsed time. Keep "
        "`PIPELINE_CONTACT_TIMEOUT_SECONDS` above the longest wait a channel expects (an email waiting over a "
        "weekend), or its contacts expire unanswered.",
        "",
        "```toml",
        "[queues.support.channels.email]",
        "service_level_threshold_seconds = 14400  # 4 business hours",
        'service_level_clock = "business_hours"',
        "service_level_target = 0.9",
        "```",
        "",
        "| field | default | meaning |",
        "| --- | --- | --- |",
    ]
    for name, f in ChannelSettings.model_fields.items():
        out.append(_row(name, "the queue's", f.description))
    out += [
        "",
        "`[teams.<team>]`: where a team's reports go.",
        "",
        "| field | default | meaning |",
        "| --- | --- | --- |",
    ]
    for name, f in TeamSettings.model_fields.items():
        default = ", ".join(f.default) if isinstance(f.default, tuple) else f.default
        out.append(_row(name, "" if default is None else default, f.description))
    out += ["", "An example: `deploy/queues.toml` (the demo center's queues).", ""]
    return "\n".join(out)


def load_settings(**overrides: Any) -> Settings:
    """Read the settings (environment, `.env`, then `overrides`); a wrong one is a SettingsError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(
            _explain(exc, "settings", lambda loc: ENV_PREFIX + "_".join(loc).upper() if loc else "settings")
        ) from None
