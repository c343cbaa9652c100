"""Helpers shared by the sync tests: run a sync in-process, count rows and history rows."""

from __future__ import annotations

from typing import Any

from django.db import connection as db

from attendance.models import Enrollment, Guardian, School, Student, StudentGuardian
from syncing.engine.run import run_execute
from syncing.models import SyncRun
from syncing.services import sync_start

AUDITED = (School, Student, Guardian, StudentGuardian, Enrollment)


def sync(connection: Any, source: Any, mode: str = "full", **kwargs: Any) -> SyncRun:
    run, created = sync_start(connection=connection, mode=mode, enqueue=False, **kwargs)
    assert created, "a run was already active"
    return run_execute(run.pk, source=source)


def history_counts() -> dict[str, int]:
    return {model.__name__: model.history.count() for model in AUDITED}


def row_counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in AUDITED}


def table_digest(table: str, columns: str) -> str:
    with db.cursor() as cursor:
        sql = "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM (SELECT {} FROM {}) t"
        cursor.execute(sql.format(columns, table))
        return cursor.fetchone()[0] or ""
