from __future__ import annotations

import base64

import pytest
from django.test import Client
from oauth2_provider.models import AccessToken
from rest_framework.test import APIClient

from gateway.inbound.oauth import oauth_client_create
from tests.factories import DistrictFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def oauth_client():
    district = DistrictFactory(name="OAuth District")
    link, secret = oauth_client_create(
        district=district, name="Classroom app", scopes=["roster:read", "attendance:read"]
    )
    return link, secret


def _token(link, secret, scope=None):
    data = {"grant_type": "client_credentials"}
    if scope is not None:
        data["scope"] = scope
    auth = base64.b64encode(f"{link.application.client_id}:{secret}".encode()).decode()
    return Client().post("/o/token/", data, HTTP_AUTHORIZATION=f"Basic {auth}")


def test_client_credentials_token_reads_with_its_scopes(oauth_client):
    link, secret = oauth_client
    response = _token(link, secret, "roster:read")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["expires_in"] <= 3600
    assert body["scope"] == "roster:read"
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    listed = api.get("/api/v1/districts/")
    assert listed.status_code == 200
    assert listed.json()["results"][0]["id"] == link.district_id
    assert api.get("/api/v1/attendance/").status_code == 403  # not in the token's scope


def test_no_scope_requested_gets_no_scope(oauth_client):
    link, secret = oauth_client
    response = _token(link, secret)
    assert response.status_code == 200
    token = response.json()["access_token"]
    assert AccessToken.objects.get().scope == ""
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/api/v1/districts/").status_code == 403


def test_a_scope_the_application_may_not_have_is_refused(oauth_client):
    link, secret = oauth_client
    response = _token(link, secret, "roster:read attendance:write")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert not AccessToken.objects.exists()


def test_tokens_expire_within_an_hour_and_expired_ones_get_401(oauth_client):
    link, secret = oauth_client
    token = _token(link, secret, "roster:read").json()["access_token"]
    row = AccessToken.objects.get()
    assert (row.expires - row.created).total_seconds() <= 3600 + 1
    AccessToken.objects.update(expires=row.created)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/api/v1/districts/").status_code == 401


def test_token_endpoint_is_throttled_per_client(oauth_client, settings):
    settings.OAUTH_TOKEN_RATE_LIMIT = "2/m"
    link, secret = oauth_client
    statuses = [_token(link, secret, "roster:read").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = _token(link, secret, "roster:read")
    assert int(limited["Retry-After"]) >= 1
    assert limited.json()["error"]["code"] == "throttled"
    # Another client is not affected.
    other, other_secret = oauth_client_create(
        district=link.district, name="Other app", scopes=["roster:read"]
    )
    assert _token(other, other_secret, "roster:read").status_code == 200


def test_admin_login_is_throttled_by_username_not_by_address(settings):
    settings.ADMIN_LOGIN_RATE_LIMIT = "2/m"
    browser = Client()
    attempts = [
        browser.post("/admin/login/", {"username": "alice", "password": "wrong"}).status_code
        for _ in range(3)
    ]
    assert attempts == [200, 200, 429]
    # A forged X-Forwarded-For does not reset the count.
    spoofed = browser.post(
        "/admin/login/",
        {"username": "alice", "password": "wrong"},
        HTTP_X_FORWARDED_FOR="203.0.113.9",
    )
    assert spoofed.status_code == 429
    assert "Retry-After" in spoofed
    # Someone else at the same school address can still sign in.
    assert browser.post("/admin/login/", {"username": "bob", "password": "x"}).status_code == 200
