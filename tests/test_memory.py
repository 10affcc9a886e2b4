"""Returning freed memory to the system: the allocator calls work here (glibc) and do give pages back."""

import pytest

from pipeline.runtime import memory


def rss_kb() -> int:
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0])


@pytest.mark.skipif(memory._LIBC is None, reason="not glibc")
def test_free_pages_left_inside_the_heap_go_back_to_the_system():
    assert memory.tune_allocator()
    # many small blocks (below the mmap threshold, so from the heap), then all but every 64th freed: the heap
    # cannot shrink from its top, but its free pages can be released
    blocks = [bytearray(4000) for _ in range(40_000)]
    kept = blocks[::64]
    del blocks
    before = rss_kb()
    memory.release_free_memory()
    assert rss_kb() < before - 50_000  # of the ~160 MB freed, most went back
    assert len(kept) == 625


def test_the_collector_is_tuned_once_the_worker_has_started():
    import gc

    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    alive = [[i] for i in range(1000)]  # containers alive at start-up: frozen, out of the collector's sight
    try:
        memory.tune_collector()
        assert gc.get_threshold() == (memory.YOUNG_GENERATION_OBJECTS, threshold[1], threshold[2])
        assert gc.get_freeze_count() >= frozen + len(alive)
        assert all(o is not alive for o in gc.get_objects())  # the collector walks the generations only
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
