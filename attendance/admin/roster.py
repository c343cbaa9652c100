"""Admin of the roster: districts, schools, terms, courses, sections, staff, students,
guardians and their links (students, guardians and links saved through the services)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html_join

from attendance import services
from attendance.admin_scoping import ScopedAdmin
from attendance.models import (
    Course,
    District,
    Enrollment,
    Guardian,
    School,
    Section,
    Staff,
    Student,
    StudentGuardian,
    Term,
)
from core.errors import ApplicationError


@admin.register(District)
class DistrictAdmin(ScopedAdmin):
    district_path = "pk"
    list_display = ["name", "slug", "timezone", "default_language", "active"]
    list_filter = ["active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(School)
class SchoolAdmin(ScopedAdmin):
    school_path = "pk"
    list_display = ["name", "district", "local_id", "level", "active"]
    list_filter = ["level", "active", "district"]
    search_fields = ["name", "local_id", "state_id"]
    list_select_related = ["district"]


@admin.register(Term)
class TermAdmin(ScopedAdmin):
    list_display = ["name", "kind", "start_date", "end_date", "parent", "school", "district"]
    list_filter = ["kind", "district"]
    search_fields = ["name"]
    list_select_related = ["parent", "school", "district"]
    date_hierarchy = "start_date"
    actions = ["compute_participation_grades"]

    @admin.action(
        description="Compute participation grades (queue changed ones for write-back)",
        permissions=["change"],
    )
    def compute_participation_grades(self, request: HttpRequest, queryset: QuerySet[Term]) -> None:
        from attendance.services_participation import (
            participation_grades_compute_all,
            participation_results_total,
        )

        totals = participation_results_total(participation_grades_compute_all(terms=queryset))
        self.message_user(
            request,
            f"{totals['computed']} grades in {totals['grading_periods']} grading periods: "
            f"{totals['created']} new, {totals['updated']} changed, {totals['unchanged']} "
            f"unchanged; {totals['queued']} queued for write-back.",
        )


@admin.register(Course)
class CourseAdmin(ScopedAdmin):
    list_display = ["code", "title", "school", "district", "active"]
    list_filter = ["active", "district"]
    search_fields = ["code", "title"]
    list_select_related = ["school", "district"]


@admin.register(Section)
class SectionAdmin(ScopedAdmin):
    district_path = "school__district"
    school_path = "school"
    list_display = ["__str__", "course", "school", "term", "teacher", "room", "active"]
    list_filter = ["active", "school", "term"]
    search_fields = ["section_number", "course__code", "course__title"]
    list_select_related = ["course", "school", "term", "teacher"]
    raw_id_fields = ["teacher"]


@admin.register(Staff)
class StaffAdmin(ScopedAdmin):
    school_path = "schools"
    list_display = ["last_name", "first_name", "role", "local_id", "district", "active"]
    list_filter = ["role", "active", "district"]
    search_fields = ["last_name", "first_name", "local_id", "email"]
    list_select_related = ["district"]
    filter_horizontal = ["schools"]
    raw_id_fields = ["user"]


class EnrollmentInline(admin.TabularInline):
    model = Enrollment
    related = ("school",)
    extra = 0
    fields = ("school", "entry_date", "exit_date", "exit_reason", "grade_level", "is_primary")
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Student | None = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related(*self.related)


class GuardianLinkInline(admin.TabularInline):
    model = StudentGuardian
    fk_name = "student"
    related = ("guardian", "student")
    extra = 0
    fields = (
        "guardian",
        "relationship",
        "contact_allowed",
        "has_custody",
        "is_primary",
        "priority",
    )
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Student | None = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related(*self.related)


@admin.register(Student)
class StudentAdmin(ScopedAdmin):
    school_path = "enrollments__school"
    list_display = [
        "local_id",
        "legal_last_name",
        "legal_first_name",
        "preferred_first_name",
        "grade_level",
        "school",
        "active",
    ]
    list_filter = ["active", "grade_level", "school"]
    search_fields = ["local_id", "state_id", "legal_last_name", "legal_first_name"]
    list_select_related = ["school"]
    readonly_fields = ["school"]
    inlines = [EnrollmentInline, GuardianLinkInline]
    show_full_result_count = False

    def get_readonly_fields(self, request: HttpRequest, obj: Student | None = None) -> list[str]:
        # A student never moves between districts; enrollment changes go through the services.
        return ["school", "district"] if obj else ["school"]

    def save_model(self, request: HttpRequest, obj: Student, form: Any, change: bool) -> None:
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        if change:
            services.student_update(student=Student.objects.get(pk=obj.pk), **changes)
        else:
            changes.pop("district", None)
            local_id = changes.pop("local_id")
            created = services.student_create(district=obj.district, local_id=local_id, **changes)
            obj.pk = created.pk


@admin.register(Guardian)
class GuardianAdmin(ScopedAdmin):
    school_path = "student_links__student__enrollments__school"
    list_display = [
        "last_name",
        "first_name",
        "email",
        "mobile_phone",
        "preferred_language",
        "active",
    ]
    list_filter = ["active", "preferred_language"]
    search_fields = ["last_name", "first_name", "email", "mobile_phone", "local_id"]
    readonly_fields = ["mobile_phone", "home_phone", "work_phone", "messaging"]

    def get_readonly_fields(self, request: HttpRequest, obj: Guardian | None = None) -> list[str]:
        fields = ["mobile_phone", "home_phone", "work_phone", "messaging"]
        return [*fields, "district"] if obj else fields

    @admin.display(description="Messaging")
    def messaging(self, obj: Guardian) -> str:
        """Where to answer "why was this parent (not) told?": the guardian's contact points
        (the roster's phone and e-mail become them) and what was sent to them."""
        if obj.pk is None:
            return "-"
        pages = [
            ("admin:notifications_contactpoint_changelist", "Contact points"),
            ("admin:notifications_notification_changelist", "Notifications"),
        ]
        return format_html_join(
            " · ",
            '<a href="{}?guardian__id__exact={}">{}</a>',
            ((reverse(name), obj.pk, label) for name, label in pages),
        )

    def save_model(self, request: HttpRequest, obj: Guardian, form: Any, change: bool) -> None:
        # Through the services, so phone numbers are normalised to E.164.
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        if change:
            services.guardian_update(guardian=Guardian.objects.get(pk=obj.pk), **changes)
        else:
            changes.pop("district", None)
            obj.pk = services.guardian_create(district=obj.district, **changes).pk


class StudentGuardianForm(forms.ModelForm):
    """A link checked by the service's rules. *Primary guardian* is a form field of its own,
    not the model's ``is_primary``: making a guardian primary is allowed (the service demotes
    the student's current primary guardian), so the form must not refuse it on the database's
    one-primary constraint, which it would check on the unsaved link."""

    primary = forms.BooleanField(
        label="Primary guardian",
        required=False,
        help_text="Ticking it makes the student's current primary guardian a secondary one.",
    )

    class Meta:
        model = StudentGuardian
        fields = [
            "student", "guardian", "relationship", "contact_allowed", "has_custody",
            "lives_with", "emergency_contact", "priority", "active",
        ]  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["primary"].initial = self.instance.is_primary

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        student, guardian = data.get("student"), data.get("guardian")
        if student is not None and guardian is not None:
            try:
                services.guardian_link_check(student=student, guardian=guardian)
            except ApplicationError as exc:
                raise forms.ValidationError(exc.message) from None
        return data


@admin.register(StudentGuardian)
class StudentGuardianAdmin(ScopedAdmin):
    district_path = "student__district"
    school_path = "student__enrollments__school"
    list_display = [
        "student",
        "guardian",
        "relationship",
        "contact_allowed",
        "has_custody",
        "lives_with",
        "emergency_contact",
        "is_primary",
        "priority",
        "active",
    ]
    list_filter = ["relationship", "contact_allowed", "has_custody", "is_primary", "active"]
    search_fields = ["student__local_id", "student__legal_last_name", "guardian__last_name"]
    list_select_related = ["student", "guardian"]
    raw_id_fields = ["student", "guardian"]
    form = StudentGuardianForm

    def get_fields(self, request: HttpRequest, obj: StudentGuardian | None = None) -> Any:
        return [*StudentGuardianForm.Meta.fields, "primary"]

    def get_readonly_fields(
        self, request: HttpRequest, obj: StudentGuardian | None = None
    ) -> list[str]:
        return [] if obj is None else ["student", "guardian"]

    def save_model(
        self, request: HttpRequest, obj: StudentGuardian, form: Any, change: bool
    ) -> None:
        link = services.guardian_link(
            student=obj.student,
            guardian=obj.guardian,
            is_primary=form.cleaned_data["primary"],
            **{name: form.cleaned_data[name] for name in StudentGuardianForm.Meta.fields[2:]},
        )
        obj.pk, obj._state.adding = link.pk, False
        obj.refresh_from_db()
