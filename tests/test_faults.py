"""Faults on the embedded broker: duplicates, disorder, late events, kill -9, two workers, a frozen broker, and a
broker missing at start. Each case runs the real worker process(es) on its own topics and consumer group and
compares the final KPI records (and the /metrics totals) with the independent batch computation of the same
events: zero differences and zero unaccounted events, or the test fails.

Each case prints one `FAULTS ...` line (events, messages, differences) for docs/reliability.md:
`.venv/bin/python -m pytest tests/test_faults.py -q -s | grep FAULTS`.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from batch_kpis import compute
from offsets import committed
from prometheus_client.parser import text_string_to_metric_families

from pipeline.contract import events as ev
from pipeline.core.settings import Settings, load_settings
from pipeline.kpis.catalogue import COUNTS
from pipeline.kpis.record import KpiRecord, decode_record
from pipeline.processing.fcr import TOPIC as FCR_TOPIC
from pipeline.runtime.broker import EmbeddedBroker, ensure_topics, free_port
from pipeline.runtime.producer import EventWriter
from pipeline.tools.run import worker_process
from pipeline.tools.simulate import CenterConfig, simulate

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

THRESHOLD = 20.0  # no queue file: every queue has the default service level threshold
WAIT = 120.0  # longest any one wait of a case may take before the case fails


def threshold_of(queue: str) -> float:
    return THRESHOLD


# ---- one isolated pipeline on a broker ------------------------------------------------------------------------


@dataclass
class Pipeline:
    settings: Settings
    overrides: dict
    log_dir: Path
    contact_topic_events: int = 0  # events (heartbeats included) sent to the contact-event topic
    contact_ends: dict[int, int] = field(default_factory=dict)  # next offset per partition, from the acks
    agent_ends: dict[int, int] = field(default_factory=dict)  # the same, of the agent-event topic

    @classmethod
    def create(cls, bootstrap: str, log_dir: Path, name: str, **extra) -> Pipeline:
        run = f"faults-{name}-{uuid.uuid4().hex[:6]}"
        overrides = {
            "app_id": run,
            "topic_prefix": run,
            "session_timeout_seconds": 6,
            "kpi_update_seconds": 3600,
            **extra,
        }
        settings = load_settings(broker_url=bootstrap, **overrides)
        return cls(settings, overrides, log_dir)

    @contextmanager
    def worker(self, name: str = "worker"):
        """A worker process of this pipeline; yields (process, base URL of its HTTP server)."""
        port = free_port()
        with worker_process(self.settings, self.log_dir / f"{name}.log", **self.overrides, web_port=port) as proc:
            yield proc, f"http://127.0.0.1:{port}"

    def topic(self, name: str) -> str:
        return self.settings.topic(name)

    def closing_time(self, events):
        s = self.settings
        return max(e.time for e in events) + timedelta(
            seconds=s.interval_seconds * 2 + s.allowed_lateness_seconds + s.contact_timeout_seconds
        )

    async def send(self, events, closing=None) -> int:
        """Events in the given order, one per message; then, if given, a heartbeat at `closing` on every partition.
        Returns the messages sent; counts the events sent to the contact-event topic in `contact_topic_events`
        and keeps its end offsets in `contact_ends` (Tansu's ListOffsets is short by a batch's other records)."""
        async with EventWriter(self.settings, self.settings.broker_url) as writer:
            self.contact_topic_events += sum(1 for e in events if writer._route(e)[0] == writer.contact_topic)
            if events:
                await writer.write(events)
            beats = 0
            if closing is not None:
                await writer.heartbeat(closing)
                beats = len(await writer.producer.partitions_for(writer.contact_topic))
                self.contact_topic_events += beats
            self.contact_ends.update(writer.ends.get(writer.contact_topic, {}))
            self.agent_ends.update(writer.ends.get(writer.agent_topic, {}))
            return writer.sent_messages + beats

    async def end_offsets(self, topic: str) -> dict[int, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.broker_url)
        await consumer.start()
        try:
            await consumer.topics()  # fetches fresh metadata
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
            return {tp.partition: off for tp, off in (await consumer.end_offsets(tps)).items()}
        finally:
            await consumer.stop()

    async def committed(self, topic: str) -> dict[int, int]:
        return await committed(self.settings, topic)

    async def read_topic(self, name: str) -> list:
        """Every message of one of the pipeline's topics, up to its current end."""
        topic = self.topic(name)
        ends = {p: e for p, e in (await self.end_offsets(topic)).items() if e > 0}
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.broker_url, enable_auto_commit=False)
        await consumer.start()
        out = []
        try:
            tps = [TopicPartition(topic, p) for p in ends]
            if not tps:
                return out
            consumer.assign(tps)
            for tp in tps:
                consumer.seek(tp, 0)
            remaining = set(tps)
            while remaining:
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
                for tp, msgs in batch.items():
                    out += msgs
                    if msgs and msgs[-1].offset + 1 >= ends[tp.partition]:
                        remaining.discard(tp)
        finally:
            await consumer.stop()
        return out

    async def kpi_records(self) -> list[KpiRecord]:
        """Every queue record of the interval window on the KPI topic, in topic order (agent and other kinds,
        and the hour and day windows, share the topic; the batch computation is per interval)."""
        out = []
        for m in await self.read_topic("kpis"):
            raw = orjson.loads(m.value)
            if raw.get("kind", "queue") == "queue" and raw.get("window", "interval") == "interval":
                out.append(decode_record(m.value))
        return out


# ---- talking to a worker --------------------------------------------------------------------------------------


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (loopback)
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def metrics(base: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:  # noqa: S310 (loopback)
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def diagnose(base: str) -> str:
    """What a worker says about itself, for the message of a failed wait."""
    try:
        live, ready = get_json(f"{base}/health/live")[1], get_json(f"{base}/health/ready")[1]
        lag = {
            dict(ls)["topic"].rsplit(".", 1)[-1] + dict(ls)["partition"]: v
            for (n, ls), v in metrics(base).items()
            if n == "cc_pipeline_consumer_lag_messages"
        }
        return f"{base}: live={live} ready={ready} lag={lag} progress={progress(base)}"
    except (OSError, ValueError) as exc:
        return f"{base}: {exc!r}"


def wait_for(what: str, condition, timeout: float = WAIT, workers=(), bases=()):
    """Poll `condition()` until it returns something truthy; fail (with `what`) on a timeout or a dead worker."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for w in workers:
            assert w.poll() is None, f"worker exited with status {w.returncode} while waiting for {what}"
        try:
            last = condition()
        except OSError as exc:  # the worker's HTTP server is not up yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.3)
    raise AssertionError(
        f"not reached within {timeout:g} s: {what} (last: {last!r}); " + "; ".join(diagnose(b) for b in bases)
    )


def progress(base: str) -> dict:
    return get_json(f"{base}/progress")[1]


def applied_all(bases: list[str], ends: dict[int, int], settled: bool = True):
    """Every contact partition applied up to its end offset (and closed) on exactly one of these workers."""

    def check():
        held = Counter()
        for base in bases:
            for p, s in progress(base)["partitions"].items():
                if s["offset"] >= ends[int(p)] - 1 and (not settled or (s["open_intervals"] == 0 and s["legs"] == 0)):
                    held[int(p)] += 1
        return set(held) == set(ends) and all(n == 1 for n in held.values())

    return check


# ---- comparing with the batch computation ---------------------------------------------------------------------


def record_differences(records: list[KpiRecord], events) -> list[str]:
    """Differences between the final KPI records (last revision per key) and the batch computation; [] if none."""
    expected, _ = compute(events, 900, threshold_of)
    latest: dict[str, KpiRecord] = {}
    for r in records:
        if r.key not in latest or r.revision >= latest[r.key].revision:
            latest[r.key] = r
    got = {(r.queue_id, r.channel, int(r.interval_start.timestamp()) * 1000): r for r in latest.values()}
    out = [f"not final: {k}" for k, r in got.items() if not r.final]
    out += [f"missing record {k}" for k in set(expected) - set(got)]
    out += [f"unexpected record {k}" for k in set(got) - set(expected)]
    for key in set(expected) & set(got):
        for count in COUNTS:
            want = getattr(expected[key], count.field) * count.scale
            have = getattr(got[key], count.record_field)
            if abs(have - want) > 1e-6:
                out.append(f"{key} {count.record_field}: {have} != {want}")
    return out


def conflicting_finals(records: list[KpiRecord]) -> list[str]:
    """Keys published final more than once with different counts (a double count would show here)."""
    seen: dict[str, tuple] = {}
    out = []
    for r in records:
        if not r.final:
            continue
        counts = tuple(getattr(r, c.record_field) for c in COUNTS)
        if r.key in seen and seen[r.key] != counts:
            out.append(r.key)
        seen.setdefault(r.key, counts)
    return out


def metric_differences(samples: list[dict], events) -> list[str]:
    """The queue counters summed over these workers' scrapes against the batch totals; [] if equal."""
    _, totals = compute(events, 900, threshold_of)
    out = []
    for count in COUNTS:
        summed = Counter()
        for m in samples:
            for (name, labels), v in m.items():
                if name == count.metric:
                    summed[(dict(labels)["queue"], dict(labels)["channel"])] += v
        for qc in set(totals) | set(summed):
            want = getattr(totals[qc], count.field) * count.scale if qc in totals else 0
            if abs(summed.get(qc, 0) - want) > 1e-6:
                out.append(f"{count.metric}{qc}: {summed.get(qc, 0)} != {want}")
    return out


def finals(records: list[KpiRecord]) -> list[KpiRecord]:
    return sorted((r for r in records if r.final), key=lambda r: (r.key, r.revision))


def contact_events(events) -> list[ev.Event]:
    return [e for e in events if isinstance(e, ev.ContactEvent)]


def metric_sum(m: dict, name: str, **labels) -> float:
    return sum(v for (n, ls), v in m.items() if n == name and all(dict(ls).get(k) == x for k, x in labels.items()))


def figures(case: str, **values) -> None:
    print(f"\nFAULTS case={case} " + " ".join(f"{k}={v}" for k, v in values.items()), flush=True)


def day(hours: float, seed: int) -> list[ev.Event]:
    return list(simulate(CenterConfig(duration_hours=hours), seed=seed))


# ---- the cases ------------------------------------------------------------------------------------------------


def test_every_event_twice_gives_the_same_kpis_and_counts_each_duplicate(broker, tmp_path):
    pipe = Pipeline.create(broker.bootstrap, tmp_path, "dup")
    asyncio.run(ensure_topics(pipe.settings))
    events = day(1.0, seed=11)
    doubled = [e for e in events for _ in range(2)]  # each copy its own message, at its own offset
    messages = asyncio.run(pipe.send(doubled, closing=pipe.closing_time(events)))
    ends = dict(pipe.contact_ends)
    with pipe.worker() as (proc, base):
        wait_for("every partition applied", applied_all([base], ends), workers=[proc], bases=[base])
        m = metrics(base)
    records = asyncio.run(pipe.kpi_records())
    diffs = record_differences(records, events) + metric_differences([m], events)
    duplicates = metric_sum(m, "cc_pipeline_duplicate_events_total")  # both topics: agent events are deduped too
    figures(
        "duplicate_every_event",
        events=len(doubled),
        messages=messages,
        duplicates=int(duplicates),
        differences=len(diffs),
    )
    assert diffs == [], diffs[:10]
    # accounted: every event sent to the contact-event topic was decoded; every second copy counted a duplicate
    decoded = metric_sum(m, "cc_pipeline_events_total", topic=pipe.topic("contact-events"))
    assert decoded == pipe.contact_topic_events
    assert (
        metric_sum(m, "cc_pipeline_duplicate_events_total", topic=pipe.topic("contact-events"))
        == (pipe.contact_topic_events - len(ends)) // 2
    )
    assert metric_sum(m, "cc_pipeline_rejected_events_total") == 0
    assert metric_sum(m, "cc_pipeline_late_events_total") == 0


def test_a_new_consumer_group_over_the_same_topics_reads_only_its_own_forwarded_contacts(broker, tmp_path):
    """Reprocessing the input with a fresh `PIPELINE_APP_ID` recomputes FCR from this group's own forwards. With the
    internal topic named by the topic prefix, the new group read the old group's forwards first, took its FCR from
    them and counted its own offers late (behind the old group's watermarks)."""
    pipe = Pipeline.create(broker.bootstrap, tmp_path, "regroup")
    asyncio.run(ensure_topics(pipe.settings))
    events = day(0.5, seed=13)
    closing = pipe.closing_time(events)
    asyncio.run(pipe.send(events, closing=closing))
    ends = dict(pipe.contact_ends)

    def fcr_caught_up(base: str):
        m = metrics(base)
        marks = [v for (n, _), v in m.items() if n == "cc_pipeline_fcr_watermark_timestamp_seconds"]
        return len(marks) == len(ends) and min(marks) >= closing.timestamp()

    held = []
    for group in (pipe.settings.app_id, pipe.settings.app_id + "-again"):
        overrides = {**pipe.overrides, "app_id": group}
        settings = load_settings(broker_url=broker.bootstrap, **overrides)
        with Pipeline(settings, overrides, tmp_path).worker(group) as (proc, base):
            wait_for("every partition applied", applied_all([base], ends), workers=[proc], bases=[base])
            wait_for("the FCR side at the closing time", lambda b=base: fcr_caught_up(b), workers=[proc], bases=[base])
            time.sleep(3)  # anything else the internal topic holds is read by now
            m = metrics(base)
        held.append(metric_sum(m, "cc_pipeline_fcr_contacts_held"))
        topic = settings.internal_topic(FCR_TOPIC)
        assert metric_sum(m, "cc_pipeline_duplicate_events_total", topic=topic) == 0, group
        assert metric_sum(m, "cc_pipeline_fcr_late_contacts_total") == 0, group  # behind another group's watermark
    assert held[0] > 0
    assert held[1] == held[0]


def test_events_shuffled_within_the_allowed_lateness_give_the_same_kpis(broker, tmp_path):
    pipe = Pipeline.create(broker.bootstrap, tmp_path, "shuffle")
    asyncio.run(ensure_topics(pipe.settings))
    events = day(1.0, seed=12)
    rng = random.Random(12)
    spread = pipe.settings.allowed_lateness_seconds * 0.9  # every event is at most this much behind any before it
    shuffled = sorted(events, key=lambda e: e.time.timestamp() + rng.uniform(0, spread))
    inversions = sum(1 for a, b in zip(shuffled, shuffled[1:], strict=False) if b.time < a.time)
    assert inversions > len(events) // 10  # the input really is out of order
    messages = asyncio.run(pipe.send(shuffled, closing=pipe.closing_time(events)))
    ends = dict(pipe.contact_ends)
    with pipe.worker() as (proc, base):
        wait_for("every partition applied", applied_all([base], ends), workers=[proc], bases=[base])
        m = metrics(base)
    records = asyncio.run(pipe.kpi_records())
    diffs = record_differences(records, events) + metric_differences([m], events)
    figures(
        "shuffle_within_lateness",
        events=len(events),
        messages=messages,
        out_of_order=inversions,
        differences=len(diffs),
    )
    assert diffs == [], diffs[:10]
    assert metric_sum(m, "cc_pipeline_events_total", topic=pipe.topic("contact-events")) == pipe.contact_topic_events
    assert metric_sum(m, "cc_pipeline_late_events_total") == 0
    assert metric_sum(m, "cc_pipeline_duplicate_events_total") == 0
    assert metric_sum(m, "cc_pipeline_rejected_events_total") == 0


def test_events_past_the_lateness_go_to_the_late_topic_counted_and_change_nothing(broker, tmp_path):
    pipe = Pipeline.create(broker.bootstrap, tmp_path, "late")
    asyncio.run(ensure_topics(pipe.settings))
    events = day(1.0, seed=13)
    rng = random.Random(13)
    legs = sorted({(e.queue_id, e.contact_id) for e in contact_events(events)})
    withheld_legs = set(rng.sample(legs, 25))
    late = [e for e in events if isinstance(e, ev.ContactEvent) and (e.queue_id, e.contact_id) in withheld_legs]
    on_time = [
        e for e in events if not (isinstance(e, ev.ContactEvent) and (e.queue_id, e.contact_id) in withheld_legs)
    ]
    messages = asyncio.run(pipe.send(on_time, closing=pipe.closing_time(events)))
    ends = dict(pipe.contact_ends)
    with pipe.worker() as (proc, base):
        wait_for("every partition applied", applied_all([base], ends), workers=[proc], bases=[base])
        finals_before = [r for r in asyncio.run(pipe.kpi_records()) if r.final]
        # every interval is final now: the withheld events arrive far past the allowed lateness
        messages += asyncio.run(pipe.send(late))
        ends = dict(pipe.contact_ends)
        wait_for("the late events applied", applied_all([base], ends), workers=[proc])
        m = metrics(base)
    records = asyncio.run(pipe.kpi_records())
    letters = asyncio.run(pipe.read_topic("late-events"))
    diffs = record_differences(records, on_time) + metric_differences([m], on_time)
    figures("past_lateness", events=len(events), messages=messages, late=len(late), differences=len(diffs))
    assert diffs == [], diffs[:10]
    assert finals(records) == finals(finals_before)  # no final record was revised, added or published again
    by_queue = Counter((e.queue_id, e.channel) for e in late)
    assert {
        (dict(ls)["queue"], dict(ls)["channel"]): v for (n, ls), v in m.items() if n == "cc_pipeline_late_events_total"
    } == by_queue
    assert sorted(orjson.loads(x.value)["event_id"] for x in letters) == sorted(e.event_id for e in late)
    for x in letters:
        h = dict(x.headers)
        assert h["dlq.reason"] == b"late" and h["dlq.topic"].decode() == pipe.topic("contact-events")
        assert int(h["dlq.offset"]) >= 0
    assert metric_sum(m, "cc_pipeline_rejected_events_total") == 0


def reached_or_stalled(what: str, condition, proc, base: str) -> bool:
    """Wait for `condition()`; False if the worker reports itself stalled on /health/live first (503)."""

    def check():
        if condition():
            return "reached"
        return "stalled" if get_json(f"{base}/health/live")[0] == 503 else None

    return wait_for(what, check, timeout=WAIT + 60, workers=[proc], bases=[base]) == "reached"


def test_a_worker_killed_with_sigkill_three_times_recovers_without_double_counting(broker, tmp_path):
    pipe = Pipeline.create(broker.bootstrap, tmp_path, "kill", batch_max_messages=100, flush_seconds=0.2)
    asyncio.run(ensure_topics(pipe.settings))
    events = day(3.0, seed=14)
    size = len(events) // 6 + 1
    chunks = [events[i : i + size] for i in range(0, len(events), size)]
    rng = random.Random(14)
    messages = kills = redelivered = stalls = 0
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        sent = False
        while True:
            with pipe.worker(f"worker-{i}-{stalls}") as (proc, base):
                if not sent:
                    messages += asyncio.run(pipe.send(chunk, closing=pipe.closing_time(events) if last else None))
                    sent = True
                ends = dict(pipe.contact_ends)
                if last:
                    what, condition = "every partition applied", applied_all([base], ends)
                elif i % 2 == 0:
                    # mid-stream: as soon as this worker has applied anything, at a random moment of its batches
                    what, condition = "the worker applying", lambda b=base: sum(progress(b)["messages"].values()) > 0
                else:
                    # everything so far applied, perhaps not yet checkpointed, offsets possibly not yet committed
                    what, condition = "the chunk applied", applied_all([base], ends, settled=False)
                if not reached_or_stalled(what, condition, proc, base):
                    # a restarted Faust worker that never fetches (3 times in about 75 restarts here; cf.
                    # faust-streaming #523, #629): its supervisor restarts it on /health/live, and so do we
                    stalls += 1
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    continue
                if last:
                    m = metrics(base)
                    break
                if i % 2 == 0:
                    time.sleep(rng.uniform(0, 0.3))
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                kills += 1
                if i % 2:
                    # applied but not committed: Kafka delivers these again to the next worker, which must not
                    # count them twice (its restored checkpoint already holds them)
                    committed = asyncio.run(pipe.committed(pipe.topic("contact-events")))
                    ends = dict(pipe.contact_ends)
                    redelivered += sum(max(0, end - committed.get(p, 0)) for p, end in ends.items())
                break
    records = asyncio.run(pipe.kpi_records())
    diffs = record_differences(records, events) + metric_differences([m], events)
    conflicts = conflicting_finals(records)
    figures(
        "kill_9_restart",
        events=len(events),
        messages=messages,
        kills=kills,
        applied_not_committed=redelivered,
        stalled_restarts=stalls,
        differences=len(diffs),
        conflicting_final_records=len(conflicts),
    )
    assert kills >= 3
    assert redelivered > 0  # the kills did catch applied messages not yet committed: re-delivery happened
    assert diffs == [], diffs[:10]
    assert conflicts == []
    assert metric_sum(m, "cc_pipeline_rejected_events_total") == 0
    assert metric_sum(m, "cc_pipeline_late_events_total") == 0


def queues_of(m: dict) -> set[tuple[str, str]]:
    return {(dict(ls)["queue"], dict(ls)["channel"]) for (n, ls), _ in m.items() if n == "cc_queue_offered_total"}


def test_two_workers_split_the_partitions_and_one_takes_over_when_the_other_stops(broker, tmp_path):
    pipe = Pipeline.create(broker.bootstrap, tmp_path, "two")
    asyncio.run(ensure_topics(pipe.settings))
    events = day(1.0, seed=15)
    messages = asyncio.run(pipe.send(events, closing=pipe.closing_time(events)))
    ends = dict(pipe.contact_ends)
    owned = "cc_pipeline_owned_partitions"
    diffs_total = 0
    with pipe.worker("a") as (a, base_a):
        wait_for("worker a applied everything", applied_all([base_a], ends), workers=[a])
        alone = metrics(base_a)
        assert metric_differences([alone], events) == []
        with pipe.worker("b") as (b, base_b):

            def split():
                ma, mb = metrics(base_a), metrics(base_b)
                ready = all(get_json(f"{x}/health/ready")[0] == 200 for x in (base_a, base_b))
                if (
                    ready
                    and ma[(owned, ())] > 0
                    and mb[(owned, ())] > 0
                    and ma[(owned, ())] + mb[(owned, ())] == len(ends)
                ):
                    return ma, mb

            ma, mb = wait_for("the partitions split between a and b", split, workers=[a, b])
            wait_for("every partition applied", applied_all([base_a, base_b], ends), workers=[a, b])
            ma, mb = metrics(base_a), metrics(base_b)
            diffs = metric_differences([ma, mb], events)
            diffs_total += len(diffs)
            assert diffs == [], diffs[:10]
            assert ma[(owned, ())] + mb[(owned, ())] == len(ends)
            assert queues_of(ma).isdisjoint(queues_of(mb))  # a queue is exported by exactly one worker
            assert queues_of(ma) < queues_of(alone)  # a's revoked partitions' series are gone

        # b stopped (SIGTERM): a takes every partition back, with the state b checkpointed
        def alone_again():
            m = metrics(base_a)
            return m if m[(owned, ())] == len(ends) and get_json(f"{base_a}/health/ready")[0] == 200 else None

        wait_for("a owning every partition again", alone_again, workers=[a])
        final = metrics(base_a)
        diffs = metric_differences([final], events)
        diffs_total += len(diffs)
    records = asyncio.run(pipe.kpi_records())
    diffs += record_differences(records, events)
    figures("two_workers_stop_one", events=len(events), messages=messages, differences=diffs_total + len(diffs))
    assert diffs == [], diffs[:10]
    assert conflicting_finals(records) == []


@contextmanager
def frozen(proc: subprocess.Popen):
    """The broker process stopped (SIGSTOP) for the block, and always resumed."""
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(proc.pid, signal.SIGCONT)


def test_a_broker_frozen_for_30_seconds_mid_run_loses_nothing(broker, tmp_path):
    pipe = Pipeline.create(broker.bootstrap, tmp_path, "pause")
    asyncio.run(ensure_topics(pipe.settings))
    events = day(1.0, seed=16)
    half = len(events) // 2
    with pipe.worker() as (proc, base):
        messages = asyncio.run(pipe.send(events[:half]))
        ends = dict(pipe.contact_ends)
        wait_for("the first half applied", applied_all([base], ends, settled=False), workers=[proc])
        pause_ends = time.monotonic() + 30
        with frozen(broker.proc):
            # the worker notices and says so; it neither exits nor reports ready
            status, report = wait_for(
                "/health/ready answering 503",
                lambda: (lambda r: r if r[0] == 503 else None)(get_json(f"{base}/health/ready")),
                timeout=25,
                workers=[proc],
            )
            assert report["broker_up"] is False
            time.sleep(max(0.0, pause_ends - time.monotonic()))
            assert proc.poll() is None
        wait_for("ready again", lambda: get_json(f"{base}/health/ready")[0] == 200, workers=[proc])
        messages += asyncio.run(pipe.send(events[half:], closing=pipe.closing_time(events)))
        ends = dict(pipe.contact_ends)
        wait_for("every partition applied", applied_all([base], ends), workers=[proc], bases=[base])
        m = metrics(base)
    records = asyncio.run(pipe.kpi_records())
    diffs = record_differences(records, events) + metric_differences([m], events)
    figures("broker_frozen_30s", events=len(events), messages=messages, differences=len(diffs))
    assert diffs == [], diffs[:10]
    assert conflicting_finals(records) == []
    assert m[("cc_pipeline_broker_outages_total", ())] >= 1
    assert metric_sum(m, "cc_pipeline_events_total", topic=pipe.topic("contact-events")) == pipe.contact_topic_events


def test_a_worker_started_before_its_broker_waits_and_then_works(tmp_path):
    port = free_port()
    pipe = Pipeline.create(f"127.0.0.1:{port}", tmp_path, "nobroker")
    events = day(1.0, seed=17)
    with pipe.worker() as (proc, base):
        log = tmp_path / "worker.log"
        wait_for(
            "the worker saying it waits for Kafka",
            lambda: log.exists() and log.read_text().count("waiting for Kafka") >= 2,
            timeout=60,
            workers=[proc],
        )
        with EmbeddedBroker(port=port):
            asyncio.run(ensure_topics(pipe.settings))
            messages = asyncio.run(pipe.send(events, closing=pipe.closing_time(events)))
            ends = dict(pipe.contact_ends)
            wait_for("every partition applied", applied_all([base], ends), workers=[proc], bases=[base])
            m = metrics(base)
            records = asyncio.run(pipe.kpi_records())
    diffs = record_differences(records, events) + metric_differences([m], events)
    figures("broker_missing_at_start", events=len(events), messages=messages, differences=len(diffs))
    assert diffs == [], diffs[:10]


# ---- kill -9 at many points of a burst, against a clean run ---------------------------------------------------


@dataclass(frozen=True)
class Published:
    key: str
    kind: str  # queue (every window), agent or fcr
    revision: int
    final: bool
    body: bytes  # the record without its revision: what two runs must agree on


async def published(pipe: Pipeline) -> list[Published]:
    out = []
    for m in await pipe.read_topic("kpis"):
        raw = orjson.loads(m.value)
        revision = raw.pop("revision")
        body = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
        out.append(Published(m.key.decode(), raw.get("kind", "queue"), revision, raw["final"], body))
    return out


def revision_conflicts(records: list[Published]) -> list[str]:
    """(key, revision) pairs published with more than one body: a consumer keeping the latest revision could keep
    either."""
    bodies: dict[tuple[str, int], set[bytes]] = {}
    for r in records:
        bodies.setdefault((r.key, r.revision), set()).add(r.body)
    return [f"{k} r{rev}: {len(b)} bodies" for (k, rev), b in bodies.items() if len(b) > 1]


def latest(records: list[Published]) -> dict[str, Published]:
    """What a consumer keeping the highest revision per key ends with."""
    out: dict[str, Published] = {}
    for r in records:
        if r.key not in out or r.revision >= out[r.key].revision:
            out[r.key] = r
    return out


def final_differences(got: dict[str, Published], want: dict[str, Published]) -> list[str]:
    out = [f"not final: {k}" for k, r in got.items() if not r.final]
    out += [f"missing {k}" for k in want.keys() - got.keys()]
    out += [f"unexpected {k}" for k in got.keys() - want.keys()]
    for k in want.keys() & got.keys():
        if got[k].body != want[k].body:
            a, b = orjson.loads(got[k].body), orjson.loads(want[k].body)
            out.append(f"{k}: " + ", ".join(f"{f} {b.get(f)!r} -> {a.get(f)!r}" for f in sorted(a) if a[f] != b.get(f)))
    return out


async def drop_checkpoints(pipe: Pipeline, table: str) -> int:
    """Delete a checkpoint table's headers (tombstones on its changelog), as if its checkpoints had never been
    stored; returns how many."""
    topic = f"{pipe.settings.app_id}-{table}-changelog"
    consumer = AIOKafkaConsumer(bootstrap_servers=pipe.settings.broker_url, enable_auto_commit=False)
    await consumer.start()
    headers: dict[tuple[int, bytes], bool] = {}
    try:
        await consumer.topics()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while fetched := await consumer.getmany(timeout_ms=1000):  # to the end (Tansu's end offsets can be short)
            for tp, batch in fetched.items():
                for r in batch:
                    # a header is at the key of the partition itself (its data at partition + k x partitions)
                    key = int(r.key)
                    headers[(tp.partition, r.key)] = r.value is not None and key < pipe.settings.partitions
    finally:
        await consumer.stop()
    async with EventWriter(pipe.settings, pipe.settings.broker_url) as writer:
        live = [k for k, is_header in headers.items() if is_header]
        for partition, key in live:
            await writer.producer.send_and_wait(topic, None, key=key, partition=partition)
    return len(live)


def test_an_offset_committed_past_the_checkpoint_resumes_at_the_checkpoint(broker, tmp_path):
    """Whatever releases an ack before its checkpoint is stored (it happened: Faust's producer flush gives up
    after 0.1 s), a restarted worker must resume after its checkpoint, not at the committed offset. Here the first
    half of an hour is applied and committed, then its checkpoints are deleted, as an early ack and a crash would
    leave them: the restarted worker must apply it again, and the final records be the independent
    computation's."""
    pipe = Pipeline.create(broker.bootstrap, tmp_path, "ahead")
    asyncio.run(ensure_topics(pipe.settings))
    events = day(1.0, seed=23)
    half = len(events) // 2
    topics = {pipe.topic("contact-events"): pipe.contact_ends, pipe.topic("agent-events"): pipe.agent_ends}

    def committed_all() -> bool:
        return all(
            asyncio.run(pipe.committed(t)).get(p, 0) >= end for t, ends in topics.items() for p, end in ends.items()
        )

    with pipe.worker("first") as (proc, base):
        asyncio.run(pipe.send(events[:half]))
        wait_for("the first half checkpointed and committed", committed_all, workers=[proc], bases=[base])
    dropped = (
        0
        if os.environ.get("NODROP")
        else sum(asyncio.run(drop_checkpoints(pipe, table)) for table in ("queue-state", "agent-state"))
    )
    asyncio.run(pipe.send(events[half:], closing=pipe.closing_time(events)))
    with pipe.worker("second") as (proc, base):
        wait_for("every queue interval final", applied_all([base], pipe.contact_ends), workers=[proc], bases=[base])
        resumed = (pipe.log_dir / "second.log").read_text().count("was due; reading again from")
    diffs = record_differences(asyncio.run(pipe.kpi_records()), events)
    figures("committed_past_checkpoint", events=len(events), dropped=dropped, resumed=resumed, differences=len(diffs))
    assert dropped >= pipe.settings.partitions  # every contact partition's at least
    assert resumed >= pipe.settings.partitions  # and each went back to the start
    assert diffs == [], diffs[:10]


def everything_final(pipe: Pipeline, base: str):
    """Every contact partition applied and settled, every FCR interval final, every agent event committed (a
    commit follows the checkpoint, which follows the batch's records)."""
    contacts = applied_all([base], pipe.contact_ends)

    def check():
        fcr = progress(base)["fcr_partitions"]
        if not contacts() or len(fcr) != pipe.settings.partitions or any(s["open_intervals"] for s in fcr.values()):
            return False
        committed = asyncio.run(pipe.committed(pipe.topic("agent-events")))
        return all(committed.get(p, 0) >= end for p, end in pipe.agent_ends.items())

    return check


def poll_fast(due, done, proc, timeout: float = WAIT) -> str | None:
    """ "due" as soon as `due()` (polled every few ms: a burst lasts a second or two), "done" if `done()` first
    (checked each second), None if neither within `timeout` (a restarted worker that never fetches)."""
    deadline = next_done = time.monotonic()
    deadline += timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"worker exited with status {proc.returncode}"
        try:
            if due():
                return "due"
            if time.monotonic() >= next_done:
                next_done = time.monotonic() + 1.0
                if done():
                    return "done"
        except OSError:  # the worker's HTTP server is not up yet
            pass
        time.sleep(0.005)
    return None


def checkpoints_written(base: str) -> float:
    return metric_sum(metrics(base), "cc_pipeline_checkpoints_total")


def test_kill_9_at_many_points_of_a_burst_publishes_what_a_clean_run_does(broker, tmp_path):
    """An hour sent one event per message; the worker SIGKILLed at many points of its burst (before the first
    checkpoint, right after one, between them) and restarted at once. The final queue, agent and FCR records must
    be the clean run's, and no (key, revision) may be published with two bodies."""
    started = time.monotonic()
    events = day(1.0, seed=21)
    # small batches and frequent checkpoints and provisional revisions: a burst spans many of each
    tuning = dict(batch_max_messages=50, flush_seconds=0.05, checkpoint_seconds=0.25, kpi_update_seconds=0.2)
    closing = max(e.time for e in events) + timedelta(hours=26)  # past every FCR window too: everything final
    clean = Pipeline.create(broker.bootstrap, tmp_path, "burst-clean", **tuning)
    killed = Pipeline.create(broker.bootstrap, tmp_path, "burst-killed", **tuning)
    for pipe in (clean, killed):
        asyncio.run(ensure_topics(pipe.settings))
    asyncio.run(clean.send(events, closing=closing))
    with clean.worker("clean") as (proc, base):
        wait_for("the clean run final", everything_final(clean, base), workers=[proc], bases=[base])
    # ("messages", f): once this life has applied that share of the messages not yet committed (between
    # checkpoints); ("checkpoint", n): as soon as it has written n partition checkpoints (right after one, its acks
    # perhaps not yet committed)
    plan = [
        ("messages", 0.05),
        ("checkpoint", 1),
        ("messages", 0.3),
        ("checkpoint", 3),
        ("messages", 0.6),
        ("checkpoint", 1),
        ("messages", 0.2),
        ("checkpoint", 2),
        ("messages", 0.5),
    ]
    # the killed run's hour arrives in one slice per planned life, in the same order, so that every life has a
    # burst to be killed in however fast the machine applies it (a whole hour could be applied before a trigger)
    slices = [events[i * len(events) // len(plan) : (i + 1) * len(events) // len(plan)] for i in range(len(plan))]

    def remaining() -> int:
        """Messages sent to the killed run and not yet committed (what its next life applies)."""
        committed = {t: asyncio.run(killed.committed(killed.topic(t))) for t in ("contact-events", "agent-events")}
        return sum(
            end - committed[t].get(p, 0)
            for t, ends in (("contact-events", killed.contact_ends), ("agent-events", killed.agent_ends))
            for p, end in ends.items()
        )

    kills = stalls = missed = 0
    for life, ((trigger, n), part) in enumerate(zip(plan, slices, strict=True)):
        asyncio.run(killed.send(part))
        todo = remaining()
        with killed.worker(f"killed-{life}") as (proc, base):
            caught_up_at: list[float] = []

            def due(trigger=trigger, n=n, base=base, todo=todo):
                if trigger == "messages":
                    return progress(base)["source_messages"] >= n * todo
                return checkpoints_written(base) >= n

            def missed_it(base=base, todo=todo, caught_up_at=caught_up_at):
                """Everything sent applied and, a few checkpoint periods on, the trigger still not reached."""
                if progress(base)["source_messages"] < todo:
                    return False
                if not caught_up_at:
                    caught_up_at.append(time.monotonic())
                return time.monotonic() - caught_up_at[0] > 2.0

            reached = poll_fast(due, missed_it, proc)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if reached == "due":
                kills += 1
            elif reached == "done":
                missed += 1
            else:
                stalls += 1  # see the kill -9 case above: restarted, as its supervisor would
    asyncio.run(killed.send([], closing=closing))
    for life in range(len(plan), len(plan) + 6):
        with killed.worker(f"killed-{life}") as (proc, base):
            if poll_fast(lambda: False, everything_final(killed, base), proc) is not None:
                break
            stalls += 1  # stalled (as above): restarted, as its supervisor would
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    got, want = asyncio.run(published(killed)), asyncio.run(published(clean))
    conflicts = revision_conflicts(got) + revision_conflicts(want)
    diffs = final_differences(latest(got), latest(want))
    queue_diffs = record_differences(asyncio.run(killed.kpi_records()), events)  # and the independent computation
    kinds = Counter(r.kind for r in latest(want).values())
    figures(
        "kill_9_burst",
        events=len(events),
        kills=kills,
        missed_triggers=missed,
        stalled_restarts=stalls,
        final_records=dict(kinds),
        records_published=len(got),
        differences=len(diffs) + len(queue_diffs),
        revision_conflicts=len(conflicts),
        seconds=round(time.monotonic() - started),
    )
    # a checkpoint trigger may find its life's slice applied and checkpointed at once (a fast run); the kills still
    # land before, at and between checkpoints
    assert kills >= 7
    assert all(kinds[k] > 0 for k in ("queue", "agent", "fcr"))
    assert diffs == [], diffs[:10]
    assert queue_diffs == [], queue_diffs[:10]
    assert conflicts == [], conflicts[:10]
