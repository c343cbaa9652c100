"""Syncs against the sandbox SIS over real HTTP and real PostgreSQL."""

from __future__ import annotations

from attendance.models import (
    Course,
    Enrollment,
    Guardian,
    School,
    Section,
    SectionEnrollment,
    Staff,
    Student,
    StudentGuardian,
    Term,
)
from syncing.engine.run import run_execute
from syncing.models import QuarantinedRecord, RunStatus, SourceLink
from syncing.services import sync_start
from tests.syncing.helpers import links_with_wrong_school
from tests.syncing.sandbox import connection_for, sandbox_for


def _sync(connection, mode="full"):
    run, created = sync_start(connection=connection, mode=mode, enqueue=False)
    assert created
    return run_execute(run.pk)


def test_a_full_sync_equals_the_sandbox(district):
    with sandbox_for(students=120) as sandbox:
        connection = connection_for(sandbox, district)
        run = _sync(connection)
        expected = sandbox.counts()
    quarantined = list(QuarantinedRecord.objects.values_list("entity", "reason_code", "message"))
    assert run.status == RunStatus.COMPLETED, (run.error_summary, quarantined[:5])
    assert School.objects.count() == expected["school"]
    assert Term.objects.count() == expected["term"]
    assert Course.objects.count() == expected["course"]
    assert Staff.objects.count() == expected["staff"]
    assert Section.objects.count() == expected["section"]
    assert Student.objects.count() == expected["student"]
    assert Enrollment.objects.count() == expected["enrollment"]
    assert Guardian.objects.count() == expected["guardian"]
    assert StudentGuardian.objects.count() == expected["student_guardian"]
    assert SectionEnrollment.objects.count() == expected["section_enrollment"]
    # Every link records its object's school (students, spans, section enrollments...).
    assert SourceLink.objects.filter(entity="section_enrollment", school__isnull=False).exists()
    assert links_with_wrong_school() == []


def _history_total():
    return {
        model.__name__: model.history.count()
        for model in (
            School, Term, Course, Staff, Section, Student, Enrollment, Guardian,
            StudentGuardian, SectionEnrollment,
        )
    }  # fmt: skip


def test_a_day_of_scripted_changes_applies_exactly_and_a_resync_writes_nothing(district):
    with sandbox_for(students=120) as sandbox:
        connection = connection_for(sandbox, district)
        _sync(connection)
        before = _history_total()
        changes = sandbox.control("advance", {"days": 1})["changes"]
        run = _sync(connection)
        assert run.status == RunStatus.COMPLETED, (
            run.error_summary,
            list(QuarantinedRecord.objects.values_list("entity", "message")),
        )
        after = _history_total()
        by_kind = {c["kind"]: c for c in changes}
        edit = by_kind["edit"]
        student = Student.objects.get(local_id=str(int(edit["id"]) + 100000))
        assert student.legal_last_name == edit["detail"]["new"]
        new = by_kind["new_student"]
        assert Student.objects.filter(local_id=str(int(new["id"]) + 100000)).exists()
        withdrawn = Student.objects.get(local_id=str(int(by_kind["withdrawal"]["id"]) + 100000))
        assert not withdrawn.enrollments.filter(exit_date__isnull=True).exists()
        moved = Student.objects.get(local_id=str(int(by_kind["transfer"]["id"]) + 100000))
        closed = moved.enrollments.get(exit_date__isnull=False)
        opened = moved.enrollments.get(exit_date__isnull=True)
        assert closed.exit_reason == "transferred"
        assert opened.school.local_id == str(by_kind["transfer"]["detail"]["to"])
        assert moved.school == opened.school
        section_change = by_kind["section_change"]
        link = SourceLink.objects.get(entity="section_enrollment", source_id=section_change["id"])
        span = SectionEnrollment.objects.get(pk=link.object_id)
        section = SourceLink.objects.get(
            entity="section", source_id=str(section_change["detail"]["section"])
        )
        assert span.section_id == section.object_id
        old_span = SectionEnrollment.objects.exclude(pk=span.pk).get(
            student=span.student,
            entry_date__lte=span.entry_date,
            section__periods=span.section.periods,
        )
        assert old_span.exit_date < span.entry_date or old_span.exit_date == old_span.entry_date
        phone = by_kind["guardian_phone"]
        guardian = Guardian.objects.get(
            pk=SourceLink.objects.get(entity="guardian", source_id=phone["id"]).object_id
        )
        assert guardian.mobile_phone_raw == phone["detail"]["mobile"]
        # A deleted guardian is deactivated (or never created, when it was new that day).
        gone = SourceLink.objects.filter(entity="guardian", source_id=by_kind["delete"]["id"])
        assert all(not Guardian.objects.get(pk=link.object_id).active for link in gone)
        # Nothing outside the script was touched.
        untouched = ("School", "Term", "Course", "Staff", "Section")
        assert all(after[name] == before[name] for name in untouched)
        assert after["Student"] - before["Student"] <= 6
        # A second identical sync writes nothing at all, history included.
        links = list(SourceLink.objects.values_list("id", "updated_at").order_by("id"))
        run = _sync(connection)
        assert run.status == RunStatus.COMPLETED
        assert _history_total() == after
        assert list(SourceLink.objects.values_list("id", "updated_at").order_by("id")) == links
