"""Rules, routes, dashboards and the compose file, checked with the real tools (promtool, amtool, Alertmanager,
docker-compose's schema) and against the one queue configuration they are generated from."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from pipeline.core.settings import QueueConfig
from pipeline.monitoring import alerting, dashboards
from pipeline.runtime.broker import free_port
from pipeline.tools.opsstack import WebhookReceiver, binaries

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
QUEUES = QueueConfig.load(DEPLOY / "queues.toml")
PROMTOOL, AMTOOL = shutil.which("promtool"), shutil.which("amtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
needs_amtool = pytest.mark.skipif(
    AMTOOL is None, reason="amtool not installed (apt-get install prometheus-alertmanager)"
)


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------------------------------ generated, not stale


def test_generated_rules_and_configs_are_up_to_date():
    for rel, text in alerting.generated_files(QUEUES).items():
        assert (DEPLOY / rel).read_text() == text, f"deploy/{rel} is stale: run `python -m pipeline ops-config`"


def test_generated_dashboards_are_up_to_date():
    files = dashboards.rendered(QUEUES)
    assert {p.name for p in dashboards.ROOT.glob("*.json")} == set(files)
    for name, text in files.items():
        assert (dashboards.ROOT / name).read_text() == text, f"grafana/dashboards/{name} is stale: run ops-config"


def test_targets_teams_and_variants_come_from_the_queue_file():
    config = QueueConfig.model_validate(
        {
            "defaults": {"team": "frontline"},
            "queues": {
                "vip": {
                    "service_level_target": 0.9,
                    "service_level_variant": "abandons_ignored",
                    "team": "vip-desk",
                    "abandon_rate_target": 0.02,
                    "time_zone": "America/New_York",
                    "open_days": ["sat", "sun"],
                }
            },
        }
    )
    rules = {(r["record"], r["expr"]): r.get("labels") for g in alerting.recording_groups(config) for r in g["rules"]}
    assert rules[("queue:cc_queue_service_level_target:ratio", "vector(0.9)")] == {"queue": "vip", "team": "vip-desk"}
    assert rules[("queue:cc_queue_abandon_rate_target:ratio", "vector(0.02)")] == {"queue": "vip", "team": "vip-desk"}
    headline = next(e for r, e in rules if r == "queue_channel:cc_queue_service_level:ratio5m")
    assert 'queue_channel:cc_queue_service_level_abandons_ignored:ratio5m{queue=~"vip"}' in headline
    assert 'queue_channel:cc_queue_service_level_abandons_against:ratio5m{queue!~"vip"}' in headline  # defaults
    local = next(e for r, e in rules if r == "queue:cc_queue_local_time:seconds")
    assert "vector(-18000)" in local and "vector(-14400)" in local  # New York: EST and EDT
    is_open = next(e for r, e in rules if r == "queue:cc_queue_open:bool")
    assert "day_of_week(" in is_open and "== 0" in is_open and "== 6" in is_open  # Saturday and Sunday
    am = alerting.alertmanager_config(config, "http://hook")
    receivers = {r["name"] for r in am["receivers"]}
    assert {"vip-desk-page", "vip-desk-ticket", "frontline-page", "platform-page"} <= receivers


def test_a_channels_own_targets_and_a_queues_callback_thresholds_are_recorded_by_queue_and_channel():
    config = QueueConfig.model_validate(
        {
            "defaults": {"team": "frontline", "channels": {"email": {"oldest_wait_target_seconds": 28800}}},
            "queues": {
                "vip": {
                    "team": "vip-desk",
                    "callback_overdue_seconds": "900",  # as TOML or JSON may carry it
                    "channels": {"chat": {"abandon_rate_target": 0.1, "callback_service_level_target": 0.7}},
                }
            },
        }
    )
    rules = [(r["record"], r["expr"], r.get("labels")) for g in alerting.recording_groups(config) for r in g["rules"]]
    channel_rules = [r for r in rules if r[0].startswith("queue_channel:") and "_target:" in r[0]]
    assert (
        "queue_channel:cc_queue_abandon_rate_target:ratio",
        "vector(0.1)",
        {"queue": "vip", "channel": "chat", "team": "vip-desk"},
    ) in channel_rules
    assert (
        "queue_channel:cc_queue_callback_service_level_target:ratio",
        "vector(0.7)",
        {"queue": "vip", "channel": "chat", "team": "vip-desk"},
    ) in channel_rules
    # vip inherits the defaults' email table; a queue the file does not name takes it through the worker's gauge
    assert (
        "queue_channel:cc_queue_oldest_wait_target:seconds",
        "vector(28800.0)",
        {"queue": "vip", "channel": "email", "team": "vip-desk"},
    ) in channel_rules
    unnamed = [r for r in channel_rules if "queue" not in r[2]]
    assert unnamed == [
        (
            "queue_channel:cc_queue_oldest_wait_target:seconds",
            '0 * group by (queue) (cc_queue_service_level_threshold_seconds{queue!~"vip"}) + 28800.0',
            {"channel": "email", "team": "frontline"},
        )
    ]
    assert len(channel_rules) == 4  # nothing for the fields no channel table sets
    # the queue's own callback thresholds, beside its other targets
    assert (
        "queue:cc_queue_callback_overdue_limit:seconds",
        "vector(900.0)",
        {"queue": "vip", "team": "vip-desk"},
    ) in rules
    assert (
        "queue:cc_queue_callback_service_level_target:ratio",
        "vector(0.9)",
        {"queue": "vip", "team": "vip-desk"},
    ) in rules


def test_a_file_without_channel_tables_records_only_the_queues_targets():
    """Then every alert compares each channel with its queue's target: what the alerts meant before channels had
    targets of their own (the promtool cases of queue-alerts.test.yml hold it on voice, which has no table)."""
    config = QueueConfig.model_validate({"queues": {"vip": {"service_level_target": 0.9}}})
    records = {r["record"] for g in alerting.recording_groups(config) for r in g["rules"]}
    assert not {r for r in records if r.startswith("queue_channel:") and "_target:" in r}
    compared = set()
    for alert in alerting.queue_alerts():
        for kind, (record, _) in alerting.TARGETS.items():
            if alerting.channel_target(kind) in alert.expr:  # the channel's own, else the queue's
                assert "\n  or on (queue, channel)\n    (0 * " in alert.expr and record in alert.expr, alert.name
                compared.add(kind)
    assert compared == {"service_level", "abandon_rate", "oldest_wait", "callback_service_level", "callback_overdue"}


# -------------------------------------------------------------------------------------------------- promtool


@needs_promtool
def test_promtool_accepts_the_rules_and_the_prometheus_config():
    rules = sorted(str(p) for p in (DEPLOY / "prometheus" / "rules").glob("*.rules.yml"))
    assert len(rules) == 2
    out = run(PROMTOOL, "check", "rules", *rules)
    assert out.returncode == 0, out.stdout + out.stderr
    out = run(PROMTOOL, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_promtool_unit_tests_pass_and_cover_both_sides_of_every_alert():
    tests = sorted((DEPLOY / "prometheus" / "tests").glob("*.test.yml"))
    out = run(PROMTOOL, "test", "rules", *map(str, tests))
    assert out.returncode == 0, out.stdout + out.stderr
    quiet, firing = set(), set()
    for path in tests:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for t in case.get("alert_rule_test", []):
                (firing if t["exp_alerts"] else quiet).add(t["alertname"])
    names = {a.name for a in alerting.all_alerts()}
    assert firing == names, f"alerts never seen firing: {names - firing}"
    assert quiet == names, f"alerts never checked before their for: {names - quiet}"


def test_ops_config_writes_the_runbook_url_of_the_setting(monkeypatch, capsys):
    from pipeline.tools import ops_config

    got: list[str] = []

    def keep(*args, runbook: str) -> list[Path]:
        got.append(runbook)
        return []

    monkeypatch.setattr(alerting, "write", keep)
    monkeypatch.setattr(ops_config.kubernetes, "write", keep)
    monkeypatch.setattr(dashboards, "write", lambda config: [])
    monkeypatch.setenv("PIPELINE_RUNBOOK_URL", " https://wiki.example.com/ops/cc-kpi/runbook ")
    assert ops_config.main_ops_config([]) == 0
    assert got == ["https://wiki.example.com/ops/cc-kpi/runbook"] * 2
    # the option overrides the setting, and is checked as it is
    assert ops_config.main_ops_config(["--runbook-url", "docs/runbook.md"]) == 2
    assert "PIPELINE_RUNBOOK_URL='docs/runbook.md': must be an absolute" in capsys.readouterr().out
    rule = alerting.alert_groups(runbook=got[0])[0]["rules"][0]
    assert rule["annotations"]["runbook_url"] == f"https://wiki.example.com/ops/cc-kpi/runbook#{rule['alert'].lower()}"


def test_every_alert_is_labelled_annotated_and_has_a_runbook_entry():
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    anchors = {h.strip().lower() for h in re.findall(r"^## (\S+)$", runbook, re.M)}
    for group in alerting.alert_groups():
        for rule in group["rules"]:
            assert re.fullmatch(r"CC[A-Z][A-Za-z]+", rule["alert"])
            assert rule["labels"]["severity"] in {"critical", "warning"}
            assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
            # absolute, so the link opens from a page or a ticket, not only inside a checkout
            assert rule["annotations"]["runbook_url"] == (
                f"https://github.com/cc-kpi/cc-kpi-pipeline/blob/main/docs/runbook.md#{rule['alert'].lower()}"
            )
            assert rule["alert"].lower() in anchors, f"no runbook entry for {rule['alert']}"
    assert anchors == {a.name.lower() for a in alerting.all_alerts()}, "runbook entries without an alert"


# -------------------------------------------------------------------------------------------------- Alertmanager

ROUTES = [  # (labels, receiver): by team first, then by severity
    ("severity=critical team=support queue=support alertname=CCQueueServiceLevelBelowTargetFast", "support-page"),
    ("severity=warning team=support queue=billing alertname=CCQueueAbandonRateAboveTarget", "support-ticket"),
    ("severity=critical team=sales queue=sales alertname=CCQueueOldestWaitAboveLimit", "sales-page"),
    ("severity=warning team=sales queue=sales-chat alertname=CCQueueNoContacts", "sales-ticket"),
    ("severity=critical team=platform alertname=CCPipelineDown", "platform-page"),
    ("severity=warning team=platform alertname=CCPipelineDeadLettersRising", "platform-ticket"),
    ("severity=critical team=operations queue=returns alertname=CCQueueServiceLevelBelowTargetFast", "operations-page"),
    ("severity=info team=sales alertname=Something", "nowhere"),
    ("severity=critical team=unknown-team alertname=Something", "operations-page"),  # nobody left out
    ("severity=warning alertname=Something", "operations-ticket"),
]


@needs_amtool
def test_amtool_accepts_the_alertmanager_config():
    out = run(AMTOOL, "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml"))
    assert out.returncode == 0, out.stdout + out.stderr


@needs_amtool
@pytest.mark.parametrize(("labels", "receiver"), ROUTES)
def test_alerts_route_by_team_then_severity(labels, receiver):
    out = run(
        AMTOOL,
        "config",
        "routes",
        "test",
        f"--config.file={DEPLOY / 'alertmanager' / 'alertmanager.yml'}",
        f"--verify.receivers={receiver}",
        *labels.split(),
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.skipif(binaries() is None, reason="alertmanager not installed (apt-get install prometheus-alertmanager)")
def test_a_pipeline_outage_inhibits_the_service_level_alerts_it_causes(tmp_path):
    """A real Alertmanager with the generated config: with CCPipelineDown firing, the service-level page of a queue
    is inhibited (no notification), while an unrelated alert still reaches its receiver."""
    receiver = WebhookReceiver().start()
    port = free_port()
    (tmp_path / "am.yml").write_text(alerting.dump(alerting.alertmanager_config(QUEUES, receiver.url, "1s", "1s")))
    proc = subprocess.Popen(
        [
            binaries()["alertmanager"],
            f"--config.file={tmp_path / 'am.yml'}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/-/ready", timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, "alertmanager not ready"
                time.sleep(0.2)

        def post(alerts):
            req = urllib.request.Request(
                f"{base}/api/v2/alerts",
                data=json.dumps(alerts).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            urllib.request.urlopen(req, timeout=5)

        down = {"labels": {"alertname": "CCPipelineDown", "severity": "critical", "team": "platform"}}
        sl = {
            "labels": {
                "alertname": "CCQueueServiceLevelBelowTargetFast",
                "severity": "critical",
                "team": "support",
                "queue": "support",
                "channel": "voice",
            }
        }
        oldest = {
            "labels": {
                "alertname": "CCQueueOldestWaitAboveLimit",
                "severity": "critical",
                "team": "sales",
                "queue": "sales",
                "channel": "voice",
            }
        }
        post([down])
        deadline = time.monotonic() + 20
        while not any(n.path == "/page/platform" for n in receiver.notifications):
            assert time.monotonic() < deadline, "the pipeline page was not sent"
            time.sleep(0.2)
        post([down, sl, oldest])
        deadline = time.monotonic() + 20
        while not any(n.path == "/page/sales" for n in receiver.notifications):
            assert time.monotonic() < deadline, "the unrelated page was not sent"
            time.sleep(0.2)
        time.sleep(3)  # several group intervals: an uninhibited page for support would have gone out by now
        with urllib.request.urlopen(f"{base}/api/v2/alerts", timeout=5) as resp:
            state = {a["labels"]["alertname"]: a["status"] for a in json.loads(resp.read())}
        assert state["CCQueueServiceLevelBelowTargetFast"]["state"] == "suppressed"
        assert state["CCQueueServiceLevelBelowTargetFast"]["inhibitedBy"]
        assert state["CCQueueOldestWaitAboveLimit"]["state"] == "active"
        assert not any(n.path == "/page/support" for n in receiver.notifications)
    finally:
        proc.terminate()
        proc.wait(10)
        receiver.stop()


# -------------------------------------------------------------------------------------------------- dashboards

PENDING_ANCHORS = {"agents-by-state-now", "occupancy", "schedule-adherence", "required-agents"}  # KPIs being added


def test_every_panel_has_a_unit_a_description_a_catalogue_link_and_the_datasource():
    catalogue = (ROOT / "docs" / "kpis.md").read_text()
    headings = {
        re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", catalogue, re.M)
    }
    uids = set()
    for spec in dashboards.DASHBOARDS:
        board = dashboards.build(spec, QUEUES)
        assert board["uid"] == spec.uid and spec.uid not in uids
        uids.add(spec.uid)
        assert {v["name"] for v in board.get("templating", {}).get("list", [])} == set(spec.variables)
        for panel in board["panels"]:
            assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
            assert "Definition: docs/kpis.md" in panel["description"], panel["title"]
            assert panel["links"][0]["url"].startswith("docs/kpis.md"), panel["title"]
            assert panel["datasource"] == {"type": "prometheus", "uid": dashboards.DATASOURCE_UID}
            assert panel["targets"] and all(t["expr"] for t in panel["targets"])
            anchor = panel["links"][0]["url"].partition("#")[2]
            assert not anchor or anchor in headings or anchor in PENDING_ANCHORS, (panel["title"], anchor)
    assert {"queue", "channel"} <= set(dashboards.WALLBOARD.variables)


def test_the_wallboard_colours_each_queue_against_its_own_target():
    board = dashboards.build(dashboards.WALLBOARD, QUEUES)
    sl = next(p for p in board["panels"] if p["title"] == "Service level (30 min)")
    steps = {
        o["matcher"]["options"]: o["properties"][0]["value"]["steps"][1]["value"]
        for o in sl["fieldConfig"]["overrides"]
    }
    for queue, settings in QUEUES.queues.items():
        pattern = next(p for p in steps if re.fullmatch(p, f"{queue} voice"))
        assert steps[pattern] == settings.service_level_target
    assert steps[r"^billing \S+$"] == 0.75  # billing's own target in deploy/queues.toml
    oldest = next(p for p in board["panels"] if p["title"] == "Oldest wait now")
    limits = {
        o["matcher"]["options"]: o["properties"][0]["value"]["steps"][1]["value"]
        for o in oldest["fieldConfig"]["overrides"]
    }
    assert limits[r"^support\-chat \S+$"] == 180 and limits[r"^sales \S+$"] == 120


# -------------------------------------------------------------------------------------------------- compose

COMPOSE_SCHEMA = Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")  # Debian's docker-compose


@pytest.mark.skipif(not COMPOSE_SCHEMA.exists(), reason="docker-compose (its compose_spec.json) not installed")
def test_the_compose_file_is_valid_and_mounts_what_exists(tmp_path):
    import jsonschema

    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    jsonschema.validate(compose, json.loads(COMPOSE_SCHEMA.read_text()))
    copy = shutil.copytree(DEPLOY, tmp_path / "deploy")  # with the env file an operator makes from its example
    shutil.copy(copy / "secrets.env.example", copy / "secrets.env")
    out = run("docker-compose", "-f", str(copy / "compose.yaml"), "config", "-q")
    assert out.returncode == 0, out.stdout + out.stderr
    services = compose["services"]
    assert {
        "kafka-1",
        "kafka-2",
        "kafka-3",
        "worker-1",
        "worker-2",
        "worker-3",
        "prometheus",
        "alertmanager",
        "grafana",
    } <= set(services)
    assert all(services[k]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller" for k in ("kafka-1", "kafka-2"))
    scraped = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())["scrape_configs"][0]
    assert {t.split(":")[0] for t in scraped["static_configs"][0]["targets"]} == {"worker-1", "worker-2", "worker-3"}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which does not exist"
