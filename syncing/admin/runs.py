"""Sync runs: progress, counts, a held run's staged totals and samples with the three
decisions, cancel; and the staged changes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join

from attendance.models import School
from core.errors import ApplicationError
from syncing.admin.common import (
    ReadOnlyScopedAdmin,
    changes_html,
    counts_html,
    report_outcome,
    run_kind,
    status_html,
)
from syncing.locks import connection_lock_held
from syncing.models import Approval, Phase, RunStatus, SyncChange, SyncRun
from syncing.retention import details_kept_until
from syncing.selectors import run_change_totals
from syncing.services import run_approve, run_cancel


class FirstChangesFormSet(BaseInlineFormSet):
    """Only the run's first 50 changes in staging order: a run may stage hundreds of
    thousands (the Sync changes list pages through them all)."""

    def get_queryset(self) -> QuerySet[SyncChange]:
        if not hasattr(self, "_first_changes"):
            changes = super().get_queryset()  # this run's, in the inline's order
            first = list(changes.values_list("pk", flat=True)[:50])
            self._first_changes = changes.filter(pk__in=first)
        return self._first_changes


class SyncChangeInline(admin.TabularInline):
    model = SyncChange
    formset = FirstChangesFormSet
    fields = ["entity", "action", "state", "source_id", "diff"]
    readonly_fields = ["entity", "action", "state", "source_id", "diff"]
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False
    verbose_name_plural = "changes (first 50; see Sync changes for all)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[SyncChange]:
        return super().get_queryset(request).order_by("rank", "id")


def _samples_html(
    entity: str, action: str, rows: list[dict[str, Any]], total: int, schools: dict[int, str]
) -> str:
    """A held run's sample changes of one entity and action: source id, school (its name from
    ``schools``), field diffs."""

    def diff_text(diff: Any) -> str:
        if not isinstance(diff, dict):
            return ""
        return "; ".join(
            f"{name}: {pair[0]!r} → {pair[1]!r}"
            if isinstance(pair, list | tuple) and len(pair) == 2
            else f"{name}: {pair!r}"
            for name, pair in diff.items()
        )[:500]

    body = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                row.get("source_id", ""),
                schools.get(row.get("school_id") or 0, row.get("school_id") or ""),
                diff_text(row.get("diff")),
            )
            for row in rows
        ),
    )
    return format_html(
        "<p><strong>{} {}</strong>: {} of {}</p><table><thead><tr><th>source id</th>"
        "<th>school</th><th>changes</th></tr></thead><tbody>{}</tbody></table>",
        entity,
        action,
        len(rows),
        total,
        body,
    )


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyScopedAdmin):
    list_display = [
        "id",
        "connection",
        "kind",
        "status_badge",
        "progress_column",
        "counts_summary",
        "duration_display",
        "created",
    ]
    list_filter = ["status", "mode", "trigger", "district", "connection", "dry_run"]
    list_select_related = ["connection"]
    date_hierarchy = "created_at"
    inlines = [SyncChangeInline]
    readonly_fields = [
        "district",
        "connection",
        "mode",
        "trigger",
        "status_badge",
        "phase",
        "dry_run",
        "requested_by",
        "progress_bar",
        "counts_table",
        "held_reason",
        "held_summary",
        "error_summary",
        "quarantined_count",
        "conflicts_count",
        "watermark_from",
        "watermark_to",
        "started_at",
        "staged_at",
        "finished_at",
        "workers",
        "details_retention",
        "approval",
        "approved_by",
        "approved_at",
    ]
    fields = readonly_fields
    actions = ["approve_all", "approve_except_deactivations", "reject", "cancel"]
    object_actions = {
        "approve_all": "Approve all",
        "approve_except_deactivations": "Approve all but deactivations",
        "reject": "Reject (apply nothing)",
        "cancel": "Cancel the run",
    }

    # Shown only for a run that was held or is a dry run (whose staged totals are the point).
    REVIEW_FIELDS = ["held_reason", "held_summary", "approval", "approved_by", "approved_at"]

    def get_fields(self, request: HttpRequest, obj: SyncRun | None = None) -> list[str]:
        """The run's page without what cannot apply to it: no review for a run that was never
        held (its staged totals are its counts), no phase once it is over, no error summary
        without an error."""
        fields = list(super().get_fields(request, obj))
        if obj is None:
            return fields
        hidden = set()
        if (obj.held_details or {}).get("breaches"):
            hidden.add("held_reason")  # the review lists the same breaches, one a line
        if not (obj.status == RunStatus.HELD or obj.approval or obj.held_details or obj.dry_run):
            hidden.update(self.REVIEW_FIELDS)
        if obj.status not in (RunStatus.PENDING, RunStatus.RUNNING):
            hidden.add("phase")
        if not obj.error_summary:
            hidden.add("error_summary")
        return [field for field in fields if field not in hidden]

    def object_actions_for(self, obj: SyncRun) -> list[str]:
        if obj.status == RunStatus.HELD:
            return list(self.object_actions)
        if obj.status == RunStatus.PENDING or (
            # A running run can be cancelled only once its worker is gone (services.run_cancel).
            obj.status == RunStatus.RUNNING and not connection_lock_held(obj.connection_id)
        ):
            return ["cancel"]
        return []

    @admin.display(description="status")
    def status_badge(self, obj: SyncRun) -> str:
        return status_html(obj)

    @admin.display(description="kind", ordering="mode")
    def kind(self, obj: SyncRun) -> str:
        return run_kind(obj)

    @admin.display(description="workers")
    def workers(self, obj: SyncRun) -> str:
        """How often a worker took the run up, and how often the minute drain handed it out
        again after a worker died with it (docs/sync.md, Concurrency and recovery)."""
        text = f"taken up {obj.executions} time{'s' if obj.executions != 1 else ''}"
        if obj.lost_worker_handouts:
            text += (
                f"; handed to the workers again {obj.lost_worker_handouts}× after a worker "
                "died with it"
            )
        return text

    def still_moving(self, obj: SyncRun) -> bool:
        return obj.status in (RunStatus.PENDING, RunStatus.RUNNING)

    @admin.display(description="progress")
    def progress_bar(self, obj: SyncRun) -> str:
        percent = obj.progress_percent
        if obj.status != RunStatus.RUNNING:
            note = f"{percent}%"
        elif obj.phase == Phase.FETCH and not obj.pages_expected:
            # A first run cannot know its size yet: an indeterminate bar and the count.
            return format_html('<progress style="width:8em"></progress> {}', obj.progress_note)
        else:
            note = f"{percent}%, {obj.progress_note}"
        return format_html(
            '<progress max="100" value="{}" style="width:8em"></progress> {}', percent, note
        )

    @admin.display(description="progress")
    def progress_column(self, obj: SyncRun) -> str:
        """The list's progress: the bar while a run is active; where a failed or cancelled
        one stopped; nothing once completed (the list stays a laptop's width)."""
        if obj.status in (RunStatus.PENDING, RunStatus.RUNNING):
            return self.progress_bar(obj)
        if obj.status in (RunStatus.FAILED, RunStatus.CANCELLED):
            return f"stopped at {obj.progress_percent}%"
        return ""

    @admin.display(description="changes")
    def counts_summary(self, obj: SyncRun) -> str:
        """The changes, then quarantined records and conflicts when there are any (one column
        for the three keeps the list a laptop's width)."""
        extra = [
            f"{n:,} {word}{'s' if word == 'conflict' and n != 1 else ''}"
            for n, word in (
                (obj.quarantined_count, "quarantined"),
                (obj.conflicts_count, "conflict"),
            )
            if n
        ]
        if not extra:
            return changes_html(obj.counts)
        return format_html("{}; <strong>{}</strong>", changes_html(obj.counts), ", ".join(extra))

    @admin.display(description="counts per entity and action")
    def counts_table(self, obj: SyncRun) -> str:
        return counts_html(obj.counts) if obj.counts else "-"

    @admin.display(description="staged totals and samples")
    def held_summary(self, obj: SyncRun) -> str:
        details = obj.held_details or {"totals": run_change_totals(obj)}
        if not details.get("totals"):
            return "-"
        parts: list[str] = []
        breaches = details.get("breaches") or []
        if breaches:
            reasons = format_html_join("", "<li>{}</li>", ((b["text"],) for b in breaches))
            parts.append(format_html("<p><strong>Held because:</strong></p><ul>{}</ul>", reasons))
        parts.append(counts_html(details["totals"]))
        samples = details.get("samples", {})
        school_ids = {
            row["school_id"]
            for actions in samples.values()
            for rows in actions.values()
            for row in rows
            if row.get("school_id")
        }
        schools = dict(School.objects.filter(pk__in=school_ids).values_list("pk", "name"))
        for entity, actions in sorted(samples.items()):
            for action, rows in sorted(actions.items()):
                if rows:
                    total = details["totals"].get(entity, {}).get(action, len(rows))
                    parts.append(_samples_html(entity, action, rows, total, schools))
        return format_html_join("", "{}", ((part,) for part in parts))

    @admin.display(description="staged changes and pages")
    def details_retention(self, obj: SyncRun) -> str:
        def when(moment: dt.datetime) -> str:
            return date_format(timezone.localtime(moment), "DATETIME_FORMAT")

        if obj.details_purged_at is not None:
            return (
                f"deleted {when(obj.details_purged_at)} "
                "(retention period ended; the counts above are kept)"
            )
        until = details_kept_until(obj)
        return "kept while the run is active" if until is None else f"kept until {when(until)}"

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: SyncRun) -> str:
        """Short enough for the list ("Dec 7, 21:57"; the year when it is not this one)."""
        moment = timezone.localtime(obj.created_at)
        this_year = moment.year == timezone.localdate().year
        return date_format(moment, "M j, H:i" if this_year else "M j Y, H:i")

    @admin.display(description="duration")
    def duration_display(self, obj: SyncRun) -> str:
        seconds = obj.duration
        return "" if seconds is None else f"{seconds:.1f} s"

    def _decide(self, request: HttpRequest, queryset: QuerySet[SyncRun], approval: str) -> None:
        done, failed = 0, []
        for run in queryset:
            try:
                run_approve(run=run, user=request.user, approval=approval)
                done += 1
            except ApplicationError as exc:
                failed.append(f"Run #{run.pk}: {exc.message}")
        report_outcome(request, done, failed, Approval(approval).label)

    @admin.action(description="Approve all staged changes of held runs")
    def approve_all(self, request: HttpRequest, queryset: QuerySet[SyncRun]) -> None:
        self._decide(request, queryset, Approval.ALL)

    @admin.action(description="Approve held runs except deactivations")
    def approve_except_deactivations(
        self, request: HttpRequest, queryset: QuerySet[SyncRun]
    ) -> None:
        self._decide(request, queryset, Approval.EXCEPT_DEACTIVATIONS)

    @admin.action(description="Reject held runs (apply nothing)")
    def reject(self, request: HttpRequest, queryset: QuerySet[SyncRun]) -> None:
        self._decide(request, queryset, Approval.REJECT)

    @admin.action(description="Cancel pending, held or stalled runs")
    def cancel(self, request: HttpRequest, queryset: QuerySet[SyncRun]) -> None:
        done, failed = 0, []
        for run in queryset:
            try:
                run_cancel(run=run)
                done += 1
            except ApplicationError as exc:
                failed.append(f"Run #{run.pk}: {exc.message}")
        report_outcome(request, done, failed, "Cancelled")


@admin.register(SyncChange)
class SyncChangeAdmin(ReadOnlyScopedAdmin):
    district_path = "run__district"
    list_display = ["run", "entity", "action", "state", "source_id", "diff"]
    list_filter = ["action", "state", "entity"]
    search_fields = ["source_id"]
    raw_id_fields = ["run", "link"]
