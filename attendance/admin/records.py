"""Admin of enrollment spans, attendance codes and records, and participation grades: spans
and records saved through the services, grades read-only (computed)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from attendance import services
from attendance.admin_scoping import ScopedAdmin
from attendance.models import (
    AttendanceCode,
    AttendanceRecord,
    AttendanceSource,
    Enrollment,
    ExitReason,
    ParticipationGrade,
    SectionEnrollment,
)
from core.errors import ApplicationError


class EnrollmentForm(forms.ModelForm):
    """A new span (checked as ``services.student_enroll`` checks it), or an open span's exit
    (as ``services.enrollment_close`` checks it)."""

    class Meta:
        model = Enrollment
        fields = ["student", "school", "entry_date", "grade_level", "is_primary"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        try:
            if self.instance.pk is None:
                if data.get("student") is not None and data.get("school") is not None:
                    services.student_enroll_check(
                        student=data["student"],
                        school=data["school"],
                        is_primary=data.get("is_primary", True),
                    )
            elif data.get("exit_date") is not None:
                services.enrollment_close_check(
                    enrollment=Enrollment.objects.get(pk=self.instance.pk),
                    exit_date=data["exit_date"],
                )
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from None
        return data


class EnrollmentExitForm(EnrollmentForm):
    class Meta:
        model = Enrollment
        fields = ["exit_date", "exit_reason"]


@admin.register(Enrollment)
class EnrollmentAdmin(ScopedAdmin):
    """Spans open and close through the services, as the sync's and the API's do: closing a
    student's primary span withdraws the student (inactive, no school: no attendance expected,
    no messages) and closes their section spans there; a student enrolled elsewhere is
    transferred by closing that span first. A closed span stays as it is (a return opens a new
    one)."""

    district_path = "school__district"
    school_path = "school"
    list_display = ["student", "school", "entry_date", "exit_date", "exit_reason", "grade_level"]
    list_filter = ["school", "exit_reason", "grade_level"]
    search_fields = ["student__local_id", "student__legal_last_name"]
    list_select_related = ["student", "school"]
    raw_id_fields = ["student"]
    date_hierarchy = "entry_date"
    form = EnrollmentExitForm
    add_form = EnrollmentForm

    def get_fields(self, request: HttpRequest, obj: Enrollment | None = None) -> Any:
        return EnrollmentForm.Meta.fields + ([] if obj is None else EnrollmentExitForm.Meta.fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Enrollment | None = None) -> Any:
        if obj is None:
            return []
        closed = obj.exit_date is not None
        return EnrollmentForm.Meta.fields + (EnrollmentExitForm.Meta.fields if closed else [])

    def save_model(self, request: HttpRequest, obj: Enrollment, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if not change:
            span = services.student_enroll(
                student=obj.student,
                school=obj.school,
                entry_date=obj.entry_date,
                grade_level=obj.grade_level,
                is_primary=obj.is_primary,
            )
        elif data.get("exit_date") is not None:
            span = services.enrollment_close(
                enrollment=obj,
                exit_date=data["exit_date"],
                reason=data.get("exit_reason") or ExitReason.WITHDRAWN,
            )
        else:
            return  # an open span left open: nothing to save
        obj.pk, obj._state.adding = span.pk, False
        obj.refresh_from_db()


@admin.register(SectionEnrollment)
class SectionEnrollmentAdmin(ScopedAdmin):
    district_path = "section__school__district"
    school_path = "section__school"
    list_display = ["section", "role", "student", "staff", "entry_date", "exit_date"]
    list_filter = ["role", "section__school"]
    search_fields = ["student__local_id", "student__legal_last_name", "section__section_number"]
    list_select_related = ["section__course", "student", "staff"]
    raw_id_fields = ["section", "student", "staff"]


@admin.register(AttendanceCode)
class AttendanceCodeAdmin(ScopedAdmin):
    list_display = ["code", "description", "status", "district", "active"]
    list_filter = ["status", "active", "district"]
    search_fields = ["code", "description"]
    list_select_related = ["district"]


# Which record it is: fixed once it exists (a correction changes what it says).
_RECORD_IDENTITY = ("student", "date", "section")


class AttendanceRecordForm(forms.ModelForm):
    """An administrator's entry or correction (a parent called in an absence, a teacher's
    mistake), checked by the same service as a teacher's: the student enrolled that day, the
    district's codes and sections. The school follows from the enrollment or the section."""

    class Meta:
        model = AttendanceRecord
        fields = ["student", "date", "section", "period", "status", "code", "comment"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        # A correction's student, date and section are read-only: the record's own.
        found = self.instance if self.instance.pk else None
        student, date, section = (
            getattr(found, name) if found else data.get(name) for name in _RECORD_IDENTITY
        )
        if student is None or date is None:
            return data
        try:
            services.attendance_record_check(
                student=student,
                date=date,
                status=data.get("status"),
                section=section,
                code=data.get("code"),
            )
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from None
        if found is None:
            existing = AttendanceRecord.objects.filter(
                student=student, date=date, section=section
            ).first()
            if existing is not None:
                raise forms.ValidationError(
                    "This student already has a record for that day"
                    f"{' and section' if existing.section_id else ''}: correct that one "
                    f"(#{existing.pk}) instead."
                )
        return data


@admin.register(AttendanceRecord)
class AttendanceRecordAdmin(ScopedAdmin):
    """Saved through ``services.attendance_record``, like every other writer: a correction made
    here reaches the guardians' notifications (an absence corrected to present before its
    message went out cancels the message), and is recorded as the administrator's."""

    district_path = "school__district"
    school_path = "school"
    form = AttendanceRecordForm
    list_display = ["date", "student", "school", "section", "period", "status", "code", "source"]
    list_filter = ["status", "source", "school", "date"]
    search_fields = ["student__local_id", "student__legal_last_name"]
    list_select_related = ["student", "school", "section__course", "code"]
    raw_id_fields = ["student", "section"]
    date_hierarchy = "date"
    show_full_result_count = False

    def get_fields(self, request: HttpRequest, obj: AttendanceRecord | None = None) -> Any:
        fields = AttendanceRecordForm.Meta.fields
        return fields if obj is None else [*fields, "school", "source", "recorded_by"]

    def get_readonly_fields(
        self, request: HttpRequest, obj: AttendanceRecord | None = None
    ) -> list[str]:
        return [] if obj is None else [*_RECORD_IDENTITY, "school", "source", "recorded_by"]

    def save_model(
        self, request: HttpRequest, obj: AttendanceRecord, form: Any, change: bool
    ) -> None:
        data = form.cleaned_data
        record, _ = services.attendance_record(
            student=obj.student,
            date=obj.date,
            section=obj.section,
            status=data["status"],
            code=data.get("code"),
            period=data.get("period", ""),
            comment=data.get("comment", ""),
            source=AttendanceSource.ADMIN,
            recorded_by=request.user,  # type: ignore[arg-type]
        )
        obj.pk, obj._state.adding = record.pk, False
        obj.refresh_from_db()


@admin.register(ParticipationGrade)
class ParticipationGradeAdmin(ScopedAdmin):
    """Computed by the participation rule (*Terms* → "Compute participation grades") and
    written back to the SIS from there: a grade typed here would be neither written back nor
    kept at the next computation, so none is."""

    district_path = "section__school__district"
    school_path = "section__school"
    list_display = ["student", "section", "grading_period", "value", "rule", "computed_at"]
    list_filter = ["rule", "grading_period"]
    search_fields = ["student__local_id", "student__legal_last_name"]
    list_select_related = ["student", "section__course", "grading_period"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
