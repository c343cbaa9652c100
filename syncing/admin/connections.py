"""Connections as the sync engine sees them: schedule, recent runs, "Sync now"; filters by
the latest run and by overdue schedules (the home page links to both)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join

from attendance.admin_scoping import ScopedAdmin
from core.charts import Series, stacked_columns
from core.errors import ApplicationError
from syncing.admin.common import changes_html, run_kind, run_link, status_html
from syncing.models import Mode, RunStatus, SyncConnection, SyncRun, Trigger
from syncing.schedules import schedule_describe
from syncing.selectors import (
    connection_run_history,
    connections_by_latest_status,
    connections_sync_overdue,
)
from syncing.services import sync_start


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
    fields = ["name", "district", "provider", "enabled", "schedule", "run_history", "recent_runs"]
    readonly_fields = fields
    RECENT_RUNS = 10
    HISTORY_DAYS = 30
    HISTORY_SERIES = [
        Series("completed", "completed", "#2e7d32"),
        Series("quarantined", "completed with quarantine", "#ef6c00"),
        Series("held", "held", "#ad1457"),
        Series("failed", "failed", "#c62828"),
        Series("cancelled", "cancelled", "#9e9e9e"),
        Series("active", "pending or running", "#1976d2"),
    ]
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
        return format_html("{}: {}", run_link(run), run.get_status_display())

    @admin.display(description="schedule")
    def schedule(self, obj: Any) -> str:
        """How often it syncs, linking to the schedule (or to adding one)."""
        schedule = getattr(obj, "sync_schedule", None)
        if schedule is None:
            url = reverse("admin:syncing_syncschedule_add") + f"?connection={obj.pk}"
            return format_html('Manual only (<a href="{}">add a schedule</a>)', url)
        url = reverse("admin:syncing_syncschedule_change", args=[schedule.pk])
        return format_html('<a href="{}">{}</a>', url, schedule_describe(schedule))

    @admin.display(description="runs per day")
    def run_history(self, obj: Any) -> str:
        """The last 30 days' runs per day of the district's calendar, by how they ended: a
        chart, and a table of the days with runs, each linking to that day's runs."""
        days = connection_run_history(obj, days=self.HISTORY_DAYS)
        runs_url = reverse("admin:syncing_syncrun_changelist")
        for day in days:
            day["url"] = f"{runs_url}?" + urlencode(
                {
                    "connection__id__exact": obj.pk,
                    "created_at__gte": day["start"].isoformat(),
                    "created_at__lt": day["end"].isoformat(),
                }
            )
        chart = stacked_columns(
            [(date_format(day["day"], "M j"), day) for day in days],
            self.HISTORY_SERIES,
            description=f"Sync runs per day over the last {self.HISTORY_DAYS} days, by outcome",
        )
        return render_to_string("admin/syncing/run_history.html", {"chart": chart, "days": days})

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
                    run_link(run),
                    run_kind(run),
                    status_html(run),
                    date_format(timezone.localtime(run.created_at), "DATETIME_FORMAT"),
                    changes_html(run.counts),
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
                messages.success(request, format_html("{}: {} queued.", connection, run_link(run)))
            else:
                messages.warning(
                    request,
                    format_html(
                        "{}: {} is {}.", connection, run_link(run), run.get_status_display()
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
