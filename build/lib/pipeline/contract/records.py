"""What the KPI records carry that other layers validate against: the names of the service level variants.

A queue's `service_level_variant` (the queue file) and every record's `service_level_variant` field take one
of these names; their formulas are in `pipeline.kpis.definitions`.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from msgspec import Meta

Variant = Literal["abandons_ignored", "abandons_against", "short_abandons_excluded", "abandons_in_favour"]
"""The service level variants (docs/kpis.md); a queue picks one as its headline (`service_level_variant`)."""
VARIANTS: tuple[Variant, ...] = get_args(Variant)

ServiceLevelClock = Literal["elapsed", "business_hours"]
"""How a wait is measured against the service level threshold: wall-clock time, or the queue's opening hours only."""

RecordVersion = Annotated[
    Literal[1],
    Meta(
        description="Contract version (the major version, as in the schema's file name): a record of another major "
        "version is not this schema's (schemas/README.md, compatibility policy). Absent in records written before "
        "it was added: 1."
    ),
]
