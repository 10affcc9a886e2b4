"""Each Grafana panel's unit follows from what its queries measure, and its thresholds colour what they should:
each queue against its own target from the queue file, the right way round, and the gap panels red exactly when
their alerts' conditions hold.

No JSON schema of Grafana dashboards ships offline (grafana-foundation-sdk has typed builders, not a schema), so
the structure is Grafana's as the SDK builds it; these tests check the meaning."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline.contract.events import CHANNELS
from pipeline.core.settings import QueueConfig
from pipeline.kpis import definitions as kd
from pipeline.kpis.counts import QueueCounts
from pipeline.monitoring import alerting, dashboards

QUEUES = QueueConfig.load(Path(__file__).resolve().parent.parent / "deploy" / "queues.toml")
PANELS = [
    (spec, p, panel)
    for spec in dashboards.DASHBOARDS
    for p, panel in zip(spec.panels, dashboards.build(spec, QUEUES)["panels"], strict=True)
]
IDS = [f"{spec.uid}: {p.title}" for spec, p, _ in PANELS]
SERIES = re.compile(r"\b((?:queue_channel|queue):[A-Za-z_0-9:]+|cc_[a-z_0-9]+|up)\b")
COLOURS = {"green", "orange", "red", "blue"}

# Which way each queue target points: above the service level target is good, above the others is bad.
HIGHER_IS_BETTER = {
    "service_level_target": True,
    "abandon_rate_target": False,
    "asa_target_seconds": False,
    "oldest_wait_target_seconds": False,
    "callback_service_level_target": True,
    "callback_overdue_seconds": False,
}


def measured_unit(expr: str) -> str:
    """Grafana unit of what a query measures, read from the first series it names."""
    series = SERIES.search(expr)
    assert series, expr
    name = series.group(1)
    if "ratio" in name or "service_level" in name or "adherent" in name:
        return "percentunit"  # ratios 0..1 (docs/kpis.md), shown as percent
    names = SERIES.findall(expr)
    if "/" in expr and all(n.endswith("_total") and "_seconds" not in n for n in names):
        return "percentunit"  # contacts over contacts (a ratio formed from its counts, e.g. per segment)
    if name.endswith("_seconds_bucket"):
        return "s"  # a quantile, or the buckets' axis, of a duration histogram
    if "_seconds" in name:
        # seconds per second is a share of time; otherwise a duration
        return "percentunit" if re.search(rf"\brate\(\s*{name}", expr) else "s"
    if re.search(rf"\brate\(\s*{name}", expr):
        return "ops"  # events per second
    return "short"  # counts: contacts, agents, messages, workers


def colour(steps: list[dict], value: float) -> str:
    """The colour Grafana gives a value: the last step whose value it reaches."""
    return [s["color"] for s in steps if s["value"] is None or value >= s["value"]][-1]


@pytest.mark.parametrize(("spec", "p", "panel"), PANELS, ids=IDS)
def test_the_unit_is_what_every_query_of_the_panel_measures(spec, p, panel) -> None:
    unit = panel["fieldConfig"]["defaults"]["unit"]
    assert {measured_unit(t["expr"]) for t in panel["targets"]} == {unit}
    if panel["type"] == "heatmap":  # the unit is the buckets' axis; the cells count contacts
        assert panel["options"]["yAxis"]["unit"] == unit and panel["options"]["cellValues"]["unit"] == "short"
        assert all(t["format"] == "heatmap" for t in panel["targets"])  # cumulative buckets taken apart


@pytest.mark.parametrize(("spec", "p", "panel"), PANELS, ids=IDS)
def test_threshold_steps_rise_from_a_base_and_fit_the_unit(spec, p, panel) -> None:
    unit = panel["fieldConfig"]["defaults"]["unit"]
    every = [panel["fieldConfig"]["defaults"].get("thresholds", {"steps": []})["steps"]]
    every += [prop["value"]["steps"] for o in panel["fieldConfig"]["overrides"] for prop in o["properties"]]
    for steps in every:
        if not steps:
            continue
        assert steps[0]["value"] is None, "the first step is the base colour"
        values = [s["value"] for s in steps[1:]]
        assert values == sorted(set(values)), "steps must rise"
        assert {s["color"] for s in steps} <= COLOURS
        if unit == "percentunit":  # a target typed in percent (80 for 0.8) would never be reached
            assert all(0 < v <= 1 for v in values), values


TARGETED = [(spec, p, panel) for spec, p, panel in PANELS if p.target]


@pytest.mark.parametrize(("spec", "p", "panel"), TARGETED, ids=[f"{s.uid}: {p.title}" for s, p, _ in TARGETED])
def test_each_queue_is_coloured_against_its_own_target_the_right_way_round(spec, p, panel) -> None:
    assert p.higher_is_better == HIGHER_IS_BETTER[p.target]
    unit = panel["fieldConfig"]["defaults"]["unit"]
    assert unit == ("s" if p.target.endswith("_seconds") else "percentunit")
    good, bad = ("green", "red")
    defaults = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    overrides = [
        (o["matcher"]["options"], o["properties"][0]["value"]["steps"]) for o in panel["fieldConfig"]["overrides"]
    ]

    def steps_of(series: str) -> list[dict]:
        """As Grafana colours a series: the last override whose pattern matches its name, else the defaults."""
        return ([steps for pattern, steps in overrides if re.fullmatch(pattern, series)] or [defaults])[-1]

    # every queue of the file and one it does not name (`returns`), on every channel: the alerts' target
    for queue in (*QUEUES.queues, "returns"):
        for channel in CHANNELS:
            target = getattr(QUEUES.rules(queue, channel), p.target)
            steps = steps_of(f"{queue} {channel}")
            just_below, just_above = target * 0.99, target * 1.01
            expected = (bad, good) if HIGHER_IS_BETTER[p.target] else (good, bad)
            assert (colour(steps, just_below), colour(steps, just_above)) == expected, (queue, channel)
    # billing's own service level target (0.75) differs from the defaults' (0.8) in deploy/queues.toml, and every
    # queue's email has [defaults.channels.email]'s 0.9; support-chat's chat its own abandonment target (0.1)
    if p.target == "service_level_target":
        assert colour(steps_of("billing voice"), 0.77) == good and colour(defaults, 0.77) == bad
        assert colour(steps_of("billing email"), 0.85) == bad and colour(steps_of("returns email"), 0.85) == bad
    if p.target == "abandon_rate_target":
        assert (
            colour(steps_of("support-chat chat"), 0.08) == good and colour(steps_of("support-chat voice"), 0.08) == bad
        )


@pytest.mark.parametrize(
    ("title", "alert"),
    [("Staffing gap now", "CCQueueStaffingGap"), ("Plan vs forecast, next hour", "CCQueueUnderstaffedNextHour")],
)
def test_a_gap_panel_is_red_exactly_when_its_alert_condition_holds(title, alert) -> None:
    [panel] = [panel for _, p, panel in PANELS if p.title == title]
    [rule] = [a for a in alerting.all_alerts() if a.name == alert]
    # `gap > on (queue) group_left (team) (0 * target [+ margin])`: the margin the alert compares the gap with
    compared = re.search(r"> on \(queue\) group_left \(team\) \((.*)\)\s*$", rule.expr)
    assert compared and compared.group(1).startswith("0 * "), rule.expr
    margin = re.search(r"\+ ([\d.]+)$", compared.group(1))
    limit = float(margin.group(1)) if margin else 0.0
    assert limit == (alerting.THRESHOLDS.plan_gap_margin if margin else 0.0)
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    # gaps are fractional (an agent serving three queues counts 1/3 in each)
    for gap in (-1.0, 0.0, 1 / 3, 1.0, 2.0, 2 + 1 / 3, 2.5, 3.0, 10.0):
        assert (colour(steps, gap) == "red") == (gap > limit), (gap, limit)


# ------------------------------------------------------------ segments and wrap-up codes, evaluated by Prometheus

PROMTOOL = shutil.which("promtool")
EVAL_MINUTES = 40  # the 15- and 30-minute windows within the series
SEGMENTS = {  # two segments with counts of their own: a panel must not mix them
    "gold": QueueCounts(
        offered=40,
        answered=30,
        abandoned=10,
        short_abandoned=2,
        answered_within_threshold=24,
        abandoned_within_threshold=4,
        answer_wait_ms=450_000,
        abandon_wait_ms=300_000,
    ),
    "other": QueueCounts(offered=25, answered=25, answered_within_threshold=10, answer_wait_ms=1_000_000),
}
CODES = {"sale": 3, "other": 2}
# what each panel shows of a segment's (or a code's) counts over its window: the table's definitions in Python
EXPECTED = {
    "Offered by segment (30 min)": lambda c: 30 * c.offered,
    f"Service level by segment (30 min, {dashboards.SEGMENT_SL_NAME})": dashboards.SEGMENT_SL.value,
    "ASA by segment (30 min)": kd.RATIO["asa"].value,
    "Abandonment rate by segment (30 min)": kd.RATIO["abandon_rate"].value,
}


def grafana_to_promql(expr: str) -> str:
    """A dashboard query as Grafana sends it with every queue and channel selected (as tests/test_ops_stack.py)."""
    return expr.replace("$queue", ".*").replace("$channel", ".*").replace("$__rate_interval", "1m")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
def test_the_segment_and_wrap_up_code_panels_show_the_tables_values_in_prometheus(tmp_path) -> None:
    """Counters rising by each segment's counts (each code's) every minute: over any window the panels' queries must
    give the definitions' values over those counts, one series per segment (per code)."""
    reading = [
        (p, q)
        for p in dashboards.QUEUE_DETAIL.panels
        for q, _ in p.queries
        if "cc_queue_segment_" in q or kd.DISPOSITIONS.metric in q
    ]
    assert {p.title for p, _ in reading} == {*EXPECTED, "Wrap-up codes per interval"}
    labels = 'job="cc-kpi-pipeline", instance="w1", queue="q", channel="voice"'
    series = [
        {
            "series": f'{count.metric}{{{labels}, segment="{segment}"}}',
            "values": f"0+{getattr(c, count.field) * count.scale:g}x{EVAL_MINUTES + 5}",
        }
        for segment, c in SEGMENTS.items()
        for count in kd.SEGMENT_COUNTS
    ]
    series += [
        {"series": f'{kd.DISPOSITIONS.metric}{{{labels}, disposition="{code}"}}', "values": f"0+{n}x{EVAL_MINUTES + 5}"}
        for code, n in CODES.items()
    ]
    tests = []
    for p, query in reading:
        if p.title in EXPECTED:
            expected = {("segment", s): EXPECTED[p.title](c) for s, c in SEGMENTS.items()}
        else:
            expected = {("disposition", code): 15 * n for code, n in CODES.items()}
        tests.append(
            {
                "expr": grafana_to_promql(query),
                "eval_time": f"{EVAL_MINUTES}m",
                "exp_samples": [
                    {"labels": f'{{queue="q", channel="voice", {k}="{v}"}}', "value": value}
                    for (k, v), value in expected.items()
                    if value is not None
                ],
            }
        )
    suite = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
    }
    (tmp_path / "panels.test.yml").write_text(yaml.safe_dump(suite, sort_keys=False, width=200))
    out = subprocess.run(
        [PROMTOOL, "test", "rules", "panels.test.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
def test_the_wallboards_target_line_is_each_queue_and_channels_own_in_prometheus(tmp_path) -> None:
    """The deployed recording rules and the wallboard's target query (the alerts' `target_of`): one target per
    queue and channel with a service level, the channel's own where the queue file has one (every email: 0.9),
    else the queue's (billing 0.75, others 0.8), with the queue's team; `returns` is not in the file."""
    [query] = [
        q
        for p in dashboards.WALLBOARD.panels
        if p.title == "Service level vs target (5 min)"
        for q, legend in p.queries
        if legend.startswith("target")
    ]
    pairs = [("support", "voice"), ("support", "email"), ("billing", "voice"), ("billing", "email")]
    pairs += [("returns", "voice"), ("returns", "email")]
    series = []
    for queue, channel in pairs:
        labels = f'job="cc-kpi-pipeline", instance="w1", queue="{queue}", channel="{channel}"'
        series += [
            {"series": f"cc_queue_answered_total{{{labels}}}", "values": "0+10x20"},
            {"series": f"cc_queue_abandoned_total{{{labels}}}", "values": "0+0x20"},
            {"series": f"cc_queue_answered_within_threshold_total{{{labels}}}", "values": "0+7x20"},
            {"series": f"cc_queue_service_level_threshold_seconds{{{labels}}}", "values": "20x20"},
        ]
    own = alerting.channel_target("service_level")
    expected = []
    for queue, channel in pairs:
        rules, team = QUEUES.rules(queue, channel), QUEUES.for_queue(queue).team
        from_table = channel in QUEUES.for_queue(queue).channels  # named or not, every queue has the email table
        labels = f'{{queue="{queue}", channel="{channel}", team="{team}"}}'
        expected.append({"labels": (own if from_table else "") + labels, "value": rules.service_level_target})
    assert {e["value"] for e in expected} == {0.75, 0.8, 0.9}
    suite = {
        "rule_files": [str(Path(alerting.DEPLOY) / "prometheus" / "rules" / "recording.rules.yml")],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [{"expr": grafana_to_promql(query), "eval_time": "10m", "exp_samples": expected}],
            }
        ],
    }
    (tmp_path / "target.test.yml").write_text(yaml.safe_dump(suite, sort_keys=False, width=200))
    out = subprocess.run(
        [PROMTOOL, "test", "rules", "target.test.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
