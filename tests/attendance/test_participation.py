"""Participation grades (rule attendance-share-v1) computed from attendance on real
PostgreSQL: the rule case by case, set-based statements, history and write-back queueing only
for real changes, the command, the nightly schedule and the admin action."""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection as db
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from attendance.models import AttendanceStatus, ParticipationGrade, TermKind
from attendance.services_participation import (
    RULE,
    grading_periods_due,
    participation_grades_compute,
)
from core.errors import ApplicationError
from sis.models import SISConnection
from syncing.models import SourceLink, WriteBackItem
from tests.factories import (
    AttendanceRecordFactory,
    DistrictFactory,
    SchoolFactory,
    SectionEnrollmentFactory,
    SectionFactory,
    StudentFactory,
    TermFactory,
    UserFactory,
)

P = AttendanceStatus
START = dt.date(2026, 9, 1)  # a Tuesday; the grading period runs through October


@pytest.fixture
def world(db):
    district = DistrictFactory()
    school = SchoolFactory(district=district)
    year = TermFactory(district=district)
    period = TermFactory(
        district=district,
        parent=year,
        kind=TermKind.GRADING_PERIOD,
        name="Q1",
        start_date=START,
        end_date=dt.date(2026, 10, 31),
    )
    section = SectionFactory(school=school, term=year)
    return {"district": district, "school": school, "year": year, "period": period, "s": section}


def _student(world, section=None, **span):
    section = section or world["s"]
    enrollment = SectionEnrollmentFactory(
        section=section,
        student=StudentFactory(district=world["district"]),
        entry_date=span.get("entry_date", dt.date(2026, 8, 17)),
        exit_date=span.get("exit_date"),
    )
    return enrollment.student


def _records(world, student, statuses, *, section=None, start=START):
    section = world["s"] if section is None else section
    for n, status in enumerate(statuses):
        AttendanceRecordFactory(
            school=world["school"],
            student=student,
            section=section,
            date=start + dt.timedelta(days=n),
            status=status,
        )


def _grade(world, student, section=None):
    return (
        ParticipationGrade.objects.filter(
            student=student, section=section or world["s"], grading_period=world["period"]
        )
        .values_list("value", flat=True)
        .first()
    )


def _compute(world, **kwargs):
    return participation_grades_compute(grading_period=world["period"], **kwargs)


# --- the rule, case by case ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([P.PRESENT] * 4, "100.00"),
        ([P.PRESENT] * 3 + [P.ABSENT], "75.00"),
        ([P.ABSENT] * 2, "0.00"),
        ([P.PRESENT, P.TARDY], "75.00"),  # tardy: half credit by default
        ([P.PRESENT, P.EARLY_DEPARTURE], "75.00"),  # early departure: same partial credit
        ([P.PRESENT, P.EXCUSED_TARDY], "100.00"),  # an excused tardy is full credit
        ([P.SCHOOL_ACTIVITY, P.ABSENT], "50.00"),  # a school activity counts as present
        ([P.PRESENT, P.EXCUSED_ABSENCE], "100.00"),  # excused: out of the denominator
        ([P.ABSENT, P.EXCUSED_ABSENCE, P.PRESENT], "50.00"),
        ([P.PRESENT, P.PRESENT, P.ABSENT], "66.67"),  # rounded to two decimals
        ([P.TARDY, P.TARDY, P.PRESENT], "66.67"),
    ],
)
def test_it_grades_the_share_of_meetings_attended(world, statuses, expected):
    student = _student(world)
    _records(world, student, statuses)
    _compute(world)
    grade = ParticipationGrade.objects.get(student=student)
    assert grade.value == Decimal(expected)
    assert grade.rule == RULE and grade.grading_period == world["period"]


def test_the_tardy_credit_is_a_setting(world, settings):
    settings.PARTICIPATION_TARDY_CREDIT = "0.25"
    student = _student(world)
    _records(world, student, [P.PRESENT, P.TARDY])
    _compute(world)
    assert _grade(world, student) == Decimal("62.50")


def test_a_tardy_credit_outside_zero_to_one_is_refused(world, settings):
    settings.PARTICIPATION_TARDY_CREDIT = "1.5"
    _records(world, _student(world), [P.PRESENT])
    with pytest.raises(ApplicationError, match="between 0 and 1"):
        _compute(world)
    assert not ParticipationGrade.objects.exists()


def test_only_excused_absences_give_no_grade(world):
    student = _student(world)
    _records(world, student, [P.EXCUSED_ABSENCE] * 3)
    assert _compute(world).computed == 0
    assert _grade(world, student) is None


def test_a_student_with_no_records_gets_no_grade(world):
    _records(world, _student(world), [P.PRESENT])
    silent = _student(world)
    _compute(world)
    assert _grade(world, silent) is None
    assert ParticipationGrade.objects.count() == 1


def test_records_outside_the_period_other_sections_and_daily_records_do_not_count(world):
    student = _student(world)
    other = SectionFactory(school=world["school"], term=world["year"])
    SectionEnrollmentFactory(section=other, student=student)
    _records(world, student, [P.PRESENT])
    _records(world, student, [P.ABSENT], start=dt.date(2026, 8, 31))  # the day before
    _records(world, student, [P.ABSENT], start=dt.date(2026, 11, 2))  # after the period
    _records(world, student, [P.ABSENT], section=other, start=dt.date(2026, 9, 2))
    AttendanceRecordFactory(
        school=world["school"], student=student, section=None, date=START, status=P.ABSENT
    )
    _compute(world)
    assert _grade(world, student) == Decimal("100.00")
    assert _grade(world, student, other) == Decimal("0.00")  # its own grade, apart


def test_only_students_enrolled_in_the_section_during_the_period_are_graded(world):
    left_before = _student(world, entry_date=dt.date(2026, 8, 17), exit_date=dt.date(2026, 8, 28))
    never = StudentFactory(district=world["district"])
    joined_late = _student(world, entry_date=dt.date(2026, 10, 1))
    for student in (left_before, never, joined_late):
        _records(world, student, [P.PRESENT, P.ABSENT], start=dt.date(2026, 10, 5))
    _compute(world)
    assert _grade(world, left_before) is None and _grade(world, never) is None
    assert _grade(world, joined_late) == Decimal("50.00")


def test_sections_whose_term_does_not_overlap_the_period_are_not_graded(world):
    spring = TermFactory(
        district=world["district"],
        kind=TermKind.SEMESTER,
        start_date=dt.date(2027, 1, 5),
        end_date=dt.date(2027, 6, 4),
    )
    spring_section = SectionFactory(school=world["school"], term=spring)
    student = _student(world, section=spring_section)
    _records(world, student, [P.PRESENT], section=spring_section)
    assert _compute(world).sections == 1  # only the year-long section overlaps Q1
    assert _grade(world, student, spring_section) is None


def test_a_section_of_another_district_is_refused(world):
    foreign = SectionFactory()
    with pytest.raises(ApplicationError, match="same district"):
        _compute(world, sections=[foreign])


# --- set-based, history only for real changes, queueing only changed values --------------------


def _class(world, students, days=10):
    """``students`` students with ``days`` meetings each: every fifth one absent."""
    people = [_student(world) for _ in range(students)]
    for i, student in enumerate(people):
        _records(world, student, [P.ABSENT if (i + d) % 5 == 0 else P.PRESENT for d in range(days)])
    return people


def _statements(world, **kwargs):
    with CaptureQueriesContext(db) as queries:
        result = _compute(world, sections=[world["s"]], **kwargs)
    return result, len(queries.captured_queries)


def test_a_section_is_computed_in_a_bounded_number_of_statements(world):
    small_world = {**world, "s": SectionFactory(school=world["school"], term=world["year"])}
    _class(small_world, 3)
    _class(world, 40)

    small, small_count = _statements(small_world)
    result, count = _statements(world)
    assert (small.created, result.created) == (3, 40)
    # district check, the upsert, two history inserts, the outbox receiver's lookups and
    # savepoints: the same for 3 students as for 40.
    assert count == small_count <= 10, count


def test_an_unchanged_recompute_writes_nothing_and_queues_nothing(world):
    connection = SISConnection.objects.create(
        district=world["district"], name="OR", provider="oneroster-1.2", base_url="http://x"
    )
    people = _class(world, 5)
    for entity, obj in [("section", world["s"]), *[("student", s) for s in people]]:
        SourceLink.objects.create(
            district=world["district"],
            connection=connection,
            entity=entity,
            source_id=f"{entity}-{obj.pk}",
            object_id=obj.pk,
            content_hash="x",
        )
    first = _compute(world)
    assert (first.created, first.updated, first.queued) == (5, 0, 5)
    history = ParticipationGrade.history.count()
    assert history == 5
    assert WriteBackItem.objects.filter(entity="participation_grade").count() == 5
    before = dict(ParticipationGrade.objects.values_list("pk", "updated_at"))

    again, count = _statements(world)
    assert (again.computed, again.created, again.updated, again.unchanged) == (5, 0, 0, 5)
    assert again.queued == 0 and count <= 4  # district check, upsert, savepoint and release
    assert ParticipationGrade.history.count() == history
    assert dict(ParticipationGrade.objects.values_list("pk", "updated_at")) == before

    # One absence becomes present: exactly that grade changes, gets history and is queued.
    record = people[0].attendance.filter(status=P.ABSENT).first()
    record.status = P.PRESENT
    record.save()
    changed = _compute(world)
    assert (changed.updated, changed.unchanged, changed.queued) == (1, 4, 1)
    assert ParticipationGrade.history.count() == history + 1
    assert ParticipationGrade.history.filter(history_type="~").get().student_id == people[0].pk
    item = WriteBackItem.objects.get(object_id=_grade_id(world, people[0]))
    assert item.status == "pending" and item.value["score"] == "90.00"  # 9 of 10
    assert item.value["section"] == f"section-{world['s'].pk}"


def _grade_id(world, student):
    return ParticipationGrade.objects.get(student=student, grading_period=world["period"]).pk


def test_a_dry_run_counts_and_writes_nothing(world):
    _class(world, 4)
    result = _compute(world, dry_run=True)
    assert (result.computed, result.created, result.dry_run) == (4, 4, True)
    assert not ParticipationGrade.objects.exists()
    _compute(world)
    assert _compute(world, dry_run=True).unchanged == 4


# --- entry points -------------------------------------------------------------------------------


def test_the_command_prints_json_lines(world):
    _class(world, 3)
    out = io.StringIO()
    call_command(
        "participation_grades", "compute", "--term", str(world["period"].pk), "--json", stdout=out
    )
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["progress", "period", "summary"]
    assert lines[0] == {"event": "progress", "sections_done": 1, "sections_total": 1}
    assert lines[1]["grading_period_id"] == world["period"].pk and lines[1]["created"] == 3
    summary = lines[-1]
    assert (summary["grading_periods"], summary["computed"], summary["created"]) == (1, 3, 3)
    assert summary["dry_run"] is False
    assert ParticipationGrade.objects.count() == 3

    out = io.StringIO()
    call_command(
        "participation_grades",
        "compute",
        "--district",
        world["district"].name,
        "--term",
        str(world["period"].pk),
        "--dry-run",
        "--json",
        stdout=out,
    )
    summary = json.loads(out.getvalue().splitlines()[-1])
    assert (summary["unchanged"], summary["created"], summary["dry_run"]) == (3, 0, True)


def test_the_command_refuses_an_unknown_district_or_term(world):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No district named"):
        call_command("participation_grades", "compute", "--district", "Nowhere")
    other = DistrictFactory()
    with pytest.raises(CommandError, match="No term"):
        call_command(
            "participation_grades",
            "compute",
            "--district",
            other.name,
            "--term",
            str(world["period"].pk),
        )


def test_the_nightly_run_takes_leaf_periods_in_progress_or_just_ended(world):
    due = set(grading_periods_due(district=world["district"], on=dt.date(2026, 11, 10)))
    assert due == {world["period"]}  # ended 10 days ago; the year has a child, so not a leaf
    assert not grading_periods_due(district=world["district"], on=dt.date(2026, 12, 1)).exists()
    assert not grading_periods_due(district=world["district"], on=dt.date(2026, 8, 20)).exists()


def test_the_nightly_task_is_scheduled_and_computes(world, settings):
    from django_celery_beat.models import PeriodicTask

    from attendance.tasks import participation_grades_nightly
    from core.periodic import schedules_install

    schedules_install()
    beat = PeriodicTask.objects.get(name="system:participation-grades")
    assert beat.task == participation_grades_nightly.name
    assert (beat.crontab.minute, beat.crontab.hour) == ("40", "2")

    settings.PARTICIPATION_GRACE_DAYS = 100_000  # so Q1 2026 is "just ended" whenever this runs
    _class(world, 2)
    totals = participation_grades_nightly.apply().get()
    assert totals["created"] == 2 and totals["grading_periods"] >= 1
    assert participation_grades_nightly.apply().get()["created"] == 0


def test_the_admin_action_computes_the_selected_terms(world, client):
    _class(world, 2)
    client.force_login(UserFactory(username="root", is_superuser=True))
    response = client.post(
        reverse("admin:attendance_term_changelist"),
        {"action": "compute_participation_grades", "_selected_action": [world["period"].pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert b"2 grades in 1 grading periods: 2 new" in response.content
    assert ParticipationGrade.objects.count() == 2
