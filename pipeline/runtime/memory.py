"""Giving freed memory back to the system (glibc's allocator; elsewhere these do nothing), and the cycle collector.

In a long catch-up most of what glibc's arenas held was free, yet the worker kept all of it (figures in
docs/performance.md). Two causes: glibc raises its mmap threshold to the size of each big block freed (up to 32 MB), after
which big transient buffers (a checkpoint's JSON, a fetch response) are carved out of the heap, and a heap only
shrinks from its top; and every thread gets arenas of its own (Faust's consumer thread decodes the fetched
records). So the worker fixes the threshold (big buffers stay mmapped and go back when freed), allows two
arenas, and has the free pages inside the heap released now and then (`malloc_trim`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
MMAP_THRESHOLD_BYTES = 256 * 1024
TRIM_THRESHOLD_BYTES = 1024 * 1024
# The youngest generation is collected after this many new container objects survive, not Python's 700: at the
# default an event's short-lived objects (a leg's previous copy, its increments) can still be alive at a collection
# and are then walked again in the older generations. Time in the collector and its cost in memory: docs/performance.md.
YOUNG_GENERATION_OBJECTS = 50_000


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018  (glibc has both; musl and others do not)
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()


def tune_allocator() -> bool:
    """Fixed mmap and trim thresholds and at most two arenas. Call once, early. False: not glibc."""
    if _LIBC is None:
        return False
    for option, value in (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
        (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
        (M_ARENA_MAX, 2),
    ):
        if not _LIBC.mallopt(option, value):
            log.warning("mallopt(%d, %d) was refused", option, value)
    return True


def release_free_memory() -> bool:
    """Return the free pages of every arena to the system (a few ms). True if any was released."""
    return bool(_LIBC.malloc_trim(0)) if _LIBC is not None else False


def tune_collector() -> None:
    """Put what is alive now (the libraries, the settings) out of the cycle collector's sight, so that its full
    collections walk the state only, and collect the youngest generation less often. Call once, after start-up."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_OBJECTS, middle, oldest)
