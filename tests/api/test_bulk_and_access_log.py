from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.utils import timezone

from attendance.models import ApiAccessLog, AttendanceRecord, Enrollment, Student
from attendance.signals import attendance_changed
from tests.factories import YEAR_START

pytestmark = pytest.mark.django_db


def _many_students(tenant, count):
    students = Student.objects.bulk_create(
        Student(
            district=tenant.district,
            local_id=f"M{n:05d}",
            legal_first_name="Gen",
            legal_last_name=f"Student{n}",
            school=tenant.school,
        )
        for n in range(count)
    )
    Enrollment.objects.bulk_create(
        Enrollment(student=s, school=tenant.school, entry_date=YEAR_START) for s in students
    )
    return students


def test_bulk_post_of_1000_records_writes_history_only_for_changes(
    client, tenant, django_capture_on_commit_callbacks
):
    students = _many_students(tenant, 1000)
    records = [
        {"student_local_id": s.local_id, "date": "2026-09-08", "status": "present"}
        for s in students
    ]
    announced = []

    sends = []

    def receiver(sender, **kwargs):
        sends.append(len(kwargs["changes"]))
        announced.extend(change.record_id for change in kwargs["changes"])

    attendance_changed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            first = client.post("/api/v1/attendance/bulk/", {"records": records}, format="json")
        assert first.status_code == 200, first.content[:500]
        assert first.json()["created"] == 1000
        assert len(announced) == 1000
        assert sends == [1000]  # one signal for the whole commit, not one per record
        history = AttendanceRecord.history.filter(date="2026-09-08")
        assert history.filter(history_type="+").count() == 1000

        records[0]["status"] = "absent"
        records[1] = {"student": students[1].pk, "date": "2026-09-08", "status": "tardy"}
        announced.clear()
        with django_capture_on_commit_callbacks(execute=True):
            second = client.post("/api/v1/attendance/bulk/", {"records": records}, format="json")
        body = second.json()
        assert (body["created"], body["updated"], body["unchanged"]) == (0, 2, 998)
        assert history.filter(history_type="~").count() == 2
        assert sorted(announced) == sorted(r["id"] for r in body["results"][:2])
        assert AttendanceRecord.objects.get(student=students[0], date="2026-09-08").status == (
            "absent"
        )
        assert body["results"][0] == {
            "index": 0,
            "id": body["results"][0]["id"],
            "student": students[0].pk,
            "outcome": "updated",
        }
    finally:
        attendance_changed.disconnect(receiver)


def test_bulk_is_all_or_nothing_and_names_bad_items(client, tenant):
    records = [
        {"student_local_id": "A001", "date": "2026-09-09", "status": "absent"},
        {"student_local_id": "NOPE", "date": "2026-09-09", "status": "absent"},
        {"student_local_id": "A002", "date": "2019-09-09", "status": "absent"},
        {"student_local_id": "A001", "date": "2026-09-09", "status": "tardy"},
    ]
    response = client.post("/api/v1/attendance/bulk/", {"records": records}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_records"
    assert set(error["details"]["records"]) == {"1", "2", "3"}
    assert not AttendanceRecord.objects.filter(date="2026-09-09").exists()


def test_bulk_rejects_more_than_1000(client):
    records = [{"student_local_id": "A001", "date": "2026-09-09", "status": "absent"}] * 1001
    response = client.post("/api/v1/attendance/bulk/", {"records": records}, format="json")
    assert response.status_code == 400


def test_reads_of_student_data_are_logged(client, tenant):
    client.get("/api/v1/students/", {"school": tenant.school.pk})
    row = ApiAccessLog.objects.get()
    assert row.district == tenant.district
    assert row.client_kind == "api_key"
    assert row.client_id == tenant.key.rsplit("_", 1)[0]
    assert row.endpoint == "api/v1/students/"
    assert row.student_count == 3
    assert sorted(row.student_ids) == sorted(s.pk for s in tenant.students)
    assert row.query == {"school": [str(tenant.school.pk)]}

    client.get(f"/api/v1/students/{tenant.students[1].pk}/")
    client.get("/api/v1/attendance/")
    client.get("/api/v1/guardians/")
    client.get("/api/v1/enrollments/")
    client.get("/api/v1/participation-grades/")
    assert ApiAccessLog.objects.count() == 6
    detail = ApiAccessLog.objects.get(endpoint="api/v1/students/<int:pk>/")
    assert detail.student_ids == [tenant.students[1].pk]
    # Non-student data is not a FERPA disclosure.
    client.get("/api/v1/schools/")
    assert ApiAccessLog.objects.count() == 6


def test_access_log_purge_keeps_recent_rows(client, tenant, settings):
    settings.API_ACCESS_LOG_RETENTION_DAYS = 30
    client.get("/api/v1/students/")
    client.get("/api/v1/attendance/")
    old = ApiAccessLog.objects.first()
    ApiAccessLog.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=31))
    call_command("purge_api_access_log")
    assert list(ApiAccessLog.objects.values_list("pk", flat=True)) != [old.pk]
    assert ApiAccessLog.objects.count() == 1
    call_command("purge_api_access_log")
    assert ApiAccessLog.objects.count() == 1
