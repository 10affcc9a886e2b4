"""First contact resolution (FCR) and repeat contacts: the counts, the KPI formulas, the FCR record, the catalogue.

Definitions (the catalogue below and docs/kpis.md say the same; `pipeline.state.repeats` implements them):

- A *contact* is one `contact_id`. Its transfer legs (more `contact.offered` of the same contact_id, in other
  queues) are the same contact, never a repeat. A contact is attributed to its **first leg**: the queue,
  channel and interval of its earliest `contact.offered` (ties: the smallest queue id, then channel).
- A contact is **eligible** for FCR when its `contact.offered` carries a `customer_id`; contacts without one
  are counted as `fcr_ineligible` and take no part in repeat matching.
- A contact of customer C first offered at t1, in a queue with window W (`fcr_window_hours`), is **not
  resolved** when C has another contact (a different contact_id; any queue, any channel) first offered at t2
  with **t1 < t2 <= t1 + W** (the edge is inclusive: a contact exactly W later is a repeat; two contacts at
  the same millisecond are not repeats of each other). Otherwise it is **resolved**.
- A contact is a **repeat contact** when an earlier contact of the same customer (first offered at t0) has it
  inside its window: t0 < t1 <= t0 + W(t0's queue).
- Attribution: eligibility, FCR outcome and repeat flag all belong to the interval of the contact's first leg.
  The eligible, ineligible and repeat counts of an interval are settled when its arrivals are closed (the
  watermark has passed its end by the allowed lateness); its FCR outcome is **provisional** until the window
  of its last contact has passed too, and **final** after (see `pipeline.state.repeats`).

Pure: no state, no Kafka, no Faust, no Prometheus. Customer ids and their hashes never appear here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from pipeline.contract.records import RecordVersion
from pipeline.core.time import REVISION, as_datetime
from pipeline.kpis.definitions import Count, Kpi


@dataclass(slots=True)
class FcrCounts:
    """FCR counts of one queue and channel over one interval (all attributed to the contacts' first legs)."""

    eligible: int = 0
    """Contacts with a customer id."""
    unresolved: int = 0
    """Eligible contacts whose customer contacted again within the window (so far, while provisional)."""
    repeats: int = 0
    """Eligible contacts that came within the window of an earlier contact of the same customer."""
    ineligible: int = 0
    """Contacts without a customer id: no FCR outcome."""

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, int]) -> FcrCounts:
        return cls(**d)

    def is_zero(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self))


@dataclass(slots=True)
class FcrTotals:
    """Running totals of one queue and channel, for the Prometheus counters. Only settled counts are added,
    so every total only grows: eligible, repeats and ineligible when an interval's arrivals are closed;
    decided and resolved when its FCR is final."""

    eligible: int = 0
    repeats: int = 0
    ineligible: int = 0
    decided: int = 0
    """Eligible contacts of intervals whose FCR is final (the denominator of the final FCR rate)."""
    resolved: int = 0
    """Of those, the resolved ones."""

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, int]) -> FcrTotals:
        return cls(**d)


def resolved(c: FcrCounts) -> int:
    """Eligible contacts with no repeat within their window (so far, while the interval is provisional)."""
    return c.eligible - c.unresolved


def fcr_rate(c: FcrCounts) -> float | None:
    """Resolved / eligible. None with no eligible contact."""
    return resolved(c) / c.eligible if c.eligible else None


def repeat_rate(c: FcrCounts) -> float | None:
    """Repeat contacts / eligible contacts of the same interval. None with no eligible contact."""
    return c.repeats / c.eligible if c.eligible else None


# ---- the record -------------------------------------------------------------------------------------------

Rate = Annotated[float | None, Meta(description="Ratio 0..1; null with no eligible contact.")]


class FcrRecord(msgspec.Struct, frozen=True, kw_only=True):
    """FCR and repeat contacts of one queue and channel over one interval (the contacts' first legs).

    Published on the KPI topic with the key `fcr|<queue>|<channel>|<interval_start>|<partition>`; a compacted
    topic keeps the latest revision. Customers are spread over the partitions of the internal customer-contacts
    topic, so one queue's interval has a record per such partition: **sum the counts over `partition`** (then
    divide) for the queue's figures. `final` false means provisional: contacts of the interval may still be
    found repeated.
    """

    kind: Annotated[Literal["fcr"], Meta(description="Record kind: `fcr`.")] = "fcr"
    v: RecordVersion = 1
    queue_id: str
    channel: str
    interval_start: Annotated[datetime, Meta(description="Start of the interval (UTC).")]
    interval_end: Annotated[datetime, Meta(description="End of the interval (UTC), exclusive.")]
    partition: Annotated[int, Meta(ge=0, description="The customer-contacts partition these counts come from.")] = 0
    revision: Annotated[int, Meta(ge=1, description=REVISION)]
    final: Annotated[
        bool,
        Meta(
            description="True once the repeat window of every contact of the interval has "
            "passed (its end rounded up to the minute, plus the allowed "
            "lateness): no later revision will come. False: provisional."
        ),
    ]
    fcr_window_hours: Annotated[float, Meta(gt=0, description="The queue's repeat window, from the queue file.")]
    fcr_eligible: Annotated[int, Meta(ge=0, description="Contacts with a customer id.")]
    fcr_resolved: Annotated[
        int, Meta(ge=0, description="Eligible contacts with no repeat within the window (so far, while provisional).")
    ]
    fcr_unresolved: Annotated[
        int, Meta(ge=0, description="Eligible contacts whose customer contacted again within the window.")
    ]
    repeat_contacts: Annotated[
        int, Meta(ge=0, description="Eligible contacts within the window of an earlier contact of the same customer.")
    ]
    fcr_ineligible: Annotated[int, Meta(ge=0, description="Contacts without a customer id (no FCR outcome).")]
    fcr_rate: Rate
    repeat_rate: Rate

    @property
    def key(self) -> str:
        return fcr_record_key(self.queue_id, self.channel, self.interval_start, self.partition)


def fcr_record_key(queue_id: str, channel: str, start: datetime, partition: int) -> str:
    return f"fcr|{queue_id}|{channel}|{start.isoformat()}|{partition}"


def build_fcr_record(u: FcrUpdate, interval_seconds: int, window_hours: float, partition: int = 0) -> FcrRecord:
    c = u.counts
    return FcrRecord(
        queue_id=u.queue_id,
        channel=u.channel,
        interval_start=as_datetime(u.start),
        interval_end=as_datetime(u.start + interval_seconds),
        partition=partition,
        revision=u.revision,
        final=u.final,
        fcr_window_hours=window_hours,
        fcr_eligible=c.eligible,
        fcr_resolved=resolved(c),
        fcr_unresolved=c.unresolved,
        repeat_contacts=c.repeats,
        fcr_ineligible=c.ineligible,
        fcr_rate=fcr_rate(c),
        repeat_rate=repeat_rate(c),
    )


def decode_fcr_record(b: bytes) -> FcrRecord:
    return msgspec.json.decode(b, type=FcrRecord)


# ---- catalogue ------------------------------------------------------------------------------------------

FIRST_ARRIVAL = (
    "the interval in which the contact first arrived (its earliest `contact.offered`, in the queue "
    "and channel of that leg)"
)
FIRST_ARRIVAL_FINAL = FIRST_ARRIVAL + "; counted once the FCR of that interval is final"

FCR_COUNTS: tuple[Count, ...] = (
    Count(
        "cc_queue_fcr_eligible_total",
        "eligible",
        "fcr_eligible",
        "contacts",
        "Contacts with a customer id (eligible for FCR), counted when their interval's arrivals are closed.",
        FIRST_ARRIVAL,
    ),
    Count(
        "cc_queue_fcr_decided_total",
        "decided",
        "fcr_eligible",
        "contacts",
        "Eligible contacts whose FCR outcome is final (their repeat window has passed).",
        FIRST_ARRIVAL_FINAL,
    ),
    Count(
        "cc_queue_fcr_resolved_total",
        "resolved",
        "fcr_resolved",
        "contacts",
        "Eligible contacts resolved on first contact: no other contact of the customer within the window. "
        "Final outcomes only.",
        FIRST_ARRIVAL_FINAL,
    ),
    Count(
        "cc_queue_repeat_contacts_total",
        "repeats",
        "repeat_contacts",
        "contacts",
        "Eligible contacts within the repeat window of an earlier contact of the same customer.",
        FIRST_ARRIVAL,
    ),
    Count(
        "cc_queue_fcr_ineligible_total",
        "ineligible",
        "fcr_ineligible",
        "contacts",
        "Contacts without a customer id: no FCR outcome.",
        FIRST_ARRIVAL,
    ),
)


def _sum_increase(metric: str, window: str = "1d") -> str:
    return f"sum by (queue, channel) (increase({metric}[{window}]))"


FCR_KPIS: tuple[Kpi, ...] = (
    Kpi(
        "fcr_rate",
        "First contact resolution (FCR)",
        "fcr_resolved / fcr_eligible, where a contact is resolved when the same customer has no other contact "
        "(any queue, any channel) first offered at t2 with t1 < t2 <= t1 + window",
        "ratio 0..1",
        FIRST_ARRIVAL,
        "fcr_rate",
        f"{_sum_increase('cc_queue_fcr_resolved_total')} / {_sum_increase('cc_queue_fcr_decided_total')}",
        "Window per queue (`fcr_window_hours` in the queue file, default 24 h), that of the first contact's "
        "queue. The edge is inclusive. Transfer legs of the same contact_id are the same contact, not repeats. "
        "Provisional (`final` false) until the window of every contact of the interval has passed (its end "
        "rounded up to the minute) plus the allowed lateness; a provisional rate can only fall. The counters "
        "count final outcomes only, so the PromQL rate is over decided contacts. Contacts without a customer id "
        "are not eligible (`fcr_ineligible`). Customer ids are matched by a keyed hash (HMAC-SHA256, "
        "`PIPELINE_CUSTOMER_HASH_KEY`) kept only while a window can still use it; neither appears in a record "
        "or metric. Vendors differ: some count FCR per case or by a survey question, or only on the same "
        "channel or queue; here any channel and any queue counts.",
    ),
    Kpi(
        "repeat_rate",
        "Repeat contact rate",
        "repeat_contacts / fcr_eligible",
        "ratio 0..1",
        FIRST_ARRIVAL,
        "repeat_rate",
        f"{_sum_increase('cc_queue_repeat_contacts_total', '15m')} / "
        f"{_sum_increase('cc_queue_fcr_eligible_total', '15m')}",
        "A repeat contact is counted in the interval in which it arrived, against the window of the earlier "
        "contact's queue. Settled once the interval's arrivals are closed.",
    ),
)


@dataclass(slots=True)
class FcrUpdate:
    """A revision of one interval's FCR counts to publish."""

    queue_id: str
    channel: str
    start: int  # epoch seconds
    revision: int
    final: bool
    counts: FcrCounts
