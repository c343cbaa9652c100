"""Sync conflicts: list and detail (``sync:read``), resolve one (``conflicts:resolve``).

A conflict holds the SIS, local and baseline values of one field of a roster record: student
data, so every read is written to the FERPA access log with the students it concerns.
Resolving goes through :func:`syncing.services.conflict_resolve`, audited with the API client
as the actor (the history row's reason names it; there is no user).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from django.db.models import Model, QuerySet
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from attendance.models import Enrollment, SectionEnrollment, StudentGuardian
from core.errors import NotFoundError
from gateway.inbound.views import IntegratorAPIView, IntegratorDetailView, IntegratorListView
from syncing.api import filters
from syncing.models import Conflict
from syncing.services import conflict_resolve

READ = {"GET": "sync:read"}

# Entities whose rows name one student in ``student_id``.
_STUDENT_OWNED: dict[str, type[Model]] = {
    "enrollment": Enrollment,
    "section_enrollment": SectionEnrollment,
    "student_guardian": StudentGuardian,
}


def conflict_student_ids(conflicts: Iterable[Conflict]) -> set[int]:
    """The students a page of conflicts shows data of: one query per entity kind on the page,
    not one per conflict."""
    by_entity: dict[str, set[int]] = {}
    for conflict in conflicts:
        by_entity.setdefault(conflict.entity, set()).add(conflict.link.object_id)
    ids = set(by_entity.pop("student", set()))
    for entity, object_ids in by_entity.items():
        if entity == "guardian":
            links = StudentGuardian.objects.filter(guardian_id__in=object_ids)
            ids.update(links.values_list("student_id", flat=True))
        elif entity in _STUDENT_OWNED:
            rows = _STUDENT_OWNED[entity]._default_manager.filter(pk__in=object_ids)
            ids.update(i for i in rows.values_list("student_id", flat=True) if i is not None)
    return ids


class ConflictOutput(serializers.ModelSerializer[Conflict]):
    connection = serializers.IntegerField(source="link.connection_id", read_only=True)
    object_id = serializers.IntegerField(
        source="link.object_id", read_only=True, help_text="Our id of the record (e.g. student)."
    )
    source_id = serializers.CharField(
        source="link.source_id", read_only=True, help_text="The SIS's id of the record."
    )
    base_value = serializers.JSONField(read_only=True, allow_null=True)
    sis_value = serializers.JSONField(read_only=True, allow_null=True)
    local_value = serializers.JSONField(read_only=True, allow_null=True)
    resolution_value = serializers.JSONField(read_only=True, allow_null=True)

    class Meta:
        model = Conflict
        fields = [
            "id",
            "connection",
            "run",
            "school",
            "entity",
            "object_id",
            "source_id",
            "field",
            "base_value",
            "sis_value",
            "local_value",
            "policy",
            "status",
            "resolution_value",
            "resolved_at",
            "created_at",
            "updated_at",
        ]


class _ConflictReads:
    """FERPA: log the students behind a page of conflicts in one pass."""

    def _log_rows(self, rows: Sequence[Model]) -> None:
        conflicts = [row for row in rows if isinstance(row, Conflict)]
        self.log_student_access(conflict_student_ids(conflicts))  # type: ignore[attr-defined]

    def base_queryset(self) -> QuerySet[Conflict]:
        return Conflict.objects.select_related("link")


_EXAMPLE = {
    "id": 311,
    "connection": 4,
    "run": 57,
    "school": 3,
    "entity": "student",
    "object_id": 101,
    "source_id": "stu-100042",
    "field": "preferred_first_name",
    "base_value": "Avery",
    "sis_value": "Ave",
    "local_value": "Avy",
    "policy": "review",
    "status": "open",
    "resolution_value": None,
    "resolved_at": None,
    "created_at": "2026-09-01T13:05:00Z",
    "updated_at": "2026-09-01T13:05:00Z",
}


class ConflictListView(_ConflictReads, IntegratorListView):
    """Fields changed both in the SIS and here since the last agreed value. Filter by
    ``connection``, ``run``, ``school``, ``entity``, ``field``, ``status`` and age
    (``older_than_days``, ``created_since``/``created_before``)."""

    required_scopes = READ
    OutputSerializer = ConflictOutput
    serializer_class = OutputSerializer
    filterset_class = filters.ConflictFilter
    ordering_fields: ClassVar[list[str]] = ["id", "updated_at", "created_at"]

    @extend_schema(
        examples=[
            OpenApiExample(
                "Open conflicts",
                value={"next": None, "previous": None, "results": [_EXAMPLE]},
                response_only=True,
            )
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class ConflictDetailView(_ConflictReads, IntegratorDetailView):
    required_scopes = READ
    OutputSerializer = ConflictOutput
    serializer_class = OutputSerializer


class ResolveInput(serializers.Serializer[dict[str, Any]]):
    choice = serializers.ChoiceField(
        choices=["sis", "local", "edit"],
        help_text="`sis` keeps the SIS value, `local` ours (queued for write-back when the "
        "connector can write it), `edit` a new `value`.",
    )
    value = serializers.JSONField(
        required=False, allow_null=True, help_text="The value to keep; only with `edit`."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["choice"] == "edit" and "value" not in attrs:
            raise serializers.ValidationError({"value": ["Give the value to keep."]})
        if attrs["choice"] != "edit" and "value" in attrs:
            raise serializers.ValidationError({"value": ["Only with choice edit."]})
        return attrs


class ConflictResolveView(IntegratorAPIView):
    """Settle an open conflict. 409 ``already_resolved`` when it was settled before."""

    required_scopes = {"POST": "conflicts:resolve"}
    InputSerializer = ResolveInput
    OutputSerializer = ConflictOutput

    @extend_schema(
        request=ResolveInput,
        responses={200: ConflictOutput},
        examples=[
            OpenApiExample("Keep the SIS value", value={"choice": "sis"}, request_only=True),
            OpenApiExample(
                "Keep an edited value",
                value={"choice": "edit", "value": "Avery"},
                request_only=True,
            ),
        ],
    )
    def post(self, request: Request, pk: int, *args: Any, **kwargs: Any) -> Response:
        conflict = (
            Conflict.objects.select_related("link")
            .filter(pk=pk, district_id=self.principal.district_id)
            .first()
        )
        if conflict is None:
            raise NotFoundError("Not found.", code="not_found")
        given = self.InputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        principal = self.principal
        resolved = conflict_resolve(
            conflict=conflict,
            user=None,
            choice=data["choice"],
            value=data.get("value"),
            actor=f"API client {principal.label} ({principal.owner})",
        )
        return Response(self.OutputSerializer(resolved).data)
