"""Sync runs: list and detail (``sync:read``), start one (``sync:run``).

Starting goes through :func:`syncing.services.sync_start`, which owns the rules: one active run
per connection, so a second start while a run is pending, running or held answers that run.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.errors import ApplicationError
from gateway.inbound.views import IntegratorDetailView, IntegratorListView
from sis.models import SISConnection
from syncing.api import filters
from syncing.models import Mode, SyncRun, Trigger
from syncing.services import sync_start

READ = {"GET": "sync:read"}


class RunOutput(serializers.ModelSerializer[SyncRun]):
    counts = serializers.DictField(
        child=serializers.DictField(child=serializers.IntegerField()),
        read_only=True,
        help_text="Per entity: create, update, deactivate, unchanged, quarantined.",
    )
    progress_percent = serializers.IntegerField(read_only=True)
    duration_seconds = serializers.FloatField(source="duration", read_only=True, allow_null=True)

    class Meta:
        model = SyncRun
        fields = [
            "id",
            "connection",
            "mode",
            "trigger",
            "status",
            "phase",
            "dry_run",
            "progress_percent",
            "pages_done",
            "pages_expected",
            "changes_total",
            "changes_applied",
            "counts",
            "conflicts_count",
            "quarantined_count",
            "held_reason",
            "error_summary",
            "approval",
            "started_at",
            "staged_at",
            "finished_at",
            "duration_seconds",
            "created_at",
            "updated_at",
        ]


class StartInput(serializers.Serializer[dict[str, Any]]):
    connection = serializers.IntegerField(min_value=1, help_text="The SIS connection's id.")
    mode = serializers.ChoiceField(
        choices=[Mode.FULL, Mode.DELTA],
        default=Mode.FULL,
        help_text="`full` (the default) reads everything and deactivates what the SIS no "
        "longer has; `delta` reads what changed since the last run.",
    )
    dry_run = serializers.BooleanField(
        default=False, help_text="Stage and count the changes without applying them."
    )


_EXAMPLE_RUN = {
    "id": 57,
    "connection": 4,
    "mode": "delta",
    "trigger": "api",
    "status": "pending",
    "phase": "fetch",
    "dry_run": False,
    "progress_percent": 0,
    "pages_done": 0,
    "pages_expected": None,
    "changes_total": 0,
    "changes_applied": 0,
    "counts": {},
    "conflicts_count": 0,
    "quarantined_count": 0,
    "held_reason": "",
    "error_summary": "",
    "approval": "",
    "started_at": None,
    "staged_at": None,
    "finished_at": None,
    "duration_seconds": None,
    "created_at": "2026-09-01T13:00:00Z",
    "updated_at": "2026-09-01T13:00:00Z",
}


class RunListView(IntegratorListView):
    """Sync runs of the district; filter by ``connection``, ``status``, ``mode``, ``trigger``,
    ``dry_run`` and start time (``created_since``/``created_before``). ``POST`` starts one."""

    required_scopes = {"GET": "sync:read", "POST": "sync:run"}
    OutputSerializer = RunOutput
    InputSerializer = StartInput
    serializer_class = OutputSerializer
    filterset_class = filters.RunFilter
    ordering_fields: ClassVar[list[str]] = ["id", "updated_at", "created_at"]

    def base_queryset(self) -> QuerySet[SyncRun]:
        return SyncRun.objects.all()

    @extend_schema(
        request=StartInput,
        responses={
            202: OpenApiResponse(RunOutput, description="A new run was queued."),
            200: OpenApiResponse(
                RunOutput,
                description="A run of this connection is already pending, running or held "
                "for review: that run, unchanged (nothing new is queued).",
            ),
        },
        examples=[
            OpenApiExample(
                "Delta sync", value={"connection": 4, "mode": "delta"}, request_only=True
            ),
            OpenApiExample("The queued run", value=_EXAMPLE_RUN, response_only=True),
        ],
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Start a sync of one connection. 202 with the new run; 200 with the run already
        active for the connection (a connection syncs one run at a time)."""
        given = self.InputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        connection = SISConnection.objects.filter(
            pk=data["connection"], district_id=self.principal.district_id
        ).first()
        if connection is None:
            raise ApplicationError("Unknown SIS connection.", code="unknown_connection", status=422)
        run, created = sync_start(
            connection=connection, mode=data["mode"], trigger=Trigger.API, dry_run=data["dry_run"]
        )
        answer = status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK
        return Response(self.OutputSerializer(run).data, status=answer)


class RunDetailView(IntegratorDetailView):
    """One run with its counts, progress, held reason and error summary."""

    required_scopes = READ
    OutputSerializer = RunOutput
    serializer_class = OutputSerializer

    def base_queryset(self) -> QuerySet[SyncRun]:
        return SyncRun.objects.all()

    @extend_schema(examples=[OpenApiExample("A run", value=_EXAMPLE_RUN, response_only=True)])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
