"""Admin forms write through the services, so their rules apply there too."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from attendance.models import (
    Enrollment,
    ExitReason,
    Guardian,
    MembershipRole,
    SectionEnrollment,
    StudentGuardian,
)
from attendance.services import attendance_record
from core.errors import ApplicationError
from tests.factories import (
    DistrictFactory,
    EnrollmentFactory,
    GuardianFactory,
    MembershipFactory,
    ParticipationGradeFactory,
    SchoolFactory,
    SectionEnrollmentFactory,
    SectionFactory,
    StudentFactory,
    StudentGuardianFactory,
    UserFactory,
    guardian_admin_form,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def district_admin(client):
    district = DistrictFactory()
    user = UserFactory()
    MembershipFactory(user=user, district=district, role=MembershipRole.DISTRICT_ADMIN)
    client.force_login(user)
    return district


def test_a_guardian_added_in_the_admin_gets_an_e164_phone(client, district_admin):
    response = client.post(
        reverse("admin:attendance_guardian_add"), guardian_admin_form(district_admin)
    )
    assert response.status_code == 302, response.content
    guardian = Guardian.objects.get(local_id="G-77")
    assert (guardian.mobile_phone_raw, guardian.mobile_phone) == ("(312) 555-0188", "+13125550188")


def test_editing_a_guardian_phone_in_the_admin_renormalises_it(client, district_admin):
    guardian = GuardianFactory(district=district_admin, local_id="G-77")
    response = client.post(
        reverse("admin:attendance_guardian_change", args=[guardian.pk]),
        guardian_admin_form(district_admin, mobile_phone_raw="312 555 0111"),
    )
    assert response.status_code == 302, response.content
    guardian.refresh_from_db()
    assert guardian.mobile_phone == "+13125550111"
    assert guardian.history.first().mobile_phone == "+13125550111"


def test_the_district_of_a_guardian_cannot_be_changed(client, district_admin):
    guardian = GuardianFactory(district=district_admin)
    other = DistrictFactory()
    client.post(
        reverse("admin:attendance_guardian_change", args=[guardian.pk]),
        guardian_admin_form(other, local_id=guardian.local_id),
    )
    guardian.refresh_from_db()
    assert guardian.district_id == district_admin.pk


# --- Guardian links ------------------------------------------------------------------------


def _link_form(**fields):
    return {
        "relationship": "parent", "contact_allowed": "on", "has_custody": "on",
        "lives_with": "on", "priority": "1", "active": "on", **fields,
    }  # fmt: skip


def test_making_a_guardian_primary_demotes_the_current_primary_one(client, district_admin):
    student = StudentFactory(district=district_admin)
    first = StudentGuardianFactory(student=student, is_primary=True)
    second = GuardianFactory(district=district_admin)
    response = client.post(
        reverse("admin:attendance_studentguardian_add"),
        _link_form(student=student.pk, guardian=second.pk, primary="on"),
    )
    assert response.status_code == 302, response.content
    first.refresh_from_db()
    assert not first.is_primary
    assert StudentGuardian.objects.get(student=student, guardian=second).is_primary
    # And back again, on the first link's own page.
    response = client.post(
        reverse("admin:attendance_studentguardian_change", args=[first.pk]),
        _link_form(primary="on"),
    )
    assert response.status_code == 302, response.content
    primaries = StudentGuardian.objects.filter(student=student, is_primary=True)
    assert list(primaries.values_list("guardian_id", flat=True)) == [first.guardian_id]


def test_a_guardian_of_another_district_is_not_linked(client, district_admin):
    other = DistrictFactory()
    user = UserFactory()
    MembershipFactory(user=user, district=district_admin, role=MembershipRole.DISTRICT_ADMIN)
    MembershipFactory(user=user, district=other, role=MembershipRole.DISTRICT_ADMIN)
    client.force_login(user)
    student = StudentFactory(district=district_admin)
    stranger = GuardianFactory(district=other)
    response = client.post(
        reverse("admin:attendance_studentguardian_add"),
        _link_form(student=student.pk, guardian=stranger.pk),
    )
    assert response.status_code == 200
    assert "only be linked to students of the same district" in response.content.decode()
    assert not StudentGuardian.objects.filter(student=student).exists()


# --- Enrollment spans ----------------------------------------------------------------------


@pytest.fixture
def enrolled(district_admin):
    school = SchoolFactory(district=district_admin)
    student = StudentFactory(district=district_admin, school=school)
    span = EnrollmentFactory(student=student, school=school, entry_date=dt.date(2026, 8, 17))
    section = SectionFactory(school=school)
    SectionEnrollmentFactory(section=section, student=student, entry_date=dt.date(2026, 8, 17))
    return span


def test_closing_the_primary_span_in_the_admin_withdraws_the_student(client, enrolled):
    response = client.post(
        reverse("admin:attendance_enrollment_change", args=[enrolled.pk]),
        {"exit_date": "2026-10-02", "exit_reason": ExitReason.WITHDRAWN},
    )
    assert response.status_code == 302, response.content
    enrolled.refresh_from_db()
    student = enrolled.student
    student.refresh_from_db()
    assert enrolled.exit_date == dt.date(2026, 10, 2)
    assert (student.active, student.school_id) == (False, None)
    span = SectionEnrollment.objects.get(student=student)
    assert span.exit_date == dt.date(2026, 10, 2)
    # No attendance is expected after the exit.
    with pytest.raises(ApplicationError, match="not enrolled"):
        attendance_record(student=student, date=dt.date(2026, 10, 5), status="absent")
    # A closed span stays closed: its page offers nothing to save.
    page = client.get(reverse("admin:attendance_enrollment_change", args=[enrolled.pk]))
    assert 'name="exit_date"' not in page.content.decode()


def test_an_exit_before_the_entry_is_refused(client, enrolled):
    response = client.post(
        reverse("admin:attendance_enrollment_change", args=[enrolled.pk]),
        {"exit_date": "2026-08-01", "exit_reason": ExitReason.WITHDRAWN},
    )
    assert response.status_code == 200
    assert "The exit date is before the entry date." in response.content.decode()
    enrolled.refresh_from_db()
    assert enrolled.exit_date is None and enrolled.student.active


def test_a_second_primary_school_is_refused_then_accepted_after_the_first_closes(client, enrolled):
    student, other = enrolled.student, SchoolFactory(district=enrolled.school.district)
    form = {
        "student": student.pk, "school": other.pk, "entry_date": "2026-10-05",
        "grade_level": "", "is_primary": "on",
    }  # fmt: skip
    response = client.post(reverse("admin:attendance_enrollment_add"), form)
    assert response.status_code == 200
    assert "transfer instead" in response.content.decode()
    client.post(
        reverse("admin:attendance_enrollment_change", args=[enrolled.pk]),
        {"exit_date": "2026-10-02", "exit_reason": ExitReason.TRANSFERRED},
    )
    response = client.post(reverse("admin:attendance_enrollment_add"), form)
    assert response.status_code == 302, response.content
    student.refresh_from_db()
    assert (student.active, student.school_id) == (True, other.pk)
    assert Enrollment.objects.filter(student=student).count() == 2


# --- Participation grades --------------------------------------------------------------------


def test_participation_grades_are_computed_not_typed(client, district_admin):
    grade = ParticipationGradeFactory(section__school__district=district_admin)
    assert client.get(reverse("admin:attendance_participationgrade_add")).status_code == 403
    page = client.get(reverse("admin:attendance_participationgrade_change", args=[grade.pk]))
    assert page.status_code == 200
    assert 'name="value"' not in page.content.decode()
