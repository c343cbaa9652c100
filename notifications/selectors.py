"""Reads of the notifications app (the parent portal reads through these too)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate

from attendance.models import Guardian, Student, StudentGuardian
from notifications.models import (
    HANDED_OVER_STATUSES_LIST,
    BulkNotice,
    ContactPoint,
    Delivery,
    DeliveryStatus,
    Notification,
    Preference,
)


def student_links(*, student: Student) -> list[StudentGuardian]:
    """All links of a student (inactive and no-contact ones too: resolution explains them)."""
    return list(
        StudentGuardian.objects.filter(student=student)
        .select_related("guardian")
        .order_by("priority", "id")
    )


def guardians_contact_points(*, guardian_ids: Iterable[int]) -> dict[int, list[ContactPoint]]:
    result: dict[int, list[ContactPoint]] = defaultdict(list)
    for cp in ContactPoint.objects.filter(guardian_id__in=list(guardian_ids)):
        result[cp.guardian_id].append(cp)
    return result


def guardians_preferences(*, guardian_ids: Iterable[int]) -> dict[int, list[Preference]]:
    result: dict[int, list[Preference]] = defaultdict(list)
    for pref in Preference.objects.filter(guardian_id__in=list(guardian_ids)):
        result[pref.guardian_id].append(pref)
    return result


def guardian_contact_points(*, guardian: Guardian) -> QuerySet[ContactPoint]:
    return ContactPoint.objects.filter(guardian=guardian).order_by("kind", "id")


def guardian_notifications(*, guardian: Guardian) -> QuerySet[Notification]:
    """What was sent (or deliberately not sent) to a guardian, newest first."""
    return (
        Notification.objects.filter(guardian=guardian)
        .exclude(status=Notification._meta.get_field("status").default)
        .select_related("student", "category")
        .prefetch_related("deliveries")
        .order_by("-created_at")
    )


def bulk_notice_progress(*, notice: BulkNotice) -> dict[str, int]:
    """Live counts for a bulk notice, from its deliveries."""
    counts = Delivery.objects.filter(notification__bulk_notice=notice).aggregate(
        planned=Count("id"),
        sent=Count("id", filter=Q(status__in=HANDED_OVER_STATUSES_LIST)),
        failed=Count(
            "id",
            filter=Q(
                status__in=[
                    DeliveryStatus.FAILED,
                    DeliveryStatus.BOUNCED,
                    DeliveryStatus.UNDELIVERED,
                ]
            ),
        ),
        cancelled=Count("id", filter=Q(status=DeliveryStatus.CANCELLED)),
        waiting=Count(
            "id",
            filter=Q(
                status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING, DeliveryStatus.SENDING]
            ),
        ),
    )
    return {key: int(value or 0) for key, value in counts.items()}


def delivery_statistics(*, deliveries: QuerySet[Delivery]) -> list[dict[str, Any]]:
    """Deliveries per day and channel, with how many reached the provider and how many failed."""
    rows = (
        deliveries.annotate(day=TruncDate("created_at"))
        .values("day", "channel")
        .annotate(
            total=Count("id"),
            delivered=Count("id", filter=Q(status=DeliveryStatus.DELIVERED)),
            failed=Count(
                "id",
                filter=Q(
                    status__in=[
                        DeliveryStatus.FAILED,
                        DeliveryStatus.BOUNCED,
                        DeliveryStatus.UNDELIVERED,
                    ]
                ),
            ),
        )
        .order_by("day", "channel")
    )
    return [dict(row) for row in rows]
