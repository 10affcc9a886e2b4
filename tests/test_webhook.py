"""The webhook receiver (pipeline/runtime/webhook.py) as a real HTTP server against the embedded broker: who may post,
what a bad request is answered, a simulated day posted in each vendor's format landing whole on the topics, and a
frozen broker answered 503 with nothing lost once it is back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import urlencode

import aiohttp
import msgspec
import pytest
from aiokafka import AIOKafkaConsumer
from twilio.request_validator import RequestValidator

from pipeline.contract.events import AgentTopicEvent, ContactTopicEvent, SourceHeartbeat
from pipeline.core.settings import load_settings
from pipeline.runtime.broker import EmbeddedBroker, ensure_topics, free_port
from pipeline.runtime.webhook import TRANSLATORS, serve
from pipeline.sources.common import Tally
from pipeline.tools.simulate import CenterConfig, simulate
from pipeline.tools.simulate.vendor_formats import WRITERS

pytestmark = pytest.mark.integration

CONNECT_TOKEN = "connect-token-0123456789"
GENESYS_TOKEN = "genesys-token-0123456789"
TWILIO_TOKEN = "12345678901234567890123456789012"
_decoder = msgspec.json.Decoder(ContactTopicEvent | AgentTopicEvent | list[ContactTopicEvent | AgentTopicEvent])


@contextlib.asynccontextmanager
async def receiver(bootstrap: str, heartbeat_every: float = 5.0, **overrides):
    settings = load_settings(
        broker_url=bootstrap,
        topic_prefix=f"wh{uuid.uuid4().hex[:8]}",
        webhook_port=free_port(),
        webhook_connect_token=CONNECT_TOKEN,
        webhook_genesys_token=GENESYS_TOKEN,
        twilio_auth_token=TWILIO_TOKEN,
        **overrides,
    )
    await ensure_topics(settings)
    started = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(settings, bootstrap, lambda runner, r: started.set_result(r), heartbeat_every))
    rec = await asyncio.wait_for(started, 30)
    try:
        yield settings, rec, f"http://127.0.0.1:{settings.webhook_port}"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def post(session: aiohttp.ClientSession, base: str, fmt: str, record, token: str | None = None):
    """One record posted the way its vendor posts it: JSON with a bearer token, or a signed TaskRouter form."""
    url = f"{base}/{fmt}"
    if fmt == "taskrouter":
        signature = RequestValidator(token or TWILIO_TOKEN).compute_signature(url, record)
        headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
        async with session.post(url, data=urlencode(record), headers=headers) as r:
            return r.status, await r.json()
    headers = {"Authorization": f"Bearer {token or (CONNECT_TOKEN if fmt == 'connect' else GENESYS_TOKEN)}"}
    async with session.post(url, json=record, headers=headers) as r:
        return r.status, await r.json()


async def read_ids(settings, names: tuple[str, ...], want: set[str], timeout: float = 30) -> tuple[list[str], list]:
    """Event ids on the topics (every occurrence), read from the start until `want` are all seen or the timeout;
    and the raw messages of the dead-letter topic when it is among `names`."""
    consumer = AIOKafkaConsumer(
        *[settings.topic(n) for n in names],
        bootstrap_servers=settings.broker_url,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    ids: list[str] = []
    dead: list = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                for m in messages:
                    if m.topic == settings.topic("dead-letters"):
                        dead.append(m)
                        continue
                    value = _decoder.decode(m.value)
                    ids.extend(e.event_id for e in (value if isinstance(value, list) else [value]))
            if want <= set(ids) and (not batches or "dead-letters" not in names):
                break
    finally:
        await consumer.stop()
    return ids, dead


async def test_who_may_post_and_what_a_bad_request_is_answered(broker):
    async with receiver(broker.bootstrap, webhook_max_body_bytes=4096) as (settings, rec, base):
        async with aiohttp.ClientSession() as s:
            record = {"topicName": "v2.users.u-1.presence", "eventBody": {}}
            assert (await post(s, base, "genesys", record, token="wrong"))[0] == 401
            async with s.post(f"{base}/genesys", json=record) as r:  # no token at all
                assert r.status == 401
            form = {"EventType": "task.created", "TaskSid": "WT1"}
            status, body = await post(s, base, "taskrouter", form, token="another-auth-token-000000000000")
            assert (status, body["error"]) == (401, "bad_signature")
            async with s.post(f"{base}/taskrouter", data=urlencode(form)) as r:  # unsigned
                assert r.status == 401
            # the signature covers the URL: a query string added on the way breaks it
            signature = RequestValidator(TWILIO_TOKEN).compute_signature(f"{base}/taskrouter", form)
            async with s.post(
                f"{base}/taskrouter?x=1", data=urlencode(form), headers={"X-Twilio-Signature": signature}
            ) as r:
                assert r.status == 401
            # signed and irrelevant: accepted, counted as ignored, nothing produced
            status, body = await post(s, base, "taskrouter", form)
            assert (status, body["events"], body["ignored"]) == (200, 0, {"irrelevant_event_type": 1})
            # malformed: 400 with the reason, and dead-lettered with it and the request id
            auth = {"Authorization": f"Bearer {CONNECT_TOKEN}"}
            async with s.post(f"{base}/connect", data=b"{not json", headers=auth) as r:
                bad = await r.json()
                assert (r.status, bad["error"]) == (400, "malformed_json")
            fine = {
                "topicName": "v2.users.u-1.presence",
                "eventBody": {"presenceDefinition": {"systemPresence": "Meal"}, "modifiedDate": "2025-01-01T08:00:00Z"},
            }
            status, body = await post(s, base, "genesys", [fine, {"topicName": 5}])
            assert (status, body["error"]) == (400, "missing_field") and "record 2" in body["detail"]
            async with s.post(f"{base}/connect", data=b"x" * 5000, headers=auth) as r:
                assert r.status == 413
            async with s.get(f"{base}/metrics") as r:
                metrics = await r.text()
        _, dead = await read_ids(settings, ("dead-letters",), set(), timeout=3)
        letters = {dict(m.headers)["dlq.request_id"].decode(): m for m in dead}
        assert len(dead) == 2  # unauthenticated and oversized requests are never dead-lettered
        letter = letters[bad["request_id"]]
        assert letter.value == b"{not json"
        assert dict(letter.headers)["dlq.reason"] == b"malformed_json"
        assert dict(letter.headers)["dlq.source"] == b"webhook/connect"
    assert 'cc_webhook_rejected_requests_total{reason="unauthorized",source="genesys"} 2.0' in metrics
    assert 'cc_webhook_rejected_requests_total{reason="bad_signature",source="taskrouter"} 3.0' in metrics
    assert 'cc_webhook_rejected_requests_total{reason="too_large",source="connect"} 1.0' in metrics
    assert 'cc_webhook_ignored_records_total{reason="irrelevant_event_type",source="taskrouter"} 1.0' in metrics
    assert 'cc_webhook_request_duration_seconds_count{source="connect"} 2.0' in metrics


@pytest.mark.parametrize("fmt", ["connect", "taskrouter", "genesys"])
async def test_a_day_posted_lands_whole_on_the_topics(broker, fmt):
    day = list(simulate(replace(CenterConfig(), duration_hours=2.0, agents=12), 5))
    records = list(WRITERS[fmt](day))
    expected = Tally()
    for r in records:
        expected.add(TRANSLATORS[fmt](r))
    want = {e.event_id for e in expected.events}
    async with receiver(broker.bootstrap) as (settings, rec, base):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as s:
            answers = await asyncio.gather(*(post(s, base, fmt, r) for r in records))
            assert {status for status, _ in answers} == {200}
            assert sum(body["events"] for _, body in answers) == len(expected.events)
            # the vendor re-delivers some: same ids, so nothing new to count
            again = await asyncio.gather(*(post(s, base, fmt, r) for r in records[:50]))
            assert {status for status, _ in again} == {200}
        ids, _ = await read_ids(settings, ("contact-events", "agent-events"), want)
    assert set(ids) == want  # every accepted event is on the topics, and nothing else
    assert len(want) > 500


async def test_a_frozen_broker_is_answered_503_and_nothing_is_lost():
    fmt = "genesys"
    day = list(simulate(replace(CenterConfig(), duration_hours=1.0, agents=6), 11))
    records = list(WRITERS[fmt](day))[:120]
    with EmbeddedBroker() as b:
        async with receiver(b.bootstrap, webhook_produce_timeout_seconds=1.5) as (settings, rec, base):
            async with aiohttp.ClientSession() as s:
                before = [await post(s, base, fmt, r) for r in records[:40]]
                assert {status for status, _ in before} == {200}
                os.kill(b.proc.pid, signal.SIGSTOP)
                try:
                    frozen = await asyncio.gather(*(post(s, base, fmt, r) for r in records[40:80]))
                    # a bad request is not answered 400 until its dead letter is acknowledged: 503 meanwhile
                    bad_while_frozen = await post(s, base, fmt, {"topicName": 5})
                finally:
                    os.kill(b.proc.pid, signal.SIGCONT)
                assert bad_while_frozen[0] == 503
                deadline = time.monotonic() + 30
                while (bad := await post(s, base, fmt, {"topicName": 5}))[0] == 503 and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                assert (bad[0], bad[1]["error"]) == (400, "missing_field")
                statuses = [status for status, _ in frozen]
                assert statuses.count(503) >= 30, statuses  # a few may have been acknowledged before the freeze
                assert all(body["error"] == "broker_unavailable" for status, body in frozen if status == 503)
                # the source retries what was not acknowledged, and goes on
                retried = [records[40 + i] for i, st in enumerate(statuses) if st != 200]
                deadline = time.monotonic() + 30
                while retried and time.monotonic() < deadline:
                    answers = [await post(s, base, fmt, r) for r in retried]
                    retried = [r for r, (st, _) in zip(retried, answers, strict=True) if st != 200]
                assert not retried
                after = [await post(s, base, fmt, r) for r in records[80:]]
                assert {status for status, _ in after} == {200}
                async with s.get(f"{base}/metrics") as r:
                    metrics = await r.text()
            expected = Tally()
            for r in records:
                expected.add(TRANSLATORS[fmt](r))
            want = {e.event_id for e in expected.events}
            ids, _ = await read_ids(settings, ("contact-events", "agent-events"), want)
    assert set(ids) == want  # every acknowledged request's events, none lost
    assert f'cc_webhook_requests_total{{outcome="unavailable",source="{fmt}"}}' in metrics


async def test_heartbeats_tell_every_partition_the_sources_clock(broker):
    async with receiver(broker.bootstrap, heartbeat_every=0.2, webhook_heartbeat_delay_seconds="30") as (
        settings,
        rec,
        base,
    ):
        began = datetime.now(UTC)
        await asyncio.sleep(1.0)
    consumer = AIOKafkaConsumer(
        settings.topic("contact-events"),
        settings.topic("agent-events"),
        bootstrap_servers=settings.broker_url,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    beats: dict[tuple[str, int], list] = {}
    try:
        for _ in range(12):
            for tp, messages in (await consumer.getmany(timeout_ms=250)).items():
                for m in messages:
                    beats.setdefault((tp.topic, tp.partition), []).append(_decoder.decode(m.value))
    finally:
        await consumer.stop()
    assert len(beats) == 2 * settings.partitions  # every partition of both topics
    for events in beats.values():
        assert len(events) >= 2 and all(isinstance(e, SourceHeartbeat) for e in events)
        lag = (began - events[0].time).total_seconds()
        assert 29 <= lag <= 31  # now minus the delay
