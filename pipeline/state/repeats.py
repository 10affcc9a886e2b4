"""Repeat contacts and first contact resolution (FCR), per partition of the customer-contacts topic, on event time.

Pure Python: no Kafka, no Faust. The definitions are in `pipeline.kpis.quality` (and docs/kpis.md); this module
keeps what they need and nothing else.

Input: the internal topic `<app id>-customer-contacts`, keyed by customer, so that every contact of one customer
(any queue, any channel) reaches one partition. The contact worker writes to it
- a `CustomerContact` for every `contact.offered` it applied: a keyed hash of the customer id (never the id),
  the contact, queue, channel, time and event id (contacts without a customer id are keyed by contact id and
  only counted as ineligible);
- a `SourceWatermark` per contact-event partition to every partition here, when that partition's watermark
  moved. This state's watermark is the *lowest* of the contact-event partitions' watermarks: only then has every
  source passed it.

What it keeps, per customer hash: the legs of the customer's recent contacts (time, queue, channel, event id,
the queue's window), and two flags per contact for what forgotten contacts decided (below). Per
(queue, channel, interval): the FCR counts of the contacts that first arrived in it, until the interval is final.

A day of a large center is about a million contacts held, so they are stored densely: a fixed-size record per
leg (`LEG`), with 64-bit digests of the contact and event ids, packed per customer (keyed by 63 bits of the
customer hash) into buckets of customers (`CustomerLegs`). That is about 75 bytes per held contact instead of
about 780 as objects (and 170 as one `bytes` per customer in a dict), and nothing for the garbage collector to
traverse (its full collections over the leg objects paused the worker for 0.2 s every
second or two). Digests are compared only within one customer's few contacts (a collision of two of
them is a 1 in 10^19 event); two customers sharing 63 bits of an HMAC, about 1 in 10^7 a day at a million
customers per partition, would only merge their repeat windows.

Time rules, with the horizon h = start of the interval holding (watermark - allowed lateness) — every event time
before h is in an interval the contact worker has closed:
- a record at t < h is late (counted, not applied). Any record at t >= h can only change contacts whose window
  reaches h or later, so nothing below is ever changed after it is decided;
- an interval's eligible, ineligible and repeat counts are settled once its start < h (its arrivals are closed);
- a contact's FCR outcome is final once t1 + window < h; an interval's FCR is final once that holds for every
  contact in it (then its final update is published and the interval dropped);
- a contact is forgotten once its outcome is final and its newest leg is older than the contact timeout (so a
  late transfer leg is still recognised as the same contact). Before forgetting it, every remaining contact of
  the customer whose repeat flag or outcome it decides is *pinned* (flag kept), so later recomputation from
  what is left gives the same answer. A customer with no contact left is dropped: memory holds at most the
  longest window (or contact timeout) of contacts, plus the lateness.

Counts are kept by recomputing the customer's contribution (a pure function of its contacts) before and after
each record and adding the difference, so any order of records within the lateness gives the same counts, and a
re-delivered record (same event id) is a duplicate.
"""

from __future__ import annotations

import hashlib
import heapq
import struct
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Annotated

import msgspec
from msgspec import Meta

from pipeline.core.time import NO_TIME, due_for_revision, interval_start, next_revision
from pipeline.kpis.quality import FcrCounts, FcrTotals, FcrUpdate
from pipeline.state.codec import Codec

SNAPSHOT_VERSION = 4  # typed documents (`RepeatSnapshot`); nothing earlier was released
DUPLICATE = "duplicate"
LATE = "late"
# One leg: contact digest, event digest, time (ms), window (ms), index of its (queue, channel), pins (bit 0:
# repeat, bit 1: unresolved; the same on every leg of a contact).
LEG = struct.Struct("<QQqqIB")
KEY = struct.Struct("<q")  # a customer key in `CustomerLegs`
WINDOW_END_STEP_MS = 60_000

CustomerHash = Annotated[
    str,
    Meta(
        pattern="^[0-9a-f]{64}$",
        description="HMAC-SHA256 of the customer id (hex) with the deployment's key; never the customer id itself.",
    ),
]


class CustomerContact(msgspec.Struct, frozen=True, kw_only=True, tag="customer.contact"):
    """One `contact.offered` that the contact worker applied (internal topic `<app id>-customer-contacts`)."""

    customer: CustomerHash | None
    contact_id: Annotated[str, Meta(min_length=1, max_length=128)]
    queue_id: Annotated[str, Meta(min_length=1, max_length=128)]
    channel: str
    time_ms: Annotated[int, Meta(description="Event time of the offer, epoch milliseconds.")]
    event_id: Annotated[str, Meta(min_length=1, max_length=128, description="The offer's event id (dedup).")]


class SourceWatermark(msgspec.Struct, frozen=True, kw_only=True, tag="source.watermark"):
    """The watermark of one contact-event partition: no offer older than it is still to come from there."""

    partition: Annotated[int, Meta(ge=0)]
    watermark_ms: int


CustomerContactMessage = CustomerContact | SourceWatermark


def digest(text: str) -> int:
    """64 stable bits of an id (Python's own `hash` differs between processes, and checkpoints outlive them)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def customer_key(customer: str | None, contact_id: str) -> int:
    """The state's key of a contact's customer: >= 0 from the customer hash, < 0 for a contact without one."""
    if customer is not None:
        return int(customer[:16], 16) >> 1
    return -1 - (digest(contact_id) >> 1)


class CustomerLegs:
    """customer key -> its legs (`LEG` records), packed into buckets by key: ~45 bytes per customer on top of its
    legs instead of ~130 for a dict of `bytes` (a day of a 5,000-agent center holds ~350,000 customers).

    A bucket is the keys of its customers (8 bytes each, in one `bytes`), their leg counts (an `array`) and their
    legs in the same order (one `bytes`). A look-up finds the key in the bucket's keys (`bytes.find`, C speed); a
    change rebuilds the bucket (a few KB copied)."""

    BUCKETS = 4096
    MIN_CHANGED = 4096  # keys of changed customers kept at least, then at most a quarter of all (`changed`)

    def __init__(self, items: Iterable[tuple[int, bytes]] = ()) -> None:
        self._buckets: dict[int, tuple[bytes, array[int], bytes]] = {}
        self._len = 0
        by_bucket: dict[int, list[tuple[int, bytes]]] = {}
        for key, legs in items:  # built per bucket: one customer at a time would copy each bucket every time
            by_bucket.setdefault(key % self.BUCKETS, []).append((key, legs))
        for b, customers in by_bucket.items():
            self._buckets[b] = (
                b"".join(KEY.pack(k) for k, _ in customers),
                array("H", [len(legs) // LEG.size for _, legs in customers]),
                b"".join(legs for _, legs in customers),
            )
            self._len += len(customers)
        # customers changed since `changed` was last reset (for a checkpoint of the changes only); None: too many
        # to be worth it (nothing resets it in a replay, say)
        self.changed: set[int] | None = set()

    def __len__(self) -> int:
        return self._len

    @staticmethod
    def _index(keys: bytes, key: int) -> int:
        packed = KEY.pack(key)
        i = keys.find(packed)
        while i % KEY.size:  # -1, or a match straddling two keys: look further
            if i < 0:
                return -1
            i = keys.find(packed, i + 1)
        return i // KEY.size

    def get(self, key: int, default: bytes = b"") -> bytes:
        bucket = self._buckets.get(key % self.BUCKETS)
        if bucket is None:
            return default
        keys, counts, legs = bucket
        i = self._index(keys, key)
        if i < 0:
            return default
        start = sum(counts[:i]) * LEG.size
        return legs[start : start + counts[i] * LEG.size]

    def __setitem__(self, key: int, value: bytes) -> None:
        self._replace(key, value)

    def __delitem__(self, key: int) -> None:
        if not self._replace(key, None):
            raise KeyError(key)

    def _replace(self, key: int, value: bytes | None) -> bool:
        """Put (or with None remove) a customer's legs; True if it was there."""
        changed = self.changed
        if changed is not None:
            changed.add(key)
            if len(changed) > max(self.MIN_CHANGED, self._len // 4):
                self.changed = None
        b = key % self.BUCKETS
        keys, counts, legs = self._buckets.get(b, (b"", array("H"), b""))
        i = self._index(keys, key)
        if i < 0:
            if value is None:
                return False
            counts.append(len(value) // LEG.size)
            self._buckets[b] = (keys + KEY.pack(key), counts, legs + value)
            self._len += 1
            return False
        start = sum(counts[:i]) * LEG.size
        end = start + counts[i] * LEG.size
        if value is None:
            del counts[i]
            keys, legs = keys[: i * KEY.size] + keys[(i + 1) * KEY.size :], legs[:start] + legs[end:]
            self._len -= 1
        else:
            counts[i] = len(value) // LEG.size
            legs = legs[:start] + value + legs[end:]
        if counts:
            self._buckets[b] = (keys, counts, legs)
        else:
            del self._buckets[b]
        return True

    def items(self) -> Iterator[tuple[int, bytes]]:
        for keys, counts, legs in list(self._buckets.values()):
            start = 0
            for (key,), n in zip(KEY.iter_unpack(keys), counts, strict=True):
                end = start + n * LEG.size
                yield key, legs[start:end]
                start = end

    def __iter__(self) -> Iterator[int]:
        return (key for key, _ in self.items())


@dataclass(slots=True)
class Leg:
    """One `contact.offered` of a contact (a transfer adds another leg of the same contact)."""

    time: int  # epoch ms
    queue_id: str
    channel: str
    event_id: int  # digest
    window: int  # ms: the repeat window of this leg's queue when the leg was applied (0: no customer id)


@dataclass(slots=True)
class Contact:
    legs: list[Leg]
    repeat_pinned: bool = False  # a forgotten earlier contact made this one a repeat
    unresolved_pinned: bool = False  # a forgotten later contact was within this one's window

    @property
    def first(self) -> Leg:
        return min(self.legs, key=lambda leg: (leg.time, leg.queue_id, leg.channel))

    def keep_until(self, timeout: int) -> int:
        first = self.first
        return max(first.time + first.window, max(leg.time for leg in self.legs) + timeout)


def window_end_key(end: int) -> int:
    """A contact's window end rounded up to the minute: an interval then keeps a few counts (one per minute and
    window) instead of one per contact (~80 bytes each, a whole day's worth held), and is final at most a minute
    later than the exact latest end."""
    return -(-end // WINDOW_END_STEP_MS) * WINDOW_END_STEP_MS


@dataclass(slots=True)
class FcrInterval:
    counts: FcrCounts = field(default_factory=FcrCounts)
    revision: int = 0
    changed: bool = False
    published_at: float = 0.0
    settled: bool = False  # arrivals closed: eligible, ineligible and repeats added to the totals
    # window end (first time + window, rounded up: `window_end_key`) -> contacts first offered in this interval
    # with it; the interval's FCR is final once the latest is before the horizon
    window_ends: dict[int, int] = field(default_factory=dict)

    @property
    def window_end(self) -> int:
        return max(self.window_ends, default=NO_TIME)


Key = tuple[str, str, int, str]  # (queue, channel, interval start ms, FcrCounts field)
SETTLED_FIELDS = ("eligible", "repeats", "ineligible")


class RepeatState:
    """Every customer's recent contacts and the open FCR intervals of one customer-contacts partition."""

    def __init__(
        self,
        interval_seconds: int,
        allowed_lateness_seconds: float,
        contact_timeout_seconds: float,
        window_of: Callable[[str], float],
        sources: int,
    ) -> None:
        self.interval_ms = interval_seconds * 1000
        self.allowed_lateness = round(allowed_lateness_seconds * 1000)
        self.contact_timeout = round(contact_timeout_seconds * 1000)
        self.window_of = window_of  # queue id -> repeat window in hours
        self.sources = sources  # partitions of the contact-event topic
        self.source_watermarks: dict[int, int] = {}
        self.offset = -1
        self.customers = CustomerLegs()  # customer key -> its legs (`LEG` records)
        self.held = 0  # contacts in `customers`
        self.intervals: dict[tuple[str, str, int], FcrInterval] = {}
        self._changed_intervals: set[tuple[str, str, int]] = set()  # since the last `snapshot` or `changes`
        self.totals: dict[tuple[str, str], FcrTotals] = {}
        self._pairs: list[tuple[str, str]] = []  # (queue, channel) of a leg's index
        self._pair_index: dict[tuple[str, str], int] = {}
        # interval start -> customers whose earliest keep_until is in it (to look at once it is before the horizon)
        self._expiry: dict[int, array[int]] = {}  # of customer keys ('q': no int object each)
        self._expiry_starts: list[int] = []  # heap of the keys of _expiry

    # ---- dense storage ------------------------------------------------------------------------------------

    def _contacts(self, key: int) -> dict[int, Contact]:
        out: dict[int, Contact] = {}
        for cid, event, time, window, pair, pins in LEG.iter_unpack(self.customers.get(key, b"")):
            contact = out.get(cid)
            if contact is None:
                contact = out[cid] = Contact([], bool(pins & 1), bool(pins & 2))
            queue_id, channel = self._pairs[pair]
            contact.legs.append(Leg(time, queue_id, channel, event, window))
        return out

    def _store(self, key: int, contacts: dict[int, Contact]) -> None:
        self.customers[key] = b"".join(
            LEG.pack(
                cid,
                g.event_id,
                g.time,
                g.window,
                self._pair(g.queue_id, g.channel),
                c.repeat_pinned | c.unresolved_pinned << 1,
            )
            for cid, c in contacts.items()
            for g in c.legs
        )

    def _pair(self, queue_id: str, channel: str) -> int:
        i = self._pair_index.get((queue_id, channel))
        if i is None:
            i = self._pair_index[(queue_id, channel)] = len(self._pairs)
            self._pairs.append((queue_id, channel))
        return i

    def _expire(self, key: int, contacts: dict[int, Contact]) -> None:
        """Look at this customer again once its earliest keep_until is before the horizon."""
        start = interval_start(min(c.keep_until(self.contact_timeout) for c in contacts.values()), self.interval_ms)
        keys = self._expiry.get(start)
        if keys is None:
            keys = self._expiry[start] = array("q")
            heapq.heappush(self._expiry_starts, start)
        keys.append(key)

    def held_contacts(self) -> Iterator[dict[int, Contact]]:
        """Every customer's contacts, by contact id digest (for tests and inspection: this decodes them all)."""
        return (self._contacts(key) for key in self.customers)

    # ---- time ---------------------------------------------------------------------------------------------

    @property
    def watermark(self) -> int:
        return min((self.source_watermarks.get(p, NO_TIME) for p in range(self.sources)), default=NO_TIME)

    def observe_source(self, partition: int, watermark: int) -> None:
        if watermark > self.source_watermarks.get(partition, NO_TIME):
            self.source_watermarks[partition] = watermark

    def horizon(self) -> int:
        """Records before this time are late; contacts whose window ends before it are final."""
        return interval_start(self.watermark - self.allowed_lateness, self.interval_ms)

    # ---- records ------------------------------------------------------------------------------------------

    def apply(self, r: CustomerContact) -> str | None:
        """Apply one forwarded offer. Returns None when applied, else DUPLICATE or LATE."""
        h = self.horizon()
        if r.time_ms < h:
            return LATE
        key = customer_key(r.customer, r.contact_id)
        contacts = self._contacts(key)
        event_id = digest(r.event_id)
        if any(leg.event_id == event_id for c in contacts.values() for leg in c.legs):
            return DUPLICATE
        window = 0 if r.customer is None else round(self.window_of(r.queue_id) * 3_600_000)
        leg = Leg(r.time_ms, r.queue_id, r.channel, event_id, window)
        contact_id = digest(r.contact_id)
        old = contacts.get(contact_id)
        contact = Contact([leg]) if old is None else Contact([*old.legs, leg], old.repeat_pinned, old.unresolved_pinned)
        updated = {**contacts, contact_id: contact}
        if contacts:
            before = self._contribution(key, contacts)
            after = self._contribution(key, updated)
            diff = {k: after.get(k, 0) - before.get(k, 0) for k in before.keys() | after.keys()}
            diff = {k: n for k, n in diff.items() if n}
        else:  # the customer's only contact held (most offers): eligible, or not without a customer id; no more
            diff = {
                (
                    r.queue_id,
                    r.channel,
                    interval_start(r.time_ms, self.interval_ms),
                    "ineligible" if key < 0 else "eligible",
                ): 1
            }
        for q, ch, start, name in diff:
            # cannot happen given the check above (see the module docstring); kept as the state's guarantee
            if start < h if name in SETTLED_FIELDS else self._is_final(q, ch, start):
                return LATE
        self._store(key, updated)
        self.held += old is None
        for (q, ch, start, name), n in diff.items():
            ivl = self.intervals.get((q, ch, start))
            if ivl is None:
                ivl = self.intervals[(q, ch, start)] = FcrInterval()
            setattr(ivl.counts, name, getattr(ivl.counts, name) + n)
            ivl.changed = True
            self._changed_intervals.add((q, ch, start))
        first = contact.first
        if old is None or old.first is not first:  # a new contact, or an earlier first leg: it moves interval
            if old is not None:
                self._window_end(old.first, -1)
            self._window_end(first, +1)
        self._expire(key, {contact_id: contact})
        return None

    def _window_end(self, first: Leg, n: int) -> None:
        key = (first.queue_id, first.channel, interval_start(first.time, self.interval_ms))
        ivl = self.intervals[key]
        self._changed_intervals.add(key)
        end = window_end_key(first.time + first.window)
        ivl.window_ends[end] = ivl.window_ends.get(end, 0) + n
        if not ivl.window_ends[end]:
            del ivl.window_ends[end]

    def _is_final(self, queue_id: str, channel: str, start: int) -> bool:
        return (queue_id, channel, start) not in self.intervals and start < self.horizon()

    def _contribution(self, key: int, contacts: dict[int, Contact]) -> dict[Key, int]:
        """What one customer's contacts add to the interval counts: a pure function of them."""
        out: dict[Key, int] = {}
        length = self.interval_ms

        def add(leg: Leg, name: str) -> None:
            k = (leg.queue_id, leg.channel, interval_start(leg.time, length), name)
            out[k] = out.get(k, 0) + 1

        firsts = [(c, c.first) for c in contacts.values()]
        if key < 0:  # no customer id
            for _, f in firsts:
                add(f, "ineligible")
            return out
        for c, f in firsts:
            add(f, "eligible")
            if c.unresolved_pinned or any(f.time < g.time <= f.time + f.window for _, g in firsts):
                add(f, "unresolved")
            if c.repeat_pinned or any(g.time < f.time <= g.time + g.window for _, g in firsts):
                add(f, "repeats")
        return out

    # ---- time passing -------------------------------------------------------------------------------------

    def advance(self) -> list[FcrUpdate]:
        """Forget contacts nothing can change any more, settle and finalise intervals. Call once per batch.

        Returns the final updates, oldest first.
        """
        h = self.horizon()
        while self._expiry_starts and self._expiry_starts[0] < h:
            # a customer is listed once per offer applied: look at it once
            for key in dict.fromkeys(self._expiry.pop(heapq.heappop(self._expiry_starts))):
                self._forget(key, h)
        finals: list[FcrUpdate] = []
        for q, ch, start in sorted(self.intervals, key=lambda k: k[2]):
            if start >= h:
                break
            ivl = self.intervals[(q, ch, start)]
            total = self.totals.get((q, ch))
            if total is None:
                total = self.totals[(q, ch)] = FcrTotals()
            c = ivl.counts
            if not ivl.settled:
                ivl.settled = True
                self._changed_intervals.add((q, ch, start))
                total.eligible += c.eligible
                total.repeats += c.repeats
                total.ineligible += c.ineligible
            if ivl.window_end < h:
                del self.intervals[(q, ch, start)]
                self._changed_intervals.add((q, ch, start))
                total.decided += c.eligible
                total.resolved += c.eligible - c.unresolved
                if ivl.revision or not c.is_zero():  # an interval whose only contact moved away stays unseen
                    ivl.revision = next_revision(ivl.revision, self.offset)
                    finals.append(FcrUpdate(q, ch, start // 1000, ivl.revision, True, c))
        return finals

    def _forget(self, key: int, h: int) -> None:
        contacts = self._contacts(key)
        if not contacts:
            return
        timeout = self.contact_timeout
        gone = [c.first for c in contacts.values() if c.keep_until(timeout) < h]
        if not gone:
            return
        self.held -= len(gone)
        kept = {cid: c for cid, c in contacts.items() if c.keep_until(timeout) >= h}
        if not kept:
            del self.customers[key]
            return
        for c in kept.values():
            f = c.first
            for g in gone:
                if g.time < f.time <= g.time + g.window:
                    c.repeat_pinned = True
                if f.time < g.time <= f.time + f.window:
                    c.unresolved_pinned = True
        self._store(key, kept)
        self._expire(key, kept)

    def provisional(self, wall_now: float, every: float) -> list[FcrUpdate]:
        """Updates of open intervals that changed and were last published at least `every` seconds ago."""
        out = []
        for (q, ch, start), ivl in self.intervals.items():
            if due_for_revision(ivl, wall_now, every, self.offset):
                self._changed_intervals.add((q, ch, start))
                out.append(
                    FcrUpdate(q, ch, start // 1000, ivl.revision, False, FcrCounts.from_dict(ivl.counts.as_dict()))
                )
        return out

    def contacts_held(self) -> int:
        return self.held

    # ---- checkpoint ---------------------------------------------------------------------------------------

    def _document(
        self, customers: Iterable[tuple[int, bytes]], intervals: Iterable[tuple[str, str, int]] | None = None
    ) -> RepeatSnapshot:
        """The stored form: the `customers` given, and of the intervals all or those named."""
        items = (
            self.intervals.items()
            if intervals is None
            else [(k, self.intervals[k]) for k in intervals if k in self.intervals]
        )
        keys, counts, legs = array("q"), array("I"), []
        for key, customer_legs in customers:
            keys.append(key)
            counts.append(len(customer_legs) // LEG.size)
            legs.append(customer_legs)
        return RepeatSnapshot(
            offset=self.offset,
            sources=self.source_watermarks,
            pairs=self._pairs,
            intervals=[
                StoredFcrInterval(q, ch, s, i.counts, i.revision, i.changed, i.published_at, i.settled, i.window_ends)
                for (q, ch, s), i in items
            ],
            totals=[StoredFcrTotal(q, ch, t) for (q, ch), t in self.totals.items()],
            keys=keys.tobytes(),
            counts=counts.tobytes(),
            legs=b"".join(legs),
        )

    def snapshot(self) -> bytes:
        """The whole state (resets what `changes` reports)."""
        self.customers.changed, self._changed_intervals = set(), set()
        return CODEC.encode(self._document(self.customers.items()))

    def changes(self) -> bytes | None:
        """What changed since the last `snapshot` or `changes` (None: too much to tell; take a snapshot): the
        intervals and customers changed (a customer gone has no legs), the totals and watermarks whole.
        `restore(snapshot, [changes, ...])` gives the state back."""
        keys, intervals = self.customers.changed, self._changed_intervals
        if keys is None or len(intervals) > 1024 + 2 * len(self.intervals):  # (nothing took checkpoints)
            return None
        self.customers.changed, self._changed_intervals = set(), set()
        document = self._document(((key, self.customers.get(key)) for key in keys), intervals)
        document.intervals_gone = [k for k in intervals if k not in self.intervals]
        return CODEC.encode(document)

    def restore(self, data: bytes, changes: Iterable[bytes] = ()) -> None:
        """From a `snapshot` and the `changes` since, oldest first."""
        d = CODEC.decode(data)
        customers = _customers(d)
        intervals = {(i.queue_id, i.channel, i.start): i for i in d.intervals}
        for later in changes:
            d = CODEC.decode(later)
            intervals.update(((i.queue_id, i.channel, i.start), i) for i in d.intervals)
            for gone in d.intervals_gone:
                intervals.pop(gone, None)
            for customer, legs in _customers(d).items():
                if legs:
                    customers[customer] = legs
                else:
                    customers.pop(customer, None)
        self.offset = d.offset
        self.source_watermarks = d.sources
        self.intervals = {
            k: FcrInterval(i.counts, i.revision, i.changed, i.published_at, i.settled, i.window_ends)
            for k, i in intervals.items()
        }
        self.totals = {(t.queue_id, t.channel): t.totals for t in d.totals}
        self._pairs, self._pair_index = [], {}
        for queue_id, channel in d.pairs:
            self._pair(queue_id, channel)
        self.customers = CustomerLegs(customers.items())
        self._changed_intervals = set()
        # Derived, so not stored: the contacts held, and when to look at each customer again
        self.held, self._expiry, self._expiry_starts = 0, {}, []
        for key in customers:
            contacts = self._contacts(key)
            self.held += len(contacts)
            self._expire(key, contacts)


# ---- the stored form (`CODEC`) ----------------------------------------------------------------------------


class StoredFcrInterval(msgspec.Struct):
    """An open FCR interval (`FcrInterval`)."""

    queue_id: str
    channel: str
    start: int  # epoch ms
    counts: FcrCounts
    revision: int
    changed: bool
    published_at: float
    settled: bool
    window_ends: dict[int, int]


class StoredFcrTotal(msgspec.Struct):
    queue_id: str
    channel: str
    totals: FcrTotals


class RepeatSnapshot(msgspec.Struct):
    """A repeat state's checkpoint: whole (`snapshot`), or the changes since the last one (`changes`: the
    intervals changed and gone, the customers changed, a customer gone with no legs; the rest whole).

    The customers are packed as they are held (`CustomerLegs`): their keys, their leg counts and their legs in
    the same order, each one binary field (an object per leg would be ~10 times the size and time)."""

    offset: int
    sources: dict[int, int]  # contact-event partition -> its watermark
    pairs: list[tuple[str, str]]  # (queue, channel) of a leg's index
    intervals: list[StoredFcrInterval]
    totals: list[StoredFcrTotal]
    keys: bytes  # customer keys, signed 64-bit, the machine's byte order (`array("q")`)
    counts: bytes  # each customer's number of legs (`array("I")`)
    legs: bytes  # their `LEG` records, customer after customer
    intervals_gone: list[tuple[str, str, int]] = []


CODEC = Codec("repeat state", b"CCFR", SNAPSHOT_VERSION, RepeatSnapshot)


def _customers(d: RepeatSnapshot) -> dict[int, bytes]:
    """customer key -> its legs, of a stored document."""
    keys, counts = array("q", d.keys), array("I", d.counts)
    customers, at, legs = {}, 0, d.legs
    for key, count in zip(keys, counts, strict=True):
        customers[key] = legs[at : at + count * LEG.size]
        at += count * LEG.size
    return customers
