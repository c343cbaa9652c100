from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from notifications.models import Category, Preference
from notifications.resolution import preferences_merge
from portal.forms import GuardianSettingsForm
from portal.models import AuditAction, PortalAudit

pytestmark = pytest.mark.django_db


def test_child_page_shows_categories_with_critical_always_on(signed_in, family):
    page = signed_in.get(reverse("portal:child", args=[family.first.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    form = page.context["form"]
    assert "cat_operational" not in form.fields  # administrators only
    assert form.fields["cat_emergency"].disabled
    assert "Always on" in html
    assert form["cat_attendance"].initial == ["sms", "email"]
    assert form["cat_general"].initial == ["email"]


def test_a_child_without_contact_rights_is_not_reachable(signed_in, family):
    assert signed_in.get(reverse("portal:child", args=[family.hidden.pk])).status_code == 404


def test_changing_a_childs_channels_is_saved_and_audited(signed_in, family):
    response = signed_in.post(
        reverse("portal:child", args=[family.first.pk]),
        {"cat_attendance": ["email"], "cat_chronic_absence": ["sms", "email"], "cat_general": []},
    )
    assert response.status_code == 302
    attendance = Category.objects.get(code="attendance")
    prefs = list(Preference.objects.filter(guardian=family.guardian))
    merged = preferences_merge(prefs, student_id=family.first.pk, category_id=attendance.pk)
    assert merged.channels == ["email"]
    general = Category.objects.get(code="general")
    assert (
        preferences_merge(prefs, student_id=family.first.pk, category_id=general.pk).enabled
        is False
    )
    # The other child keeps the defaults.
    assert (
        preferences_merge(prefs, student_id=family.second.pk, category_id=attendance.pk).channels
        is None
    )
    audit = PortalAudit.objects.get(action=AuditAction.PREFERENCE, category="attendance")
    assert audit.guardian == family.guardian and audit.student == family.first
    assert audit.changes["channels"] == [None, ["email"]]
    assert audit.via == "link:message"
    # Saving the same choices again records nothing new.
    signed_in.post(
        reverse("portal:child", args=[family.first.pk]),
        {"cat_attendance": ["email"], "cat_chronic_absence": ["sms", "email"], "cat_general": []},
    )
    assert PortalAudit.objects.filter(action=AuditAction.PREFERENCE).count() == 3
    page = signed_in.get(reverse("portal:child", args=[family.first.pk]))
    assert page.context["form"]["cat_attendance"].initial == ["email"]


def test_a_posted_critical_category_cannot_be_switched_off(signed_in, family):
    signed_in.post(reverse("portal:child", args=[family.first.pk]), {"cat_attendance": ["sms"]})
    assert not Preference.objects.filter(category__code="emergency").exists()


def test_settings_are_saved_with_quiet_hours_and_audited(signed_in, family):
    response = signed_in.post(
        reverse("portal:settings"),
        {
            "delivery_mode": "digest",
            "quiet_hours": "on",
            "quiet_start": "21:00",
            "quiet_end": "07:00",
            "timezone": "America/New_York",
            "language": "es",
        },
    )
    assert response.status_code == 302
    pref = Preference.objects.get(guardian=family.guardian, student=None, category=None)
    assert (pref.delivery_mode, pref.quiet_start, pref.quiet_end, pref.timezone, pref.language) == (
        "digest",
        dt.time(21),
        dt.time(7),
        "America/New_York",
        "es",
    )
    audit = PortalAudit.objects.get(action=AuditAction.PREFERENCE)
    assert audit.changes["quiet_start"] == [None, "21:00"]
    assert audit.changes["language"] == ["", "es"]
    # Turning quiet hours off clears both ends.
    signed_in.post(
        reverse("portal:settings"),
        {"delivery_mode": "instant", "timezone": "America/New_York", "language": "es"},
    )
    pref.refresh_from_db()
    assert pref.quiet_start is None and pref.quiet_end is None and pref.delivery_mode == "instant"


@pytest.mark.parametrize(
    "data, message",
    [
        ({"quiet_hours": "on", "quiet_start": "21:00"}, "start and an end"),
        ({"quiet_hours": "on", "quiet_start": "21:00", "quiet_end": "21:00"}, "different times"),
        ({"timezone": "Mars/Olympus"}, "Select a valid choice"),
    ],
)
def test_settings_form_rejects_bad_input(data, message):
    form = GuardianSettingsForm(
        {"delivery_mode": "instant", "timezone": "America/Chicago", "language": "en", **data},
        initial={"timezone": "America/Chicago"},
    )
    assert not form.is_valid()
    assert message in str(form.errors)


def test_the_settings_page_starts_from_the_guardians_language(signed_in, family):
    family.guardian.preferred_language = "es"
    family.guardian.save()
    page = signed_in.get(reverse("portal:settings"))
    assert page.context["form"].initial["language"] == "es"
    assert page.context["form"].initial["timezone"] == family.guardian.district.timezone
