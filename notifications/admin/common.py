"""Pieces the notifications admin modules share."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from attendance.admin_scoping import request_scope
from notifications.models import Channel

# A school's administrators see a guardian's contact points, consent and preferences when they
# see the guardian (attendance's GuardianAdmin): a child of theirs ever enrolled at the school.
GUARDIAN_SCHOOLS = "guardian__student_links__student__enrollments__school"


def channel_boxes(help_text: str) -> forms.MultipleChoiceField:
    """Channels as ticked boxes (the models keep them as a JSON list of channel values)."""
    return forms.MultipleChoiceField(
        choices=Channel.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple(attrs={"class": "radiolist inline"}),
        help_text=help_text,
    )


class ScopedReadOnlyInline(admin.TabularInline):
    """Read-only inline that follows the parent admin's scoping (the parent's queryset is
    already filtered; Django's model permissions are not used for these models)."""

    extra = 0
    can_delete = False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_staff) and not request_scope(request).is_empty

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
