"""What waits for an administrator's decision: conflicts (side by side, bulk resolve),
quarantined records (re-drive, discard), identity matches, failed write-backs."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from attendance.admin_scoping import ScopedAdmin
from core.errors import ApplicationError
from syncing.admin.common import ReadOnlyScopedAdmin, report_outcome, run_link
from syncing.models import (
    Conflict,
    ConflictStatus,
    IdentityMatch,
    MatchStatus,
    OutboxStatus,
    QuarantinedRecord,
    QuarantineStatus,
    WriteBackItem,
)
from syncing.services import (
    conflict_resolve,
    identity_match_confirm,
    identity_match_reject,
    quarantine_discard,
    quarantine_redrive,
)


class AgeFilter(admin.SimpleListFilter):
    title = "age"
    parameter_name = "age"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("1", "under a day"), ("7", "under a week"), ("old", "a week or older")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        now = timezone.now()
        value = self.value()
        if value in ("1", "7"):
            return queryset.filter(created_at__gte=now - dt.timedelta(days=int(value or 0)))
        if self.value() == "old":
            return queryset.filter(created_at__lt=now - dt.timedelta(days=7))
        return queryset


@admin.register(Conflict)
class ConflictAdmin(ScopedAdmin):
    school_path = "school"
    list_display = [
        "entity",
        "field",
        "object_link",
        "base_value",
        "sis_value",
        "local_value",
        "policy",
        "status",
        "created_at",
    ]
    list_filter = ["status", "district", "school", "entity", "field", "policy", AgeFilter]
    readonly_fields = [
        "district",
        "school",
        "link",
        "run",
        "entity",
        "field",
        "base_value",
        "sis_value",
        "local_value",
        "policy",
        "status",
        "resolution_value",
        "resolved_by",
        "resolved_at",
    ]
    fields = readonly_fields
    actions = ["resolve_sis", "resolve_local"]
    object_actions = {"resolve_sis": "Keep the SIS value", "resolve_local": "Keep the local value"}
    object_actions_while = [ConflictStatus.OPEN]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="record")
    def object_link(self, obj: Conflict) -> str:
        return f"{obj.entity} {obj.link.object_id} (SIS {obj.link.source_id})"

    def _resolve(self, request: HttpRequest, queryset: QuerySet[Conflict], choice: str) -> None:
        done, failed = 0, []
        for conflict in queryset.filter(status=ConflictStatus.OPEN):
            try:
                conflict_resolve(conflict=conflict, user=request.user, choice=choice)
                done += 1
            except ApplicationError as exc:
                failed.append(exc.message)
        report_outcome(request, done, failed, "Resolved")

    @admin.action(description="Resolve with the SIS value")
    def resolve_sis(self, request: HttpRequest, queryset: QuerySet[Conflict]) -> None:
        self._resolve(request, queryset, "sis")

    @admin.action(description="Resolve with the local value")
    def resolve_local(self, request: HttpRequest, queryset: QuerySet[Conflict]) -> None:
        self._resolve(request, queryset, "local")


@admin.register(QuarantinedRecord)
class QuarantinedRecordAdmin(ReadOnlyScopedAdmin):
    list_display = ["entity", "source_id", "reason_code", "message", "status", "attempts", "run"]
    list_filter = ["status", "reason_code", "entity", "district"]
    search_fields = ["source_id"]
    readonly_fields = [
        "district",
        "connection",
        "run",
        "entity",
        "source_id",
        "reason_code",
        "message",
        "status",
        "attempts",
        "payload_pretty",
    ]
    fields = readonly_fields
    actions = ["redrive", "discard"]
    object_actions = {"redrive": "Re-drive (fetch it again)", "discard": "Discard"}
    object_actions_while = [QuarantineStatus.OPEN]

    @admin.display(description="payload")
    def payload_pretty(self, obj: QuarantinedRecord) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, default=str))

    @admin.action(description="Re-drive (re-fetch fresh from the SIS)")
    def redrive(self, request: HttpRequest, queryset: QuerySet[QuarantinedRecord]) -> None:
        try:
            run, started = quarantine_redrive(
                records=queryset.filter(status=QuarantineStatus.OPEN), user=request.user
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return
        if run is not None and started:
            messages.success(request, format_html("Re-drive queued as {}.", run_link(run)))
        elif run is not None:
            messages.success(
                request,
                format_html(
                    "This connection's {} is active: the records will be re-fetched by the "
                    "run that follows it.",
                    run_link(run),
                ),
            )

    @admin.action(description="Discard (stop tracking)")
    def discard(self, request: HttpRequest, queryset: QuerySet[QuarantinedRecord]) -> None:
        discarded = quarantine_discard(records=queryset)
        messages.success(request, f"{discarded} open record(s) discarded.")


@admin.register(IdentityMatch)
class IdentityMatchAdmin(ReadOnlyScopedAdmin):
    list_display = ["entity", "new_source_id", "object_id", "evidence", "status", "created_at"]
    list_filter = ["status", "entity", "district"]
    actions = ["confirm", "reject"]
    object_actions = {"confirm": "Confirm: the same record", "reject": "Reject: a different record"}
    object_actions_while = [MatchStatus.SUGGESTED]

    @admin.action(description="Confirm: the same record (re-key, no duplicate)")
    def confirm(self, request: HttpRequest, queryset: QuerySet[IdentityMatch]) -> None:
        self._decide(request, queryset, identity_match_confirm, "Confirmed")

    @admin.action(description="Reject: a different record")
    def reject(self, request: HttpRequest, queryset: QuerySet[IdentityMatch]) -> None:
        self._decide(request, queryset, identity_match_reject, "Rejected")

    def _decide(
        self,
        request: HttpRequest,
        queryset: QuerySet[IdentityMatch],
        decide: Callable[..., Any],
        what: str,
    ) -> None:
        done, failed = 0, []
        for match in queryset.filter(status=MatchStatus.SUGGESTED):
            try:
                decide(match=match, user=request.user)
                done += 1
            except ApplicationError as exc:
                failed.append(exc.message)
        report_outcome(request, done, failed, what)


@admin.register(WriteBackItem)
class WriteBackItemAdmin(ReadOnlyScopedAdmin):
    """The write-back outbox: state, attempts and the last error per item; failed and
    mismatched items can be sent again."""

    list_display = [
        "entity",
        "object_id",
        "target",
        "value",
        "status",
        "attempts",
        "last_error",
        "sis_value",
        "next_attempt_at",
        "updated_at",
    ]
    list_filter = ["status", "entity", "target", "district", "connection"]
    search_fields = ["source_id", "target"]
    readonly_fields = [
        "connection",
        "entity",
        "object_id",
        "source_id",
        "target",
        "value",
        "status",
        "attempts",
        "last_error",
        "sis_value",
        "next_attempt_at",
        "claimed_at",
        "sent_at",
        "verified_at",
    ]
    fields = readonly_fields
    actions = ["retry"]
    object_actions = {"retry": "Send again"}
    object_actions_while = [OutboxStatus.FAILED, OutboxStatus.MISMATCH]

    @admin.action(description="Retry (send again)")
    def retry(self, request: HttpRequest, queryset: QuerySet[WriteBackItem]) -> None:
        from syncing.writeback import writeback_retry

        done = writeback_retry(items=queryset)
        messages.success(request, f"Write-backs queued again: {done}.")
