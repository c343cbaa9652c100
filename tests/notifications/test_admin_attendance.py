"""Attendance entered or corrected in the admin goes through the same service as a teacher's:
it is checked, recorded as the administrator's, and reaches the guardians' messages (a
correction to present cancels the pending absence message)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from attendance.models import AttendanceRecord, AttendanceStatus, MembershipRole
from attendance.services import attendance_record
from notifications.models import Notification, NotificationStatus
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def office(client, family, eager_celery, settings):
    # Held for corrections: the message waits, so a correction can still cancel it.
    settings.NOTIFY_ATTENDANCE_HOLD_SECONDS = 600
    user = UserFactory(username="front-office")
    MembershipFactory(user=user, district=family["district"], role=MembershipRole.DISTRICT_ADMIN)
    client.force_login(user)
    return user


def _today(family) -> dt.date:
    return family["district"].today()


def _add(client, **data):
    return client.post(reverse("admin:attendance_attendancerecord_add"), data)


def test_an_absence_entered_by_the_office_notifies_the_guardians(
    client, office, family, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = _add(
            client,
            student=family["student"].pk,
            date=_today(family).isoformat(),
            status=AttendanceStatus.ABSENT,
            comment="Parent called: dentist",
        )
    assert response.status_code == 302
    record = AttendanceRecord.objects.get(student=family["student"])
    assert (record.source, record.recorded_by, record.school) == (
        "admin",
        office,
        family["school"],
    )
    planned = Notification.objects.filter(student=family["student"])
    assert planned.count() == 2  # one per guardian
    assert {n.status for n in planned} == {NotificationStatus.PENDING}


def test_the_offices_correction_to_present_cancels_the_pending_message(
    client, office, family, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        record, _ = attendance_record(
            student=family["student"], date=_today(family), status=AttendanceStatus.ABSENT
        )
    assert Notification.objects.filter(status=NotificationStatus.PENDING).count() == 2
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:attendance_attendancerecord_change", args=[record.pk]),
            {"status": AttendanceStatus.PRESENT, "period": "", "comment": "Was in the library"},
        )
    assert response.status_code == 302
    record.refresh_from_db()
    assert (record.status, record.source, record.recorded_by) == ("present", "admin", office)
    assert record.history.count() == 2
    statuses = set(Notification.objects.values_list("status", flat=True))
    assert statuses == {NotificationStatus.CANCELLED}


def test_a_correction_keeps_the_record_it_corrects(client, office, family):
    record, _ = attendance_record(
        student=family["student"], date=_today(family), status=AttendanceStatus.ABSENT
    )
    other_day = _today(family) - dt.timedelta(days=1)
    response = client.post(
        reverse("admin:attendance_attendancerecord_change", args=[record.pk]),
        {"status": AttendanceStatus.TARDY, "date": other_day.isoformat(), "student": 0},
    )
    assert response.status_code == 302
    record.refresh_from_db()
    assert (record.date, record.student_id, record.status) == (
        _today(family),
        family["student"].pk,
        AttendanceStatus.TARDY,
    )


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"date": "2001-09-04"}, "The student was not enrolled on that date."),
        ({"repeat": True}, "already has a record for that day"),
    ],
)
def test_a_bad_entry_is_refused_with_the_reason_and_nothing_is_saved(
    client, office, family, change, error
):
    data = {
        "student": family["student"].pk,
        "date": _today(family).isoformat(),
        "status": AttendanceStatus.ABSENT,
    }
    if change.pop("repeat", False):
        attendance_record(student=family["student"], date=_today(family), status="absent")
    data.update(change)
    before = AttendanceRecord.objects.count()
    response = _add(client, **data)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert AttendanceRecord.objects.count() == before
