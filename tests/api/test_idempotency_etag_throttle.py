from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from attendance.models import AttendanceRecord
from gateway.models import IdempotencyRecord

pytestmark = pytest.mark.django_db

BODY = {"student_local_id": "A001", "date": "2026-09-02", "status": "absent"}


def test_same_key_same_body_replays_the_first_response(client):
    first = client.post("/api/v1/attendance/", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 201
    # Same body in another key order: still the same request.
    reordered = dict(reversed(list(BODY.items())))
    again = client.post("/api/v1/attendance/", reordered, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert AttendanceRecord.objects.filter(date="2026-09-02").count() == 1


def test_same_key_different_body_is_422(client):
    client.post("/api/v1/attendance/", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    changed = {**BODY, "status": "tardy"}
    response = client.post(
        "/api/v1/attendance/", changed, format="json", HTTP_IDEMPOTENCY_KEY="k-2"
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert AttendanceRecord.objects.get(date="2026-09-02").status == "absent"


def test_a_duplicate_while_the_first_runs_is_409_and_runs_nothing(client, tenant):
    import orjson

    from gateway.inbound.idempotency import request_fingerprint

    IdempotencyRecord.objects.create(
        owner=f"api_key:{tenant.key.rsplit('_', 1)[0]}",
        key="k-3",
        method="POST",
        path="/api/v1/attendance/",
        request_hash=request_fingerprint(
            method="POST", path="/api/v1/attendance/", body=orjson.dumps(BODY)
        ),
        expires_at=timezone.now() + dt.timedelta(hours=24),
    )
    response = client.post("/api/v1/attendance/", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-3")
    assert response.status_code == 409
    assert not AttendanceRecord.objects.filter(date="2026-09-02").exists()


def test_keys_are_per_client_and_expire(client, tenant):
    client.post("/api/v1/attendance/", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-4")
    record = IdempotencyRecord.objects.get(key="k-4")
    assert record.expires_at - record.created_at == dt.timedelta(hours=24)
    IdempotencyRecord.objects.filter(pk=record.pk).update(expires_at=timezone.now())
    changed = {**BODY, "status": "tardy"}
    response = client.post(
        "/api/v1/attendance/", changed, format="json", HTTP_IDEMPOTENCY_KEY="k-4"
    )
    assert response.status_code == 200  # expired key: runs again as a new request
    assert AttendanceRecord.objects.get(date="2026-09-02").status == "tardy"


def test_validation_errors_are_replayed_too(client):
    bad = {"date": "2026-09-02"}
    first = client.post("/api/v1/attendance/", bad, format="json", HTTP_IDEMPOTENCY_KEY="k-5")
    again = client.post("/api/v1/attendance/", bad, format="json", HTTP_IDEMPOTENCY_KEY="k-5")
    assert first.status_code == again.status_code == 400
    assert again["Idempotent-Replayed"] == "true"


def test_detail_etag_and_if_none_match(client, tenant):
    url = f"/api/v1/students/{tenant.students[0].pk}/"
    first = client.get(url)
    etag = first["ETag"]
    assert etag.startswith('"')
    cached = client.get(url, HTTP_IF_NONE_MATCH=etag)
    assert cached.status_code == 304
    assert cached.content == b""
    student = tenant.students[0]
    student.legal_first_name = "Changed"
    student.save()
    fresh = client.get(url, HTTP_IF_NONE_MATCH=etag)
    assert fresh.status_code == 200
    assert fresh["ETag"] != etag


def test_api_rate_limit_answers_429_with_retry_after(client, settings):
    settings.API_RATE_LIMIT = "3/m"
    statuses = [client.get("/api/v1/schools/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = client.get("/api/v1/schools/")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response.json()["error"]["code"] == "throttled"


def test_purge_deletes_only_expired_idempotency_records(client):
    from django.core.management import call_command

    client.post("/api/v1/attendance/", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-old")
    client.post("/api/v1/attendance/", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-new")
    IdempotencyRecord.objects.filter(key="k-old").update(expires_at=timezone.now())
    call_command("purge_idempotency_keys")
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["k-new"]


def test_schema_and_documentation_pages_are_served(client):
    from rest_framework.test import APIClient

    anonymous = APIClient()
    schema = anonymous.get("/api/schema/?format=json")
    assert schema.status_code == 200
    spec = schema.json()
    assert {"ApiKey", "OAuth2"} <= set(spec["components"]["securitySchemes"])
    assert "/api/v1/attendance/bulk/" in spec["paths"]
    assert anonymous.get("/api/docs/").status_code == 200
    assert anonymous.get("/api/redoc/").status_code == 200
