"""Tenant isolation sweep over every endpoint, and scope enforcement."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import get_resolver
from rest_framework.test import APIClient

from attendance.models import AttendanceRecord
from gateway.inbound.api_keys import api_key_create
from notifications.models import BulkNotice
from syncing.models import SyncRun
from tests.api.sync_notify_data import make_sync_notify_rows

pytestmark = pytest.mark.django_db

EVERY_SCOPE = sorted(settings.API_SCOPES)

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
    "sis-connections",
    "sync-runs",
    "conflicts",
    "notifications",
    "deliveries",
    "bulk-notices",
]
# Routes that act on one row: another district's id answers 404 and changes nothing.
ACTIONS = ["conflicts/<int:pk>/resolve/", "bulk-notices/<int:pk>/cancel/"]
# Routes that only create (POST without an id); swept by the write tests below.
CREATES = {"attendance/bulk/"}


def detail_ids(t):
    rows = t.sync_notify
    return {
        "sis-connections": rows.connection.pk,
        "sync-runs": rows.run.pk,
        "conflicts": rows.conflict.pk,
        "notifications": rows.notification.pk,
        "deliveries": rows.delivery.pk,
        "bulk-notices": rows.bulk_notice.pk,
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

    routes = {
        str(p.pattern)
        for app in api_urls.API_APPS
        for p in get_resolver(f"{app}.api.urls").url_patterns
    }
    swept = {f"{name}/" for name in LISTS} | {f"{name}/<int:pk>/" for name in LISTS}
    assert routes - CREATES == swept | set(ACTIONS)
    assert api_urls.urlpatterns


@pytest.fixture
def both(tenant, other):
    """Both districts with sync and notification rows, and keys with every scope."""
    for t in (tenant, other):
        t.sync_notify = make_sync_notify_rows(t)
        t.key = api_key_create(district=t.district, name="all", scopes=EVERY_SCOPE).plaintext
    return tenant, other


def test_second_district_sees_nothing_of_the_first(both):
    tenant, other = both
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
    their_connection = {"connection": tenant.sync_notify.connection.pk}
    their_student = {"student": tenant.students[0].pk}
    for name, params in [
        ("sync-runs", their_connection),
        ("conflicts", their_connection),
        ("notifications", their_student),
        ("deliveries", their_student),
        ("notifications", {"guardian": tenant.guardian.pk}),
    ]:
        assert api.get(f"/api/v1/{name}/", params).json()["results"] == [], (name, params)


def test_second_district_cannot_act_on_the_first(both):
    tenant, other = both
    api = APIClient()
    api.credentials(HTTP_X_API_KEY=other.key)
    theirs = tenant.sync_notify
    resolve = api.post(
        f"/api/v1/conflicts/{theirs.conflict.pk}/resolve/", {"choice": "sis"}, format="json"
    )
    assert resolve.status_code == 404
    assert resolve.json()["error"]["code"] == "not_found"
    cancel = api.post(f"/api/v1/bulk-notices/{theirs.bulk_notice.pk}/cancel/", format="json")
    assert cancel.status_code == 404
    start = api.post("/api/v1/sync-runs/", {"connection": theirs.connection.pk}, format="json")
    assert start.status_code == 422
    assert start.json()["error"]["code"] == "unknown_connection"
    notice = api.post(
        "/api/v1/bulk-notices/",
        {
            "title": "x",
            "category": "general",
            "texts": {"en": {"body": "x"}},
            "schools": [tenant.school.pk],
        },
        format="json",
    )
    assert notice.status_code == 422
    assert notice.json()["error"]["code"] == "unknown_school"
    theirs.conflict.refresh_from_db()
    theirs.bulk_notice.refresh_from_db()
    assert theirs.conflict.status == "open"
    assert theirs.bulk_notice.state == "draft"
    assert SyncRun.objects.filter(connection=theirs.connection).count() == 1
    assert (
        not BulkNotice.objects.filter(district=other.district)
        .exclude(pk=other.sync_notify.bulk_notice.pk)
        .exists()
    )


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
