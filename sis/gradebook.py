"""The database-backed :class:`~sis.connectors.columns.ColumnStore` of a connection."""

from __future__ import annotations

import fcntl
import os
import tempfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection as db
from django.db import transaction

from sis.models import GradebookColumn


class DatabaseColumnStore:
    def __init__(self, connection_id: int) -> None:
        self.connection_id = connection_id

    def get_or_create(self, key: str, create: Callable[[], str]) -> str:
        found = self._get(key)
        if found is not None:
            return found
        if db.vendor != "postgresql":
            return self._get_or_create_locally(key, create)
        with transaction.atomic():
            # One creator per column across workers: the others wait here, then find the id.
            # (The lock is held over the SIS call, which only happens once per column.)
            lock = zlib.crc32(f"gradebook:{self.connection_id}:{key}".encode())
            with db.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock])
            found = self._get(key)
            if found is not None:
                return found
            sis_id = create()
            GradebookColumn.objects.create(connection_id=self.connection_id, key=key, sis_id=sis_id)
            return sis_id

    def _get_or_create_locally(self, key: str, create: Callable[[], str]) -> str:
        """Off PostgreSQL (SQLite in ``make run``): the same one-creator rule under a file lock,
        taken outside any transaction. SQLite's write lock alone is not enough: a deferred
        transaction lets two workers read "no column" and both create one in the SIS, and an
        IMMEDIATE one would stall every writer of the database during the SIS call. One lock
        per connection: columns are created once each, so waiting behind another key is rare."""
        with _file_lock(self.connection_id):
            found = self._get(key)
            if found is not None:
                return found
            sis_id = create()
            GradebookColumn.objects.create(connection_id=self.connection_id, key=key, sis_id=sis_id)
            return sis_id

    def _get(self, key: str) -> str | None:
        return (
            GradebookColumn.objects.filter(connection_id=self.connection_id, key=key)
            .values_list("sis_id", flat=True)
            .first()
        )


@contextmanager
def _file_lock(connection_id: int) -> Iterator[None]:
    """A blocking exclusive ``flock`` on a file beside the SQLite database (every process
    that opens the same database file is on this machine); the kernel drops it if the
    process dies. The pattern of :mod:`syncing.locks_file`, waiting instead of giving up."""
    name = str(settings.DATABASES["default"].get("NAME") or "")
    on_disk = name and name != ":memory:" and not name.startswith("file:")
    folder = Path(name).resolve().parent if on_disk else Path(tempfile.gettempdir())
    path = folder / f"{Path(name).name or 'db'}.gradebook-{int(connection_id)}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the lock
