from __future__ import annotations

import datetime as dt
import io
import json
import time

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from gateway.inbound import authentication
from gateway.inbound.api_keys import (
    api_key_authenticate,
    api_key_create,
    api_key_revoke,
    api_key_rotate,
    key_hash,
)
from gateway.inbound.authentication import ApiKeyAuthentication
from gateway.models import ApiKey
from tests.factories import DistrictFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def district():
    return DistrictFactory(name="Key District")


def _status(key):
    api = APIClient()
    api.credentials(HTTP_X_API_KEY=key)
    return api.get("/api/v1/districts/").status_code


def test_only_prefix_and_keyed_hash_are_stored(district):
    issued = api_key_create(district=district, name="LMS", scopes=["roster:read"])
    assert issued.plaintext.startswith("sas_live_")
    row = ApiKey.objects.get()
    assert issued.plaintext.startswith(row.prefix + "_")
    assert row.key_hash == key_hash(issued.plaintext)
    stored = " ".join(str(v) for v in ApiKey.objects.values().get().values())
    assert issued.plaintext not in stored
    assert issued.plaintext.split("_")[-1] not in stored
    history = " ".join(str(v) for v in ApiKey.history.values().get().values())
    assert row.key_hash not in history


def test_revoked_expired_and_unknown_keys_get_401(district):
    good = api_key_create(district=district, name="a", scopes=["roster:read"])
    assert _status(good.plaintext) == 200
    api_key_revoke(api_key=good.api_key)
    assert _status(good.plaintext) == 401
    expired = api_key_create(
        district=district,
        name="b",
        scopes=["roster:read"],
        expires_at=timezone.now() - dt.timedelta(seconds=1),
    )
    assert _status(expired.plaintext) == 401
    assert _status("sas_live_AAAAAAAA_" + "b" * 32) == 401
    assert _status("garbage") == 401


def test_rotation_keeps_the_old_key_for_the_grace_period(district):
    old = api_key_create(district=district, name="lms", scopes=["roster:read"])
    new = api_key_rotate(api_key=old.api_key, grace=dt.timedelta(seconds=1))
    assert new.api_key.scopes == ["roster:read"]
    assert new.api_key.rotated_from_id == old.api_key.pk
    assert _status(old.plaintext) == 200
    assert _status(new.plaintext) == 200
    time.sleep(1.1)  # the grace period passes while the old key sits in the process cache
    assert _status(old.plaintext) == 401
    assert _status(new.plaintext) == 200
    reasons = list(
        ApiKey.history.filter(id=old.api_key.pk).values_list("history_change_reason", flat=True)
    )
    assert "rotated" in reasons


def test_last_used_is_written_at_most_once_a_minute(district, django_assert_num_queries):
    issued = api_key_create(district=district, name="lms", scopes=["roster:read"])
    assert api_key_authenticate(plaintext=issued.plaintext) is not None
    first = ApiKey.objects.get().last_used_at
    assert first is not None
    with django_assert_num_queries(1):  # the lookup only; no UPDATE within the minute
        api_key_authenticate(plaintext=issued.plaintext)
    assert ApiKey.objects.get().last_used_at == first
    ApiKey.objects.update(last_used_at=timezone.now() - dt.timedelta(minutes=2))
    api_key_authenticate(plaintext=issued.plaintext)
    assert ApiKey.objects.get().last_used_at > first


def test_principal_carries_district_scopes_and_label(district):
    issued = api_key_create(district=district, name="LMS", scopes=["roster:read", "sync:read"])
    principal = api_key_authenticate(plaintext=issued.plaintext)
    assert principal.kind == "api_key"
    assert principal.district_id == district.pk
    assert principal.scopes == frozenset({"roster:read", "sync:read"})
    assert principal.client_id == issued.api_key.prefix


def _authenticate(key):
    request = Request(APIRequestFactory().get("/api/v1/districts/", HTTP_X_API_KEY=key))
    return ApiKeyAuthentication().authenticate(request)


def test_a_verified_key_is_served_from_the_process_cache(district, django_assert_num_queries):
    issued = api_key_create(district=district, name="lms", scopes=["roster:read"])
    assert _authenticate(issued.plaintext) is not None  # verified and cached
    with django_assert_num_queries(0):
        _user, principal = _authenticate(issued.plaintext)
    assert principal.client_id == issued.api_key.prefix
    assert principal.scopes == frozenset({"roster:read"})


def test_a_change_committed_by_another_process_reaches_cached_keys_at_once(district):
    issued = api_key_create(district=district, name="lms", scopes=["roster:read"])
    assert _status(issued.plaintext) == 200
    # Revoked by another process: no signal here, this process still has the key cached...
    ApiKey.objects.filter(pk=issued.api_key.pk).update(revoked_at=timezone.now())
    assert _status(issued.plaintext) == 200
    # ...until that process's commit bumps the shared generation (next test):
    authentication._generation_bump()
    assert _status(issued.plaintext) == 401


def test_saving_a_key_or_a_district_bumps_the_generation_on_commit(
    district, django_capture_on_commit_callbacks
):
    issued = api_key_create(district=district, name="lms", scopes=["roster:read"])
    before = cache.get(authentication._GENERATION_KEY)
    with django_capture_on_commit_callbacks(execute=False) as pending:
        api_key_revoke(api_key=issued.api_key)
    assert cache.get(authentication._GENERATION_KEY) == before  # not before the commit
    for callback in pending:
        callback()
    bumped = cache.get(authentication._GENERATION_KEY)
    assert bumped != before
    with django_capture_on_commit_callbacks(execute=True):
        district.name = "Renamed"
        district.save()
    assert cache.get(authentication._GENERATION_KEY) != bumped


def test_a_raw_update_is_seen_within_the_cache_ttl(district, monkeypatch):
    monkeypatch.setattr(authentication, "API_KEY_CACHE_SECONDS", 0.2)
    issued = api_key_create(district=district, name="lms", scopes=["roster:read"])
    assert _status(issued.plaintext) == 200
    ApiKey.objects.filter(pk=issued.api_key.pk).update(revoked_at=timezone.now())
    time.sleep(0.25)
    assert _status(issued.plaintext) == 401


def test_management_command_creates_rotates_revokes_and_lists(district):
    out = io.StringIO()
    call_command(
        "api_key",
        "create",
        "--district",
        "Key District",
        "--name",
        "CLI",
        "--scopes",
        "roster:read,attendance:read",
        "--expires-days",
        "30",
        "--json",
        stdout=out,
    )
    created = json.loads(out.getvalue())
    assert created["key"].startswith(created["prefix"] + "_")
    assert _status(created["key"]) == 200

    out = io.StringIO()
    call_command("api_key", "rotate", created["prefix"], "--grace-hours", "0", "--json", stdout=out)
    rotated = json.loads(out.getvalue())
    assert _status(created["key"]) == 401
    assert _status(rotated["key"]) == 200

    out = io.StringIO()
    call_command("api_key", "list", "--district", "Key District", stdout=out)
    assert created["prefix"] in out.getvalue()
    assert created["key"] not in out.getvalue()
    assert rotated["key"] not in out.getvalue()

    call_command("api_key", "revoke", rotated["prefix"], stdout=io.StringIO())
    assert _status(rotated["key"]) == 401


def test_unknown_scope_is_refused(district):
    with pytest.raises(Exception, match="Unknown scope"):
        api_key_create(district=district, name="x", scopes=["everything"])
