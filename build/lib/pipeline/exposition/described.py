"""Collectors that describe themselves, so that a scrape restricted with `name[]` stays cheap."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import Metric


class Described:
    """`describe()` for a collector whose families all appear even with no state: taken once at registration,
    it lets a scrape restricted with `name[]` (prometheus_client's `restricted_registry`) run only the
    collectors that yield the names asked for."""

    def describe(self) -> list[Metric]:
        return list(self.collect())  # type: ignore[attr-defined]


class Part(Described):
    """One of a collector's methods, registered as a collector of its own (so a restricted scrape runs less)."""

    def __init__(self, collect: Callable[[], Iterator[Metric]]) -> None:
        self.collect = collect
