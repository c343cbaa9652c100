"""Writes of the FERPA read audit (:class:`attendance.models.ApiAccessLog`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import orjson
from django.conf import settings
from django.db import connection
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
) -> None:
    """Write one row for one API read of student data (every list page, every detail)."""
    ids = sorted(set(student_ids))
    values: dict[str, Any] = {
        "district_id": district_id,
        "client_kind": client_kind,
        "client_id": client_id,
        "client_label": client_label[:200],
        "endpoint": endpoint[:200],
        "method": method,
        "student_count": len(ids),
        "student_ids": ids if len(ids) <= MAX_IDS_PER_ROW else [],
        "query": query or {},
        "created_at": timezone.now(),
    }
    if connection.vendor != "postgresql":
        ApiAccessLog.objects.create(**values)
        return
    # This write sits on the API's hottest read (every page of students), so it is one round
    # trip: both statements travel in one simple-protocol query, which PostgreSQL runs as one
    # implicit transaction, so SET LOCAL applies to the INSERT alone. Not waiting for the WAL
    # flush halves its cost; an asynchronous commit can lose at most the last ~0.6 s of log
    # rows on a database crash (never on a client or worker crash) and never corrupts.
    values["student_ids"] = orjson.dumps(values["student_ids"]).decode()
    values["query"] = orjson.dumps(values["query"]).decode()
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_ASYNC_COMMIT, values)


_INSERT_ASYNC_COMMIT = (
    "SET LOCAL synchronous_commit TO OFF; "
    "INSERT INTO attendance_apiaccesslog (district_id, client_kind, client_id, "
    "client_label, endpoint, method, student_count, student_ids, query, created_at) "
    "VALUES (%(district_id)s, %(client_kind)s, %(client_id)s, %(client_label)s, "
    "%(endpoint)s, %(method)s, %(student_count)s, %(student_ids)s::jsonb, %(query)s::jsonb, "
    "%(created_at)s)"
)


def access_log_purge(*, now: dt.datetime | None = None, retention_days: int | None = None) -> int:
    """Delete rows older than the retention period; running it again deletes nothing more."""
    days = retention_days if retention_days is not None else settings.API_ACCESS_LOG_RETENTION_DAYS
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    deleted, _ = ApiAccessLog.objects.filter(created_at__lt=cutoff).delete()
    return deleted
