"""django-filter sets of the sync engine's API."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.db.models import QuerySet
from django.utils import timezone
from django_filters import rest_framework as filters

from attendance.api.filters import IdFilter, UpdatedSinceFilterSet, UtcDateTimeFilter
from syncing.models import Conflict, ConflictStatus, Mode, RunStatus, SyncRun, Trigger


class RunFilter(UpdatedSinceFilterSet):
    connection = IdFilter(field_name="connection_id")
    status = filters.MultipleChoiceFilter(choices=RunStatus.choices)
    mode = filters.ChoiceFilter(choices=Mode.choices)
    trigger = filters.ChoiceFilter(choices=Trigger.choices)
    created_since = UtcDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="Runs started at or after (ISO 8601)."
    )
    created_before = UtcDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="Runs started before (ISO 8601)."
    )

    class Meta:
        model = SyncRun
        fields = ["dry_run"]


class DaysFilter(filters.NumberFilter):
    """A whole number of days (NumberFilter alone would take ``0.5``)."""

    field_class = forms.IntegerField


class ConflictFilter(UpdatedSinceFilterSet):
    connection = IdFilter(field_name="link__connection_id")
    run = IdFilter(field_name="run_id")
    school = IdFilter(field_name="school_id")
    status = filters.MultipleChoiceFilter(choices=ConflictStatus.choices)
    older_than_days = DaysFilter(
        method="filter_older_than",
        min_value=0,
        max_value=3650,
        help_text="Only conflicts recorded at least this many days ago (their age).",
    )
    created_since = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Conflict
        fields = ["entity", "field"]

    def filter_older_than(
        self, queryset: QuerySet[Conflict], name: str, value: int
    ) -> QuerySet[Conflict]:
        return queryset.filter(created_at__lte=timezone.now() - dt.timedelta(days=int(value)))
