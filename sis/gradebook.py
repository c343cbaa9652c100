"""The database-backed :class:`~sis.connectors.columns.ColumnStore` of a connection."""

from __future__ import annotations

import zlib
from collections.abc import Callable

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

    def _get(self, key: str) -> str | None:
        return (
            GradebookColumn.objects.filter(connection_id=self.connection_id, key=key)
            .values_list("sis_id", flat=True)
            .first()
        )
