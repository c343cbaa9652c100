"""django-filter sets of the attendance API. Every list also takes ``updated_since`` so that
incremental readers fetch only what changed since their last run."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.db.models import Q, QuerySet
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField

from attendance.models import (
    AttendanceRecord,
    AttendanceStatus,
    Enrollment,
    Guardian,
    ParticipationGrade,
    School,
    Section,
    Student,
    Term,
)


class IdFilter(filters.NumberFilter):
    """An id: a whole number (django-filter's NumberFilter would accept ``0.5``). Filters take
    ids, never model choices, so a foreign id neither errors nor confirms it exists: it simply
    matches nothing in the caller's district."""

    field_class = forms.IntegerField


class _UtcDateTimeField(IsoDateTimeField):
    """An ISO 8601 time, converted to UTC: PostgreSQL refuses offsets Python accepts (up to
    ±23:59), and a time at the very edge of the calendar cannot be converted at all."""

    def clean(self, value: Any) -> Any:
        cleaned = super().clean(value)
        if cleaned is None:
            return None
        try:
            return cleaned.astimezone(dt.UTC)
        except (OverflowError, ValueError) as exc:
            raise forms.ValidationError("Enter a time between years 1 and 9999.") from exc


class UtcDateTimeFilter(filters.IsoDateTimeFilter):
    field_class = _UtcDateTimeField


class UpdatedSinceFilterSet(filters.FilterSet):
    updated_since = UtcDateTimeFilter(
        field_name="updated_at",
        lookup_expr="gte",
        help_text="Only rows changed at or after this time (ISO 8601).",
    )


class SchoolFilter(UpdatedSinceFilterSet):
    class Meta:
        model = School
        fields = ["local_id", "active", "level"]


class TermFilter(UpdatedSinceFilterSet):
    school = IdFilter(field_name="school_id")
    parent = IdFilter(field_name="parent_id")

    class Meta:
        model = Term
        fields = ["kind"]


class SectionFilter(UpdatedSinceFilterSet):
    school = IdFilter(field_name="school_id")
    term = IdFilter(field_name="term_id")
    course = IdFilter(field_name="course_id")

    class Meta:
        model = Section
        fields = ["active"]


class StudentFilter(UpdatedSinceFilterSet):
    school = IdFilter(field_name="school_id")
    local_id = filters.CharFilter(help_text="The SIS student number.")

    class Meta:
        model = Student
        fields = ["grade_level", "active"]


class GuardianFilter(UpdatedSinceFilterSet):
    student = IdFilter(method="filter_student", help_text="Guardians of a student.")

    class Meta:
        model = Guardian
        fields = ["local_id", "active"]

    def filter_student(
        self, queryset: QuerySet[Guardian], name: str, value: int
    ) -> QuerySet[Guardian]:
        return queryset.filter(
            pk__in=Guardian.objects.filter(student_links__student_id=value).values("pk")
        )


class EnrollmentFilter(UpdatedSinceFilterSet):
    open = filters.BooleanFilter(
        field_name="exit_date", lookup_expr="isnull", help_text="Only open (current) spans."
    )
    active_on = filters.DateFilter(method="filter_active_on", help_text="Spans covering a date.")
    student = IdFilter(field_name="student_id")
    school = IdFilter(field_name="school_id")

    class Meta:
        model = Enrollment
        fields = ["is_primary"]

    def filter_active_on(
        self, queryset: QuerySet[Enrollment], name: str, value: object
    ) -> QuerySet[Enrollment]:
        return queryset.filter(entry_date__lte=value).filter(
            Q(exit_date__isnull=True) | Q(exit_date__gte=value)
        )


class AttendanceFilter(UpdatedSinceFilterSet):
    student_local_id = filters.CharFilter(field_name="student__local_id")
    date_from = filters.DateFilter(field_name="date", lookup_expr="gte")
    date_to = filters.DateFilter(field_name="date", lookup_expr="lte")
    status = filters.MultipleChoiceFilter(choices=AttendanceStatus.choices)
    school = IdFilter(field_name="school_id")
    section = IdFilter(field_name="section_id")
    student = IdFilter(field_name="student_id")

    class Meta:
        model = AttendanceRecord
        fields = ["date", "source"]


class ParticipationGradeFilter(UpdatedSinceFilterSet):
    student = IdFilter(field_name="student_id")
    section = IdFilter(field_name="section_id")
    grading_period = IdFilter(field_name="grading_period_id")

    class Meta:
        model = ParticipationGrade
        fields: list[str] = []
