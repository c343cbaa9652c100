"""The run pipeline end to end against an in-process SIS: full sync, identical re-sync,
deactivation and return, transfers, safety holds, quarantine."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection as database

from attendance import bulk
from attendance.models import Enrollment, ExitReason, Guardian, Student, StudentGuardian
from sis.connectors.records import EnrollmentRecord, Page, StudentRecord
from syncing.models import (
    QuarantinedRecord,
    RunStatus,
    SourceLink,
    SyncChange,
    SyncPage,
    SyncRun,
)
from tests.syncing.fakes import FakeSource, district_records
from tests.syncing.helpers import history_counts, row_counts, sync


def test_full_sync_creates_the_roster_with_history(connection, source):
    run = sync(connection, source)
    assert run.status == RunStatus.COMPLETED, run.error_summary
    assert Student.objects.count() == 60
    assert Guardian.objects.count() == 60
    assert StudentGuardian.objects.count() == 60
    assert Enrollment.objects.filter(exit_date__isnull=True).count() == 60
    student = Student.objects.get(local_id="S00007")
    assert student.legal_first_name == "First7"
    assert student.birth_date == dt.date(2012, 1, 8)
    assert student.school.name == "School 1"
    assert Guardian.objects.get(email="parent7@example.org").mobile_phone == "+13125550107"
    assert run.counts["student"]["create"] == 60
    # One history row per created row, nothing more.
    assert history_counts()["Student"] == 60
    assert SourceLink.objects.filter(connection=connection).count() == 2 + 4 * 60


def test_each_created_row_has_a_history_snapshot_equal_to_the_row(connection, source):
    run = sync(connection, source)
    assert run.status == RunStatus.COMPLETED, run.error_summary
    for student in Student.objects.filter(local_id__in=["S00001", "S00007", "S00060"]):
        snapshot = student.history.get()
        assert snapshot.history_type == "+"
        assert snapshot.history_change_reason == f"SIS sync run {run.pk}"
        assert snapshot.history_user_id is None
        for name in ("local_id", "legal_first_name", "birth_date", "school_id", "district_id",
                     "active", "created_at", "updated_at"):  # fmt: skip
            assert getattr(snapshot, name) == getattr(student, name), name
    guardian = Guardian.objects.get(email="parent7@example.org")
    assert guardian.history.get().mobile_phone == guardian.mobile_phone


def test_bigint_array_literal_round_trips_through_postgresql(db):
    with database.cursor() as cursor:
        cursor.execute(
            "SELECT %s::bigint[], %s::bigint[]",
            [bulk.bigint_array([1, None, 2**40, True]), bulk.bigint_array([])],
        )
        assert cursor.fetchone() == ([1, None, 2**40, 1], [])
    with pytest.raises(ValueError):
        bulk.bigint_array(["1); DROP TABLE x; --"])


def test_an_identical_resync_writes_nothing(connection, source):
    sync(connection, source)
    rows, history = row_counts(), history_counts()
    links = list(SourceLink.objects.values_list("id", "updated_at").order_by("id"))
    run = sync(connection, source)
    assert run.status == RunStatus.COMPLETED
    assert row_counts() == rows
    assert history_counts() == history
    assert list(SourceLink.objects.values_list("id", "updated_at").order_by("id")) == links
    assert run.counts["student"] == {"unchanged": 60}


def test_a_change_at_the_sis_updates_one_row_and_writes_one_history_row(connection, source):
    sync(connection, source)
    before = history_counts()
    record = source.get("student", "stu-3")
    record.last_name = "Renamed"
    run = sync(connection, source)
    assert Student.objects.get(local_id="S00003").legal_last_name == "Renamed"
    after = history_counts()
    assert after["Student"] == before["Student"] + 1
    assert {k: after[k] - before[k] for k in after if k != "Student"} == {
        "School": 0,
        "Guardian": 0,
        "StudentGuardian": 0,
        "Enrollment": 0,
    }
    assert run.counts["student"]["update"] == 1


def test_a_record_the_sis_stops_returning_is_deactivated_and_comes_back(connection, source):
    sync(connection, source)
    removed = source.get("student", "stu-5")
    enrollment = source.get("enrollment", "enr-5")
    source.drop("student", "stu-5")
    source.drop("enrollment", "enr-5")
    run = sync(connection, source)
    assert run.status == RunStatus.COMPLETED, run.held_reason
    student = Student.objects.get(local_id="S00005")
    assert student.active is False
    span = Enrollment.objects.get(student=student)
    assert span.exit_date is not None and span.exit_reason == ExitReason.NOT_IN_SIS
    assert Student.objects.count() == 60  # never deleted
    # The same source ids come back: active again, and a new span opens (re-entry).
    source.put(removed)
    source.put(enrollment)
    run = sync(connection, source)
    student.refresh_from_db()
    assert student.active is True
    spans = list(Enrollment.objects.filter(student=student).order_by("entry_date"))
    assert len(spans) == 2
    assert spans[0].exit_date is not None and spans[1].exit_date is None
    assert spans[1].entry_date > spans[0].exit_date
    assert student.school_id == spans[1].school_id


def test_a_transfer_closes_one_span_and_opens_another(connection, source):
    sync(connection, source)
    # The SIS closes the old enrollment and opens one at the other school.
    old = source.get("enrollment", "enr-4")
    old.exit_date = dt.date(2026, 10, 1)
    old.enrollment_status = "transferred_out"
    source.put(
        EnrollmentRecord(
            source_id="enr-4b",
            student_id="stu-4",
            school_id="sch-1",
            entry_date=dt.date(2026, 10, 2),
            grade_level="05",
        )
    )
    student_record = source.get("student", "stu-4")
    assert isinstance(student_record, StudentRecord)
    student_record.school_id = "sch-1"
    run = sync(connection, source)
    assert run.status == RunStatus.COMPLETED, run.error_summary
    student = Student.objects.get(local_id="S00004")
    spans = list(Enrollment.objects.filter(student=student).order_by("entry_date"))
    assert [s.school.name for s in spans] == ["School 0", "School 1"]
    assert spans[0].exit_date == dt.date(2026, 10, 1)
    assert spans[0].exit_reason == ExitReason.TRANSFERRED
    assert spans[1].exit_date is None
    assert student.school.name == "School 1"


def test_re_entries_and_moves_in_one_batch_open_new_spans_and_isolate_a_bad_one(connection, source):
    # Student 9 also attends School 0 (a second, open enrollment there).
    source.put(
        EnrollmentRecord(
            source_id="enr-9x",
            student_id="stu-9",
            school_id="sch-0",
            entry_date=dt.date(2026, 8, 17),
            primary=False,
        )
    )
    sync(connection, source)
    returning = [source.get("enrollment", f"enr-{i}") for i in (5, 6, 7)]
    for record in returning:
        source.drop("enrollment", record.source_id)
    assert sync(connection, source).status == RunStatus.COMPLETED
    for record in returning:
        source.put(record)  # re-entries
    source.get("enrollment", "enr-8").school_id = "sch-1"  # a move (School 0 → 1)
    source.get("enrollment", "enr-9").school_id = "sch-0"  # collides with enr-9x
    run = sync(connection, source)
    assert run.status == RunStatus.COMPLETED_WITH_QUARANTINE
    for i in (5, 6, 7):
        spans = Enrollment.objects.filter(student__local_id=f"S{i:05d}").order_by("entry_date")
        assert [s.exit_date is None for s in spans] == [False, True]
    moved = Enrollment.objects.filter(student__local_id="S00008").order_by("id")
    assert [(s.school.name, s.exit_reason) for s in moved] == [
        ("School 0", ExitReason.TRANSFERRED),
        ("School 1", ""),
    ]
    assert Student.objects.get(local_id="S00008").school.name == "School 1"
    # The colliding move is quarantined, its old span left open as it was.
    parked = QuarantinedRecord.objects.get(run=run)
    assert (parked.source_id, parked.reason_code) == ("enr-9", "constraint_violation")
    assert "enrollment_one_open_per_school" in parked.message
    # The run's counts leave the failed change out.
    applied = SyncChange.objects.filter(
        run=run, entity="enrollment", action="update", state="applied"
    ).count()
    assert run.counts["enrollment"]["update"] == applied
    assert SyncChange.objects.filter(run=run, state="failed").count() == 1
    kept = Enrollment.objects.filter(student__local_id="S00009").order_by("id")
    assert [(s.school.name, s.exit_date) for s in kept] == [("School 1", None), ("School 0", None)]
    link = SourceLink.objects.get(connection=connection, source_id="enr-8")
    assert link.object_id == moved.last().pk


def test_large_batches_stream_through_copy_with_the_same_result(connection, source, monkeypatch):
    """Batches from COPY_MIN_ROWS rows on go through COPY and a temporary table: same rows,
    same history, an identical re-sync still writes nothing."""
    monkeypatch.setattr(bulk, "COPY_MIN_ROWS", 1)
    copies: list[str] = []
    real_copy = bulk.copy_to_temp

    def counting_copy(*args, **kwargs):
        name = real_copy(*args, **kwargs)
        copies.append(name)
        return name

    monkeypatch.setattr(bulk, "copy_to_temp", counting_copy)
    run = sync(connection, source)
    assert run.status == RunStatus.COMPLETED, run.error_summary
    assert copies, "the COPY path did not run"
    assert row_counts() == {
        "School": 2,
        "Student": 60,
        "Guardian": 60,
        "StudentGuardian": 60,
        "Enrollment": 60,
    }
    assert history_counts() == row_counts()
    assert Guardian.objects.get(email="parent7@example.org").mobile_phone == "+13125550107"
    assert SourceLink.objects.filter(connection=connection).count() == 2 + 4 * 60
    history = history_counts()
    assert sync(connection, source).counts["student"] == {"unchanged": 60}
    assert history_counts() == history
    source.get("student", "stu-3").last_name = "Renamed"
    copies.clear()
    run = sync(connection, source)
    assert copies, "the update did not go through COPY"
    assert Student.objects.get(local_id="S00003").legal_last_name == "Renamed"
    assert history_counts()["Student"] == history["Student"] + 1


class _ShiftedPaging(FakeSource):
    """Student pages that overlap: each page after the first starts with the last record of
    the page before (a record inserted at the SIS while the run paged through it)."""

    def fetch(self, entity: Any, *, since: str | None = None) -> Iterator[Page]:
        previous: Page | None = None
        for page in super().fetch(entity, since=since):
            if str(entity) == "student" and previous is not None:
                page = Page(page.entity, [previous.records[-1], *page.records],
                            number=page.number, total=page.total)  # fmt: skip
            previous = page
            yield page


def test_a_page_repeating_an_earlier_pages_record_stages_it_once(connection):
    source = _ShiftedPaging(page_size=25)
    district_records(source)
    # A malformed record on a repeating page: quarantined and counted once, not once per try.
    source.get("student", "stu-30").last_name = ""
    run = sync(connection, source)
    assert run.status == RunStatus.COMPLETED_WITH_QUARANTINE, run.error_summary
    assert run.counts["student"] == {"create": 59, "quarantined": 1}
    assert SyncChange.objects.filter(run=run, entity="student").count() == 59
    assert QuarantinedRecord.objects.get(source_id="stu-30").attempts == 1
    assert Student.objects.count() == 59
    assert history_counts()["Student"] == 59
    assert SyncPage.objects.filter(run=run, entity="student").count() == 3


class _BrokenAfterFirstPage(FakeSource):
    """Fails while fetching the second page of students (the SIS goes away mid-run)."""

    def fetch(self, entity: Any, *, since: str | None = None) -> Iterator[Page]:
        for page in super().fetch(entity, since=since):
            if str(entity) == "student" and page.number == 1:
                raise ConnectionError("SIS went away")
            yield page


def test_a_fetch_error_in_the_fetch_ahead_thread_fails_the_run(connection):
    source = _BrokenAfterFirstPage(page_size=25)
    district_records(source)
    with pytest.raises(ConnectionError, match="SIS went away"):
        sync(connection, source)
    run = SyncRun.objects.get(connection=connection)
    assert run.status == RunStatus.FAILED
    assert "SIS went away" in run.error_summary
    # Staging stopped at the failure, in order: the first student page, nothing after it.
    assert set(SyncPage.objects.filter(run=run).values_list("entity", "number")) == {
        ("school", 0),
        ("student", 0),
    }
    assert Student.objects.count() == 0  # nothing applied
    assert not any(t.name == "sync-fetch" for t in threading.enumerate())
