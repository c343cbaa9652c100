"""The database refuses impossible states, whatever code path tries to write them."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, transaction

from attendance.models import Enrollment, ExitReason, Membership, MembershipRole, SectionEnrollment
from tests.factories import (
    AttendanceRecordFactory,
    EnrollmentFactory,
    GuardianFactory,
    ParticipationGradeFactory,
    SchoolFactory,
    SectionFactory,
    StaffFactory,
    StudentFactory,
    StudentGuardianFactory,
    TermFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def _refused(create) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        create()


def test_it_refuses_two_students_with_one_local_id_in_a_district():
    student = StudentFactory()
    _refused(lambda: StudentFactory(district=student.district, local_id=student.local_id))


def test_it_allows_the_same_local_id_in_another_district():
    student = StudentFactory()
    other = StudentFactory(local_id=student.local_id)
    assert other.district_id != student.district_id


def test_it_refuses_an_empty_student_local_id():
    _refused(lambda: StudentFactory(local_id=""))


def test_it_refuses_an_enrollment_that_ends_before_it_starts():
    _refused(
        lambda: EnrollmentFactory(
            entry_date=dt.date(2026, 9, 1),
            exit_date=dt.date(2026, 8, 1),
            exit_reason=ExitReason.WITHDRAWN,
        )
    )


def test_it_refuses_a_closed_enrollment_without_a_reason():
    _refused(lambda: EnrollmentFactory(exit_date=dt.date(2026, 9, 30)))


def test_it_refuses_two_open_primary_enrollments():
    first = EnrollmentFactory()
    other_school = SchoolFactory(district=first.student.district)
    _refused(lambda: EnrollmentFactory(student=first.student, school=other_school))


def test_it_allows_a_new_span_after_the_old_one_closed():
    first = EnrollmentFactory(exit_date=dt.date(2026, 10, 1), exit_reason=ExitReason.WITHDRAWN)
    again = EnrollmentFactory(
        student=first.student, school=first.school, entry_date=dt.date(2026, 11, 2)
    )
    assert Enrollment.objects.filter(student=first.student).count() == 2
    assert again.is_open


def test_it_refuses_a_section_enrollment_whose_person_does_not_match_its_role():
    section = SectionFactory()
    student = StudentFactory(district=section.school.district)
    teacher = StaffFactory(district=section.school.district)
    _refused(
        lambda: SectionEnrollment.objects.create(
            section=section, role="teacher", student=student, entry_date=dt.date(2026, 9, 1)
        )
    )
    _refused(
        lambda: SectionEnrollment.objects.create(
            section=section, role="student", staff=teacher, entry_date=dt.date(2026, 9, 1)
        )
    )


def test_it_refuses_two_daily_attendance_records_for_one_student_and_date():
    record = AttendanceRecordFactory()
    _refused(
        lambda: AttendanceRecordFactory(
            school=record.school, student=record.student, date=record.date
        )
    )


def test_it_allows_one_record_per_section_beside_the_daily_one():
    record = AttendanceRecordFactory()
    section = SectionFactory(school=record.school)
    AttendanceRecordFactory(
        school=record.school, student=record.student, date=record.date, section=section
    )
    _refused(
        lambda: AttendanceRecordFactory(
            school=record.school, student=record.student, date=record.date, section=section
        )
    )


def test_it_refuses_a_participation_grade_outside_0_to_100():
    _refused(lambda: ParticipationGradeFactory(value=101))


def test_it_refuses_a_term_that_ends_before_it_starts():
    _refused(lambda: TermFactory(start_date=dt.date(2026, 9, 1), end_date=dt.date(2026, 8, 1)))


def test_it_refuses_a_non_e164_normalised_phone():
    _refused(lambda: GuardianFactory(mobile_phone="312-555-0100"))


def test_it_refuses_two_primary_guardians_for_a_student():
    link = StudentGuardianFactory(is_primary=True)
    _refused(lambda: StudentGuardianFactory(student=link.student, is_primary=True))


def test_it_refuses_a_school_admin_membership_without_a_school():
    user = UserFactory()
    school = SchoolFactory()
    _refused(
        lambda: Membership.objects.create(
            user=user, district=school.district, role=MembershipRole.SCHOOL_ADMIN
        )
    )
