"""django-filter sets of the notifications API."""

from __future__ import annotations

from django_filters import rest_framework as filters

from attendance.api.filters import IdFilter, UpdatedSinceFilterSet, UtcDateTimeFilter
from notifications.models import (
    BulkNotice,
    BulkNoticeState,
    Channel,
    Delivery,
    DeliveryStatus,
    Notification,
    NotificationStatus,
)


class _CreatedRange(UpdatedSinceFilterSet):
    created_since = UtcDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="Created at or after (ISO 8601)."
    )
    created_before = UtcDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="Created before (ISO 8601)."
    )


class NotificationFilter(_CreatedRange):
    student = IdFilter(field_name="student_id")
    guardian = IdFilter(field_name="guardian_id")
    school = IdFilter(field_name="school_id")
    bulk_notice = IdFilter(field_name="bulk_notice_id")
    category = filters.CharFilter(
        field_name="category__code", help_text="A category code, e.g. `attendance`."
    )
    status = filters.MultipleChoiceFilter(choices=NotificationStatus.choices)

    class Meta:
        model = Notification
        fields: list[str] = []


class DeliveryFilter(_CreatedRange):
    notification = IdFilter(field_name="notification_id")
    student = IdFilter(field_name="notification__student_id")
    guardian = IdFilter(field_name="notification__guardian_id")
    category = filters.CharFilter(field_name="notification__category__code")
    channel = filters.ChoiceFilter(choices=Channel.choices)
    status = filters.MultipleChoiceFilter(choices=DeliveryStatus.choices)

    class Meta:
        model = Delivery
        fields: list[str] = []


class BulkNoticeFilter(_CreatedRange):
    state = filters.MultipleChoiceFilter(choices=BulkNoticeState.choices)
    category = filters.CharFilter(field_name="category__code")

    class Meta:
        model = BulkNotice
        fields: list[str] = []
