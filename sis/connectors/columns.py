"""Where a connection remembers the gradebook columns it created in the SIS.

A SIS that assigns its own ids to gradebook columns (PowerTeacher Pro's assignments) cannot be
told "create or replace column X": the connector creates the column once and keeps the SIS's
id under our key (``GradeWrite.line_item_id``). :func:`sis.gradebook.DatabaseColumnStore` keeps
them in the database for every worker; :class:`MemoryColumnStore` is for one process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol


class ColumnStore(Protocol):
    def get_or_create(self, key: str, create: Callable[[], str]) -> str:
        """The SIS's id stored under ``key``; when there is none, call ``create`` (which makes
        the column in the SIS and returns its id), store and return that. One ``create`` per
        key even when several workers ask at once."""
        ...


class MemoryColumnStore:
    """A process-local store (tests of one process, tools without Django)."""

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}
        self._lock = threading.Lock()

    def get_or_create(self, key: str, create: Callable[[], str]) -> str:
        with self._lock:
            if key not in self._ids:
                self._ids[key] = create()
            return self._ids[key]
