"""Bulk notices: list and detail with live progress (``notifications:read``), create and start,
cancel (``notifications:send``). The rules (required district-language text, audience, one
start, what a cancel stops) are the services' in :mod:`notifications.services.bulk`."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from attendance.models import District, School, Section
from core.errors import ApplicationError, NotFoundError
from gateway.inbound.views import IntegratorAPIView, IntegratorDetailView, IntegratorListView
from notifications import selectors
from notifications.api import filters
from notifications.models import BulkNotice, Category
from notifications.services.bulk import (
    bulk_notice_cancel,
    bulk_notice_create,
    bulk_notice_start,
)

logger = logging.getLogger(__name__)

READ = {"GET": "notifications:read"}
MAX_AUDIENCE_IDS = 1000


class BulkNoticeOutput(serializers.ModelSerializer[BulkNotice]):
    category = serializers.CharField(source="category.code", read_only=True)
    schools = serializers.PrimaryKeyRelatedField[School](many=True, read_only=True)
    sections = serializers.PrimaryKeyRelatedField[Section](many=True, read_only=True)
    grade_levels = serializers.ListField(child=serializers.CharField(), read_only=True)
    texts = serializers.DictField(
        child=serializers.DictField(child=serializers.CharField()), read_only=True
    )

    class Meta:
        model = BulkNotice
        fields = [
            "id",
            "title",
            "category",
            "state",
            "schools",
            "grade_levels",
            "sections",
            "texts",
            "recipients_planned",
            "recipients_suppressed",
            "deliveries_planned",
            "deliveries_sent",
            "deliveries_failed",
            "started_at",
            "finished_at",
            "created_at",
            "updated_at",
        ]


class _Progress(serializers.Serializer[dict[str, int]]):
    planned = serializers.IntegerField()
    sent = serializers.IntegerField(help_text="Handed to the provider (or delivered).")
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    waiting = serializers.IntegerField(help_text="Still to be sent or retried.")


class BulkNoticeDetailOutput(BulkNoticeOutput):
    progress = serializers.SerializerMethodField(help_text="Live delivery counts.")

    class Meta(BulkNoticeOutput.Meta):
        fields = [*BulkNoticeOutput.Meta.fields, "progress"]

    @extend_schema_field(_Progress)
    def get_progress(self, notice: BulkNotice) -> dict[str, int]:
        return selectors.bulk_notice_progress(notice=notice)


class _Text(serializers.Serializer[dict[str, str]]):
    subject = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    body = serializers.CharField(max_length=5000)


class CreateInput(serializers.Serializer[dict[str, Any]]):
    """A notice to the whole district (no ``schools``), or to some schools, narrowed by
    ``grade_levels`` and ``sections``. ``texts`` per language; the district's language is
    required, the others are used for guardians who chose them."""

    title = serializers.CharField(max_length=200)
    category = serializers.CharField(
        max_length=32, help_text="A category code: `general`, `emergency`, …"
    )
    texts = serializers.DictField(child=_Text(), allow_empty=False)
    schools = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=MAX_AUDIENCE_IDS
    )
    grade_levels = serializers.ListField(
        child=serializers.CharField(max_length=8), required=False, max_length=20
    )
    sections = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=MAX_AUDIENCE_IDS
    )

    def validate_texts(self, texts: dict[str, Any]) -> dict[str, Any]:
        known = {code for code, _ in settings.LANGUAGES}
        unknown = sorted(set(texts) - known)
        if unknown:
            raise serializers.ValidationError(
                f"Unknown language(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}."
            )
        return texts


def _owned[M: (School, Section)](rows: QuerySet[M], ids: list[int], name: str) -> list[M]:
    """The rows of these ids (``rows`` is already limited to the caller's district); any other
    id is a 422 listing it (they are the caller's own input, so this confirms nothing)."""
    found = list(rows.filter(pk__in=ids)) if ids else []
    missing = sorted(set(ids) - {row.pk for row in found})
    if missing:
        raise ApplicationError(
            f"Unknown {name}(s).", code=f"unknown_{name}", status=422, details={"ids": missing}
        )
    return found


_EXAMPLE_BODY = {
    "title": "Snow day",
    "category": "emergency",
    "texts": {
        "en": {"subject": "School closed", "body": "All schools are closed today."},
        "es": {"subject": "Escuela cerrada", "body": "Todas las escuelas están cerradas hoy."},
    },
    "schools": [3],
    "grade_levels": ["05", "06"],
}
_EXAMPLE_NOTICE = {
    "id": 12,
    "title": "Snow day",
    "category": "emergency",
    "state": "sending",
    "schools": [3],
    "grade_levels": ["05", "06"],
    "sections": [],
    "texts": _EXAMPLE_BODY["texts"],
    "recipients_planned": 412,
    "recipients_suppressed": 9,
    "deliveries_planned": 780,
    "deliveries_sent": 512,
    "deliveries_failed": 3,
    "started_at": "2026-12-01T12:00:00Z",
    "finished_at": None,
    "created_at": "2026-12-01T12:00:00Z",
    "updated_at": "2026-12-01T12:01:10Z",
    "progress": {"planned": 780, "sent": 530, "failed": 3, "cancelled": 0, "waiting": 247},
}


class BulkNoticeListView(IntegratorListView):
    """Bulk notices of the district (filter by ``state``, ``category`` and time). ``POST``
    creates one and starts sending it."""

    required_scopes = {"GET": "notifications:read", "POST": "notifications:send"}
    OutputSerializer = BulkNoticeOutput
    InputSerializer = CreateInput
    serializer_class = OutputSerializer
    filterset_class = filters.BulkNoticeFilter
    ordering_fields: ClassVar[list[str]] = ["id", "updated_at", "created_at"]

    def base_queryset(self) -> QuerySet[BulkNotice]:
        return BulkNotice.objects.select_related("category").prefetch_related("schools", "sections")

    @extend_schema(
        request=CreateInput,
        responses={202: BulkNoticeDetailOutput},
        examples=[
            OpenApiExample("Snow day", value=_EXAMPLE_BODY, request_only=True),
            OpenApiExample("Planning", value=_EXAMPLE_NOTICE, response_only=True),
        ],
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Create a bulk notice and start it: recipients are planned and messages sent in the
        background (202); follow ``GET bulk-notices/{id}/`` for progress."""
        given = self.InputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        principal = self.principal
        district_id = principal.district_id
        category = Category.objects.filter(code=data["category"]).first()
        if category is None:
            raise ApplicationError("Unknown category.", code="unknown_category", status=422)
        schools = _owned(
            School.objects.filter(district_id=district_id), data.get("schools", []), "school"
        )
        sections = _owned(
            Section.objects.filter(school__district_id=district_id).select_related("school"),
            data.get("sections", []),
            "section",
        )
        with transaction.atomic():
            notice = bulk_notice_create(
                district=District.objects.get(pk=district_id),
                author=None,
                title=data["title"],
                category=category,
                texts=data["texts"],
                schools=schools,
                grade_levels=data.get("grade_levels", []),
                sections=sections,
            )
            bulk_notice_start(notice=notice)
        logger.info(
            "bulk notice created through the API",
            extra={"bulk_notice": notice.pk, "client": principal.owner},
        )
        fresh = self.base_queryset().get(pk=notice.pk)
        return Response(BulkNoticeDetailOutput(fresh).data, status=status.HTTP_202_ACCEPTED)


class BulkNoticeDetailView(IntegratorDetailView):
    """One bulk notice with its state and live progress counts."""

    required_scopes = READ
    OutputSerializer = BulkNoticeDetailOutput
    serializer_class = OutputSerializer

    def base_queryset(self) -> QuerySet[BulkNotice]:
        return BulkNotice.objects.select_related("category").prefetch_related("schools", "sections")

    @extend_schema(examples=[OpenApiExample("Sending", value=_EXAMPLE_NOTICE, response_only=True)])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class BulkNoticeCancelView(IntegratorAPIView):
    """Stop a notice: nothing not yet handed to a provider is sent. Cancelling a completed or
    cancelled notice changes nothing and answers it as it is."""

    required_scopes = {"POST": "notifications:send"}
    OutputSerializer = BulkNoticeDetailOutput

    @extend_schema(request=None, responses={200: BulkNoticeDetailOutput})
    def post(self, request: Request, pk: int, *args: Any, **kwargs: Any) -> Response:
        notice = (
            BulkNotice.objects.filter(pk=pk, district_id=self.principal.district_id)
            .select_related("category")
            .first()
        )
        if notice is None:
            raise NotFoundError("Not found.", code="not_found")
        bulk_notice_cancel(notice=notice, user=None)
        notice.refresh_from_db()
        return Response(self.OutputSerializer(notice).data)
