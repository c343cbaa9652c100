"""Every admin page shows only what the user's memberships allow."""

from __future__ import annotations

import pytest
from django.urls import reverse

from attendance.models import Guardian, MembershipRole
from tests.factories import (
    AttendanceRecordFactory,
    EnrollmentFactory,
    MembershipFactory,
    SchoolFactory,
    SectionFactory,
    StaffFactory,
    StudentFactory,
    StudentGuardianFactory,
    UserFactory,
    guardian_admin_form,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_schools():
    school_a = SchoolFactory(name="School A")
    school_b = SchoolFactory(name="School B", district=school_a.district)
    student_a = StudentFactory(district=school_a.district, local_id="A-001")
    student_b = StudentFactory(district=school_a.district, local_id="B-001")
    EnrollmentFactory(student=student_a, school=school_a)
    EnrollmentFactory(student=student_b, school=school_b)
    return school_a, school_b, student_a, student_b


def _login(client, membership_kwargs):
    user = UserFactory()
    MembershipFactory(user=user, **membership_kwargs)
    client.force_login(user)
    return user


def test_a_school_admin_sees_only_their_schools_students(client, two_schools):
    school_a, _, student_a, student_b = two_schools
    _login(
        client,
        {"district": school_a.district, "school": school_a, "role": MembershipRole.SCHOOL_ADMIN},
    )
    page = client.get(reverse("admin:attendance_student_changelist"))
    assert page.status_code == 200
    assert student_a.local_id in page.text
    assert student_b.local_id not in page.text
    # Guessing the other school's student's URL does not open it.
    other = client.get(reverse("admin:attendance_student_change", args=[student_b.pk]))
    assert other.status_code == 302
    assert (
        client.get(reverse("admin:attendance_student_change", args=[student_a.pk])).status_code
        == 200
    )


def test_school_scoping_covers_guardians_and_attendance(client, two_schools):
    school_a, school_b, student_a, student_b = two_schools
    guardian_a = StudentGuardianFactory(student=student_a, guardian__last_name="Aguardian").guardian
    guardian_b = StudentGuardianFactory(student=student_b, guardian__last_name="Bguardian").guardian
    AttendanceRecordFactory(school=school_a, student=student_a, comment="visible-note")
    AttendanceRecordFactory(school=school_b, student=student_b, comment="hidden-note")
    _login(
        client,
        {"district": school_a.district, "school": school_a, "role": MembershipRole.SCHOOL_ADMIN},
    )
    guardians = client.get(reverse("admin:attendance_guardian_changelist")).text
    assert guardian_a.last_name in guardians
    assert guardian_b.last_name not in guardians
    records = client.get(reverse("admin:attendance_attendancerecord_changelist")).text
    assert student_a.local_id in records
    assert student_b.local_id not in records


def test_a_district_admin_sees_their_district_only(client, two_schools):
    school_a, _, student_a, student_b = two_schools
    outsider = StudentFactory(local_id="OTHER-DISTRICT")
    EnrollmentFactory(student=outsider)
    _login(client, {"district": school_a.district, "role": MembershipRole.DISTRICT_ADMIN})
    page = client.get(reverse("admin:attendance_student_changelist")).text
    assert student_a.local_id in page
    assert student_b.local_id in page
    assert "OTHER-DISTRICT" not in page


def test_a_read_only_member_cannot_change_anything(client, two_schools):
    school_a, _, student_a, _ = two_schools
    _login(client, {"district": school_a.district, "role": MembershipRole.READ_ONLY})
    assert client.get(reverse("admin:attendance_student_changelist")).status_code == 200
    response = client.post(
        reverse("admin:attendance_student_change", args=[student_a.pk]),
        {"legal_first_name": "Changed"},
    )
    assert response.status_code == 403
    student_a.refresh_from_db()
    assert student_a.legal_first_name != "Changed"
    assert client.get(reverse("admin:attendance_student_add")).status_code == 403


def test_a_school_admin_cannot_change_district_reference_data(client, two_schools):
    school_a = two_schools[0]
    _login(
        client,
        {"district": school_a.district, "school": school_a, "role": MembershipRole.SCHOOL_ADMIN},
    )
    assert client.get(reverse("admin:attendance_term_changelist")).status_code == 200
    assert client.get(reverse("admin:attendance_term_add")).status_code == 403


def test_form_choices_offer_only_visible_schools(client, two_schools):
    school_a, school_b, _, _ = two_schools
    _login(
        client,
        {"district": school_a.district, "school": school_a, "role": MembershipRole.SCHOOL_ADMIN},
    )
    form = client.get(reverse("admin:attendance_enrollment_add")).text
    assert "School A" in form
    assert "School B" not in form


def test_a_staff_user_without_membership_sees_nothing(client, two_schools):
    client.force_login(UserFactory())
    index = client.get(reverse("admin:index"))
    assert index.status_code == 200
    assert "Students" not in index.text
    assert client.get(reverse("admin:attendance_student_changelist")).status_code == 403


def test_student_data_cannot_be_hard_deleted_in_the_admin(client, two_schools):
    school_a, _, student_a, _ = two_schools
    _login(client, {"district": school_a.district, "role": MembershipRole.DISTRICT_ADMIN})
    response = client.get(reverse("admin:attendance_student_delete", args=[student_a.pk]))
    assert response.status_code == 403


@pytest.fixture
def admin_here_reader_there(client):
    """A user who administers one district and may only look at another (both memberships)."""
    here, there = SchoolFactory(name="Here School"), SchoolFactory(name="There School")
    user = UserFactory()
    MembershipFactory(user=user, district=here.district, role=MembershipRole.DISTRICT_ADMIN)
    MembershipFactory(user=user, district=there.district, role=MembershipRole.READ_ONLY)
    client.force_login(user)
    return here, there


def test_with_mixed_memberships_only_the_administered_districts_rows_can_be_changed(
    client, admin_here_reader_there
):
    here, there = admin_here_reader_there
    mine = StudentFactory(district=here.district, legal_first_name="Mine")
    theirs = StudentFactory(district=there.district, legal_first_name="Theirs")
    EnrollmentFactory(student=mine, school=here)
    EnrollmentFactory(student=theirs, school=there)

    listing = client.get(reverse("admin:attendance_student_changelist")).text
    assert mine.local_id in listing and theirs.local_id in listing  # both seen

    theirs_page = client.get(reverse("admin:attendance_student_change", args=[theirs.pk]))
    assert theirs_page.status_code == 200
    assert 'name="_save"' not in theirs_page.text  # a page to look at, not a form to save
    mine_page = client.get(reverse("admin:attendance_student_change", args=[mine.pk]))
    assert 'name="_save"' in mine_page.text

    refused = client.post(
        reverse("admin:attendance_student_change", args=[theirs.pk]),
        {"legal_first_name": "Changed"},
    )
    assert refused.status_code == 403
    theirs.refresh_from_db()
    assert theirs.legal_first_name == "Theirs"


def test_with_mixed_memberships_a_form_cannot_put_a_record_in_the_read_only_district(
    client, admin_here_reader_there
):
    here, there = admin_here_reader_there
    refused = client.post(
        reverse("admin:attendance_guardian_add"),
        guardian_admin_form(there.district, local_id="G-1"),
    )
    assert refused.status_code == 403
    assert "You may not put this record where you cannot change it." in refused.text
    assert not Guardian.objects.filter(local_id="G-1").exists()  # rolled back, history too
    assert not Guardian.history.filter(local_id="G-1").exists()

    added = client.post(
        reverse("admin:attendance_guardian_add"), guardian_admin_form(here.district, local_id="G-2")
    )
    assert added.status_code == 302, added.content
    assert Guardian.objects.get(local_id="G-2").district_id == here.district_id


def test_with_mixed_memberships_form_choices_offer_only_schools_the_user_administers(
    client, admin_here_reader_there
):
    form = client.get(reverse("admin:attendance_enrollment_add")).text
    assert "Here School" in form
    assert "There School" not in form


def test_list_filters_name_only_the_users_own_schools_and_districts(client, two_schools):
    school_a, _, _, _ = two_schools
    elsewhere = SchoolFactory(name="Elsewhere High", district__name="Faraway Unified")
    EnrollmentFactory(student=StudentFactory(district=elsewhere.district), school=elsewhere)
    _login(client, {"district": school_a.district, "role": MembershipRole.DISTRICT_ADMIN})
    for name in ("attendance_student", "attendance_enrollment", "attendance_term"):
        page = client.get(reverse(f"admin:{name}_changelist")).text
        assert "Elsewhere High" not in page, name
        assert "Faraway Unified" not in page, name
    students = client.get(reverse("admin:attendance_student_changelist")).text
    assert "School A" in students  # the filter still offers the user's own schools


def test_many_to_many_choices_offer_only_the_users_rows(client, two_schools):
    school_a, _, _, _ = two_schools
    elsewhere = SchoolFactory(name="Elsewhere High", district__name="Faraway Unified")
    SectionFactory(school=elsewhere, course__code="FARAWAY101")
    SectionFactory(school=school_a, course__code="HERE101")
    _login(client, {"district": school_a.district, "role": MembershipRole.DISTRICT_ADMIN})
    for name in ("notifications_bulknotice_add", "attendance_staff_add"):
        form = client.get(reverse(f"admin:{name}")).text
        assert "School A" in form, name
        assert "Elsewhere High" not in form and "FARAWAY101" not in form, name
    notice_form = client.get(reverse("admin:notifications_bulknotice_add")).text
    assert "HERE101-" in notice_form  # the section's label: its course code, number


def test_saving_a_form_keeps_links_to_rows_it_could_not_offer(client, two_schools):
    school_a, school_b, _, _ = two_schools
    teacher = StaffFactory(district=school_a.district, last_name="Both")
    teacher.schools.set([school_a, school_b])
    _login(
        client,
        {"district": school_a.district, "school": school_a, "role": MembershipRole.SCHOOL_ADMIN},
    )
    url = reverse("admin:attendance_staff_change", args=[teacher.pk])
    assert "School B" not in client.get(url).text  # not this administrator's to offer
    answer = client.post(
        url,
        {
            "district": school_a.district.pk, "local_id": teacher.local_id,
            "first_name": "Renamed", "last_name": "Both", "role": teacher.role,
            "schools": [school_a.pk], "active": "on",
        },
    )  # fmt: skip
    assert answer.status_code == 302, answer.text[:3000]
    teacher.refresh_from_db()
    assert teacher.first_name == "Renamed"
    assert set(teacher.schools.all()) == {school_a, school_b}  # B kept, not dropped


def test_a_guardians_page_leads_to_their_contact_points_and_notifications(client, two_schools):
    school_a, _, student_a, _ = two_schools
    _login(
        client,
        {"district": school_a.district, "school": school_a, "role": MembershipRole.SCHOOL_ADMIN},
    )
    guardian = StudentGuardianFactory(student=student_a).guardian
    other = StudentGuardianFactory(student=student_a).guardian
    page = client.get(reverse("admin:attendance_guardian_change", args=[guardian.pk])).text
    url = reverse("admin:notifications_contactpoint_changelist")
    link = f"{url}?guardian__id__exact={guardian.pk}"
    assert f'href="{link}"' in page
    assert (
        f'href="{reverse("admin:notifications_notification_changelist")}?guardian__id__exact='
        in page
    )
    # The roster's phone and e-mail are there as the guardian's contact points, only theirs.
    listed = client.get(link)
    assert listed.status_code == 200
    points = list(listed.context["cl"].result_list)
    assert {(p.guardian_id, p.kind) for p in points} == {
        (guardian.pk, "sms"),
        (guardian.pk, "email"),
    }
    assert other.pk not in {p.guardian_id for p in points}
