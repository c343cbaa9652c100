"""Participation grades written to PowerTeacher Pro through the PowerSchool connector, against
the sandbox SIS over real HTTP: one assignment per section and grading period (created once),
the score PUT as the section's teacher, 409 (locked term) and 412 (resubmit once), and the
honest "accepted, not verifiable" end state."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from attendance.models import AttendanceStatus, ParticipationGrade, SectionEnrollment
from attendance.services_participation import participation_grades_compute
from sis.models import GradebookColumn
from sis.sandbox.powerschool_gradebook import users_dcid
from syncing.engine.run import run_execute
from syncing.models import OutboxStatus, RunStatus, SourceLink, WriteBackItem
from syncing.services import sync_start
from syncing.writeback import participation_grade_queue, writeback_send_due
from tests.factories import AttendanceRecordFactory, ParticipationGradeFactory
from tests.syncing.sandbox import connection_for, sandbox_for


@pytest.fixture
def ps(district):
    with sandbox_for(provider="powerschool", students=40) as sandbox:
        connection = connection_for(sandbox, district)
        run, _ = sync_start(connection=connection, mode="full", enqueue=False)
        assert run_execute(run.pk).status == RunStatus.COMPLETED
        yield sandbox, connection


def _xte(sandbox, path):
    return [w for w in sandbox.control("writes")["writes"] if w["path"].startswith(path)]


def _links(connection, entity):
    return dict(
        SourceLink.objects.filter(connection=connection, entity=entity).values_list(
            "object_id", "source_id"
        )
    )


def _class(connection, size=2):
    """A synced section and ``size`` of its synced students."""
    students = _links(connection, "student")
    for section_id, section_source in _links(connection, "section").items():
        enrolled = list(
            SectionEnrollment.objects.filter(
                section_id=section_id, student_id__in=students, role="student"
            ).select_related("section", "student")[:size]
        )
        if len(enrolled) == size:
            return enrolled[0].section, [e.student for e in enrolled], section_source
    raise AssertionError("no synced section with enough students")


def _grade(connection, section, student, value):
    return ParticipationGradeFactory(
        section=section, student=student, grading_period=section.term, value=value
    )


def test_a_computed_grade_reaches_powerteacher_pro_and_ends_accepted(ps):
    sandbox, connection = ps
    section, (student, _), section_source = _class(connection)
    day = max(section.term.start_date, dt.date(2026, 9, 1))
    for n, status in enumerate([AttendanceStatus.PRESENT] * 3 + [AttendanceStatus.TARDY]):
        AttendanceRecordFactory(
            school=section.school,
            student=student,
            section=section,
            date=day + dt.timedelta(days=n),
            status=status,
        )

    result = participation_grades_compute(grading_period=section.term, sections=[section])
    assert (result.created, result.queued) == (1, 1)
    assert writeback_send_due() == {"accepted": 1}

    teacher = sandbox.state.district.get("section", section_source)["teacher"]
    category, assignment, score = (
        _xte(sandbox, "/ws/xte/teacher_category"),
        _xte(sandbox, "/ws/xte/section/assignment"),
        _xte(sandbox, "/ws/xte/score"),
    )
    assert len(category) == len(assignment) == len(score) == 1
    assert category[0]["query"] == {"users_dcid": users_dcid(teacher), "year_id": "36"}
    created = assignment[0]["body"]["_assignmentsections"][0]
    assert created["sectionsdcid"] == int(section_source) and created["name"] == "Participation"
    assert created["_assignmentcategoryassociations"][0]["teachercategoryid"] == (
        int(teacher) * 10 + 3  # the teacher's "Participation" category
    )
    assert score[0]["query"] == {
        "users_dcid": users_dcid(teacher),
        "status": "A",
        "term_id": "3600",
    }
    student_source = _links(connection, "student")[student.pk]
    [sent] = score[0]["body"]["assignment_scores"]
    assert sent["studentsdcid"] == int(student_source) and sent["scorepoints"] == 87.5
    dialect = sandbox.server.dialect
    [(asid, dcid)] = dialect.scores
    assert dcid == student_source and dialect.scores[(asid, dcid)]["scorepoints"] == 87.5

    item = WriteBackItem.objects.get(entity="participation_grade")
    assert item.status == OutboxStatus.ACCEPTED and item.get_status_display() == (
        "Accepted, not verifiable"
    )
    assert item.sis_value is None and item.verified_at is None and item.sent_at is not None
    column = GradebookColumn.objects.get(connection=connection)
    assert column.sis_id == str(asid) and column.key == f"sas-{section_source}-{item.value['term']}"
    assert writeback_send_due() == {}  # accepted is final


def test_the_assignment_is_created_once_per_section_and_period(ps):
    sandbox, connection = ps
    section, (first, second), _ = _class(connection)
    grade = _grade(connection, section, first, "90.00")
    participation_grade_queue(grade=grade)
    assert writeback_send_due() == {"accepted": 1}
    participation_grade_queue(grade=_grade(connection, section, second, "70.00"))
    assert writeback_send_due() == {"accepted": 1}  # another sender pass, another connector
    # The first grade changes: sent again, to the same assignment.
    ParticipationGrade.objects.filter(pk=grade.pk).update(value=Decimal("95.00"))
    grade.refresh_from_db()
    assert participation_grade_queue(grade=grade) == 1
    assert writeback_send_due() == {"accepted": 1}

    assert len(_xte(sandbox, "/ws/xte/section/assignment")) == 1
    assert GradebookColumn.objects.filter(connection=connection).count() == 1
    scores = sandbox.server.dialect.scores
    assert len(_xte(sandbox, "/ws/xte/score")) == 3 and len(scores) == 2
    assert sorted(s["scorepoints"] for s in scores.values()) == [70.0, 95.0]


def test_an_abandoned_grade_is_sent_again_without_a_second_assignment(ps):
    sandbox, connection = ps
    section, (student, _), _ = _class(connection)
    participation_grade_queue(grade=_grade(connection, section, student, 80))
    writeback_send_due()
    # A worker died mid-send: there is no read-back, so the score PUT (a replace) is repeated.
    WriteBackItem.objects.update(
        status=OutboxStatus.SENDING, claimed_at=timezone.now() - dt.timedelta(hours=1)
    )
    assert writeback_send_due() == {"accepted": 1}
    assert len(_xte(sandbox, "/ws/xte/section/assignment")) == 1
    assert len(_xte(sandbox, "/ws/xte/score")) == 2 and len(sandbox.server.dialect.scores) == 1


def test_a_locked_term_fails_the_item_with_the_reason(ps):
    sandbox, connection = ps
    section, (student, _), _ = _class(connection)
    sandbox.server.dialect.locked_terms.add("3600")
    participation_grade_queue(grade=_grade(connection, section, student, 80))
    assert writeback_send_due() == {"failed": 1}
    item = WriteBackItem.objects.get()
    assert "409" in item.last_error and "Term 3600 is locked" in item.last_error
    assert item.attempts == 1 and sandbox.server.dialect.scores == {}
    assert writeback_send_due() == {}  # permanent until an administrator retries


def test_resubmit_is_retried_once(ps):
    sandbox, connection = ps
    section, (first, second), _ = _class(connection)
    sandbox.inject("412", path="/ws/xte/score")
    participation_grade_queue(grade=_grade(connection, section, first, 80))
    assert writeback_send_due() == {"accepted": 1}
    assert sandbox.stats()["fault_412"] == 1 and len(sandbox.server.dialect.scores) == 1

    # A second 412 in a row is not retried again: the item fails with PowerSchool's answer.
    sandbox.inject("412", path="/ws/xte/score", times=2)
    participation_grade_queue(grade=_grade(connection, section, second, 60))
    assert writeback_send_due() == {"failed": 1}
    item = WriteBackItem.objects.get(status=OutboxStatus.FAILED)
    assert "412" in item.last_error and sandbox.stats()["fault_412"] == 3


def test_a_resubmit_on_the_assignment_is_retried_once_too(ps):
    sandbox, connection = ps
    section, (student, _), _ = _class(connection)
    sandbox.inject("412", path="/ws/xte/section/assignment")
    participation_grade_queue(grade=_grade(connection, section, student, 80))
    assert writeback_send_due() == {"accepted": 1}
    assert len(_xte(sandbox, "/ws/xte/section/assignment")) == 1  # the 412 wrote nothing


def test_a_fixed_gradebook_account_that_does_not_teach_the_section_is_refused(ps):
    sandbox, connection = ps
    section, (student, _), section_source = _class(connection)
    teacher = sandbox.state.district.get("section", section_source)["teacher"]
    other = next(
        s["teacher"]
        for s in (sandbox.state.district.item("section", i) for i in range(20))
        if s["teacher"] != teacher
    )
    connection.options = {"gradebook_users_dcid": users_dcid(other)}
    connection.save()
    participation_grade_queue(grade=_grade(connection, section, student, 80))
    assert writeback_send_due() == {"failed": 1}
    assert "not one of this teacher's" in WriteBackItem.objects.get().last_error
    assert not GradebookColumn.objects.exists()  # nothing remembered for a failed create


def test_a_teacher_without_the_category_is_a_clear_permanent_error(ps):
    _, connection = ps
    section, (student, _), _ = _class(connection)
    connection.options = {"gradebook_category": "Attendance points"}
    connection.save()
    participation_grade_queue(grade=_grade(connection, section, student, 80))
    assert writeback_send_due() == {"failed": 1}
    assert "no PowerTeacher Pro category named 'Attendance points'" in (
        WriteBackItem.objects.get().last_error
    )
