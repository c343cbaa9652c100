"""Tenant isolation sweep over every endpoint, and scope enforcement."""

from __future__ import annotations

import pytest
from django.urls import get_resolver
from rest_framework.test import APIClient

from attendance.models import AttendanceRecord
from gateway.inbound.api_keys import api_key_create

pytestmark = pytest.mark.django_db

LISTS = [
    "districts",
    "schools",
    "terms",
    "sections",
    "students",
    "guardians",
    "enrollments",
    "attendance",
    "participation-grades",
]


def detail_ids(t):
    return {
        "districts": t.district.pk,
        "schools": t.school.pk,
        "terms": t.term.pk,
        "sections": t.section.pk,
        "students": t.students[0].pk,
        "guardians": t.guardian.pk,
        "enrollments": t.enrollment.pk,
        "attendance": t.record.pk,
        "participation-grades": t.grade.pk,
    }


def test_the_sweep_covers_every_api_v1_route():
    from config import api_urls

    routes = {str(p.pattern) for p in get_resolver("attendance.api.urls").url_patterns}
    swept = {f"{name}/" for name in LISTS} | {f"{name}/<int:pk>/" for name in LISTS}
    assert routes - {"attendance/bulk/"} == swept
    assert api_urls.urlpatterns


def test_second_district_sees_nothing_of_the_first(tenant, other):
    api = APIClient()
    api.credentials(HTTP_X_API_KEY=other.key)
    mine = detail_ids(other)
    theirs = detail_ids(tenant)
    for name in LISTS:
        listed = api.get(f"/api/v1/{name}/").json()["results"]
        assert theirs[name] not in {row["id"] for row in listed}, name
        assert mine[name] in {row["id"] for row in listed}, name
        response = api.get(f"/api/v1/{name}/{theirs[name]}/")
        assert response.status_code == 404, name
        assert response.json()["error"]["code"] == "not_found"
        assert api.get(f"/api/v1/{name}/{mine[name]}/").status_code == 200, name
    # Filters naming another district's ids return nothing, not an error that confirms them.
    assert api.get("/api/v1/students/", {"school": tenant.school.pk}).json()["results"] == []
    for_student = {"student": tenant.students[0].pk}
    assert api.get("/api/v1/attendance/", for_student).json()["results"] == []
    assert api.get("/api/v1/students/", {"local_id": "A000"}).json()["results"] == []


def test_second_district_cannot_write_for_the_first(tenant, other):
    api = APIClient()
    api.credentials(HTTP_X_API_KEY=other.key)
    body = {"student": tenant.students[1].pk, "date": "2026-09-03", "status": "absent"}
    assert api.post("/api/v1/attendance/", body, format="json").status_code == 422
    by_local = {"student_local_id": "A001", "date": "2026-09-03", "status": "absent"}
    assert api.post("/api/v1/attendance/", by_local, format="json").status_code == 422
    bulk = api.post("/api/v1/attendance/bulk/", {"records": [body]}, format="json")
    assert bulk.status_code == 400
    assert not AttendanceRecord.objects.filter(date="2026-09-03").exists()


def test_no_credentials_is_401_and_a_bad_key_is_401(tenant):
    api = APIClient()
    response = api.get("/api/v1/students/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    api.credentials(HTTP_X_API_KEY=tenant.key[:-1] + ("x" if tenant.key[-1] != "x" else "y"))
    assert api.get("/api/v1/students/").status_code == 401
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant.key}")
    assert bearer.get("/api/v1/students/").status_code == 200


def test_scopes_are_enforced_per_endpoint_group(tenant):
    roster_only = api_key_create(district=tenant.district, name="roster", scopes=["roster:read"])
    api = APIClient()
    api.credentials(HTTP_X_API_KEY=roster_only.plaintext)
    assert api.get("/api/v1/students/").status_code == 200
    forbidden = api.get("/api/v1/attendance/")
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "permission_denied"
    assert api.get("/api/v1/participation-grades/").status_code == 403

    read_only = api_key_create(district=tenant.district, name="ro", scopes=["attendance:read"])
    api.credentials(HTTP_X_API_KEY=read_only.plaintext)
    assert api.get("/api/v1/attendance/").status_code == 200
    assert api.get("/api/v1/students/").status_code == 403
    body = {"student_local_id": "A001", "date": "2026-09-02", "status": "absent"}
    assert api.post("/api/v1/attendance/", body, format="json").status_code == 403
    assert (
        api.post("/api/v1/attendance/bulk/", {"records": [body]}, format="json").status_code == 403
    )
    assert not AttendanceRecord.objects.filter(date="2026-09-02").exists()
