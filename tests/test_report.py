"""Operations reports: every number equals the records it came from, the PDF renders, planted causes are named
first, cost per contact by hand, self-service share, delivery to a real SMTP server on loopback, user mistakes.

No broker: the records are computed in this process from simulated days (`tests/report_days.py`) by the worker's
own processors (`pipeline.tools.report.inprocess`), written as JSON Lines like `replay --kpi-out` writes them."""

from __future__ import annotations

import json
import re
import subprocess
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from email.message import Message as EmailMessage
from pathlib import Path

import msgspec
import orjson
import pytest
from report_days import day_events

from pipeline.contract import events as ev
from pipeline.core.settings import QueueConfig
from pipeline.kpis.reporting.figures import build, parse_records, period_of
from pipeline.runtime.broker import free_port
from pipeline.tools.report import main_report
from pipeline.tools.report.inprocess import records_from_events

MONDAY = date(2026, 1, 5)
PLANTED = {
    MONDAY + timedelta(days=1): "volume",
    MONDAY + timedelta(days=2): "absence",
    MONDAY + timedelta(days=3): "aht",
}
VOICE = ("billing", "sales", "support")
QUEUE_FILE = """
[defaults]
agent_hour_cost = 32.0
telephony_cost_per_minute = 0.012
self_service_session_cost = 0.05
[queues.billing]
service_level_target = 0.75
agent_hour_cost = 30.0
telephony_cost_per_minute = 0.012
self_service_session_cost = 0.05
[teams.operations]
report_recipients = ["ops-lead@example.org", "wfm@example.org"]
"""


@pytest.fixture(scope="module")
def week(tmp_path_factory) -> tuple[Path, Path, list[dict]]:
    """Four simulated days (a normal Monday, then volume, absence and AHT days) as a records file and queue file."""
    root = tmp_path_factory.mktemp("report")
    queue_file = root / "queues.toml"
    queue_file.write_text(QUEUE_FILE)
    events: list[ev.Event] = []
    for i in range(4):
        day = MONDAY + timedelta(days=i)
        events += day_events(day, PLANTED.get(day), seed=100 + i)
    records = records_from_events(events, QueueConfig.load(queue_file))
    path = root / "kpis.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path, queue_file, records


def _data(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert match, "the HTML carries its data"
    return json.loads(match.group(1))


@pytest.fixture(scope="module")
def weekly(week, tmp_path_factory) -> tuple[dict, Path]:
    records, queue_file, _ = week
    out = tmp_path_factory.mktemp("out")
    mp = pytest.MonkeyPatch()
    mp.setenv("PIPELINE_QUEUES_FILE", str(queue_file))
    try:
        assert main_report(["--period", "week", "--records", str(records), "--out", str(out)]) == 0
    finally:
        mp.undo()
    html = (out / "report-week-2026-01-05.html").read_text()
    assert not re.search(r"(src|href)=.(https?:)?//|url\((?!#)|@import", html), "self-contained: nothing fetched"
    assert "https://" not in html, html[html.find("https://") - 200 : html.find("https://") + 100]
    return _data(html), out


def test_every_number_in_the_report_equals_the_records(week, weekly):
    _, _, records = week
    data, _ = weekly
    queues = [r for r in records if r.get("kind") == "queue" and r["window"] == "interval"]
    agents = [r for r in records if r.get("kind") == "agent"]
    assert data["period"]["start"] == "2026-01-05" and len(data["queues"]) == 5
    for row in data["queues"]:
        mine = [r for r in queues if (r["queue_id"], r["channel"]) == (row["queue_id"], row["channel"])]

        def total(name: str, recs=mine) -> float:
            return sum(r[name] for r in recs)

        k = row["kpis"]
        assert k["offered"] == total("offered") and k["handled"] == total("handled")
        # the headline (abandons_against by default): within / (answered + abandoned), over the week's counts
        assert k["service_level"] == pytest.approx(
            total("answered_within_threshold") / (total("answered") + total("abandoned"))
        )
        assert k["asa"] == pytest.approx(total("answer_wait_seconds_sum") / total("answered"))
        assert k["abandon_rate"] == pytest.approx(total("abandoned") / total("offered"))
        assert k["abandon_rate_without_short"] == pytest.approx(
            (total("abandoned") - total("short_abandoned")) / (total("offered") - total("short_abandoned"))
        )
        assert k["aht"] == pytest.approx(total("handle_seconds_sum") / total("handled"))
        assert k["talk_avg"] + k["hold_avg"] + k["acw_avg"] == pytest.approx(k["aht"])
        assert k["csat"] == pytest.approx(total("survey_score_sum") / total("surveys"))
        with_fc = [r for r in mine if r["forecast_offered"] is not None]
        assert k["forecast_accuracy"] == pytest.approx(
            1
            - sum(abs(r["offered"] - r["forecast_offered"]) for r in with_fc)
            / sum(r["forecast_offered"] for r in with_fc)
        )
        serving = [a for a in agents if row["queue_id"] in a["queue_ids"]]
        busy = sum(a["on_contact_seconds"] + a["acw_seconds"] for a in serving)
        assert k["occupancy"] == pytest.approx(busy / (busy + sum(a["available_seconds"] for a in serving)))
        assert k["utilization"] == pytest.approx(busy / sum(a["logged_in_seconds"] for a in serving))
        assert k["adherence"] == pytest.approx(
            sum(a["adherent_seconds"] for a in serving) / sum(a["scheduled_seconds"] for a in serving)
        )
        assert k["fcr_rate"] is None, "no FCR records in process: not available, never made up"
        assert all(v is None for v in row["previous"].values()), "no records the week before: not available"
    # each day's service level in the report is the pipeline's own day record's
    day_records = {
        (r["queue_id"], r["channel"], r["interval_start"][:10]): r for r in records if r.get("window") == "day"
    }
    assert len(data["days"]) == 20
    for d in data["days"]:
        assert d["service_level"] == pytest.approx(
            day_records[(d["queue_id"], d["channel"], d["date"])]["service_level"]
        )
        assert d["offered"] == day_records[(d["queue_id"], d["channel"], d["date"])]["offered"]
        serving = [a for a in agents if d["queue_id"] in a["queue_ids"] and a["interval_start"][:10] == d["date"]]
        assert d["adherence"] == pytest.approx(
            sum(a["adherent_seconds"] for a in serving) / sum(a["scheduled_seconds"] for a in serving)
        ), "the daily adherence track"
    # the charts' data: intraday offered adds up to the week's; the heat map's agents short to the gap hours
    for series in data["intraday"]:
        (row,) = [q for q in data["queues"] if (q["queue_id"], q["channel"]) == (series["queue_id"], series["channel"])]
        assert sum(p["offered"] for p in series["points"]) == row["kpis"]["offered"]
    heat = sum(sum(cells) for cells in data["understaffed"]["agents_short"]) * 0.25
    assert heat == pytest.approx(sum(q["kpis"]["staffing_gap_hours"] for q in data["queues"]))
    # the agent hours behind the cost: every agent's logged-in time, split over its queues, adds up to the whole
    paid = sum(q["cost"]["agent_hours"] for q in data["queues"])
    assert paid == pytest.approx(sum(a["logged_in_seconds"] for a in agents) / 3600, rel=1e-9)


def test_the_pdf_renders_every_page(weekly, tmp_path):
    _, out = weekly
    pdf = out / "report-week-2026-01-05.pdf"
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "page")], check=True, timeout=60)
    pages = sorted(tmp_path.glob("page-*.png"))
    # two queues a page, the causes page, a chart page per queue, the heat map and the trade-off
    assert len(pages) == 3 + 1 + 5 + 2
    assert all(p.stat().st_size > 2000 for p in pages), "every page has something drawn on it"


def test_the_planted_cause_is_named_first(weekly):
    data, _ = weekly
    days = {(d["queue_id"], d["date"]): d for d in data["days"]}
    for day, cause in PLANTED.items():
        for q in VOICE:
            d = days[(q, day.isoformat())]
            assert d["missed_intervals"] > 0, (q, day)
            assert d["causes"][0]["cause"] == cause, (q, day, d["causes"])
            assert d["causes"][0]["share"] > 0.4
            assert sum(c["share"] for c in d["causes"]) == pytest.approx(1)


T0 = datetime(2026, 1, 6, 9, 0, tzinfo=UTC)


def _small_day() -> list[ev.Event]:
    """One agent logged in to `sales` from 09:00 to 10:00; four calls: wait 10 s, talk 240 s, hold 30 s, ACW 30 s;
    three IVR sessions contained and one not."""
    at = lambda s: T0 + timedelta(seconds=s)  # noqa: E731
    out: list[ev.Event] = [
        ev.AgentLoggedIn(event_id="li", time=at(0), agent_id="a1", queue_ids=["sales"]),
        ev.AgentStateChanged(event_id="s0", time=at(0), agent_id="a1", state="available"),
    ]
    for i in range(4):
        t = 600 * i + 60
        ids = dict(contact_id=f"c{i}", queue_id="sales", channel="voice")
        out += [
            ev.ContactOffered(event_id=f"o{i}", time=at(t), customer_id=f"customer-{i}", **ids),
            ev.ContactAnswered(event_id=f"a{i}", time=at(t + 10), agent_id="a1", **ids),
            ev.AgentStateChanged(event_id=f"s{i}a", time=at(t + 10), agent_id="a1", state="on_contact"),
            ev.HoldStarted(event_id=f"h{i}", time=at(t + 100), agent_id="a1", **ids),
            ev.HoldEnded(event_id=f"H{i}", time=at(t + 130), agent_id="a1", **ids),
            ev.ContactEnded(event_id=f"e{i}", time=at(t + 280), agent_id="a1", **ids),
            ev.AgentStateChanged(event_id=f"s{i}b", time=at(t + 280), agent_id="a1", state="acw"),
            ev.AcwEnded(event_id=f"w{i}", time=at(t + 310), agent_id="a1", disposition="resolved", **ids),
            ev.AgentStateChanged(event_id=f"s{i}c", time=at(t + 310), agent_id="a1", state="available"),
            ev.IvrSessionEnded(
                event_id=f"i{i}",
                time=at(t + 5),
                session_id=f"ivr{i}",
                queue_id="sales",
                channel="voice",
                contained=i < 3,
            ),
        ]
    out.append(ev.AgentLoggedOut(event_id="lo", time=at(3600), agent_id="a1"))
    return sorted(out, key=lambda e: e.time)


def test_cost_per_contact_and_self_service_share_by_hand():
    config = QueueConfig.model_validate(
        {"defaults": {"agent_hour_cost": 30.0, "telephony_cost_per_minute": 0.02, "self_service_session_cost": 0.1}}
    )
    raw = records_from_events(_small_day(), config)
    assert not any("customer-" in json.dumps(r) for r in raw), "no customer id in any record"
    data = build(parse_records(raw), config, period_of("day", T0.date()))
    (row,) = data["queues"]
    cost = row["cost"]
    # 1 agent hour at 30; on the line per call: 10 s wait + 240 s talk + 30 s hold = 280 s, four calls = 18.67 min
    assert cost["agent_hours"] == pytest.approx(1.0)
    assert cost["telephony_minutes"] == pytest.approx(4 * 280 / 60)
    assert cost["telephony"] == pytest.approx(4 * 280 / 60 * 0.02)
    assert row["kpis"]["cost_per_handled"] == pytest.approx((30 + 4 * 280 / 60 * 0.02) / 4)  # 7.5933...
    assert cost["self_service"] == pytest.approx(4 * 0.1)
    assert row["kpis"]["cost_total"] == pytest.approx(30 + 4 * 280 / 60 * 0.02 + 0.4)
    # self-service: 3 sessions contained; 4 contacts reached the queue (none transferred): 3 / 7
    (voice,) = data["self_service"]
    assert (voice["contained"], voice["assisted"], voice["share"]) == (3, 4, pytest.approx(3 / 7))
    assert row["kpis"]["ivr_containment"] == pytest.approx(3 / 4)
    # the cost of meeting the target: the records' own agents_required, hour by hour, at the agent hour cost
    required = [r["agents_required"] * 0.25 for r in raw if r.get("window") == "interval" and r["agents_required"]]
    assert cost["required_agent_hours"] == pytest.approx(sum(required)) and required
    assert cost["of_target"] == pytest.approx(30 * sum(required))


def test_report_sent_by_smtp_to_the_team(week, tmp_path, monkeypatch, capsys):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    records, queue_file, _ = week
    received: list[EmailMessage] = []
    logins: list[tuple[bytes, bytes]] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
            received.append(message_from_bytes(envelope.content))
            received[-1]["X-Rcpt"] = ",".join(envelope.rcpt_tos)
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret-pw")

    port = free_port()
    controller = Controller(
        Handler(), hostname="127.0.0.1", port=port, authenticator=authenticator, auth_require_tls=False
    )
    controller.start()
    try:
        for name, value in {
            "QUEUES_FILE": str(queue_file),
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(port),
            "SMTP_STARTTLS": "false",
            "SMTP_USER": "reports",
            "SMTP_PASSWORD": "s3cret-pw",
            "SMTP_FROM": "reports@example.org",
        }.items():
            monkeypatch.setenv(f"PIPELINE_{name}", value)
        code = main_report(
            ["--period", "day", "--date", "2026-01-07", "--records", str(records), "--out", str(tmp_path), "--send"]
        )
    finally:
        controller.stop()
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "s3cret-pw" not in out.out + out.err
    assert logins == [(b"reports", b"s3cret-pw")]
    (mail,) = received
    assert mail["X-Rcpt"] == "ops-lead@example.org,wfm@example.org"
    assert mail["Subject"] == "Operations report 2026-01-07: team operations"
    parts = {p.get_content_type(): p for p in mail.walk()}
    assert parts["application/pdf"].get_payload(decode=True)[:5] == b"%PDF-"
    data = _data(parts["text/html"].get_payload(decode=True).decode())
    assert data["period"] == {"kind": "day", "start": "2026-01-07", "end": "2026-01-08", "label": "2026-01-07"}
    assert {q["team"] for q in data["queues"]} == {"operations"}


def test_user_mistakes_are_one_sentence_and_exit_2(week, tmp_path, capsys):
    records, _, _ = week
    assert main_report(["--period", "week", "--records", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path)]) == 2
    assert main_report(["--period", "week", "--records", str(records), "--queues", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"--records {tmp_path / 'missing.jsonl'}: cannot be read (No such file or directory)",
        "--queues: no records of nope; the records hold billing, sales, sales-chat, support, support-chat",
    ]


def test_staffing_chart(tmp_path):
    from pipeline.tools.staffing import main_staffing

    chart = tmp_path / "tradeoff.png"
    assert (
        main_staffing(
            [
                "--calls",
                "120",
                "--per",
                "30m",
                "--aht",
                "300",
                "--target",
                "80/20",
                "--chart",
                str(chart),
                "--agent-hour-cost",
                "30",
            ]
        )
        == 0
    )
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 10_000


def test_days_sum_per_cause(weekly):
    """A day's cause shares are its intervals' shortfalls split by cause, so the contacts add up."""
    data, _ = weekly
    by_day = defaultdict(float)
    for d in data["days"]:
        assert sum(c["contacts"] for c in d["causes"]) == pytest.approx(d["short_contacts"])
        by_day[d["date"]] += d["short_contacts"]
    assert by_day["2026-01-05"] < min(by_day[day.isoformat()] for day in PLANTED), "a normal day misses least"


def test_webhook_receives_the_report_json():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from pipeline.tools.report.delivery import DeliveryError, post_webhook

    got: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's hook name)
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204 if self.path == "/ok" else 500)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        post_webhook(f"{base}/ok", {"subject": "s", "team": "operations", "data": {"queues": []}, "html": "<p>"})
        assert got == [{"subject": "s", "team": "operations", "data": {"queues": []}, "html": "<p>"}]
        with pytest.raises(DeliveryError, match="failed"):
            post_webhook(f"{base}/broken", {"subject": "s"})
    finally:
        server.shutdown()


def test_fcr_counts_final_intervals_only_and_says_so(week):
    """FCR records (made by replay and the topic, not in process): provisional ones are left out and counted."""
    _, _, records = week
    config = QueueConfig()

    def fcr(start: str, final: bool, eligible: int, resolved: int) -> dict:
        return {
            "kind": "fcr", "queue_id": "sales", "channel": "voice", "interval_start": start,
            "interval_end": start.replace("09:00:00", "09:15:00"), "partition": 0,
            "revision": 1, "final": final, "fcr_window_hours": 24.0, "fcr_eligible": eligible,
            "fcr_resolved": resolved, "fcr_unresolved": eligible - resolved, "repeat_contacts": 0,
            "fcr_ineligible": 0, "fcr_rate": resolved / eligible, "repeat_rate": 0.0,
        }  # fmt: skip

    extra = [
        fcr("2026-01-05T09:00:00Z", True, 10, 8),
        {**fcr("2026-01-05T09:00:00Z", True, 6, 3), "partition": 1},
        fcr("2026-01-08T09:00:00Z", False, 50, 50),
    ]
    data = build(parse_records(records + extra), config, period_of("week", MONDAY))
    (sales,) = [q for q in data["queues"] if q["queue_id"] == "sales"]
    assert sales["kpis"]["fcr_rate"] == pytest.approx((8 + 3) / (10 + 6)), "summed over partitions, final only"
    assert sales["fcr_provisional_intervals"] == 1
    from pipeline.tools.report.render import table_rows

    (row,) = [r for r in table_rows(sales) if r["key"] == "fcr_rate"]
    assert row["title"].endswith("1 provisional intervals left out") and row["now"] == "68.8%"


def test_periods():
    assert period_of("day", date(2026, 1, 7)).previous() == period_of("day", date(2026, 1, 6))
    week = period_of("week", date(2026, 1, 7))
    assert (week.start, week.end, week.label) == (
        date(2026, 1, 5),
        date(2026, 1, 12),
        "2026-W02 (2026-01-05 to 2026-01-11)",
    )
    assert week.previous().start == date(2025, 12, 29)
    month = period_of("month", date(2026, 2, 14))
    assert (month.start, month.end, month.label) == (date(2026, 2, 1), date(2026, 3, 1), "2026-02")
    assert month.previous() == period_of("month", date(2026, 1, 31))


def test_watch_sends_each_day_once_its_day_records_are_final(week, tmp_path):
    from pipeline.tools.report import complete_days, due_days, mark_sent

    _, _, raw = week
    config = QueueConfig()
    records = parse_records(raw)
    days = [MONDAY + timedelta(days=i) for i in range(4)]
    assert complete_days(records, config) == days
    state = tmp_path / "sent-days.json"
    assert due_days(records, config, state) == days[-1:], "a first start sends the newest day only"
    mark_sent(state, days[-1])
    assert due_days(records, config, state) == []
    # a later day whose records are not all final yet is not due; once they are, it is
    later = parse_records(raw)
    thursday = [r for r in later.intervals if r.interval_start.date() == days[-1]]
    friday = [msgspec.structs.replace(r, interval_start=r.interval_start + timedelta(days=1)) for r in thursday]
    later.intervals += friday
    assert due_days(later, config, state) == []
    later.days += [
        msgspec.structs.replace(r, interval_start=r.interval_start + timedelta(days=1))
        for r in later.days
        if r.interval_start.date() == days[-1]
    ]
    assert due_days(later, config, state) == [days[-1] + timedelta(days=1)]


def test_agents_available_are_split_over_queues_and_count_chat_concurrency(week):
    from pipeline.kpis.reporting.figures import staffed_by_interval

    _, _, raw = week
    records = parse_records(raw)
    start = records.intervals[0].interval_start
    agent = {
        "kind": "agent", "agent_id": "a-x", "queue_ids": ["sales", "sales-chat"], "interval_start": start.isoformat(),
        "interval_end": (start + timedelta(minutes=15)).isoformat(), "revision": 1, "final": True,
        "logged_in_seconds": 900.0, "available_seconds": 100.0, "on_contact_seconds": 500.0, "acw_seconds": 0.0,
        "not_ready_seconds": 300.0, "not_ready_seconds_by_reason": {"break": 300.0}, "handling_seconds": 500.0,
        "contact_seconds": 1000.0, "scheduled_seconds": 0.0, "adherent_seconds": 0.0, "occupancy": 500 / 600,
        "utilization": 500 / 900, "adherence": None, "concurrency": 2.0,
    }  # fmt: skip
    records.agents = parse_records([agent]).agents
    staffed = staffed_by_interval(records)
    sales = staffed[("sales", "voice", start)]
    # half of the agent for each queue: (900 - 300) / 900 / 2 = 1/3 of an agent, twice over at two chats at once
    assert (sales.logged_in, sales.not_ready, sales.concurrency) == (pytest.approx(0.5), pytest.approx(1 / 6), 2.0)
    assert sales.available == pytest.approx(2 / 3)


def test_the_day_record_carries_its_handling_cost_by_hand():
    """The queue worker's own day record: the small day above, through the processors (`records_from_events`)."""
    config = QueueConfig.model_validate(
        {"defaults": {"agent_hour_cost": 30.0, "telephony_cost_per_minute": 0.02, "currency": "USD"}}
    )
    raw = records_from_events(_small_day(), config)
    (day,) = [r for r in raw if r.get("kind", "queue") == "queue" and r["window"] == "day"]
    # handling per call: 240 s talk + 30 s hold + 30 s ACW = 300 s; four calls = 1/3 agent hour at 30 = 10.
    # on the line per call: 10 s wait + 240 s talk + 30 s hold = 280 s at 0.02 a minute
    spent = 4 * 300 / 3600 * 30 + 4 * 280 / 60 * 0.02  # 10.3733...
    assert day["currency"] == "USD"
    assert day["handling_cost"] == pytest.approx(spent)
    assert day["handling_cost_per_handled"] == pytest.approx(spent / 4)  # 2.5933...
    # additive: the day's cost is its intervals' cost
    intervals = [r for r in raw if r.get("kind", "queue") == "queue" and r["window"] == "interval"]
    assert sum(r["handling_cost"] for r in intervals) == pytest.approx(spent)
    # without a cost model the records are as before, the new fields null
    plain = records_from_events(_small_day(), QueueConfig())
    for r in plain:
        if r.get("kind", "queue") == "queue":
            assert (r["currency"], r["handling_cost"], r["handling_cost_per_handled"]) == (None, None, None)


def test_the_day_record_names_the_planted_cause_first(week):
    """The worker's own day records (no report): the cause field of each planted day, and its contacts short equal
    the shortfalls of the day's missed interval records, computed here from their counts."""
    from pipeline.kpis.reporting.causes import headline_shortfall
    from pipeline.kpis.reporting.figures import local_date, queue_counts

    _, queue_file, raw = week
    config = QueueConfig.load(queue_file)
    records = parse_records(raw)
    days = {
        (r.queue_id, r.channel, local_date(r.interval_start, config.for_queue(r.queue_id))): r for r in records.days
    }
    for day, cause in PLANTED.items():
        for q in VOICE:
            d = days[(q, "voice", day)]
            rules = config.for_queue(q)
            assert d.service_level is not None and d.service_level < rules.service_level_target, (q, day)
            assert d.miss_causes, (q, day)
            assert d.miss_causes[0].cause == cause, (q, day, d.miss_causes)
            assert d.miss_causes[0].share > 0.4
            assert sum(c.share for c in d.miss_causes) == pytest.approx(1)
            intervals = [
                r
                for r in records.intervals
                if (r.queue_id, r.channel) == (q, "voice") and local_date(r.interval_start, rules) == day
            ]
            short = sum(headline_shortfall(queue_counts([r]), rules) for r in intervals)
            assert sum(c.contacts for c in d.miss_causes) == pytest.approx(short)
    for d in records.days:  # a day that met its target has no causes; interval records never
        rules = config.for_queue(d.queue_id)
        if d.service_level is None or d.service_level >= rules.service_level_target:
            assert d.miss_causes is None
    assert all(r.miss_causes is None for r in records.intervals)
