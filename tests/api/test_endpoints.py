from __future__ import annotations

import datetime as dt

import pytest

from attendance.models import AttendanceRecord
from tests.factories import (
    EnrollmentFactory,
    GuardianFactory,
    SchoolFactory,
    StudentGuardianFactory,
)

pytestmark = pytest.mark.django_db


def results(response):
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_it_lists_each_resource_of_the_district(client, tenant):
    assert [d["id"] for d in results(client.get("/api/v1/districts/"))] == [tenant.district.pk]
    assert [s["id"] for s in results(client.get("/api/v1/schools/"))] == [tenant.school.pk]
    assert [t["id"] for t in results(client.get("/api/v1/terms/"))] == [tenant.term.pk]
    assert [s["id"] for s in results(client.get("/api/v1/sections/"))] == [tenant.section.pk]
    assert {s["local_id"] for s in results(client.get("/api/v1/students/"))} == {
        "A000",
        "A001",
        "A002",
    }
    guardians = results(client.get("/api/v1/guardians/"))
    assert guardians[0]["students"] == [tenant.students[0].pk]
    assert len(results(client.get("/api/v1/enrollments/"))) == 3
    assert [r["id"] for r in results(client.get("/api/v1/attendance/"))] == [tenant.record.pk]
    grades = results(client.get("/api/v1/participation-grades/"))
    assert [g["id"] for g in grades] == [tenant.grade.pk]


def test_student_detail_has_guardians_and_current_enrollments(client, tenant):
    response = client.get(f"/api/v1/students/{tenant.students[0].pk}/")
    assert response.status_code == 200
    body = response.json()
    assert body["guardians"][0]["guardian"] == tenant.guardian.pk
    assert body["current_enrollments"][0]["school"] == tenant.school.pk
    listed = results(client.get("/api/v1/students/", {"include": "relations"}))
    assert any(s["guardians"] for s in listed)


def test_students_with_relations_match_the_detail_representation(client, tenant):
    first, second = tenant.students[0], tenant.students[1]
    StudentGuardianFactory(student=first, guardian=GuardianFactory(district=tenant.district))
    StudentGuardianFactory(
        student=first, guardian=GuardianFactory(district=tenant.district), active=False
    )
    StudentGuardianFactory(student=second, guardian=tenant.guardian, priority=2)
    other_school = SchoolFactory(district=tenant.district)
    EnrollmentFactory(student=first, school=other_school, is_primary=False)
    EnrollmentFactory(
        student=second, school=other_school, exit_date=dt.date(2026, 10, 1), exit_reason="moved"
    )
    listed = results(client.get("/api/v1/students/", {"include": "relations"}))
    assert len(listed) == 3
    assert len(listed[0]["guardians"]) == 2  # the inactive link is left out
    assert len(listed[0]["current_enrollments"]) == 2
    for student in listed:
        # The list builds rows from columns; the detail runs the nested serializers.
        detail = client.get(f"/api/v1/students/{student['id']}/").json()
        # The same instant: plain rows render UTC ("Z"), DRF the site's zone (as before).
        assert _instant(student.pop("updated_at")) == _instant(detail.pop("updated_at"))
        assert student == detail


def _instant(text):
    return dt.datetime.fromisoformat(text)


def test_students_filter_by_local_id_search_and_school(client, tenant):
    assert [s["local_id"] for s in results(client.get("/api/v1/students/?local_id=A001"))] == [
        "A001"
    ]
    found = results(client.get("/api/v1/students/", {"search": "ALast2"}))
    assert [s["local_id"] for s in found] == ["A002"]
    assert len(results(client.get("/api/v1/students/", {"school": tenant.school.pk}))) == 3
    assert results(client.get("/api/v1/students/", {"school": 999999})) == []


def test_cursor_pagination_walks_every_row_once(client, tenant):
    seen = []
    url = "/api/v1/students/?page_size=2"
    while url:
        response = client.get(url)
        body = response.json()
        seen += [s["id"] for s in body["results"]]
        url = body["next"]
    assert sorted(seen) == sorted(s.pk for s in tenant.students)
    assert len(seen) == len(set(seen))


def test_ordering_and_updated_since(client, tenant):
    ids = [s["id"] for s in results(client.get("/api/v1/students/?ordering=-id"))]
    assert ids == sorted(ids, reverse=True)
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    assert results(client.get("/api/v1/students/", {"updated_since": future})) == []
    past = "2000-01-01T00:00:00Z"
    assert len(results(client.get("/api/v1/students/", {"updated_since": past}))) == 3


def test_invalid_filter_answers_400_in_the_error_shape(client):
    response = client.get("/api/v1/attendance/", {"date_from": "not-a-date"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert "date_from" in response.json()["error"]["details"]


def test_attendance_filters(client, tenant):
    base = "/api/v1/attendance/"
    assert len(results(client.get(base, {"student_local_id": "A000"}))) == 1
    assert len(results(client.get(base, {"student_local_id": "A001"}))) == 0
    assert len(results(client.get(base, {"status": "absent", "school": tenant.school.pk}))) == 1
    assert len(results(client.get(base, {"status": "present"}))) == 0
    in_range = {"date_from": "2026-08-31", "date_to": "2026-09-01"}
    assert len(results(client.get(base, in_range))) == 1
    assert len(results(client.get(base, {"date_from": "2026-09-02"}))) == 0


def test_post_attendance_by_local_id_creates_then_is_idempotent(client, tenant):
    body = {"student_local_id": "A001", "date": "2026-09-02", "status": "tardy"}
    first = client.post("/api/v1/attendance/", body, format="json")
    assert first.status_code == 201, first.content
    assert first.json()["source"] == "api"
    again = client.post("/api/v1/attendance/", body, format="json")
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    record = AttendanceRecord.objects.get(pk=first.json()["id"])
    assert record.history.count() == 1
    by_code = {"student": tenant.students[1].pk, "date": "2026-09-02", "code": "T"}
    assert client.post("/api/v1/attendance/", by_code, format="json").status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"date": "2026-09-02", "status": "absent"}, 400, "validation_error"),
        ({"student_local_id": "A001", "date": "2026-09-02", "status": "gone"}, 400, None),
        ({"student_local_id": "NOPE", "date": "2026-09-02", "status": "absent"}, 422, None),
        ({"student_local_id": "A001", "date": "2020-01-01", "status": "absent"}, 400, None),
        ({"student_local_id": "A001", "date": "2026-09-02", "code": "ZZ"}, 422, None),
    ],
)
def test_post_attendance_rejects_bad_input(client, body, status, code):
    response = client.post("/api/v1/attendance/", body, format="json")
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    if code:
        assert error["code"] == code
    assert AttendanceRecord.objects.filter(date=body["date"]).count() == 0


def test_unknown_api_url_answers_in_the_error_shape(client):
    response = client.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
