"""The interface every state of one partition offers the processor (`pipeline.processing.processor`).

A state is pure and on event time, like bytewax's `StatefulLogic`: the processor applies a batch's items to it
(each state's own `apply`), then asks it once per batch for the updates that are due, and for checkpoints when
the runtime stores them. `QueueState`, `AgentState` and `RepeatState` each provide it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol


class PartitionState(Protocol):
    offset: int
    """The last source offset applied; a re-delivered message at or before it is skipped."""

    @property
    def watermark(self) -> int:
        """The newest event time the state has seen (epoch ms): what its finality is measured against."""
        ...

    def advance(self) -> list[Any]:
        """Close what is now final; its final updates, oldest first. Once per batch, after applying it."""
        ...

    def provisional(self, wall_now: float, every: float) -> list[Any]:
        """Updates of open intervals that changed and were last published `every` seconds ago."""
        ...

    def snapshot(self) -> bytes:
        """The whole state as one checkpoint document (resets what `changes` reports)."""
        ...

    def changes(self) -> bytes | None:
        """What changed since the last `snapshot` or `changes`; None when a `snapshot` is due instead."""
        ...

    def restore(self, data: bytes, changes: Iterable[bytes] = ()) -> None:
        """The state of a `snapshot` with the `changes` since laid over it, oldest first."""
        ...
