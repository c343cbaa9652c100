"""Helpers shared by the sync tests: run a sync in-process, count rows and history rows."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection as db

from attendance.models import Enrollment, Guardian, School, Student, StudentGuardian
from syncing.engine.run import run_execute
from syncing.locks import connection_lock
from syncing.models import SyncRun
from syncing.services import sync_start

AUDITED = (School, Student, Guardian, StudentGuardian, Enrollment)


def sync(connection: Any, source: Any, mode: str = "full", **kwargs: Any) -> SyncRun:
    run, created = sync_start(connection=connection, mode=mode, enqueue=False, **kwargs)
    assert created, "a run was already active"
    return run_execute(run.pk, source=source)


def held_by_dropped_students(connection: Any, source: Any, dropped: int = 20) -> SyncRun:
    """A first sync, then a sync after the SIS dropped ``dropped`` of the fake district's 60
    students: past the safety policy's share, so the second run is held."""
    sync(connection, source)
    for n in range(dropped):
        source.drop("student", f"stu-{n}")
    return sync(connection, source)


def history_counts() -> dict[str, int]:
    return {model.__name__: model.history.count() for model in AUDITED}


def row_counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in AUDITED}


def table_digest(table: str, columns: str) -> str:
    with db.cursor() as cursor:
        sql = "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM (SELECT {} FROM {}) t"
        cursor.execute(sql.format(columns, table))
        return cursor.fetchone()[0] or ""


def links_with_wrong_school() -> list[tuple[str, str, Any, Any]]:
    """``(entity, source id, link's school, object's school)`` of every active link whose
    school is not its object's (the safety check counts per school through the links)."""
    from attendance.models import SectionEnrollment
    from syncing.entities import SPECS
    from syncing.models import SourceLink

    wrong = []
    for spec in SPECS.values():
        links = SourceLink.objects.filter(entity=spec.name, active=True)
        objects = spec.model._base_manager.filter(pk__in=links.values("object_id"))
        if spec.school_ref == "id":
            schools = {pk: pk for pk in objects.values_list("pk", flat=True)}
        elif spec.school_ref:
            schools = dict(objects.values_list("pk", spec.school_ref))
        elif spec.model is SectionEnrollment:
            schools = dict(objects.values_list("pk", "section__school_id"))
        else:
            schools = {}
        for source_id, object_id, school_id in links.values_list(
            "source_id", "object_id", "school_id"
        ):
            if schools.get(object_id) != school_id:
                wrong.append((spec.name, source_id, school_id, schools.get(object_id)))
    return wrong


def rekey_students(source: Any) -> None:
    """Give every student of a fake source a new source id ("v2-…"), as an SIS upgrade does;
    the records that refer to students follow."""
    for record in list(source.records["student"].values()):
        source.drop("student", record.source_id)
        record.source_id = "v2-" + record.source_id
        source.put(record)
    for entity in ("student_guardian", "enrollment"):
        for record in source.records[entity].values():
            record.student_id = "v2-" + record.student_id


@contextmanager
def lock_held_elsewhere(
    connection_id: int, *, release_after: float | None = None
) -> Iterator[None]:
    """A worker busy with the connection's run: its sync lock held by another database session
    (a thread of its own) for as long as the block lasts, or only ``release_after`` seconds
    (a dead worker's session, which PostgreSQL ends a moment later)."""
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with connection_lock(connection_id) as acquired:
                assert acquired
                holding.set()
                done.wait(release_after or 30)
        finally:
            db.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(30)
    try:
        yield
    finally:
        done.set()
        holder.join()
