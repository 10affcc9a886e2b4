"""The webhook receiver (`python -m pipeline webhook`): vendor callbacks over HTTP -> contract events -> Kafka.

Routes, one per source (docs/sources.md says how to point each vendor here):
- `POST /connect`: Amazon Connect records as an EventBridge API destination posts them (one event, or a JSON array
  of events or agent event stream records); `Authorization: Bearer <PIPELINE_WEBHOOK_CONNECT_TOKEN>`;
- `POST /taskrouter`: Twilio TaskRouter event callbacks (form-encoded); `X-Twilio-Signature` checked with the
  `twilio` package's RequestValidator and `PIPELINE_TWILIO_AUTH_TOKEN`;
- `POST /genesys`: Genesys Cloud notifications (one, or a JSON array); `Authorization: Bearer
  <PIPELINE_WEBHOOK_GENESYS_TOKEN>`;
- `GET /metrics` (the receiver's own: requests by outcome, rejections by reason, events, latency) and `/health`.

The promise: a request answered 2xx has its events acknowledged by Kafka (acks=all) BEFORE the answer, so no
acknowledged request is ever lost; when Kafka does not acknowledge within `PIPELINE_WEBHOOK_PRODUCE_TIMEOUT_SECONDS`
the answer is 503 and the source retries (the event ids are stable, so a retry of a request whose events did reach
Kafka counts nothing twice). A request is all or nothing: one record that cannot be read answers 400 with the
reason, nothing of it is produced, and its body goes to the dead-letter topic with the reason and the request id.
Unauthenticated requests are counted and answered 401, never dead-lettered (anyone could fill the topic).
Nothing of a body is ever logged: it may hold customers' phone numbers.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from twilio.request_validator import RequestValidator

from pipeline.core.settings import Settings
from pipeline.runtime.producer import EventWriter
from pipeline.runtime.webconfig import load_web_config
from pipeline.sources import connect, genesys, taskrouter
from pipeline.sources.common import Rejected, Tally, Translation

log = logging.getLogger(__name__)

SOURCES = ("connect", "taskrouter", "genesys")
TRANSLATORS: dict[str, Callable[[Any], Translation]] = {
    "connect": connect.translate,
    "taskrouter": taskrouter.translate,
    "genesys": genesys.translate,
}
# The most records one request may hold (an array): bounds the work one request can ask for.
MAX_RECORDS = 1000


class WebhookMetrics:
    """The receiver's own series, in a registry of its own (labels from bounded sets only)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "cc_webhook_requests", "Webhook requests by source and outcome.", ["source", "outcome"], registry=r
        )
        self.rejected = Counter(
            "cc_webhook_rejected_requests",
            "Requests answered 4xx, by source and reason.",
            ["source", "reason"],
            registry=r,
        )
        self.events = Counter(
            "cc_webhook_events",
            "Contract events produced to Kafka and acknowledged, by source.",
            ["source"],
            registry=r,
        )
        self.ignored = Counter(
            "cc_webhook_ignored_records",
            "Vendor records that bear on no KPI (read, not produced), by source and reason.",
            ["source", "reason"],
            registry=r,
        )
        self.latency = Histogram(
            "cc_webhook_request_duration_seconds",
            "Time from a request's arrival to its answer, Kafka's acknowledgement included.",
            ["source"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        for source in SOURCES:  # every series from the start, so rates and alerts see zeroes, not gaps
            for outcome in ("accepted", "ignored", "rejected", "unavailable"):
                self.requests.labels(source, outcome)
            self.events.labels(source)
            self.latency.labels(source)


class Receiver:
    """The routes' logic over a started `EventWriter` (the reference producer: keys, partitions, acks=all)."""

    def __init__(self, settings: Settings, writer: EventWriter) -> None:
        self.settings = settings
        self.writer = writer
        self.metrics = WebhookMetrics()
        self.dead_topic = settings.topic("dead-letters")
        self.tokens = {
            "connect": settings.webhook_connect_token,
            "genesys": settings.webhook_genesys_token,
            "taskrouter": settings.twilio_auth_token,
        }
        token = settings.twilio_auth_token
        self.validator = RequestValidator(token.get_secret_value()) if token is not None else None

    @property
    def enabled(self) -> list[str]:
        return [s for s in SOURCES if self.tokens[s] is not None]

    def app(self) -> web.Application:
        # The web config file (as the worker's): TLS, and basic auth on /metrics; the sources' routes keep their own
        # authentication (signature or bearer token), which is what vendors can send, and /health stays open.
        security = load_web_config(self.settings.web_config_file)
        open_paths = [f"/{source}" for source in SOURCES] + ["/health"]
        app = web.Application(
            client_max_size=self.settings.webhook_max_body_bytes, middlewares=[security.middleware(open_paths)]
        )
        for source in SOURCES:
            app.router.add_post(f"/{source}", self._route(source))
        app.router.add_get("/metrics", self.metrics_page)
        app.router.add_get("/health", self.health)
        return app

    def _route(self, source: str) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            began = time.perf_counter()
            try:
                return await self.handle(source, request)
            finally:
                self.metrics.latency.labels(source).observe(time.perf_counter() - began)

        return handle

    async def metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"sources": self.enabled})

    def _reject(self, source: str, status: int, reason: str, detail: str, request_id: str) -> web.Response:
        self.metrics.requests.labels(source, "rejected").inc()
        self.metrics.rejected.labels(source, reason).inc()
        return web.json_response(
            {"error": reason, "detail": detail, "request_id": request_id},
            status=status,
            headers={"X-Request-Id": request_id},
        )

    async def handle(self, source: str, request: web.Request) -> web.Response:
        request_id = str(uuid.uuid4())
        secret = self.tokens[source]
        if secret is None:
            return self._reject(source, 404, "source_not_enabled", f"/{source} is not configured here", request_id)
        if request.content_length is not None and request.content_length > self.settings.webhook_max_body_bytes:
            return self._reject(source, 413, "too_large", "the body is larger than the receiver accepts", request_id)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._reject(source, 413, "too_large", "the body is larger than the receiver accepts", request_id)

        # 1. who is asking
        if source == "taskrouter":
            assert self.validator is not None
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            base = self.settings.webhook_public_url.rstrip("/")
            url = base + request.path_qs if base else str(request.url)
            signature = request.headers.get("X-Twilio-Signature", "")
            if not signature or not self.validator.validate(url, form, signature):
                return self._reject(source, 401, "bad_signature", "X-Twilio-Signature does not match", request_id)
        else:
            given = request.headers.get("Authorization", "")
            expected = "Bearer " + secret.get_secret_value()
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return self._reject(source, 401, "unauthorized", "a valid bearer token is required", request_id)

        # 2. what it says: all of it, or none of it
        tally = Tally()
        try:
            if source == "taskrouter":
                records: list[Any] = [form]
            else:
                try:
                    parsed = orjson.loads(body)
                except orjson.JSONDecodeError:
                    raise Rejected("malformed_json", "the body is not JSON") from None
                records = parsed if isinstance(parsed, list) else [parsed]
                if len(records) > MAX_RECORDS:
                    raise Rejected("too_many_records", f"at most {MAX_RECORDS} records per request")
            for number, record in enumerate(records, start=1):
                try:
                    tally.add(TRANSLATORS[source](record))
                except Rejected as exc:
                    where = f"record {number}: " if len(records) > 1 else ""
                    raise Rejected(exc.reason, where + exc.detail) from None
        except Rejected as exc:
            if not await self._dead_letter(source, body, exc, request_id):
                self.metrics.requests.labels(source, "unavailable").inc()
                return self._unavailable(request_id)
            return self._reject(source, 400, exc.reason, exc.detail, request_id)

        # 3. into Kafka, acknowledged, before the answer
        if tally.events:
            try:
                await asyncio.wait_for(self.writer.write(tally.events), self.settings.webhook_produce_timeout_seconds)
            except (TimeoutError, KafkaError) as exc:
                log.warning("Kafka did not acknowledge request %s: %s; answered 503", request_id, type(exc).__name__)
                self.metrics.requests.labels(source, "unavailable").inc()
                return self._unavailable(request_id)
        for reason, n in tally.ignored.items():
            self.metrics.ignored.labels(source, reason).inc(n)
        self.metrics.events.labels(source).inc(len(tally.events))
        self.metrics.requests.labels(source, "accepted" if tally.events else "ignored").inc()
        return web.json_response(
            {"request_id": request_id, "events": len(tally.events), "ignored": tally.ignored},
            headers={"X-Request-Id": request_id},
        )

    def _unavailable(self, request_id: str) -> web.Response:
        return web.json_response(
            {"error": "broker_unavailable", "detail": "Kafka did not acknowledge; retry", "request_id": request_id},
            status=503,
            headers={"Retry-After": "5", "X-Request-Id": request_id},
        )

    async def _dead_letter(self, source: str, body: bytes, exc: Rejected, request_id: str) -> bool:
        """The rejected body to the dead-letter topic; False when Kafka did not take it (then the answer is 503)."""
        headers = [
            ("dlq.reason", exc.reason.encode()),
            ("dlq.detail", exc.detail.encode()[:1000]),
            ("dlq.source", f"webhook/{source}".encode()),
            ("dlq.request_id", request_id.encode()),
        ]

        async def send() -> None:  # send() itself may wait (metadata, a full buffer): the timeout covers it too
            await (await self.writer.producer.send(self.dead_topic, body, headers=headers))

        try:
            await asyncio.wait_for(send(), self.settings.webhook_produce_timeout_seconds)
        except (TimeoutError, KafkaError) as e:
            log.warning("dead letter of request %s not acknowledged: %s", request_id, type(e).__name__)
            return False
        return True


async def heartbeats(settings: Settings, writer: EventWriter, every: float) -> None:
    """`source.heartbeat` at now minus `PIPELINE_WEBHOOK_HEARTBEAT_DELAY_SECONDS` to every partition, every `every` s."""
    assert settings.webhook_heartbeat_delay_seconds is not None
    delay = timedelta(seconds=settings.webhook_heartbeat_delay_seconds)
    while True:
        try:
            await asyncio.wait_for(
                writer.heartbeat(datetime.now(UTC) - delay), settings.webhook_produce_timeout_seconds
            )
        except (TimeoutError, KafkaError) as exc:
            log.warning("heartbeat not acknowledged: %s", type(exc).__name__)
        await asyncio.sleep(every)


async def serve(
    settings: Settings,
    bootstrap: str,
    ready: Callable[[web.AppRunner, Receiver], Any] | None = None,
    heartbeat_every: float = 5.0,
) -> None:
    """Run the receiver until cancelled (the command runs it until SIGINT/SIGTERM)."""
    writer = EventWriter(settings, bootstrap)
    await writer.__aenter__()
    beating = None
    if settings.webhook_heartbeat_delay_seconds is not None:
        beating = asyncio.create_task(heartbeats(settings, writer, heartbeat_every))
    receiver = Receiver(settings, writer)
    runner = web.AppRunner(receiver.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(
        runner,
        settings.webhook_host,
        settings.webhook_port,
        ssl_context=load_web_config(settings.web_config_file).ssl_context,
    )
    await site.start()
    try:
        if ready is not None:
            ready(runner, receiver)
        await asyncio.Event().wait()
    finally:
        if beating is not None:
            beating.cancel()
        await runner.cleanup()
        await writer.__aexit__()


def main_webhook() -> int:
    """`python -m pipeline webhook`: check the settings, wait for Kafka, serve until SIGINT or SIGTERM."""
    import signal

    from pipeline.core.settings import SettingsError, load_settings
    from pipeline.runtime.broker import bootstrap_servers, ensure_topics, wait_for_broker

    settings = load_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not settings.broker_url:
        raise SettingsError("PIPELINE_BROKER_URL is empty: the webhook receiver needs a Kafka to write to.")
    if not any((settings.webhook_connect_token, settings.webhook_genesys_token, settings.twilio_auth_token)):
        raise SettingsError(
            "No source is enabled: set PIPELINE_WEBHOOK_CONNECT_TOKEN, PIPELINE_WEBHOOK_GENESYS_TOKEN "
            "or PIPELINE_TWILIO_AUTH_TOKEN."
        )

    def ready(runner: web.AppRunner, receiver: Receiver) -> None:
        scheme = (
            "https" if settings.web_config_file and load_web_config(settings.web_config_file).ssl_context else "http"
        )
        base = f"{scheme}://{settings.webhook_host}:{settings.webhook_port}"
        print(f"webhook receiver on {base}: " + ", ".join(f"{base}/{s}" for s in receiver.enabled), flush=True)
        print(f"  its metrics: {base}/metrics; Ctrl-C stops it", flush=True)

    async def main() -> None:
        await wait_for_broker(settings)
        await ensure_topics(settings)
        task = asyncio.ensure_future(serve(settings, bootstrap_servers(settings), ready))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(main())
    return 0
