"""Notifications and their deliveries, read-only (scope ``notifications:read``).

A notification's rendered text names a student and what happened to them: student data, so
every read is written to the FERPA access log like the student endpoints. Deliveries show
*where* a message went only masked (``+1******4567``, ``j***@example.org``) and the contact
point's id: the full phone number or address is guardian contact data, served by
``/guardians/`` under ``roster:read``, not by this scope. Provider error texts are left out for
the same reason (they may quote the number).
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from gateway.inbound.views import IntegratorDetailView, IntegratorListView
from notifications.api import filters
from notifications.models import Delivery, Notification

READ = {"GET": "notifications:read"}


def contact_mask(channel: str, to: str) -> str:
    """Enough of an address to recognise it, not enough to use it."""
    if channel == "email":
        local, _, domain = to.partition("@")
        return f"{local[:1]}***@{domain}" if domain else "***"
    if len(to) <= 4:
        return "*" * len(to)
    lead = "+" if to.startswith("+") else ""
    digits = to.removeprefix("+")
    return f"{lead}{digits[:1]}{'*' * max(0, len(digits) - 5)}{digits[-4:]}"


_CONTENT_SCHEMA = serializers.DictField(
    child=serializers.DictField(child=serializers.CharField()),
    help_text="Per channel (`sms`, `email`): the rendered `subject`, `body` and `language`.",
)


class DeliveryOutput(serializers.ModelSerializer[Delivery]):
    to = serializers.SerializerMethodField(help_text="The address, masked.")
    student = serializers.IntegerField(
        source="notification.student_id", read_only=True, allow_null=True
    )
    guardian = serializers.IntegerField(source="notification.guardian_id", read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "uuid",
            "notification",
            "student",
            "guardian",
            "channel",
            "contact_point",
            "to",
            "subject",
            "body",
            "segments",
            "provider",
            "status",
            "error_code",
            "attempts",
            "is_fallback",
            "created_at",
            "sent_at",
            "updated_at",
        ]

    def get_to(self, delivery: Delivery) -> str:
        return contact_mask(delivery.channel, delivery.to)


class NotificationOutput(serializers.ModelSerializer[Notification]):
    category = serializers.CharField(source="category.code", read_only=True)
    channels = serializers.SerializerMethodField(help_text="The channels resolution chose.")
    content = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = [
            "id",
            "uuid",
            "event_key",
            "category",
            "school",
            "student",
            "guardian",
            "bulk_notice",
            "language",
            "status",
            "summary",
            "digest",
            "defer_reason",
            "deferred_until",
            "channels",
            "content",
            "created_at",
            "updated_at",
        ]

    def get_channels(self, notification: Notification) -> list[str]:
        return sorted({str(step.get("channel")) for step in notification.plan or []})

    @extend_schema_field(_CONTENT_SCHEMA)
    def get_content(self, notification: Notification) -> dict[str, dict[str, str]]:
        # Only what the guardian received; the template bookkeeping stays inside.
        return {
            str(channel): {
                key: str(entry[key]) for key in ("subject", "body", "language") if key in entry
            }
            for channel, entry in (notification.content or {}).items()
            if isinstance(entry, dict)
        }


class NotificationWithDeliveriesOutput(NotificationOutput):
    deliveries = DeliveryOutput(many=True, read_only=True)

    class Meta(NotificationOutput.Meta):
        fields = [*NotificationOutput.Meta.fields, "deliveries"]


def _notification_students(notification: Notification) -> list[int]:
    return [notification.student_id] if notification.student_id else []


def _delivery_students(delivery: Delivery) -> list[int]:
    student_id = delivery.notification.student_id
    return [student_id] if student_id else []


_EXAMPLE_NOTIFICATION = {
    "id": 901,
    "uuid": "6f1c2a8e-3b1d-4c55-9b0e-2d4f7a1e9c10",
    "event_key": "attendance:101:2026-09-01",
    "category": "attendance",
    "school": 3,
    "student": 101,
    "guardian": 77,
    "bulk_notice": None,
    "language": "en",
    "status": "sent",
    "summary": "",
    "digest": False,
    "defer_reason": "",
    "deferred_until": None,
    "channels": ["email", "sms"],
    "content": {
        "sms": {"subject": "", "body": "Avery was absent today (Sep 1).", "language": "en"}
    },
    "created_at": "2026-09-01T15:00:00Z",
    "updated_at": "2026-09-01T15:10:02Z",
}


class NotificationListView(IntegratorListView):
    """Messages planned for guardians (one per event and guardian). Filter by ``student``,
    ``guardian``, ``school``, ``category`` (code), ``status``, ``bulk_notice`` and time
    (``created_since``/``created_before``, ``updated_since``)."""

    required_scopes = READ
    OutputSerializer = NotificationOutput
    serializer_class = OutputSerializer
    filterset_class = filters.NotificationFilter
    ordering_fields: ClassVar[list[str]] = ["id", "updated_at", "created_at"]
    student_ids_of = staticmethod(_notification_students)

    def base_queryset(self) -> QuerySet[Notification]:
        return Notification.objects.select_related("category")

    @extend_schema(
        examples=[
            OpenApiExample(
                "Notifications",
                value={"next": None, "previous": None, "results": [_EXAMPLE_NOTIFICATION]},
                response_only=True,
            )
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class NotificationDetailView(IntegratorDetailView):
    """One notification with its deliveries."""

    required_scopes = READ
    OutputSerializer = NotificationWithDeliveriesOutput
    serializer_class = OutputSerializer
    student_ids_of = staticmethod(_notification_students)

    def base_queryset(self) -> QuerySet[Notification]:
        return Notification.objects.select_related("category").prefetch_related(
            Prefetch(
                "deliveries",
                queryset=Delivery.objects.select_related("notification").order_by("id"),
            )
        )


class DeliveryListView(IntegratorListView):
    """Attempts to reach guardians, one per channel. Filter by ``notification``, ``student``,
    ``guardian``, ``category``, ``channel``, ``status`` and time."""

    required_scopes = READ
    district_path = "notification__district_id"
    OutputSerializer = DeliveryOutput
    serializer_class = OutputSerializer
    filterset_class = filters.DeliveryFilter
    ordering_fields: ClassVar[list[str]] = ["id", "updated_at", "created_at"]
    student_ids_of = staticmethod(_delivery_students)

    def base_queryset(self) -> QuerySet[Delivery]:
        return Delivery.objects.select_related("notification")


class DeliveryDetailView(IntegratorDetailView):
    required_scopes = READ
    district_path = "notification__district_id"
    OutputSerializer = DeliveryOutput
    serializer_class = OutputSerializer
    student_ids_of = staticmethod(_delivery_students)

    def base_queryset(self) -> QuerySet[Delivery]:
        return Delivery.objects.select_related("notification")
