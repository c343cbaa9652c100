"""Staff access without a superuser: a district administrator invites a colleague by e-mail
(their login is created and they choose their own password through a one-time link), changes
or removes their access, and anyone locked out resets their password from the sign-in page."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import reverse

from attendance.models import Membership, MembershipRole
from tests.factories import (
    DistrictFactory,
    EnrollmentFactory,
    MembershipFactory,
    SchoolFactory,
    StudentFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

User = get_user_model()
NEW_PASSWORD = "Correct-horse-battery-42"


@pytest.fixture(autouse=True)
def _public_url(settings):
    settings.PUBLIC_BASE_URL = "https://attendance.example.org"


@pytest.fixture
def district_admin(client):
    district = DistrictFactory(name="Cedar ISD")
    user = UserFactory(username="lead", email="lead@cedar.example.org")
    MembershipFactory(user=user, district=district, role=MembershipRole.DISTRICT_ADMIN)
    client.force_login(user)
    return user, district


@pytest.fixture
def _invite(client, django_capture_on_commit_callbacks):
    """Post the invitation form; its e-mail goes out when the transaction commits."""

    def invite(**data):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(reverse("admin:attendance_membership_add"), data)

    return invite


def _link(message) -> str:
    found = re.search(r"https://attendance\.example\.org(/admin/reset/\S+/)", message.body)
    assert found, message.body
    return found.group(1)


def test_an_invited_colleague_chooses_a_password_signs_in_and_sees_their_school(
    client, district_admin, _invite
):
    _, district = district_admin
    school = SchoolFactory(district=district, name="Oak Elementary")
    student = StudentFactory(district=district, school=school, local_id="S-1")
    EnrollmentFactory(student=student, school=school)
    response = _invite(
        email=" Secretary@Cedar.Example.org ",
        district=district.pk,
        role=MembershipRole.SCHOOL_ADMIN,
        school=school.pk,
    )
    assert response.status_code == 302, response.content
    colleague = User.objects.get(email="secretary@cedar.example.org")
    assert colleague.is_staff and colleague.is_active and colleague.has_usable_password()
    assert Membership.objects.get(user=colleague).school == school
    (message,) = mail.outbox
    assert message.to == ["secretary@cedar.example.org"]
    assert "Oak Elementary (Cedar ISD) as school administrator by lead" in message.body

    # The colleague, in their own browser: the link, a password of their own, then sign in.
    client.logout()
    page = client.get(_link(message), follow=True)
    assert page.status_code == 200 and "new_password1" in page.content.decode()
    done = client.post(
        page.redirect_chain[-1][0],
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        follow=True,
    )
    assert done.status_code == 200 and "Password reset complete" in done.content.decode()
    assert client.login(username="secretary@cedar.example.org", password=NEW_PASSWORD)
    students = client.get(reverse("admin:attendance_student_changelist"))
    assert students.status_code == 200 and "S-1" in students.content.decode()
    # The link worked once.
    assert "new_password1" not in client.get(_link(message), follow=True).content.decode()


def test_someone_with_a_login_is_given_access_without_a_new_login(client, district_admin, _invite):
    _, district = district_admin
    existing = UserFactory(username="roaming", email="roaming@example.org")
    MembershipFactory(user=existing, district=DistrictFactory(), role=MembershipRole.READ_ONLY)
    response = _invite(
        email="ROAMING@example.org", district=district.pk, role=MembershipRole.READ_ONLY
    )
    assert response.status_code == 302, response.content
    assert User.objects.filter(email__iexact="roaming@example.org").count() == 1
    assert existing.memberships.count() == 2
    (message,) = mail.outbox
    assert "/admin/reset/" not in message.body and "Sign in as usual" in message.body


@pytest.mark.parametrize(
    ("role", "school", "error"),
    [
        (MembershipRole.SCHOOL_ADMIN, None, "A school administrator needs a school."),
        (MembershipRole.DISTRICT_ADMIN, "own", "leave the school empty"),
        (MembershipRole.READ_ONLY, "repeat", "already has access here"),
    ],
)
def test_an_invitation_that_does_not_fit_is_refused_and_nothing_is_created(
    client, district_admin, _invite, role, school, error
):
    lead, district = district_admin
    data = {"email": "new@example.org", "district": district.pk, "role": role}
    if school == "own":
        data["school"] = SchoolFactory(district=district).pk
    elif school == "repeat":
        data["email"] = lead.email
    users, memberships = User.objects.count(), Membership.objects.count()
    response = _invite(**data)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert (User.objects.count(), Membership.objects.count()) == (users, memberships)
    assert mail.outbox == []


def test_another_districts_school_is_not_offered(client, district_admin, _invite):
    _, district = district_admin
    elsewhere = SchoolFactory(district=DistrictFactory())
    response = _invite(
        email="new@example.org",
        district=district.pk,
        role=MembershipRole.SCHOOL_ADMIN,
        school=elsewhere.pk,
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not User.objects.filter(email="new@example.org").exists()


def test_removing_the_last_access_deactivates_the_login(client, district_admin):
    lead, district = district_admin
    leaver = UserFactory(username="leaver", email="leaver@example.org")
    leaving = MembershipFactory(user=leaver, district=district, role=MembershipRole.READ_ONLY)
    own = Membership.objects.get(user=lead)
    response = client.post(
        reverse("admin:attendance_membership_changelist"),
        {"action": "remove_access", "_selected_action": [leaving.pk, own.pk]},
        follow=True,
    )
    text = response.content.decode()
    assert "1 access(es) removed; 1 login(s) deactivated." in text
    assert "You cannot remove your own access" in text
    leaver.refresh_from_db()
    assert not leaver.is_active
    assert not Membership.objects.filter(pk=leaving.pk).exists()
    assert Membership.objects.filter(pk=own.pk).exists()


def test_a_role_change_is_checked_like_an_invitation(client, district_admin):
    _, district = district_admin
    member = MembershipFactory(user=UserFactory(), district=district, role=MembershipRole.READ_ONLY)
    response = client.post(
        reverse("admin:attendance_membership_change", args=[member.pk]),
        {"role": MembershipRole.SCHOOL_ADMIN, "school": ""},
    )
    assert response.status_code == 200
    assert "A school administrator needs a school." in response.content.decode()
    member.refresh_from_db()
    assert member.role == MembershipRole.READ_ONLY


def test_a_forgotten_password_is_reset_from_the_sign_in_page_with_a_link_to_our_site(
    client, settings
):
    settings.PASSWORD_RESET_RATE_LIMIT = "2/h"
    UserFactory(username="clerk", email="clerk@example.org")
    login = client.get(reverse("admin:login"))
    assert reverse("admin_password_reset") in login.content.decode()
    for _ in range(2):
        response = client.post(
            reverse("admin_password_reset"),
            {"email": "clerk@example.org"},
            HTTP_HOST="localhost",
        )
        assert response.status_code == 302
    # Built on PUBLIC_BASE_URL, not on the Host the request claimed.
    assert all("https://attendance.example.org/admin/reset/" in m.body for m in mail.outbox)
    assert len(mail.outbox) == 2
    # Each request sends an e-mail: a third one within the hour is refused.
    refused = client.post(reverse("admin_password_reset"), {"email": "Clerk@example.org"})
    assert refused.status_code == 429
    assert len(mail.outbox) == 2
