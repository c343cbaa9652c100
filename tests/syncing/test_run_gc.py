"""A run freezes the heap it started with (Python's full collections then skip it) and gives
it back afterwards; a process that froze its heap itself is left alone."""

from __future__ import annotations

import gc
from types import SimpleNamespace

from syncing.engine import run as engine_run
from syncing.engine.run import _collect_own_garbage_only


def test_the_heap_is_frozen_for_the_run_and_thawed_after():
    assert gc.get_freeze_count() == 0
    with _collect_own_garbage_only():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_a_heap_frozen_by_the_process_stays_frozen(monkeypatch):
    # The frozen count itself moves whenever a frozen object is freed, so the calls are what
    # is checked here: neither a second freeze nor a thaw of the process's own freeze.
    calls: list[str] = []
    fake_gc = SimpleNamespace(
        get_freeze_count=lambda: 1000,
        freeze=lambda: calls.append("freeze"),
        unfreeze=lambda: calls.append("unfreeze"),
    )
    monkeypatch.setattr(engine_run, "gc", fake_gc)
    with _collect_own_garbage_only():
        pass
    assert calls == []
