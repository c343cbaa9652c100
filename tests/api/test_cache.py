"""The roster page cache (attendance/api/cache.py) against real Redis and PostgreSQL: cached
pages are the uncached bytes, every roster write path invalidates, districts stay apart, a
Redis outage degrades to computing, and cache hits are still FERPA-logged."""

from __future__ import annotations

import socket

import pytest
import redis
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_redis import get_redis_connection
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from attendance import bulk
from attendance.api import cache as page_cache
from attendance.models import ApiAccessLog, Student
from attendance.services import guardian_update, student_update
from attendance.signals import rows_of_district
from gateway.inbound.api_keys import api_key_create
from sis.models import SISConnection
from tests.factories import DistrictFactory, StudentGuardianFactory
from tests.syncing.fakes import FakeSource, district_records
from tests.syncing.helpers import sync

pytestmark = pytest.mark.django_db

ROSTER_LISTS = [
    "districts/",
    "schools/",
    "terms/",
    "sections/",
    "students/",
    "students/?include=relations",
    "students/?page_size=1&ordering=-id",
    "guardians/",
    "enrollments/",
]


def _count(result: str) -> float:
    value = REGISTRY.get_sample_value("sas_api_list_cache_lookups_total", {"result": result})
    return value or 0.0


def _get(api: APIClient, url: str, **extra):
    response = api.get(url, **extra)
    assert response.status_code == 200, response.content[:500]
    return response


def _names(response) -> list[str]:
    return [row["legal_last_name"] for row in response.json()["results"]]


def _headers(response) -> list[tuple[str, str]]:
    # Everything but the per-request id.
    return sorted((k, v) for k, v in response.headers.items() if k != "X-Request-ID")


def _page_keys() -> list[bytes]:
    return list(get_redis_connection("default").scan_iter("*api-roster:page:*"))


@pytest.mark.parametrize("path", ROSTER_LISTS)
def test_a_cached_page_is_byte_identical_to_the_uncached_one(client, tenant, settings, path):
    url = f"/api/v1/{path}"
    settings.API_LIST_CACHE_SECONDS = 0
    uncached = _get(client, url)
    assert _page_keys() == []
    settings.API_LIST_CACHE_SECONDS = 30
    hits, misses = _count("hit"), _count("miss")
    miss = _get(client, url)
    hit = _get(client, url)
    assert (_count("miss"), _count("hit")) == (misses + 1, hits + 1)
    for response in (miss, hit):
        assert response.content == uncached.content
        assert _headers(response) == _headers(uncached)


def test_the_next_page_from_a_cached_link_is_cached_too_and_identical(client, tenant, settings):
    first = _get(client, "/api/v1/students/?page_size=2").json()
    assert first["next"] is not None
    second = _get(client, first["next"])
    again = _get(client, first["next"])
    settings.API_LIST_CACHE_SECONDS = 0
    assert again.content == second.content == _get(client, first["next"]).content


def test_parameter_order_does_not_matter_but_the_host_does(client, tenant):
    school = tenant.school.pk
    first = _get(client, f"/api/v1/students/?school={school}&page_size=1")
    hits = _count("hit")
    same = _get(client, f"/api/v1/students/?page_size=1&school={school}")
    assert _count("hit") == hits + 1
    assert same.content == first.content
    # The next link is an absolute URL: another host must not get this host's links.
    other_host = _get(
        client, f"/api/v1/students/?page_size=1&school={school}", HTTP_HOST="localhost"
    )
    assert other_host.json()["next"].startswith("http://localhost/")
    assert first.json()["next"].startswith("http://testserver/")


def test_a_cache_hit_reads_no_roster_rows_and_is_still_access_logged(client, tenant):
    StudentGuardianFactory(student=tenant.students[1], guardian=tenant.guardian)
    for url, shown in (
        (f"/api/v1/students/?school={tenant.school.pk}", {s.pk for s in tenant.students}),
        ("/api/v1/guardians/", {tenant.students[0].pk, tenant.students[1].pk}),
    ):
        miss = _get(client, url)
        with CaptureQueriesContext(connection) as queries:
            hit = _get(client, url)
        assert hit.content == miss.content
        statements = [q["sql"] for q in queries.captured_queries]
        assert len(statements) == 1, statements  # the access log row, nothing else
        assert "attendance_apiaccesslog" in statements[0]
        logged = list(ApiAccessLog.objects.order_by("-id")[:2])
        assert [sorted(row.student_ids) for row in logged] == [sorted(shown)] * 2
        assert logged[0].endpoint == logged[1].endpoint
        assert logged[0].query == logged[1].query
        assert logged[0].client_id == logged[1].client_id


def test_an_orm_edit_invalidates_after_commit_as_well(
    client, tenant, django_capture_on_commit_callbacks
):
    url = f"/api/v1/students/?school={tenant.school.pk}"
    before = _get(client, url)
    with django_capture_on_commit_callbacks(execute=True):
        student_update(student=tenant.students[0], legal_last_name="Renamed")
        # The writing transaction reads its own change at once.
        inside = _get(client, url)
        assert "Renamed" in _names(inside)
        # Another reader that does not see the uncommitted edit yet caches the old page under
        # the new generation meanwhile (played here by writing that entry directly).
        raw = get_redis_connection("default")
        (key,) = _page_keys()
        generation = raw.get(page_cache._generation_key(tenant.district.pk))
        raw.set(key, b"\n".join([generation, b"", before.content]), ex=30)
        assert "Renamed" not in _names(_get(client, url))
    # The commit replaced the generation again: that page is never served.
    assert "Renamed" in _names(_get(client, url))


def test_guardian_and_link_edits_invalidate_the_pages_that_show_them(client, tenant):
    url = "/api/v1/students/?include=relations"
    _get(client, url)
    guardian_update(guardian=tenant.guardian, last_name="Newname")
    rows = _get(client, url).json()["results"]
    assert rows[0]["guardians"][0]["last_name"] == "Newname"
    _get(client, "/api/v1/guardians/")
    StudentGuardianFactory(student=tenant.students[2], guardian=tenant.guardian)
    (guardian,) = _get(client, "/api/v1/guardians/").json()["results"]
    assert tenant.students[2].pk in guardian["students"]


def test_the_set_based_writers_of_attendance_bulk_invalidate(client, tenant):
    url = "/api/v1/students/"
    _get(client, url)
    bulk.bulk_update(
        Student,
        [{"id": tenant.students[1].pk, "legal_last_name": "Bulked"}],
        fields=["legal_last_name"],
    )
    assert "Bulked" in _names(_get(client, url))
    bulk.bulk_insert(
        Student,
        [
            {
                "district_id": tenant.district.pk,
                "local_id": "NEW1",
                "legal_first_name": "New",
                "legal_last_name": "Inserted",
                "school_id": tenant.school.pk,
            }
        ],
    )
    assert "Inserted" in _names(_get(client, url))


def test_a_writer_that_names_its_district_invalidates_without_looking_it_up(client, tenant):
    # The sync engine declares the district of everything it writes: its batches then cost the
    # cache no query to find the district of the rows.
    url = "/api/v1/students/"
    _get(client, url)
    with rows_of_district(tenant.district.pk), CaptureQueriesContext(connection) as queries:
        bulk.bulk_update(
            Student,
            [{"id": tenant.students[1].pk, "legal_last_name": "Declared"}],
            fields=["legal_last_name"],
        )
    assert not [q["sql"] for q in queries.captured_queries if "SELECT DISTINCT" in q["sql"]]
    assert "Declared" in _names(_get(client, url))


def test_an_attendance_post_does_not_touch_the_roster_generation(client, tenant):
    # Attendance is not roster data: recording it keeps the roster pages cached.
    url = "/api/v1/students/"
    _get(client, url)
    hits = _count("hit")
    response = client.post(
        "/api/v1/attendance/bulk/",
        {"records": [{"student": tenant.students[1].pk, "date": "2026-09-02", "status": "absent"}]},
        format="json",
    )
    assert response.status_code == 200, response.content[:500]
    _get(client, url)
    assert _count("hit") == hits + 1


def test_a_sync_apply_invalidates(db, django_capture_on_commit_callbacks):
    district = DistrictFactory(timezone="America/Chicago")
    sis = SISConnection.objects.create(
        district=district, name="Fake SIS", provider="powerschool", base_url="http://127.0.0.1:9"
    )
    source = FakeSource(page_size=25)
    district_records(source, schools=1, students=6)
    sync(sis, source)
    api = APIClient()
    api.credentials(
        HTTP_X_API_KEY=api_key_create(
            district=district, name="LMS", scopes=["roster:read"]
        ).plaintext
    )
    url = "/api/v1/students/?ordering=legal_last_name"
    assert "Synced" not in _names(_get(api, url))
    source.get("student", "stu-3").last_name = "Synced"
    with django_capture_on_commit_callbacks(execute=True):
        sync(sis, source)
    assert "Synced" in _names(_get(api, url))


def test_another_district_never_gets_a_cached_page(client, tenant, other):
    url = "/api/v1/students/"
    mine = _get(client, url)
    assert _get(client, url).content == mine.content  # cached for the first district
    theirs_api = APIClient()
    theirs_api.credentials(HTTP_X_API_KEY=other.key)
    theirs = _get(theirs_api, url)
    assert {row["id"] for row in theirs.json()["results"]} == {s.pk for s in other.students}
    assert _get(theirs_api, url).content == theirs.content


def test_error_pages_are_not_cached(client, tenant):
    for _ in range(2):
        response = client.get("/api/v1/students/?cursor=not-a-cursor")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "validation_error"
    assert _page_keys() == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_with_redis_unreachable_pages_are_computed_and_writes_succeed(client, tenant, monkeypatch):
    url = "/api/v1/students/"
    _get(client, url)
    dead = redis.Redis(host="127.0.0.1", port=_closed_port(), socket_connect_timeout=0.5)
    monkeypatch.setattr(page_cache, "_redis", lambda: dead)
    # The invalidation fails (logged); the write does not.
    student_update(student=tenant.students[0], legal_last_name="Offline")
    bypassed, hits = _count("bypass"), _count("hit")
    response = _get(client, url)
    assert "Offline" in _names(response)
    assert (_count("bypass"), _count("hit")) == (bypassed + 1, hits)
    assert ApiAccessLog.objects.order_by("-id")[0].student_count == len(tenant.students)
