"""Reads of the parent portal."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Q, QuerySet
from django.utils import timezone

from attendance.models import Guardian, Student, StudentGuardian
from notifications.models import Category, ContactPoint, Notification, Preference
from notifications.resolution import preferences_merge
from notifications.selectors import guardian_notifications

# Categories a guardian can see and set; "operational" is for administrators.
PORTAL_CATEGORY_EXCLUDE = (Category.OPERATIONAL,)
HISTORY_DAYS = 90
CHANNELS = ("sms", "email")


def guardians_for_contact(*, kind: str, value: str) -> list[Guardian]:
    """Active guardians reachable at this contact: the roster's own field, or a verified and
    active contact point (one the district synced, or one the guardian verified here)."""
    roster = Q(mobile_phone=value) if kind == "sms" else Q(email__iexact=value)
    points = ContactPoint.objects.filter(kind=kind, value=value, active=True, verified=True)
    return list(
        Guardian.objects.filter(active=True)
        .filter(roster | Q(pk__in=points.values("guardian_id")))
        .select_related("district")
        .order_by("id")
    )


def guardian_children(*, guardian: Guardian) -> list[Student]:
    """The guardian's students they may be contacted about (active links with contact rights)."""
    links = (
        StudentGuardian.objects.filter(
            guardian=guardian, active=True, contact_allowed=True, student__active=True
        )
        .select_related("student", "student__school")
        .order_by("priority", "student__legal_first_name", "student_id")
    )
    return [link.student for link in links]


def guardian_child(*, guardian: Guardian, student_id: int) -> Student | None:
    return next((s for s in guardian_children(guardian=guardian) if s.pk == student_id), None)


def portal_categories() -> list[Category]:
    return list(
        Category.objects.exclude(code__in=PORTAL_CATEGORY_EXCLUDE).order_by("-critical", "id")
    )


@dataclass
class CategoryChoice:
    category: Category
    channels: list[str]


@dataclass
class ChildPreferences:
    student: Student
    choices: list[CategoryChoice] = field(default_factory=list)


def child_preferences(*, guardian: Guardian, student: Student) -> ChildPreferences:
    """The channels in effect for each category about one child (all layers merged, exactly as
    notification resolution merges them)."""
    rows = list(Preference.objects.filter(guardian=guardian))
    result = ChildPreferences(student=student)
    for category in portal_categories():
        merged = preferences_merge(rows, student_id=student.pk, category_id=category.pk)
        if category.critical:
            channels = list(CHANNELS)  # always on: the switch is ignored by resolution
        elif merged.enabled is False:
            channels = []
        elif merged.channels is None:
            channels = list(category.default_channels) or list(CHANNELS)
        else:
            channels = [c for c in CHANNELS if c in merged.channels]
        result.choices.append(CategoryChoice(category=category, channels=channels))
    return result


def guardian_wide_preference(*, guardian: Guardian) -> Preference | None:
    return Preference.objects.filter(guardian=guardian, student=None, category=None).first()


def guardian_contact_points(*, guardian: Guardian) -> QuerySet[ContactPoint]:
    return (
        ContactPoint.objects.filter(guardian=guardian, active=True)
        .select_related("guardian__district")
        .order_by("kind", "id")
    )


def guardian_history(
    *, guardian: Guardian, now: dt.datetime | None = None
) -> QuerySet[Notification]:
    """Messages to this guardian in the last 90 days, newest first, with their deliveries."""
    since = (now or timezone.now()) - dt.timedelta(days=HISTORY_DAYS)
    return guardian_notifications(guardian=guardian).filter(created_at__gte=since)
