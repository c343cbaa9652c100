"""Rows of the sync and notification endpoints for one API test tenant (tests.api.conftest):
a SIS connection, a finished run, an open conflict on a student's name, an attendance
notification with one SMS delivery, and a bulk notice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from notifications.models import (
    BulkNotice,
    Category,
    Delivery,
    DeliveryStatus,
    Notification,
    NotificationStatus,
)
from sis.models import SISConnection
from syncing.models import Conflict, Policy, RunStatus, SourceLink, SyncRun


@dataclass
class SyncNotifyRows:
    connection: SISConnection
    run: SyncRun
    conflict: Conflict
    notification: Notification
    delivery: Delivery
    bulk_notice: BulkNotice


def category(code: str = "attendance") -> Category:
    found, _ = Category.objects.get_or_create(
        code=code, defaults={"name": code.title(), "default_channels": ["sms", "email"]}
    )
    return found


def make_sync_notify_rows(tenant: Any) -> SyncNotifyRows:
    district = tenant.district
    student = tenant.students[0]
    connection = SISConnection.objects.create(
        district=district,
        name=f"{district.name} SIS",
        provider="powerschool",
        base_url="https://sis.example.org",
    )
    now = timezone.now()
    run = SyncRun.objects.create(
        district=district,
        connection=connection,
        mode="full",
        trigger="schedule",
        status=RunStatus.COMPLETED,
        counts={"student": {"create": 3}},
        started_at=now,
        finished_at=now,
    )
    link = SourceLink.objects.create(
        district=district,
        connection=connection,
        entity="student",
        source_id=f"stu-{student.pk}",
        object_id=student.pk,
        content_hash="x",
        baseline={"legal_last_name": student.legal_last_name},
    )
    conflict = Conflict.objects.create(
        district=district,
        school=tenant.school,
        link=link,
        run=run,
        entity="student",
        field="legal_last_name",
        base_value=student.legal_last_name,
        sis_value="FromSis",
        local_value="FromHere",
        policy=Policy.REVIEW,
    )
    notification = Notification.objects.create(
        event_key=f"attendance:{student.pk}:2026-09-01",
        district=district,
        school=tenant.school,
        guardian=tenant.guardian,
        student=student,
        category=category(),
        language="en",
        content={"sms": {"subject": "", "body": "Absent today.", "template": "default"}},
        plan=[{"channel": "sms", "contact_point": None}],
        status=NotificationStatus.SENT,
    )
    delivery = Delivery.objects.create(
        notification=notification,
        channel="sms",
        to="+15555550123",
        body="Absent today.",
        provider="test",
        status=DeliveryStatus.SENT,
        idempotency_key=f"test:{notification.pk}:sms",
    )
    bulk_notice = BulkNotice.objects.create(
        district=district,
        title="Picture day",
        category=category("general"),
        texts={"en": {"subject": "Picture day", "body": "Friday is picture day."}},
    )
    return SyncNotifyRows(connection, run, conflict, notification, delivery, bulk_notice)
