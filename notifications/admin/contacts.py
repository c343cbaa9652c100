"""Admin of contact points, consent and preferences.

Consent changes only through the contact services, never by ticking a box: an opt-out is
audited and reaches every contact point of the district with the same number or address (one
person's phone), and a STOP reply is the guardian's to undo (FCC 24-24: consent may be revoked
by any reasonable means, a call to the school office included).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from attendance.admin_scoping import ScopedAdmin
from core.errors import ApplicationError
from notifications.admin.common import GUARDIAN_SCHOOLS, ScopedReadOnlyInline, channel_boxes
from notifications.models import (
    Channel,
    ConsentEvent,
    ContactPoint,
    ContactSource,
    OptOutSource,
    Preference,
)
from notifications.services import contacts

# What an administrator may change on a contact point's page; consent and failures change
# through the actions (buttons on the page), the value by adding a new point.
_EDITABLE = ("label", "active")
_SHOWN = (
    "guardian", "kind", "value", "raw_value", "label", "source", "active", "verified",
    "verified_at", "opted_out", "opted_out_at", "opt_out_source", "undeliverable",
    "last_failure_at", "last_failure_code", "last_failure_message",
)  # fmt: skip


class ContactPointAddForm(forms.ModelForm):
    """A new contact point as an administrator types it: normalised (E.164, lower-cased
    e-mail) by the same service as the portal's, which also carries over an opt-out the number
    or address already has."""

    address = forms.CharField(label="Phone number or e-mail address", max_length=254)
    verified = forms.BooleanField(
        label="Confirmed with the guardian",
        required=False,
        help_text="Unticked: not used until the guardian confirms it in the parent portal.",
    )

    class Meta:
        model = ContactPoint
        fields = ["guardian", "kind", "address", "label", "verified"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        guardian, kind, raw = data.get("guardian"), data.get("kind"), data.get("address")
        if guardian is None or not kind or not raw:
            return data
        what = "phone number" if kind == Channel.SMS else "e-mail address"
        value = contacts.contact_value_normalise(
            kind=kind, raw=raw, region=guardian.district.phone_region
        )
        if not value:
            self.add_error("address", f"That is not a valid {what}.")
        elif ContactPoint.objects.filter(guardian=guardian, kind=kind, value=value).exists():
            self.add_error("address", f"This guardian already has this {what}.")
        return data


class ConsentEventInline(ScopedReadOnlyInline):
    model = ConsentEvent
    readonly_fields = ["created_at", "kind", "source", "keyword", "provider", "detail"]
    fields = tuple(readonly_fields)
    ordering = ["-created_at", "-id"]
    verbose_name_plural = "Consent history"


def _by(request: HttpRequest) -> str:
    return f"recorded by administrator {request.user.get_username()}"


@admin.register(ContactPoint)
class ContactPointAdmin(ScopedAdmin):
    district_path = "guardian__district"
    school_path = GUARDIAN_SCHOOLS
    list_display = [
        "guardian",
        "kind",
        "label",
        "source",
        "active",
        "verified",
        "opted_out",
        "undeliverable",
    ]
    list_filter = [
        "kind",
        "source",
        "active",
        "verified",
        "opted_out",
        "undeliverable",
        "opt_out_source",
    ]
    search_fields = ["guardian__last_name", "guardian__first_name", "value"]
    raw_id_fields = ["guardian"]
    add_form = ContactPointAddForm
    inlines = [ConsentEventInline]
    actions = ["opt_out", "opt_in", "verify", "mark_deliverable"]
    object_actions = {
        "opt_out": "Opt out (the guardian asked)",
        "opt_in": "Opt back in",
        "verify": "Confirmed with the guardian",
        "mark_deliverable": "Deliverable again",
    }

    def get_fields(self, request: HttpRequest, obj: ContactPoint | None = None) -> Any:
        return ContactPointAddForm.Meta.fields if obj is None else _SHOWN

    def get_readonly_fields(self, request: HttpRequest, obj: ContactPoint | None = None) -> Any:
        if obj is None:
            return ()
        # The roster decides whether its own points are active (the next sync of the guardian
        # would undo an edit here); to stop messages, opt out.
        editable = _EDITABLE if obj.source != ContactSource.SIS else ("label",)
        return [f for f in _SHOWN if f not in editable]

    def get_inlines(self, request: HttpRequest, obj: ContactPoint | None) -> Any:
        return self.inlines if obj is not None else []

    def save_model(self, request: HttpRequest, obj: ContactPoint, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        point = contacts.contact_point_add(
            guardian=obj.guardian,
            kind=obj.kind,
            raw=form.cleaned_data["address"],
            source=ContactSource.ADMIN,
            label=obj.label,
        )
        if form.cleaned_data["verified"]:
            contacts.contact_point_verify(
                contact_point=point, source=OptOutSource.ADMIN, detail=_by(request)
            )
        # The admin goes on with the point the service saved (its page, the log entry).
        obj.pk, obj._state.adding = point.pk, False
        obj.refresh_from_db()

    def object_actions_for(self, obj: ContactPoint) -> list[str]:
        offered = ["opt_in" if obj.opted_out else "opt_out"]
        if not obj.verified:
            offered.append("verify")
        if obj.undeliverable:
            offered.append("mark_deliverable")
        return offered

    def _each_value(
        self,
        request: HttpRequest,
        queryset: QuerySet[ContactPoint],
        change: Callable[..., int],
        done: str,
    ) -> None:
        """``change`` (opt out or in) once per selected number or address and district."""
        changed = 0
        values = queryset.values_list("kind", "value", "guardian__district_id").distinct()
        for kind, value, district_id in values:
            try:
                changed += change(
                    kind=kind,
                    value=value,
                    source=OptOutSource.ADMIN,
                    detail=_by(request),
                    district_id=district_id,
                )
            except ApplicationError as exc:
                messages.error(request, f"{Channel(kind).label}: {exc}")
        if changed:
            messages.success(
                request,
                f"{changed} contact point(s) {done}, with every point of the district that "
                "has the same number or address.",
            )

    @admin.action(description="Opt out (the guardian asked us)")
    def opt_out(self, request: HttpRequest, queryset: QuerySet[ContactPoint]) -> None:
        self._each_value(request, queryset, contacts.contacts_opt_out, "opted out")

    @admin.action(description="Opt back in (not after a STOP reply)")
    def opt_in(self, request: HttpRequest, queryset: QuerySet[ContactPoint]) -> None:
        self._each_value(request, queryset, contacts.contacts_opt_in, "opted back in")

    @admin.action(description="Mark confirmed with the guardian")
    def verify(self, request: HttpRequest, queryset: QuerySet[ContactPoint]) -> None:
        unverified = list(queryset.filter(verified=False))
        for point in unverified:
            contacts.contact_point_verify(
                contact_point=point, source=OptOutSource.ADMIN, detail=_by(request)
            )
        messages.success(request, f"{len(unverified)} contact point(s) confirmed.")

    @admin.action(description="Mark deliverable again")
    def mark_deliverable(self, request: HttpRequest, queryset: QuerySet[ContactPoint]) -> None:
        changed = sum(
            contacts.contact_point_mark_deliverable(contact_point=point) for point in queryset
        )
        messages.success(request, f"{changed} contact point(s) will be used again.")


@admin.register(ConsentEvent)
class ConsentEventAdmin(ScopedAdmin):
    """The consent audit: written by the services only."""

    district_path = "contact_point__guardian__district"
    school_path = f"contact_point__{GUARDIAN_SCHOOLS}"
    list_display = [
        "created_at", "kind", "source", "keyword", "provider", "detail", "contact_point"
    ]  # fmt: skip
    list_filter = ["kind", "source"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PreferenceForm(forms.ModelForm):
    """A preference layer's channels are three-way: not set here (the wider layer or the
    category's default decides), some channels, or none at all (nothing is sent but critical
    messages; see notifications/resolution.py)."""

    channels_set_here = forms.BooleanField(
        label="Channels chosen at this layer",
        required=False,
        help_text="Unticked: the wider preference or the category's default channels apply.",
    )
    channels = channel_boxes("Ticked above with none here: only critical messages are sent.")

    class Meta:
        model = Preference
        fields = [
            "guardian", "student", "category", "enabled", "channels_set_here", "channels",
            "delivery_mode", "quiet_start", "quiet_end", "timezone", "language",
        ]  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        chosen = self.instance.channels if self.instance.pk else None
        self.fields["channels_set_here"].initial = chosen is not None
        self.fields["channels"].initial = chosen or []

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("channels_set_here"):
            data["channels"] = None
        return data


@admin.register(Preference)
class PreferenceAdmin(ScopedAdmin):
    form = PreferenceForm
    district_path = "guardian__district"
    school_path = GUARDIAN_SCHOOLS
    list_display = ["guardian", "student", "category", "enabled", "channels", "delivery_mode"]
    search_fields = ["guardian__last_name", "guardian__first_name"]
    # A district's guardians and students are too many for a drop-down.
    raw_id_fields = ["guardian", "student"]
