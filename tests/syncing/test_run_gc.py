"""A run freezes the heap it started with (Python's full collections then skip it) and gives
it back afterwards; a process that froze its heap itself is left alone."""

from __future__ import annotations

import gc

from syncing.engine.run import _collect_own_garbage_only


def test_the_heap_is_frozen_for_the_run_and_thawed_after():
    assert gc.get_freeze_count() == 0
    with _collect_own_garbage_only():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_a_heap_frozen_by_the_process_stays_frozen():
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with _collect_own_garbage_only():
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
