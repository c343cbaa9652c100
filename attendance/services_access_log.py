"""Writes of the FERPA read audit (:class:`attendance.models.ApiAccessLog`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from attendance.models import ApiAccessLog

# Past this many students a row keeps the query instead of every id (a full-district export
# is described by its filters; the ids can be recomputed from history if ever needed).
MAX_IDS_PER_ROW = 1000


def access_log_record(
    *,
    district_id: int,
    client_kind: str,
    client_id: str,
    client_label: str,
    endpoint: str,
    method: str,
    student_ids: Iterable[int],
    query: dict[str, Any] | None = None,
) -> ApiAccessLog:
    ids = sorted(set(student_ids))
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # One row per API read: waiting for the WAL flush would double the cost of a page
            # of students. An asynchronous commit can lose at most the last ~0.6 s of log rows
            # on a database crash (never on a client or worker crash) and never corrupts.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        return ApiAccessLog.objects.create(
            district_id=district_id,
            client_kind=client_kind,
            client_id=client_id,
            client_label=client_label[:200],
            endpoint=endpoint[:200],
            method=method,
            student_count=len(ids),
            student_ids=ids if len(ids) <= MAX_IDS_PER_ROW else [],
            query=query or {},
        )


def access_log_purge(*, now: dt.datetime | None = None, retention_days: int | None = None) -> int:
    """Delete rows older than the retention period; running it again deletes nothing more."""
    days = retention_days if retention_days is not None else settings.API_ACCESS_LOG_RETENTION_DAYS
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    deleted, _ = ApiAccessLog.objects.filter(created_at__lt=cutoff).delete()
    return deleted
