"""Read-only admin for the portal's audit trail, scoped to the administrator's districts."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

from attendance.admin_scoping import ScopedAdmin
from portal.models import PortalAudit


@admin.register(PortalAudit)
class PortalAuditAdmin(ScopedAdmin):
    """What guardians changed in the portal. Append-only: nobody adds, edits or deletes rows."""

    district_path = "guardian__district"
    school_path = None
    list_display = ["created_at", "guardian", "action", "student", "category", "via"]
    list_filter = ["action", "via"]
    list_select_related = ["guardian", "student"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "created_at",
        "guardian",
        "action",
        "student",
        "category",
        "contact_point",
        "changes",
        "via",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        return {}
