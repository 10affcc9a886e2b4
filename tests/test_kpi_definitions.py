"""The one table of KPI definitions (pipeline/kpis/definitions.py) is the only place a formula or a metric name is
written: the PromQL generated from it gives, on the same counts, the number the KPI record carries.

- For each service level variant and each ratio KPI, promtool evaluates the generated PromQL (the catalogue's
  expression, each recording rule, and each queue's headline rule) on counter series whose increases are given
  counts, and must get exactly the table's own Python value on those counts. The counts include Cisco's
  example and one where offered exceeds answered + abandoned (flow-outs, callbacks, contacts still waiting),
  where the two readings of 'abandons in favour' differ.
- Every PromQL expression docs/kpis.md prints is valid PromQL (promtool); the ops test evaluates each against a
  real Prometheus fed by the running pipeline.
- Every `cc_queue_*` / `cc_agent_*` name the rules, dashboards and catalogue read is a metric the table defines.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline.core.settings import QueueConfig, QueueSettings
from pipeline.kpis import catalogue
from pipeline.kpis import definitions as kd
from pipeline.kpis.counts import IntervalUpdate, QueueCounts
from pipeline.kpis.record import KpiRecord, build_record
from pipeline.monitoring import alerting, dashboards

ROOT = Path(__file__).resolve().parent.parent
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")

# Cisco UCCE manual (../shared/reference-values.md): 100 offered, 70 answered within the threshold, 10 abandoned
# within it, 20 exceeded it (here: answered after it). With the short-abandon threshold at the service level
# threshold, the 10 early abandons are the short ones.
CISCO = dict(
    offered=100,
    answered=90,
    answered_within_threshold=70,
    abandoned=10,
    abandoned_within_threshold=10,
    short_abandoned=10,
)
# Offered exceeds answered + abandoned: flowed out, callbacks, expired. Abandons in favour over offered is
# (60 + 12) / 120 = 0.6; over answered + abandoned it would be 72 / 100.
MORE_OFFERED = dict(
    offered=120,
    answered=80,
    answered_within_threshold=60,
    abandoned=20,
    abandoned_within_threshold=12,
    short_abandoned=5,
    flowed_out=10,
    callbacks_requested=5,
    expired=5,
)
# Handling, chat, surveys, IVR, callbacks, offers: durations in whole seconds (the counters export seconds)
OTHERS = dict(
    answer_wait_ms=1_234_000,
    abandon_wait_ms=456_000,
    handled=40,
    handle_ms=12_000_000,
    talk_ms=8_000_000,
    hold_ms=1_000_000,
    acw_ms=3_000_000,
    held=7,
    transferred_out=3,
    chat_first_responses=9,
    chat_first_response_ms=95_000,
    chat_responses=21,
    chat_response_ms=301_000,
    surveys=11,
    survey_score_sum=43,
    surveys_satisfied=8,
    ivr_sessions=30,
    ivr_contained=13,
    callback_dials=17,
    callbacks_dialled_promised=8,
    callbacks_dialled_within_promise=6,
    callbacks_connected=9,
    callbacks_failed=3,
    callback_attempts=16,
    agent_offers=25,
    agent_offers_accepted=20,
    agent_offers_rejected=2,
    agent_offers_missed=3,
    agent_offer_ring_ms=96_000,
)
CASES = {"cisco": QueueCounts(**CISCO, **OTHERS), "more-offered": QueueCounts(**MORE_OFFERED, **OTHERS)}
# Nothing answered or abandoned yet, three contacts waiting: no service level but abandons-in-favour's 0 / 3.
EMPTY = {"waiting": QueueCounts(offered=3)}

EVAL_MINUTES = 70  # every window (5m, 15m, 30m, 1h) within the series


def test_the_table_is_pure():
    """It imports nothing of this project but the contract, so every layer above can read it (and it cannot reach
    state or outputs; `make lint`'s import contract checks the layers as a whole)."""
    tree = ast.parse((ROOT / "pipeline" / "kpis" / "definitions.py").read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m and m.split(".")[0] == "pipeline" and not m.startswith("pipeline.contract.")]


def test_cisco_example_gives_the_published_figures():
    c = CASES["cisco"]
    sl = {v: kd.SERVICE_LEVEL[v].value(c) for v in kd.VARIANTS}
    assert round(sl["abandons_ignored"], 3) == 0.778  # 70 / 90
    assert sl["abandons_against"] == 0.7  # 70 / 100
    assert sl["abandons_in_favour"] == 0.8  # (70 + 10) / 100
    assert round(sl["short_abandons_excluded"], 3) == 0.778  # Cisco's 'ignored' read as 70 / (100 - 10)


def test_abandons_in_favour_is_over_offered():
    assert kd.SERVICE_LEVEL["abandons_in_favour"].value(CASES["more-offered"]) == 0.6
    assert kd.SERVICE_LEVEL["abandons_in_favour"].formula() == (
        "(answered_within_threshold + abandoned_within_threshold) / offered"
    )


def test_every_variant_and_the_settings_and_staffing_use_the_same_names():
    from typing import get_args

    from pipeline.kpis import counts
    from pipeline.kpis.staffing import erlang

    assert tuple(kd.SERVICE_LEVEL) == kd.VARIANTS == counts.VARIANTS == erlang.VARIANTS == alerting.VARIANTS
    assert get_args(QueueSettings.model_fields["service_level_variant"].annotation) == kd.VARIANTS
    assert {f"service_level_{v}" for v in kd.VARIANTS} <= set(KpiRecord.__struct_fields__)


@pytest.mark.parametrize("counts", [*CASES.values(), *EMPTY.values(), QueueCounts()])
@pytest.mark.parametrize("variant", kd.VARIANTS)
def test_the_record_carries_the_tables_values(counts, variant):
    rules = QueueSettings(service_level_variant=variant)
    r = build_record(IntervalUpdate("q", "voice", 0, 1, True, counts, rules), 900)
    for ratio in kd.RATIOS:
        assert getattr(r, ratio.record_field) == ratio.value(counts), ratio.name
    assert r.service_level == kd.SERVICE_LEVEL[variant].value(counts)


@pytest.mark.parametrize("counts", CASES.values())
def test_the_record_carries_every_count_of_the_table_and_each_agents_offers(counts):
    """Each count in its definition's record field (durations in seconds), the queue's and an agent's: the callback
    and offer fields are the table's, not a list of their own."""
    u = IntervalUpdate("q", "voice", 0, 1, True, counts, QueueSettings(), agents={"a1": counts})
    r = build_record(u, 900)
    for count in kd.COUNTS:
        assert getattr(r, count.record_field) == pytest.approx(getattr(counts, count.field) * count.scale), count.field
    [agent] = r.agents
    for count in kd.AGENT_OFFERS:
        field = count.record_field.removeprefix("agents[].")
        assert getattr(agent, field) == pytest.approx(getattr(counts, count.field) * count.scale), count.field
    assert {r.name for r in (*kd.CALLBACK_RATIOS, *kd.OFFER_RATIOS)} == {
        "callback_service_level",
        "callback_attempts_avg",
        "callback_connect_rate",
        "ring_time",
        "offers_per_answer",
        "missed_offer_rate",
    }


def test_a_count_that_is_not_exported_is_refused():
    with pytest.raises(ValueError, match="not exported counts"):
        kd.Ratio("x", "X", ("answered_within",), ("answered",), "ratio 0..1", "x")


# ------------------------------------------------------------------------------------------ promtool: PromQL = Python


def _queue(case: str, variant: str) -> str:
    return f"{case}-{variant}"


def _series(cases: dict[str, QueueCounts]) -> list[dict]:
    """Counter series rising by the case's count every minute: over any window of w minutes the increase is
    w x count, so every ratio of increases is the ratio of the counts (exactly: the factors are whole numbers)."""
    out = []
    for case, c in cases.items():
        for variant in kd.VARIANTS:
            for count in kd.COUNTS:
                step = getattr(c, count.field) * count.scale
                out.append(
                    {
                        "series": f'{count.metric}{{job="cc-kpi-pipeline", instance="w1", '
                        f'queue="{_queue(case, variant)}", channel="voice"}}',
                        "values": f"0+{step:g}x{EVAL_MINUTES + 5}",
                    }
                )
    return out


def _sample(name: str, queue: str, value: float) -> dict:
    labels = f'{{queue="{queue}", channel="voice"}}'
    return {"labels": f"{name}{labels}" if name else labels, "value": value}


def _expr_tests(cases: dict[str, QueueCounts], catalogue_expressions: bool) -> list[dict]:
    at = f"{EVAL_MINUTES}m"
    tests = []
    for ratio in kd.RATIOS:
        values = {case: ratio.value(c) for case, c in cases.items()}
        if catalogue_expressions:  # as docs/kpis.md prints it: no guard, so only where there is a denominator
            assert None not in values.values()
            tests.append(
                {
                    "expr": ratio.promql(),
                    "eval_time": at,
                    "exp_samples": [
                        _sample("", _queue(case, v), value) for case, value in values.items() for v in kd.VARIANTS
                    ],
                }
            )
        for w in kd.WINDOWS if ratio.rule else ():
            for case, value in values.items():
                queue = _queue(case, kd.VARIANTS[0])
                tests.append(
                    {
                        "expr": f'{ratio.recorded(w)}{{queue="{queue}"}}',
                        "eval_time": at,
                        "exp_samples": [] if value is None else [_sample(ratio.recorded(w), queue, value)],
                    }
                )
    for w in kd.WINDOWS:  # each queue's headline is its own variant's number
        headline = kd.HEADLINE_RULE.format(window=w)
        for case, c in cases.items():
            for v in kd.VARIANTS:
                value = kd.SERVICE_LEVEL[v].value(c)
                tests.append(
                    {
                        "expr": f'{headline}{{queue="{_queue(case, v)}"}}',
                        "eval_time": at,
                        "exp_samples": [] if value is None else [_sample(headline, _queue(case, v), value)],
                    }
                )
    return tests


@needs_promtool
def test_promql_of_every_ratio_and_variant_equals_the_python_value(tmp_path):
    queues = {_queue(case, v): {"service_level_variant": v} for case in (*CASES, *EMPTY) for v in kd.VARIANTS}
    config = QueueConfig.model_validate({"queues": queues})
    rules = tmp_path / "recording.rules.yml"
    rules.write_text(alerting.dump({"groups": alerting.recording_groups(config)}))
    suite = {
        "rule_files": [rules.name],
        "evaluation_interval": "1m",
        "tests": [
            {
                "name": "ratios of given counts: the catalogue's PromQL, the recorded ratios and the headline",
                "interval": "1m",
                "input_series": _series(CASES),
                "promql_expr_test": _expr_tests(CASES, catalogue_expressions=True),
            },
            {
                "name": "nothing answered or abandoned yet: no service level, except abandons in favour's 0",
                "interval": "1m",
                "input_series": _series(EMPTY),
                "promql_expr_test": _expr_tests(EMPTY, catalogue_expressions=False),
            },
        ],
    }
    test_file = tmp_path / "ratios.test.yml"
    test_file.write_text(yaml.safe_dump(suite, sort_keys=False, width=200))
    out = subprocess.run(
        [PROMTOOL, "test", "rules", test_file.name], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]


# ------------------------------------------------------------------------------------- what docs/kpis.md prints


def printed_promql(doc: str) -> list[str]:
    """Every PromQL expression docs/kpis.md prints: the `PromQL` and `Recording rules` bullets' code spans."""
    out = []
    for line in doc.splitlines():
        if line.startswith(("- **PromQL", "- **Recording rules:**")):
            out += re.findall(r"`([^`]+)`", line.split(":**", 1)[1])
    return out


def test_the_printed_promql_is_the_catalogues():
    printed = printed_promql((ROOT / "docs" / "kpis.md").read_text())
    assert printed == [e for _, e in catalogue.promql_expressions()]
    assert "queue_channel:cc_queue_service_level:ratio5m" in printed  # the headline, by its real rule name


@needs_promtool
def test_every_printed_promql_expression_is_valid(tmp_path):
    printed = printed_promql((ROOT / "docs" / "kpis.md").read_text())
    rules = tmp_path / "printed.rules.yml"
    groups = [
        {"name": "docs-kpis-md", "rules": [{"record": f"docs:expr:{i}", "expr": e} for i, e in enumerate(printed)]}
    ]
    rules.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False, width=1000))
    out = subprocess.run([PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def _metrics_defined() -> set[str]:
    from pipeline.kpis.agents import AGENT_COUNTS, AGENT_GAUGES, QUEUE_ADHERENCE_COUNTS
    from pipeline.kpis.quality import FCR_COUNTS

    names = {m.metric for m in (*kd.COUNTS, *kd.AGENT_HANDLING, *kd.GAUGES, *AGENT_COUNTS, *AGENT_GAUGES)}
    names |= {m.metric for m in (*kd.SEGMENT_COUNTS, kd.DISPOSITIONS)}
    names |= {m.metric for m in (*QUEUE_ADHERENCE_COUNTS, *FCR_COUNTS)}
    return names | {f"{kd.WAIT_HISTOGRAM.metric}_bucket"}


def test_every_metric_name_read_by_rules_dashboards_and_catalogue_is_defined():
    """A name retyped with a typo (or left behind by a rename) reads nothing and fails silently: not here."""
    config = QueueConfig.load(ROOT / "deploy" / "queues.toml")
    exprs = [r["expr"] for g in alerting.recording_groups(config) + alerting.alert_groups() for r in g["rules"]]
    exprs += list(alerting.alert_probes().values())
    exprs += [e for _, _, e in dashboards.all_queries()]
    exprs += [e for _, e in catalogue.promql_expressions()]
    # recorded series (level:metric:operations) are the rules' own names: only the raw names must be exported
    raw = [re.sub(r"\b[a-z_]+:[a-z_0-9]+:[a-z_0-9]+\b", "", e) for e in exprs]
    read = {m for e in raw for m in re.findall(r"\b(cc_(?:queue|agent)_[a-z_]+)\b", e)}
    undefined = read - _metrics_defined()
    assert not undefined, f"read but not defined in the KPI tables: {sorted(undefined)}"


def test_every_count_of_the_table_is_a_queue_counts_field():
    assert {c.field for c in kd.COUNTS} == set(QueueCounts.__struct_fields__) - set(kd.NOT_COUNTERS)


@needs_promtool
def test_promql_per_segment_equals_the_python_value_over_the_segments_counts(tmp_path):
    """The catalogue's per-segment PromQL, on segment counters rising by each case's counts, gives the table's
    value over those counts, one sample per segment (a second segment with other counts must not mix in)."""
    segments = {"gold": CASES["cisco"], "other": CASES["more-offered"]}
    series = [
        {
            "series": f'{count.metric}{{job="cc-kpi-pipeline", instance="w1", queue="q", channel="email", '
            f'segment="{segment}"}}',
            "values": f"0+{getattr(c, count.field) * count.scale:g}x{EVAL_MINUTES + 5}",
        }
        for segment, c in segments.items()
        for count in kd.SEGMENT_COUNTS
    ]
    assert {r.name for r in kd.SEGMENT_RATIOS} >= {*(f"service_level_{v}" for v in kd.VARIANTS), "asa", "abandon_rate"}
    tests = [
        {
            "expr": kd.segment_promql(r),
            "eval_time": f"{EVAL_MINUTES}m",
            "exp_samples": [
                {"labels": f'{{queue="q", channel="email", segment="{segment}"}}', "value": r.value(c)}
                for segment, c in segments.items()
            ],
        }
        for r in kd.SEGMENT_RATIOS
    ]
    test_file = tmp_path / "segments.test.yml"
    suite = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
    }
    test_file.write_text(yaml.safe_dump(suite, sort_keys=False, width=200))
    out = subprocess.run(
        [PROMTOOL, "test", "rules", test_file.name], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
