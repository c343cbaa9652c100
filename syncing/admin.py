"""Admin for the sync engine, scoped by membership (attendance.admin_scoping.ScopedAdmin).

Runs with progress and counts; held runs with staged totals, samples and the three decisions;
the conflict queue side by side with bulk resolve; the quarantine with re-drive; identity-match
suggestions; "Sync now" on connections; policies and schedules. Every action calls a service,
and those that fit one object are buttons on its page too (``ScopedAdmin.object_actions``).
Admin actions are offered only to users who may change something
(``ScopedAdmin.get_actions``), and run only on the selected rows they may change.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from attendance.admin_scoping import ScopedAdmin
from attendance.models import School
from core.attention import Attention, attention_register
from core.errors import ApplicationError
from syncing.locks import connection_lock_held
from syncing.models import (
    Approval,
    Conflict,
    ConflictStatus,
    FieldPolicy,
    IdentityMatch,
    MatchStatus,
    Mode,
    OutboxStatus,
    Phase,
    QuarantinedRecord,
    QuarantineStatus,
    RunStatus,
    SafetyBlackout,
    SafetyPolicy,
    SyncChange,
    SyncConnection,
    SyncRun,
    SyncSchedule,
    Trigger,
    WriteBackItem,
)
from syncing.retention import details_kept_until
from syncing.schedules import schedule_describe, schedule_save, schedule_validate
from syncing.selectors import (
    connections_by_latest_status,
    connections_sync_overdue,
    run_change_totals,
)
from syncing.services import (
    conflict_resolve,
    identity_match_confirm,
    identity_match_reject,
    quarantine_discard,
    quarantine_redrive,
    run_approve,
    run_cancel,
    sync_start,
)


def _run_link(run: SyncRun) -> SafeString:
    """ "sync run #N", linking to the run's page (which follows its progress)."""
    return format_html(
        '<a href="{}">sync run #{}</a>',
        reverse("admin:syncing_syncrun_change", args=[run.pk]),
        run.pk,
    )


def _report(request: HttpRequest, done: int, failed: list[str], what: str) -> None:
    if done:
        messages.success(request, f"{what}: {done}.")
    for message in failed[:5]:
        messages.error(request, message)


class ReadOnlyScopedAdmin(ScopedAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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


# Actions in the order an administrator reads them; any other (e.g. not_refetchable) follows.
_ACTIONS = ("create", "update", "deactivate", "unchanged", "quarantined")
_PAST = {"create": "created", "update": "updated", "deactivate": "deactivated"}


def _status_html(run: SyncRun) -> SafeString:
    """The run's status, coloured: green done, orange done with quarantine, red held or failed."""
    colour = {
        RunStatus.COMPLETED: "#2e7d32",
        RunStatus.COMPLETED_WITH_QUARANTINE: "#ef6c00",
        RunStatus.HELD: "#c62828",
        RunStatus.FAILED: "#c62828",
    }.get(RunStatus(run.status), "#555")
    return format_html('<strong style="color:{}">{}</strong>', colour, run.get_status_display())


def _run_kind(run: SyncRun) -> str:
    """ "Full, schedule", "Delta, SIS event", "Full (dry run), administrator"."""
    dry = " (dry run)" if run.dry_run else ""
    return f"{run.get_mode_display()}{dry}, {run.get_trigger_display().lower()}"


def _changes_html(counts: dict[str, dict[str, int]]) -> str:
    """A run's changes summed per action, short enough for a list ("7,399 created, 12
    updated"); the per-entity counts are in the tooltip and on the run's page."""
    totals: dict[str, int] = {}
    per_entity = []
    for entity, row in sorted(counts.items()):
        changed = {a: n for a, n in row.items() if a not in ("unchanged", "quarantined") and n}
        for action, n in changed.items():
            totals[action] = totals.get(action, 0) + n
        if changed:
            per_entity.append(f"{entity}: " + ", ".join(f"{a} {n}" for a, n in changed.items()))
    if not totals:
        return "no changes"
    order = [a for a in _ACTIONS if a in totals] + sorted(set(totals) - set(_ACTIONS))
    text = ", ".join(f"{totals[a]:,} {_PAST.get(a, a)}" for a in order)
    return format_html('<span title="{}">{}</span>', "; ".join(per_entity), text)


def _counts_html(counts: dict[str, dict[str, int]]) -> str:
    """Counts per entity and action as a table: a row per entity, a column per action."""
    extra = sorted({a for row in counts.values() for a in row} - set(_ACTIONS))
    actions = [a for a in _ACTIONS if any(a in row for row in counts.values())] + extra
    header = format_html_join("", "<th>{}</th>", ((a,) for a in ["entity", *actions]))
    rows = format_html_join(
        "",
        "<tr><td>{}</td>{}</tr>",
        (
            (
                entity,
                format_html_join(
                    "",
                    '<td style="text-align:right">{}</td>',
                    ((row.get(a, 0),) for a in actions),
                ),
            )
            for entity, row in sorted(counts.items())
        ),
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", header, rows)


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
        "progress_bar",
        "counts_summary",
        "quarantined_count",
        "conflicts_count",
        "duration_display",
        "created_at",
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
        "status",
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

    def get_fields(self, request: HttpRequest, obj: SyncRun | None = None) -> list[str]:
        fields = list(super().get_fields(request, obj))
        if obj is not None and (obj.held_details or {}).get("breaches"):
            fields.remove("held_reason")  # the review lists the same breaches, one a line
        return fields

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
        return _status_html(obj)

    @admin.display(description="kind", ordering="mode")
    def kind(self, obj: SyncRun) -> str:
        return _run_kind(obj)

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

    @admin.display(description="changes")
    def counts_summary(self, obj: SyncRun) -> str:
        return _changes_html(obj.counts)

    @admin.display(description="counts per entity and action")
    def counts_table(self, obj: SyncRun) -> str:
        return _counts_html(obj.counts) if obj.counts else "-"

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
        parts.append(_counts_html(details["totals"]))
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
        _report(request, done, failed, Approval(approval).label)

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
        _report(request, done, failed, "Cancelled")


@admin.register(SyncChange)
class SyncChangeAdmin(ReadOnlyScopedAdmin):
    district_path = "run__district"
    list_display = ["run", "entity", "action", "state", "source_id", "diff"]
    list_filter = ["action", "state", "entity"]
    search_fields = ["source_id"]
    raw_id_fields = ["run", "link"]


class LatestRunFilter(admin.SimpleListFilter):
    """Connections by how their newest run ended: the home page's "latest sync failed" link."""

    title = "latest run"
    parameter_name = "latest_run"
    NEVER = "never"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [*RunStatus.choices, (self.NEVER, "Never run")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == self.NEVER:
            return connections_by_latest_status(queryset, None)
        if value in RunStatus.values:
            return connections_by_latest_status(queryset, value)
        return queryset


class SyncOverdueFilter(admin.SimpleListFilter):
    """Connections whose schedule runs but that have not synced successfully since its firing
    before last (the home page's "scheduled syncs stopped succeeding" link)."""

    title = "scheduled syncs"
    parameter_name = "overdue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Overdue: no success since the firing before last")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return connections_sync_overdue(queryset) if self.value() == "yes" else queryset


@admin.register(SyncConnection)
class SyncConnectionAdmin(ScopedAdmin):
    """The SIS connections, with "Sync now" (the connection itself is edited in the SIS app)."""

    list_display = ["name", "district", "provider", "enabled", "schedule", "last_run"]
    list_filter = ["district", "provider", "enabled", LatestRunFilter, SyncOverdueFilter]
    list_select_related = ["district", "sync_schedule"]
    fields = ["name", "district", "provider", "enabled", "schedule", "recent_runs"]
    readonly_fields = fields
    RECENT_RUNS = 10
    actions = ["sync_full", "sync_delta", "sync_dry_run"]
    object_actions = {
        "sync_full": "Sync now (full)",
        "sync_delta": "Sync now (delta)",
        "sync_dry_run": "Dry run",
    }

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="last run")
    def last_run(self, obj: Any) -> str:
        run = SyncRun.objects.filter(connection_id=obj.pk).order_by("-id").first()
        if run is None:
            return ""
        return format_html("{}: {}", _run_link(run), run.get_status_display())

    @admin.display(description="schedule")
    def schedule(self, obj: Any) -> str:
        """How often it syncs, linking to the schedule (or to adding one)."""
        schedule = getattr(obj, "sync_schedule", None)
        if schedule is None:
            url = reverse("admin:syncing_syncschedule_add") + f"?connection={obj.pk}"
            return format_html('Manual only (<a href="{}">add a schedule</a>)', url)
        url = reverse("admin:syncing_syncschedule_change", args=[schedule.pk])
        return format_html('<a href="{}">{}</a>', url, schedule_describe(schedule))

    @admin.display(description="recent runs")
    def recent_runs(self, obj: Any) -> str:
        runs = SyncRun.objects.filter(connection_id=obj.pk).order_by("-id")[: self.RECENT_RUNS]
        if not runs:
            return "None yet."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    _run_link(run),
                    _run_kind(run),
                    _status_html(run),
                    date_format(timezone.localtime(run.created_at), "DATETIME_FORMAT"),
                    _changes_html(run.counts),
                )
                for run in runs
            ),
        )
        runs_url = reverse("admin:syncing_syncrun_changelist") + f"?connection__id__exact={obj.pk}"
        return format_html(
            "<table><thead><tr><th>run</th><th>kind</th><th>status</th><th>when</th>"
            '<th>changes</th></tr></thead><tbody>{}</tbody></table><p><a href="{}">All runs of '
            "this connection</a></p>",
            rows,
            runs_url,
        )

    def _start(self, request: HttpRequest, queryset: QuerySet[Any], **kwargs: Any) -> None:
        for connection in queryset:
            try:
                run, created = sync_start(
                    connection=connection, trigger=Trigger.ADMIN, user=request.user, **kwargs
                )
            except ApplicationError as exc:
                messages.error(request, f"{connection}: {exc.message}")
                continue
            if created:
                messages.success(request, format_html("{}: {} queued.", connection, _run_link(run)))
            else:
                messages.warning(
                    request,
                    format_html(
                        "{}: {} is {}.", connection, _run_link(run), run.get_status_display()
                    ),
                )

    @admin.action(description="Sync now (full)")
    def sync_full(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._start(request, queryset, mode=Mode.FULL)

    @admin.action(description="Sync now (delta)")
    def sync_delta(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._start(request, queryset, mode=Mode.DELTA)

    @admin.action(description="Dry run (stage and show, apply nothing)")
    def sync_dry_run(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._start(request, queryset, mode=Mode.FULL, dry_run=True)


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
        _report(request, done, failed, "Resolved")

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
            messages.success(request, format_html("Re-drive queued as {}.", _run_link(run)))
        elif run is not None:
            messages.success(
                request,
                format_html(
                    "This connection's {} is active: the records will be re-fetched by the "
                    "run that follows it.",
                    _run_link(run),
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
        _report(request, done, failed, what)


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


@admin.register(FieldPolicy)
class FieldPolicyAdmin(ScopedAdmin):
    list_display = ["district", "connection", "entity", "field", "policy"]
    list_filter = ["district", "entity", "policy"]


@admin.register(SafetyPolicy)
class SafetyPolicyAdmin(ScopedAdmin):
    list_display = [
        "district",
        "connection",
        "entity",
        "school",
        "max_deactivation_percent",
        "max_update_percent",
        "min_population",
        "min_changes",
    ]
    list_filter = ["district", "entity"]


@admin.register(SafetyBlackout)
class SafetyBlackoutAdmin(ScopedAdmin):
    list_display = ["district", "connection", "start_date", "end_date", "reason"]
    list_filter = ["district"]


class SyncScheduleForm(forms.ModelForm):
    """Checks the schedule as ``schedule_save`` will, so a daily schedule without a time or a
    cron expression beat cannot read is an error on its field, not a save that did nothing."""

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        try:
            schedule_validate(
                kind=data.get("kind", ""), daily_at=data.get("daily_at"), cron=data.get("cron", "")
            )
        except ApplicationError as exc:
            self.add_error(exc.details.get("field"), exc.message)
        return data


@admin.register(SyncSchedule)
class SyncScheduleAdmin(ScopedAdmin):
    form = SyncScheduleForm
    list_display = [
        "connection",
        "kind",
        "delta_every_minutes",
        "daily_at",
        "cron",
        "paused",
        "full_owed_since",
    ]
    list_filter = ["kind", "paused", "district"]
    # The district is the connection's (schedule_save sets it).
    exclude = ["district", "webhook_secret_encrypted", "full_owed_key"]
    # Set by the scheduler: a scheduled full sync waiting for the connection's active run.
    readonly_fields = ["full_owed_since"]

    def save_model(self, request: HttpRequest, obj: SyncSchedule, form: Any, change: bool) -> None:
        schedule_save(schedule=obj)  # the form ran schedule_validate


attention_register(
    Attention(
        model=SyncRun,
        singular="sync run held for review",
        plural="sync runs held for review",
        params={"status__exact": RunStatus.HELD},
        level="error",
        show_oldest=True,
    ),
    Attention(
        model=SyncConnection,
        singular="connection whose latest sync failed",
        plural="connections whose latest sync failed",
        params={LatestRunFilter.parameter_name: RunStatus.FAILED},
        level="error",
    ),
    Attention(
        model=SyncConnection,
        singular="connection whose scheduled syncs stopped succeeding",
        plural="connections whose scheduled syncs stopped succeeding",
        params={SyncOverdueFilter.parameter_name: "yes"},
        level="error",
    ),
    Attention(
        model=WriteBackItem,
        singular="write-back the SIS refused",
        plural="write-backs the SIS refused",
        params={"status__exact": OutboxStatus.FAILED},
        level="error",
    ),
    Attention(
        model=Conflict,
        singular="conflict to decide",
        plural="conflicts to decide",
        params={"status__exact": ConflictStatus.OPEN},
        show_oldest=True,
    ),
    Attention(
        model=QuarantinedRecord,
        singular="quarantined SIS record to fix",
        plural="quarantined SIS records to fix",
        params={"status__exact": QuarantineStatus.OPEN},
        show_oldest=True,
    ),
    Attention(
        model=IdentityMatch,
        singular="identity match to confirm or reject",
        plural="identity matches to confirm or reject",
        params={"status__exact": MatchStatus.SUGGESTED},
        show_oldest=True,
    ),
    Attention(
        model=WriteBackItem,
        singular="write-back where the SIS holds another value",
        plural="write-backs where the SIS holds another value",
        params={"status__exact": OutboxStatus.MISMATCH},
    ),
)
