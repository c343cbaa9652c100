"""Admin base class that scopes every list, form and permission to the user's memberships.

Roles replace Django's per-model permissions for the domain models: a district administrator
changes everything in their district, a school administrator changes their school's student
data, a read-only member only looks. Hard deletion of student data is not offered to anyone but
superusers; records are deactivated and spans closed instead (the services do it).
"""

from __future__ import annotations

from typing import Any

from django.db.models import ForeignKey, Model, QuerySet
from django.forms import ModelChoiceField
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from attendance.selectors import AccessScope, user_scope


def request_scope(request: HttpRequest) -> AccessScope:
    cached = getattr(request, "_access_scope", None)
    if cached is None:
        cached = user_scope(request.user)
        request._access_scope = cached  # type: ignore[attr-defined]
    return cached


class ScopedAdmin(SimpleHistoryAdmin):
    """Set ``district_path`` (model → district id) and ``school_path`` (model → school id,
    ``None`` for district reference data that school-level users may read but not change)."""

    district_path: str = "district"
    school_path: str | None = None
    allow_delete: bool = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        return request_scope(request).filter(
            queryset, district_path=self.district_path, school_path=self.school_path
        )

    def has_module_permission(self, request: HttpRequest) -> bool:
        return (
            bool(request.user.is_active and request.user.is_staff)
            and not request_scope(request).is_empty
        )

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.has_module_permission(request)

    def _can_write(self, request: HttpRequest) -> bool:
        scope = request_scope(request)
        if not self.has_module_permission(request):
            return False
        if self.school_path is None:
            return scope.can_write_district_data
        return scope.can_write

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._can_write(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._can_write(request)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return bool(self.allow_delete and request.user.is_superuser)

    def formfield_for_foreignkey(
        self, db_field: ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField[Any] | None:
        # Offer only the related rows the user may see (their schools, their students).
        related_admin = self.admin_site._registry.get(db_field.related_model)
        if isinstance(related_admin, ScopedAdmin):
            kwargs["queryset"] = related_admin.get_queryset(request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
