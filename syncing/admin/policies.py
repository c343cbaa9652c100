"""Field and safety policies, blackouts, and schedules (saved through ``schedule_save``, which
owns the beat rows)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from attendance.admin_scoping import ScopedAdmin
from core.errors import ApplicationError
from syncing.models import FieldPolicy, SafetyBlackout, SafetyPolicy, SyncSchedule
from syncing.schedules import schedule_save, schedule_validate


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
