from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from attendance.models import ApiAccessLog
from gateway.inbound.api_keys import api_key_authenticate, api_key_create, key_hash
from gateway.models import ApiKey, OAuthClient
from tests.factories import DistrictFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client():
    user = get_user_model().objects.create_superuser("root", "root@example.org", "pw")
    browser = Client()
    browser.force_login(user)
    return browser


def test_admin_creates_a_key_and_shows_it_once(admin_client):
    district = DistrictFactory()
    response = admin_client.post(
        "/admin/gateway/apikey/add/",
        {
            "district": district.pk,
            "name": "Gradebook",
            "environment": "live",
            "scopes": ["roster:read", "attendance:read"],
        },
    )
    assert response.status_code == 200
    shown = re.search(r"sas_live_[A-Za-z0-9]{8}_[A-Za-z0-9]{32}", response.content.decode())
    assert shown is not None
    key = ApiKey.objects.get()
    assert key.key_hash == key_hash(shown.group(0))
    assert key.scopes == ["attendance:read", "roster:read"]
    assert "no-store" in response["Cache-Control"]
    listing = admin_client.get("/admin/gateway/apikey/").content.decode()
    assert key.prefix in listing
    assert shown.group(0) not in listing
    change = admin_client.get(f"/admin/gateway/apikey/{key.pk}/change/").content.decode()
    assert shown.group(0) not in change
    assert key.key_hash not in change


def test_admin_rotate_action_asks_for_a_grace_period(admin_client):
    issued = api_key_create(district=DistrictFactory(), name="lms", scopes=["roster:read"])
    data = {"action": "rotate_keys", "_selected_action": [issued.api_key.pk]}
    form = admin_client.post("/admin/gateway/apikey/", data)
    assert b"grace_hours" in form.content
    done = admin_client.post("/admin/gateway/apikey/", {**data, "apply": "1", "grace_hours": "1"})
    new_key = re.search(r"sas_live_[A-Za-z0-9]{8}_[A-Za-z0-9]{32}", done.content.decode())
    assert new_key is not None
    assert api_key_authenticate(plaintext=new_key.group(0)) is not None
    assert api_key_authenticate(plaintext=issued.plaintext) is not None  # within the grace
    assert ApiKey.objects.get(pk=issued.api_key.pk).expires_at is not None


def test_admin_creates_an_oauth_client_and_shows_the_secret_once(admin_client):
    district = DistrictFactory()
    response = admin_client.post(
        "/admin/gateway/oauthclient/add/",
        {"district": district.pk, "name": "Classroom", "allowed_scopes": ["roster:read"]},
    )
    assert response.status_code == 200
    link = OAuthClient.objects.get()
    assert link.application.client_id in response.content.decode()
    assert link.allowed_scopes == ["roster:read"]
    # DOT keeps only a hash of the secret.
    assert link.application.client_secret.startswith("pbkdf2_") or "$" in (
        link.application.client_secret
    )


def test_access_log_admin_is_scoped_to_the_members_district():
    mine, theirs = DistrictFactory(), DistrictFactory()
    for district in (mine, theirs):
        ApiAccessLog.objects.create(
            district=district,
            client_kind="api_key",
            client_id=f"sas_live_{district.pk:08d}",
            endpoint="api/v1/students/",
            student_count=1,
            student_ids=[1],
        )
    user = UserFactory()
    MembershipFactory(user=user, district=mine)
    browser = Client()
    browser.force_login(user)
    page = browser.get("/admin/attendance/apiaccesslog/").content.decode()
    assert f"sas_live_{mine.pk:08d}" in page
    assert f"sas_live_{theirs.pk:08d}" not in page
