"""One sync per connection at a time, off PostgreSQL (SQLite in ``make run``).

An exclusive ``flock`` on a file beside the database, held by the worker's open file for the
whole run. It has what the PostgreSQL advisory lock has: the kernel releases it when the
process dies (SIGKILL, OOM), so a redelivered task takes over at once — no expiry to guess, no
stale row to clean up. ``flock`` locks belong to an open file, so two threads of one process
exclude each other too. It covers every process on this machine, which is every process that
can open the same SQLite file; a shared network database is PostgreSQL's case.

Why not the one-active-run constraint alone: it stops a second *run* from being created, but a
redelivered task (the visibility timeout passed while the first worker still works) executes
the *same* run, and only a lock keeps the two from applying it together.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings


def _lock_path(connection_id: int) -> Path:
    name = str(settings.DATABASES["default"].get("NAME") or "")
    if not name or name == ":memory:" or name.startswith("file:"):
        folder = Path(tempfile.gettempdir())
    else:
        folder = Path(name).resolve().parent
    return folder / f"{Path(name).name or 'db'}.sync-{int(connection_id)}.lock"


@contextmanager
def connection_lock(connection_id: int) -> Iterator[bool]:
    """Try to take the sync lock of one SIS connection; yields whether it was taken."""
    fd = os.open(_lock_path(connection_id), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def connection_lock_held(connection_id: int) -> bool:
    """Whether some process holds the lock now (for the admin and tests)."""
    with connection_lock(connection_id) as acquired:
        return not acquired
