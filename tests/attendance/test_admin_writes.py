"""Admin forms write through the services, so their rules apply there too."""

from __future__ import annotations

import pytest
from django.urls import reverse

from attendance.models import Guardian, MembershipRole
from tests.factories import (
    DistrictFactory,
    GuardianFactory,
    MembershipFactory,
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
