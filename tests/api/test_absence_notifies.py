"""Issue 7, item 7: an absence posted through the API (one record or a bulk post) reaches the
guardians: the attendance_changed signal after commit → the notifications batch task →
a planned Notification → after NOTIFY_ATTENDANCE_HOLD_SECONDS a Delivery handed to the test
provider. Celery runs eagerly (as in tests/notifications); the commit callbacks run for real."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from config.celery import app as celery_app
from gateway.inbound.api_keys import api_key_create
from notifications import tasks
from notifications.models import Delivery, Notification, NotificationStatus
from notifications.providers import providers_reset
from notifications.providers.test import TestProvider
from notifications.services.templates import templates_cache_clear
from tests.api.sync_notify_data import category
from tests.factories import GuardianFactory, StudentGuardianFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def notify(settings):
    settings.NOTIFY_SMS_PROVIDER = "test"
    settings.NOTIFY_EMAIL_PROVIDER = "test"
    settings.NOTIFY_ATTENDANCE_HOLD_SECONDS = 0
    providers_reset()
    TestProvider.reset()
    templates_cache_clear()
    previous = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield settings
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = previous
    providers_reset()
    TestProvider.reset()
    templates_cache_clear()


@pytest.fixture
def families(tenant):
    """Every tenant student with one guardian reachable by SMS and e-mail."""
    category("attendance")
    category("chronic_absence")
    guardians = [tenant.guardian]
    for student in tenant.students[1:]:
        guardian = GuardianFactory(district=tenant.district)
        StudentGuardianFactory(student=student, guardian=guardian, is_primary=True)
        guardians.append(guardian)
    return guardians


@pytest.fixture
def api(tenant):
    key = api_key_create(
        district=tenant.district,
        name="SIS bridge",
        scopes=["attendance:write", "notifications:read"],
    )
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key.plaintext)
    return client


def today(tenant) -> str:
    return timezone.localdate(timezone=zoneinfo.ZoneInfo(tenant.district.timezone)).isoformat()


def test_one_absence_posted_notifies_the_guardian(
    api, tenant, families, django_capture_on_commit_callbacks
):
    student, guardian = tenant.students[0], families[0]
    body = {"student_local_id": student.local_id, "date": today(tenant), "status": "absent"}
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/attendance/", body, format="json")
    assert response.status_code == 201, response.content
    notification = Notification.objects.get(
        event_key=f"attendance:{student.pk}:{today(tenant)}", guardian=guardian
    )
    assert notification.status == NotificationStatus.SENT
    deliveries = Delivery.objects.filter(notification=notification)
    assert {d.channel for d in deliveries} == {"sms", "email"}
    assert {d.provider for d in deliveries} == {"test"}
    texts = TestProvider.messages_to(guardian.mobile_phone)
    assert len(texts) == 1 and "absent" in texts[0].body
    # The integrator can follow it up over the API.
    listed = api.get("/api/v1/notifications/", {"student": student.pk}).json()["results"]
    assert [n["id"] for n in listed] == [notification.pk]
    # Posting the same absence again changes nothing and sends nothing more.
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post("/api/v1/attendance/", body, format="json").status_code == 200
    assert len(TestProvider.messages_to(guardian.mobile_phone)) == 1


def test_a_bulk_post_notifies_each_absent_students_guardian(
    api, tenant, families, django_capture_on_commit_callbacks
):
    date = today(tenant)
    records = [
        {"student_local_id": tenant.students[0].local_id, "date": date, "status": "absent"},
        {"student_local_id": tenant.students[1].local_id, "date": date, "status": "tardy"},
        {"student_local_id": tenant.students[2].local_id, "date": date, "status": "present"},
    ]
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/attendance/bulk/", {"records": records}, format="json")
    assert response.status_code == 200, response.content
    notified = Notification.objects.filter(event_key__startswith="attendance:")
    assert {n.guardian_id for n in notified} == {families[0].pk, families[1].pk}
    assert set(notified.values_list("status", flat=True)) == {NotificationStatus.SENT}
    assert len(TestProvider.messages_to(families[0].mobile_phone)) == 1
    assert len(TestProvider.messages_to(families[1].mobile_phone)) == 1
    assert TestProvider.messages_to(families[2].mobile_phone) == []


def test_the_hold_keeps_the_message_until_the_sweep_after_it(
    api, tenant, families, notify, django_capture_on_commit_callbacks
):
    notify.NOTIFY_ATTENDANCE_HOLD_SECONDS = 600
    student = tenant.students[0]
    body = {"student": student.pk, "date": today(tenant), "status": "absent"}
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post("/api/v1/attendance/", body, format="json").status_code == 201
    notification = Notification.objects.get(event_key__startswith=f"attendance:{student.pk}:")
    assert notification.status == NotificationStatus.PENDING
    hold = (notification.deferred_until - timezone.now()).total_seconds()
    assert 500 < hold <= 600
    assert not Delivery.objects.exists() and TestProvider.outbox == []
    # Ten minutes later, the periodic sweep dispatches it.
    Notification.objects.filter(pk=notification.pk).update(
        deferred_until=timezone.now() - dt.timedelta(seconds=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        tasks.dispatch_due.delay()
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.SENT
    assert len(TestProvider.messages_to(families[0].mobile_phone)) == 1
