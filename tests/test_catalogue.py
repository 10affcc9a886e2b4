"""The KPI catalogue cannot drift from the code: docs/kpis.md is generated, and the metrics use its names."""

from __future__ import annotations

from pathlib import Path

from pipeline.kpis import catalogue
from pipeline.kpis.counts import COUNT_FIELDS
from pipeline.kpis.record import AgentHandling, DispositionCount, KpiRecord, SegmentKpis

DOC = Path(__file__).resolve().parent.parent / "docs" / "kpis.md"


def test_docs_kpis_md_is_up_to_date():
    assert DOC.read_text() == catalogue.markdown(), "docs/kpis.md is stale: run `make generate`"


def test_docs_settings_md_is_up_to_date():
    from pipeline.core.settings import settings_markdown

    assert (DOC.parent / "settings.md").read_text() == settings_markdown(), "docs/settings.md is stale: make generate"


def test_every_count_is_exported_and_in_the_record():
    assert {c.field for c in catalogue.COUNTS} == set(COUNT_FIELDS) - set(catalogue.NOT_COUNTERS)
    record_fields = set(KpiRecord.__struct_fields__)
    for c in catalogue.COUNTS:
        assert c.record_field in record_fields
        assert c.metric.endswith("_total")
        assert (c.unit == "seconds") == c.metric.endswith("_seconds_total")


def test_every_kpi_names_a_record_field_and_an_attribution():
    record_fields = set(KpiRecord.__struct_fields__)
    for kpi in catalogue.KPIS:
        assert kpi.attribution and kpi.formula and kpi.unit
        field = kpi.record_field.split(" ")[0]  # e.g. "abandon_rate (channel chat)"
        if field.startswith("agents[]."):
            assert field.removeprefix("agents[].") in AgentHandling.__struct_fields__
        elif field.startswith("segments[]."):
            assert field.removeprefix("segments[].") in SegmentKpis.__struct_fields__
        elif field.startswith("dispositions[]."):
            assert field.removeprefix("dispositions[].") in DispositionCount.__struct_fields__
        else:
            assert field == "-" or field in record_fields


def test_every_kpi_record_field_is_documented():
    """Each field of the queue record is a count in the table, or named by a KPI (or is the record's identity)."""
    identity = {
        "kind",
        "v",  # the contract version (schemas/README.md)
        "queue_id",
        "channel",
        "window",
        "interval_start",
        "interval_end",
        "revision",
        "final",
        "service_level_threshold_seconds",
        "short_abandon_seconds",
        "service_level_variant",
        "service_level_clock",
        "agents",
        "survey_score_sum",
        "forecast_offered",
        "forecast_aht_seconds",
        "currency",  # of the cost fields
    }
    named = {c.record_field for c in catalogue.COUNTS} | {k.record_field for k in catalogue.KPIS}
    named |= {f.split("[]")[0] for f in named}  # `segments[].asa_seconds` documents `segments`
    undocumented = set(KpiRecord.__struct_fields__) - named - identity
    assert not undocumented, f"record fields missing from the catalogue: {sorted(undocumented)}"


def test_every_segment_field_of_the_record_is_a_segment_count_or_ratio():
    """The record's per-segment entry carries exactly the table's segment counts and ratios (and the headline)."""
    from pipeline.kpis import definitions as kd

    named = {c.record_field.removeprefix("segments[].") for c in kd.SEGMENT_COUNTS}
    named |= {r.record_field for r in kd.SEGMENT_RATIOS}
    assert set(SegmentKpis.__struct_fields__) == named | {"segment", "service_level"}
