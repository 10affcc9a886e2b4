"""The wallboard and the agent board in a real headless Chromium (Debian's `chromium` driven by Selenium through
`chromedriver`), on a real worker fed by the simulator through the embedded broker.

The simulated center plays in two parts. After each part, once the worker has applied every message sent, the
figures on the pages are compared with /metrics of the same worker at that moment (nothing changes between
parts, so they must be equal, not close); the second part must change the pages without a reload. Then the
worker is stopped and both pages must say STALE.

Set PIPELINE_BOARD_SCREENSHOTS to a directory to keep screenshots of both boards (docs/wallboard.png and
docs/agent-board.png are made this way).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.contract import events as ev
from pipeline.core.settings import QueueConfig, load_settings
from pipeline.monitoring import alerting
from pipeline.runtime.broker import ensure_topics, free_port
from pipeline.runtime.producer import EventWriter
from pipeline.tools.opsstack import OpsStack, binaries
from pipeline.tools.run import worker_process
from pipeline.tools.simulate import CenterConfig, simulate

webdriver = pytest.importorskip("selenium.webdriver")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(240),
    pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")), reason="needs chromium"),
]

START = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)  # a Monday, near the morning peak; the whole run is within one UTC day
T = TypeVar("T")
STATE_LABEL = {"available": "available", "on_contact": "on_contact", "acw": "after_contact_work"}
QUEUES_TOML = """
[defaults]
team = "care"
adherence_exception_seconds = 20
[queues.sales]
team = "sales"
[queues.sales-chat]
team = "sales"
"""


def full_hd(driver) -> None:
    """The page itself 1920x1080, as on a wall screen (the window size includes the browser's own frame)."""
    metrics = {"width": 1920, "height": 1080, "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)


def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1920,1080"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    full_hd(driver)
    return driver


def scrape(base: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def metric(m: dict, name: str, **labels: str) -> float:
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_applied(base: str, ends: dict[str, int], timeout: float = 90) -> dict:
    """Until the worker has consumed every message sent (per topic); returns /metrics at that moment."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            m = scrape(base)
            if all(metric(m, "cc_pipeline_messages_total", topic=t) >= n for t, n in ends.items()):
                return m
        except OSError:
            pass  # not serving yet
        assert time.monotonic() < deadline, f"the worker did not apply every message within {timeout} s"
        time.sleep(0.5)


def ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/health/ready", timeout=5) as resp:
            return resp.status == 200
    except OSError:  # 503 while joining, rebalancing or recovering
        return False


def kpis(m: dict) -> dict:
    """The KPI series of a scrape (the pipeline's own counts and timings move with every scrape)."""
    return {k: v for k, v in m.items() if k[0].startswith(("cc_queue_", "cc_agent_"))}


def settled(base: str, ends: dict[str, int], timeout: float = 90) -> dict:
    """/metrics once the worker has applied every message sent and is settled: ready, and its KPIs the same in
    two scrapes in a row. A rebalance (a group session can time out on a loaded machine) drops the partitions'
    state and loads it again; a scrape rendered across it holds only part of the state."""
    deadline = time.monotonic() + timeout
    before: dict | None = None
    while True:
        m = wait_applied(base, ends, timeout)
        if before is not None and ready(base) and kpis(m) == kpis(before):
            return m
        assert time.monotonic() < deadline, f"the worker did not settle within {timeout} s"
        before = m
        time.sleep(0.5)


def read_settled(driver, base: str, ends: dict[str, int], read: Callable[[Any], T]) -> tuple[T, dict]:
    """What `read(driver)` shows once the page has drawn an update fetched after a settled scrape (two: one may
    have been on its way), with that scrape: the page is read between two settled scrapes with equal KPIs (else
    again: the state moved while the page was drawn)."""
    for _ in range(5):
        m = settled(base, ends)
        wait_for_update(driver, 2)
        shown = read(driver)
        if kpis(settled(base, ends)) == kpis(m):
            return shown, m
    raise AssertionError("the worker's KPIs kept changing with no new input")


def wait_for_update(driver, after: int, timeout: float = 10) -> None:
    """Until the page has drawn a response fetched after `after` (the page counts its updates)."""
    deadline = time.monotonic() + timeout
    start = int(driver.execute_script("return Number(document.body.dataset.updates || 0)"))
    while int(driver.execute_script("return Number(document.body.dataset.updates || 0)")) < start + after:
        assert time.monotonic() < deadline, "the page did not update"
        time.sleep(0.2)


def tiles(driver) -> dict[tuple[str, str], dict[str, str]]:
    rows = driver.execute_script(
        """return Array.from(document.querySelectorAll('.tile')).map(t => [t.dataset.queue, t.dataset.channel,
        Object.fromEntries(Array.from(t.querySelectorAll('[data-field]')).map(f => [f.dataset.field, f.textContent]))])"""
    )
    return {(q, ch): fields for q, ch, fields in rows}


def agent_rows(driver) -> dict[str, dict[str, str]]:
    rows = driver.execute_script(
        """return Array.from(document.querySelectorAll('tr[data-agent]')).map(r => [r.dataset.agent,
        Object.fromEntries(Array.from(r.querySelectorAll('[data-field]')).map(f => [f.dataset.field, f.textContent]))])"""
    )
    return dict(rows)


def pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:.1f}%"


def dur(s: float) -> str:
    s = math.floor(s + 0.5)
    h, m, sec = s // 3600, (s % 3600) // 60, s % 60
    return (f"{h}:{m:02d}" if h else f"{m}") + f":{sec:02d}"


def assert_wallboard_equals_metrics(shown: dict, m: dict) -> None:
    queues = {(dict(k[1])["queue"], dict(k[1])["channel"]) for k in m if k[0] == "cc_queue_offered_total"}
    assert set(shown) == queues and len(queues) == 5
    for (q, ch), f in shown.items():
        c = {n: metric(m, f"cc_queue_{n}_total", queue=q, channel=ch) for n in ("offered", "answered", "abandoned")}
        within = metric(m, "cc_queue_answered_within_threshold_total", queue=q, channel=ch)
        # every event is of one UTC day: today's counts are the totals since the worker started
        assert f["long.offered"] == str(int(c["offered"])), (q, ch)
        assert f["long.answered"] == str(int(c["answered"])), (q, ch)
        assert f["long.abandoned"] == str(int(c["abandoned"])), (q, ch)
        den = c["answered"] + c["abandoned"]  # the default headline variant: abandons count against
        assert f["long.service_level"] == pct(within / den if den else None), (q, ch)
        waiting = metric(m, "cc_queue_contacts_waiting", queue=q, channel=ch)
        assert f["waiting"] == str(int(waiting)), (q, ch)
        assert f["oldest_wait"] == dur(metric(m, "cc_queue_oldest_waiting_age_seconds", queue=q, channel=ch)), (q, ch)
        for state in ("available", "on_contact", "acw", "not_ready", "logged_in"):
            label = STATE_LABEL.get(state, state)
            assert f[f"agents.{state}"] == str(int(metric(m, "cc_queue_agents", queue=q, state=label))), (q, state)
        staffed = round(metric(m, "cc_queue_agents_staffed", queue=q), 1)  # capacity shares, per queue
        assert f["staffed"] == (str(int(staffed)) if staffed == int(staffed) else str(staffed)), q
        assert f["required"] == str(int(metric(m, "cc_queue_agents_required", queue=q, channel=ch))), q


def assert_agent_board_equals_metrics(driver, m: dict) -> None:
    rows = agent_rows(driver)
    assert len(rows) >= 30
    for agent, r in rows.items():
        assert r["handled"] == str(int(metric(m, "cc_agent_handled_total", agent=agent))), agent
    for q in ("sales", "support"):  # agents by state on the board add up to the queue's figures on /metrics
        driver.execute_script(
            "const s = document.getElementById('queue-filter'); s.value = arguments[0];"
            "s.dispatchEvent(new Event('change'))",
            q,
        )
        shown = agent_rows(driver)
        assert all(q in r["queues"].split(", ") for r in shown.values())
        logged_in = [r for r in shown.values() if r["state"] != "logged out"]
        assert len(logged_in) == metric(m, "cc_queue_agents", queue=q, state="logged_in"), q
        on_contact = sum(r["state"] == "on contact" for r in shown.values())
        assert on_contact == metric(m, "cc_queue_agents", queue=q, state="on_contact"), q
    driver.execute_script(
        "const s = document.getElementById('queue-filter'); s.value = ''; s.dispatchEvent(new Event('change'))"
    )


def test_wallboard_and_agent_board_in_chromium(broker, tmp_path):
    run = f"boards-{uuid.uuid4().hex[:6]}"
    queues_file = tmp_path / "queues.toml"
    queues_file.write_text(QUEUES_TOML)
    overrides = {"app_id": run, "topic_prefix": run, "session_timeout_seconds": 6, "queues_file": queues_file}
    settings = load_settings(broker_url=broker.bootstrap, **overrides)
    asyncio.run(ensure_topics(settings))
    # fewer agents than the simulator's default for this traffic: a busy center, with queues off target
    events = list(simulate(CenterConfig(start=START, duration_hours=1.0, agents=34), seed=11))
    cut = START + timedelta(minutes=25)
    parts = [[e for e in events if e.time < cut], [e for e in events if cut <= e.time < cut + timedelta(minutes=10)]]
    # one agent of our own, scheduled to take contacts, available, and gone not ready five minutes before the end
    end, ids = parts[1][-1].time, iter(range(1000))
    mine = {"agent_id": "agent-late", "time": START}
    parts[0][:0] = [
        ev.ScheduleActivityPlanned(
            event_id=f"t{next(ids)}", schedule_id="t", version=1, activity="contact_handling", start=START,
            end=START + timedelta(hours=8), **mine),
        ev.AgentLoggedIn(event_id=f"t{next(ids)}", queue_ids=["support"], **mine),
        ev.AgentStateChanged(event_id=f"t{next(ids)}", state="available", **mine),  # in adherence until...
    ]  # fmt: skip
    parts[1].append(
        ev.AgentStateChanged(event_id=f"t{next(ids)}", agent_id="agent-late", time=end - timedelta(minutes=5),
                             state="not_ready", reason_code="personal"))  # fmt: skip
    parts[1].sort(key=lambda e: e.time)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    driver = browser()
    screenshots = os.environ.get("PIPELINE_BOARD_SCREENSHOTS")
    try:
        with worker_process(settings, tmp_path / "worker.log", **overrides, web_port=port):
            ends: dict[str, dict[int, int]] = {}

            async def send_part(part) -> None:
                async with EventWriter(settings, settings.broker_url) as writer:
                    await writer.write(part)
                    await writer.heartbeat(part[-1].time)
                    for topic, of_topic in writer.ends.items():
                        ends.setdefault(topic, {}).update(of_topic)

            def sent() -> dict[str, int]:
                return {t: sum(e.values()) for t, e in ends.items()}

            asyncio.run(send_part(parts[0]))
            settled(base, sent())  # serving
            driver.get(base + "/")
            first, m = read_settled(driver, base, sent(), tiles)
            assert_wallboard_equals_metrics(first, m)
            status = driver.find_element("id", "status")
            assert status.get_attribute("data-state") == "live" and status.text.startswith("LIVE")
            assert "every partition" in driver.find_element("id", "source").text  # one worker: the whole center

            asyncio.run(send_part(parts[1]))  # more events: the open page follows, without a reload
            second, m = read_settled(driver, base, sent(), tiles)
            with urllib.request.urlopen(f"{base}/progress", timeout=5) as resp:  # readable, as well as exact
                progress = json.loads(resp.read())
            stamp = end.isoformat(timespec="milliseconds").replace("+00:00", "Z")  # the closing heartbeat's time
            assert {p["watermark"] for p in progress["partitions"].values()} == {stamp}
            assert 0 <= progress["last_batch_seconds_ago"] < 60
            assert_wallboard_equals_metrics(second, m)
            assert sum(int(f["long.offered"]) for f in second.values()) > sum(
                int(f["long.offered"]) for f in first.values()
            )
            if screenshots:
                driver.save_screenshot(str(Path(screenshots) / "wallboard.png"))

            driver.execute_script("window.open('/agents', 'agents')")
            driver.switch_to.window("agents")
            full_hd(driver)
            wait_for_update(driver, 1)
            assert_agent_board_equals_metrics(driver, m)
            exceptions = driver.find_elements("css selector", "tr[data-exception='true']")
            assert exceptions and all("EXCEPTION" in e.text for e in exceptions)  # out of adherence over 20 s
            late = agent_rows(driver)["agent-late"]
            assert (late["state"], late["reason"], late["in_state"]) == ("not ready", "personal", "5:00")
            assert late["adherence"].startswith("✕ EXCEPTION out 5:00") and late["planned"] == "contact handling"
            if screenshots:
                driver.save_screenshot(str(Path(screenshots) / "agent-board.png"))
            driver.find_element("id", "exceptions-only").click()
            assert len(agent_rows(driver)) == len(exceptions)
        # the worker is stopped: both pages say so within a few seconds
        for window in driver.window_handles:
            driver.switch_to.window(window)
            deadline = time.monotonic() + 10
            while driver.find_element("id", "status").get_attribute("data-state") != "stale":
                assert time.monotonic() < deadline, "the page did not turn stale"
                time.sleep(0.3)
            assert "STALE" in driver.find_element("id", "status").text
    finally:
        driver.quit()


@pytest.mark.skipif(binaries() is None, reason="needs prometheus and alertmanager")
def test_wallboard_from_prometheus_shows_the_whole_center_of_two_workers(broker, tmp_path):
    """Two workers share the partitions; the wallboard of one, reading Prometheus, shows every queue with the
    figures of the Grafana wallboard's series and today's gauges, summed over both workers, at the moment its
    answer names; when Prometheus goes away the page turns stale and says why. (Rule windows scaled down 30
    times: "5 min" spans ten seconds here.)"""
    run = f"boards-prom-{uuid.uuid4().hex[:6]}"
    queues_file = tmp_path / "queues.toml"
    queues_file.write_text(QUEUES_TOML)
    queues = QueueConfig.load(queues_file)
    overrides = {"app_id": run, "topic_prefix": run, "session_timeout_seconds": 6, "queues_file": queues_file}
    settings = load_settings(broker_url=broker.bootstrap, **overrides)
    asyncio.run(ensure_topics(settings))
    events = list(simulate(CenterConfig(start=START, duration_hours=1.0, agents=34), seed=11))
    events = [e for e in events if e.time < START + timedelta(minutes=25)]
    ports = [free_port(), free_port()]
    (tmp_path / "ops").mkdir()
    ops = OpsStack(
        [f"127.0.0.1:{p}" for p in ports], queues, tmp_path / "ops", alerting.Timing(scale=1 / 30), "1s", "1s"
    )
    prometheus = f"http://127.0.0.1:{ops.prometheus_port}"
    driver = browser()
    try:
        with (
            worker_process(settings, tmp_path / "a.log", **overrides, web_port=ports[0], prometheus_url=prometheus),
            worker_process(settings, tmp_path / "b.log", **overrides, web_port=ports[1]),
        ):
            with ops:
                bases = [f"http://127.0.0.1:{p}" for p in ports]
                deadline = time.monotonic() + 60
                while not all(owned(b) == 2 for b in bases):
                    assert time.monotonic() < deadline, "the two workers did not share the partitions"
                    time.sleep(0.5)

                async def send(part) -> None:
                    async with EventWriter(settings, settings.broker_url) as writer:
                        await writer.write(part)
                        await writer.heartbeat(part[-1].time)

                # a first part, until Prometheus has every queue's series, then the rest: the page must follow
                cut = START + timedelta(minutes=15)
                asyncio.run(send([e for e in events if e.time < cut]))
                deadline = time.monotonic() + 60
                while len(ops.query("cc_queue_offered_total")) < 5:
                    assert time.monotonic() < deadline, "Prometheus did not scrape every queue"
                    time.sleep(0.5)
                time.sleep(2)
                asyncio.run(send([e for e in events if e.time >= cut]))
                driver.get(bases[0] + "/agents")  # the agent board is this worker's own, and says so
                wait_for_update(driver, 1)
                assert driver.find_element("id", "source").text.startswith("This worker only: 2 of 4")
                driver.get(bases[0] + "/")
                deadline = time.monotonic() + 60
                while True:  # until both workers' counts are in the 30-minute series and the page shows them
                    wait_for_update(driver, 1)
                    at = float(driver.execute_script("return document.body.dataset.at"))
                    page = tiles(driver)
                    offered = ops.query("sum(cc_queue_today_offered)", at)
                    total = sum(int(f["long.offered"]) for f in page.values())
                    if len(page) == 5 and offered and total == round(float(offered[0]["value"][1])) > 0:
                        break
                    assert time.monotonic() < deadline, (
                        f"the wallboard did not show the whole center: {page}, {offered}"
                    )
                assert "from Prometheus" in driver.find_element("id", "source").text
                assert_wallboard_equals_prometheus(page, ops, at)
            # Prometheus stopped: the wallboard says so
            deadline = time.monotonic() + 15
            while driver.find_element("id", "status").get_attribute("data-state") != "stale":
                assert time.monotonic() < deadline, "the page did not turn stale"
                time.sleep(0.3)
            assert "Prometheus at" in driver.find_element("id", "source").text
    finally:
        driver.quit()


TODAY = ("offered", "answered", "abandoned", "answered_within_threshold")


def owned(base: str) -> float:
    """The contact-event partitions a worker holds (-1 while it does not answer yet)."""
    try:
        return metric(scrape(base), "cc_pipeline_owned_partitions")
    except OSError:
        return -1


def assert_wallboard_equals_prometheus(page: dict, ops, at: float) -> None:
    def by(expr: str, *labels: str) -> dict:
        return {tuple(r["metric"][k] for k in labels): float(r["value"][1]) for r in ops.query(expr, at)}

    today = {n: by(f"sum by (queue, channel) (cc_queue_today_{n})", "queue", "channel") for n in TODAY}
    offered = today["offered"]
    sl5 = by("queue_channel:cc_queue_service_level:ratio5m", "queue", "channel")
    waiting = by("sum by (queue, channel) (cc_queue_contacts_waiting)", "queue", "channel")
    agents = by("sum by (queue, state) (cc_queue_agents)", "queue", "state")
    assert set(page) == set(offered)
    assert any(f["long.service_level"] != "–" for f in page.values())  # not a board of empty figures
    for (q, ch), f in page.items():
        t = {n: today[n][(q, ch)] for n in TODAY}
        assert f["long.offered"] == str(round(t["offered"])), (q, ch)
        assert f["long.answered"] == str(round(t["answered"])), (q, ch)
        assert f["long.abandoned"] == str(round(t["abandoned"])), (q, ch)
        den = t["answered"] + t["abandoned"]  # the default headline variant: abandons count against
        assert f["long.service_level"] == pct(t["answered_within_threshold"] / den if den else None), (q, ch)
        assert f["short.service_level"] == pct(sl5.get((q, ch))), (q, ch)
        assert f["waiting"] == str(round(waiting[(q, ch)])), (q, ch)
        for state in ("available", "on_contact", "acw", "not_ready", "logged_in"):
            assert f[f"agents.{state}"] == str(round(agents[(q, STATE_LABEL.get(state, state))])), (q, state)
