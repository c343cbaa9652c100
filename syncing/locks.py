"""One sync per connection at a time.

A PostgreSQL session-level advisory lock, held by the worker's database connection for the
whole run: if the worker dies (SIGKILL, OOM), PostgreSQL drops its connection and the lock with
it, so a redelivered task can take over at once — no TTL to guess, no stale lock to clean up.
Off PostgreSQL (SQLite in ``make run``) :mod:`syncing.locks_file` gives the same guarantee.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

from syncing import locks_file

# First half of the two-part advisory lock key: "the sync lock" (any constant unique to us).
_NAMESPACE = 0x5359  # "SY"


@contextmanager
def connection_lock(connection_id: int) -> Iterator[bool]:
    """Try to take the sync lock of one SIS connection; yields whether it was taken."""
    if connection.vendor != "postgresql":
        with locks_file.connection_lock(connection_id) as taken:
            yield taken
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_NAMESPACE, connection_id])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_NAMESPACE, connection_id])


def connection_lock_held(connection_id: int) -> bool:
    """Whether some session holds the lock now (for the admin and tests)."""
    if connection.vendor != "postgresql":
        return locks_file.connection_lock_held(connection_id)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s "
            "AND objid = %s AND granted",
            [_NAMESPACE, connection_id],
        )
        return bool(cursor.fetchone()[0])
