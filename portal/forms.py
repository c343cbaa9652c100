"""Portal forms. Labels and help texts are translated; widgets carry the attributes phones use
(input modes, autocomplete hints) so the right keyboard opens."""

from __future__ import annotations

import zoneinfo
from typing import Any, cast

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from notifications.models import Category
from portal.services import Contact, contact_parse

US_TIMEZONES = {
    "America/New_York": _("Eastern time (New York)"),
    "America/Chicago": _("Central time (Chicago)"),
    "America/Denver": _("Mountain time (Denver)"),
    "America/Phoenix": _("Mountain time, no daylight saving (Phoenix)"),
    "America/Los_Angeles": _("Pacific time (Los Angeles)"),
    "America/Anchorage": _("Alaska time (Anchorage)"),
    "Pacific/Honolulu": _("Hawaii time (Honolulu)"),
    "America/Puerto_Rico": _("Atlantic time (Puerto Rico)"),
}


class SignInForm(forms.Form):
    contact = forms.CharField(
        label=_("Mobile phone number or e-mail address"),
        max_length=254,
        help_text=_("Use the phone number or e-mail address your school has for you."),
        widget=forms.TextInput(
            attrs={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"}
        ),
    )

    def clean_contact(self) -> Contact:
        contact = contact_parse(raw=self.cleaned_data["contact"])
        if contact is None:
            raise forms.ValidationError(
                _("Enter a mobile phone number (like 312-555-0142) or an e-mail address."),
                code="invalid",
            )
        return contact


class CodeForm(forms.Form):
    code = forms.CharField(
        label=_("6-digit code"),
        max_length=12,
        widget=forms.TextInput(
            attrs={"inputmode": "numeric", "autocomplete": "one-time-code", "pattern": "[0-9 ]*"}
        ),
    )

    def clean_code(self) -> str:
        code = "".join(ch for ch in self.cleaned_data["code"] if ch.isdigit())
        if len(code) != 6:
            raise forms.ValidationError(_("The code has 6 digits."), code="invalid")
        return code


class ChildPreferencesForm(forms.Form):
    """One multiple-choice field per category: which channels to use for it. Critical
    categories are shown checked and disabled (they cannot be turned off)."""

    CHANNEL_CHOICES = [("sms", _("Text message (SMS)")), ("email", _("E-mail"))]

    def __init__(
        self,
        *args: Any,
        categories: list[Category],
        initial_channels: dict[str, list[str]],
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.categories = categories
        for category in categories:
            field = forms.MultipleChoiceField(
                label=category_label(category),
                choices=self.CHANNEL_CHOICES,
                required=False,
                widget=forms.CheckboxSelectMultiple,
                initial=initial_channels.get(category.code, []),
                disabled=category.critical,
            )
            if category.critical:
                field.help_text = _(
                    "Always on: the school must be able to reach you about this. "
                    "Replying STOP to texts still stops texts."
                )
            self.fields[f"cat_{category.code}"] = field

    def channels_by_category(self) -> dict[str, list[str]]:
        return {
            c.code: list(self.cleaned_data.get(f"cat_{c.code}") or [])
            for c in self.categories
            if not c.critical
        }


CATEGORY_LABELS = {
    "attendance": _("Attendance (absences and late arrivals)"),
    "chronic_absence": _("Attendance concerns (many absences)"),
    "general": _("General school news"),
    "emergency": _("Emergencies and school closures"),
}


def category_label(category: Category) -> str:
    return str(CATEGORY_LABELS.get(category.code, category.name))


class GuardianSettingsForm(forms.Form):
    delivery_mode = forms.ChoiceField(
        label=_("How often"),
        choices=[
            ("instant", _("Right away")),
            ("digest", _("One message a day (a daily summary for all my children)")),
        ],
        widget=forms.RadioSelect,
        help_text=_("Emergencies always arrive right away."),
    )
    quiet_hours = forms.BooleanField(label=_("Use quiet hours"), required=False)
    quiet_start = forms.TimeField(
        label=_("Quiet from"),
        required=False,
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
    )
    quiet_end = forms.TimeField(
        label=_("Quiet until"),
        required=False,
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
    )
    timezone = forms.ChoiceField(label=_("Time zone"))
    language = forms.ChoiceField(label=_("Language of messages"), choices=settings.LANGUAGES)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        zones: list[tuple[str, str]] = [(z, str(label)) for z, label in US_TIMEZONES.items()]
        current = (self.initial or {}).get("timezone")
        if current and current not in US_TIMEZONES:
            zones.append((current, current.replace("_", " ")))
        tz_field = cast(forms.ChoiceField, self.fields["timezone"])
        tz_field.choices = zones
        self.fields["quiet_start"].help_text = _(
            "Messages that would arrive during quiet hours wait until they end."
        )

    def clean_timezone(self) -> str:
        value = str(self.cleaned_data["timezone"])
        if value not in zoneinfo.available_timezones():
            raise forms.ValidationError(_("Choose a time zone."), code="invalid")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("quiet_hours"):
            start, end = data.get("quiet_start"), data.get("quiet_end")
            if start is None or end is None:
                raise forms.ValidationError(
                    _("Give a start and an end for the quiet hours."), code="quiet"
                )
            if start == end:
                raise forms.ValidationError(
                    _("Quiet hours must start and end at different times."), code="quiet"
                )
        else:
            data["quiet_start"] = data["quiet_end"] = None
        return data


class AddContactForm(forms.Form):
    contact = forms.CharField(
        label=_("Mobile phone number or e-mail address"),
        max_length=254,
        help_text=_("We send a code to confirm it before it gets any messages."),
        widget=forms.TextInput(attrs={"autocapitalize": "none", "spellcheck": "false"}),
    )

    def clean_contact(self) -> str:
        raw = str(self.cleaned_data["contact"]).strip()
        if contact_parse(raw=raw) is None:
            raise forms.ValidationError(
                _("Enter a mobile phone number (like 312-555-0142) or an e-mail address."),
                code="invalid",
            )
        return raw
