"""Admin of staff access: memberships, added by e-mail invitation (attendance.services_staff)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from attendance import services_staff
from attendance.admin_scoping import ScopedAdmin, request_scope
from attendance.models import (
    Membership,
)
from core.errors import ApplicationError


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
