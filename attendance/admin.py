"""Admin for the attendance domain, scoped by membership (see admin_scoping)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html_join

from attendance import services, services_staff
from attendance.admin_scoping import ScopedAdmin, request_scope
from attendance.models import (
    AttendanceCode,
    AttendanceRecord,
    AttendanceSource,
    Course,
    District,
    Enrollment,
    ExitReason,
    Guardian,
    Membership,
    ParticipationGrade,
    School,
    Section,
    SectionEnrollment,
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


class MembershipForm(forms.ModelForm):
    """A membership's role and school, checked as the staff service checks them."""

    class Meta:
        model = Membership
        fields = ["district", "role", "school"]
        help_texts = {
            "school": "A school administrator's school; empty for district-wide access. "
            "A read-only member with a school sees only that school.",
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        district = data.get("district") or getattr(self.instance, "district", None)
        if district is not None and data.get("role"):
            try:
                services_staff.membership_role_check(
                    district=district, role=data["role"], school=data.get("school")
                )
            except ApplicationError as exc:
                raise forms.ValidationError(exc.message) from None
        return data


class MembershipInviteForm(MembershipForm):
    """Access for a colleague, by e-mail address: their login is created (and they are mailed
    a link to choose a password) when they have none."""

    email = forms.EmailField(
        label="E-mail address",
        help_text="Their username. Someone without a login gets one and is e-mailed a link to "
        "choose a password; someone with a login is told about the new access.",
    )

    class Meta(MembershipForm.Meta):
        fields = ["email", "district", "role", "school"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors or not data.get("email"):
            return data
        try:
            services_staff.staff_invite_check(
                district=data["district"],
                email=data["email"],
                role=data["role"],
                school=data.get("school"),
            )
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from None
        return data


@admin.register(Membership)
class MembershipAdmin(ScopedAdmin):
    """Who may sign in to a district's data. Added by e-mail address (an invitation), changed
    in role or school, taken away with *Remove access*; never by editing logins directly."""

    school_path = None
    list_display = ["user", "role", "district", "school"]
    list_filter = ["role", "district"]
    search_fields = ["user__username", "user__email"]
    list_select_related = ["user", "district", "school"]
    actions = ["remove_access"]
    form = MembershipForm
    add_form = MembershipInviteForm

    def get_fields(self, request: HttpRequest, obj: Membership | None = None) -> Any:
        if obj is None:
            return MembershipInviteForm.Meta.fields
        return ["user", "district", "role", "school"]

    def get_readonly_fields(self, request: HttpRequest, obj: Membership | None = None) -> Any:
        return [] if obj is None else ["user", "district"]

    def save_model(self, request: HttpRequest, obj: Membership, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        membership, created = services_staff.staff_invite(
            district=obj.district,
            email=form.cleaned_data["email"],
            role=obj.role,
            school=obj.school,
            invited_by=request.user,
        )
        obj.pk, obj._state.adding = membership.pk, False
        obj.refresh_from_db()
        messages.info(
            request,
            f"A login was created for {membership.user.email}; they were e-mailed a link to "
            "choose a password."
            if created
            else f"{membership.user.email} was told about their new access.",
        )

    @admin.action(description="Remove access (a login left with none is deactivated)")
    def remove_access(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        removed = deactivated = 0
        for membership in queryset.select_related("user"):
            try:
                deactivated += services_staff.staff_access_remove(
                    membership=membership, removed_by=request.user
                )
                removed += 1
            except ApplicationError as exc:
                messages.error(request, exc.message)
        if removed:
            messages.success(
                request,
                f"{removed} access(es) removed; {deactivated} login(s) deactivated.",
            )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        # Who may see whom is itself sensitive: district administrators manage their
        # district's memberships; school-level users see none.
        queryset = super().get_queryset(request)
        scope = request_scope(request)
        if scope.everything:
            return queryset
        return queryset.filter(district_id__in=scope.writable_district_ids)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return (
            super().has_module_permission(request)
            and request_scope(request).can_write_district_data
        )
