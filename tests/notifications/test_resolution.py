"""Resolution, case by case: contact rights → contact points → preferences → quiet hours →
digest → language → template. A frozen clock is passed in as ``now``."""

from __future__ import annotations

import datetime as dt

import pytest

from notifications.models import (
    ContactPoint,
    Notification,
    NotificationStatus,
    Preference,
    Template,
)
from notifications.providers.test import TestProvider
from notifications.resolution import quiet_hours_end
from notifications.segments import sms_length
from notifications.services import planning, sending
from notifications.services.planning import EventSpec, notifications_plan, recipients_for_student

from .conftest import NOW

pytestmark = pytest.mark.django_db
CHICAGO = "America/Chicago"


def _plan(family, categories, code="attendance", now=NOW, body="School closes early"):
    spec = EventSpec(
        event_key=f"test:{code}:{now.isoformat()}",
        category=categories[code],
        district=family["district"],
        school=family["school"],
        student=family["student"],
        context={
            "student_first_name": "Sam",
            "school_name": "North",
            "date": "Sep 1",
            "status_text": "absent",
            "periods": "",
            "subject": "Notice",
            "body": body,
            "absences": 3,
            "percent": 10,
        },
    )
    notifications = notifications_plan(
        spec=spec, recipients=recipients_for_student(student=family["student"]), now=now,
        enqueue=False,
    )  # fmt: skip
    return {n.guardian_id: n for n in notifications}


def _mother(result, family):
    return result[family["mother"].pk]


def test_critical_categories_ignore_the_guardians_switch_off(family, categories):
    for code in ("attendance", "emergency"):
        Preference.objects.create(
            guardian=family["mother"], category=categories[code], enabled=False
        )
    assert _mother(_plan(family, categories), family).status == NotificationStatus.SUPPRESSED
    emergency = _mother(_plan(family, categories, "emergency"), family)
    assert emergency.status == NotificationStatus.PENDING
    assert "critical" in emergency.explanation[2]["detail"]


def test_critical_categories_never_override_a_stop_or_custody(family, categories):
    ContactPoint.objects.filter(guardian=family["mother"]).update(
        opted_out=True, opt_out_source="stop"
    )
    link = family["links"][1]
    link.contact_allowed = False
    link.save()
    result = _plan(family, categories, "emergency")
    assert _mother(result, family).status == NotificationStatus.SUPPRESSED
    assert "opted out" in _mother(result, family).explanation[1]["detail"]
    father = result[family["father"].pk]
    assert father.status == NotificationStatus.SUPPRESSED
    assert "custody" in father.summary


def test_unverified_contact_points_are_not_used(family, categories):
    ContactPoint.objects.filter(guardian=family["mother"], kind="sms").update(verified=False)
    mother = _mother(_plan(family, categories), family)
    assert [p["channel"] for p in mother.plan] == ["email"]
    assert "not verified" in mother.explanation[1]["detail"]


def test_the_most_specific_preference_wins(family, categories):
    Preference.objects.create(guardian=family["mother"], channels=["email"])
    Preference.objects.create(
        guardian=family["mother"], student=family["student"], category=categories["attendance"],
        channels=["sms"],
    )  # fmt: skip
    assert [p["channel"] for p in _mother(_plan(family, categories), family).plan] == ["sms"]
    general = _mother(_plan(family, categories, "general"), family)
    assert [p["channel"] for p in general.plan] == ["email"]


def test_quiet_hours_defer_to_the_end_of_the_window_and_critical_bypasses(family, categories):
    # 22:30 in Chicago; quiet 21:00–07:00 local.
    late = dt.datetime(2026, 9, 2, 3, 30, tzinfo=dt.UTC)
    Preference.objects.create(
        guardian=family["mother"], quiet_start=dt.time(21), quiet_end=dt.time(7),
        timezone=CHICAGO,
    )  # fmt: skip
    mother = _mother(_plan(family, categories, now=late), family)
    assert mother.defer_reason == "quiet_hours"
    assert mother.deferred_until == dt.datetime(2026, 9, 2, 12, 0, tzinfo=dt.UTC)  # 07:00 CDT
    assert planning.notifications_due(now=late) == [
        n.pk for n in Notification.objects.filter(guardian=family["father"])
    ]
    emergency = _mother(_plan(family, categories, "emergency", now=late), family)
    assert emergency.deferred_until == late and emergency.defer_reason == ""


def test_quiet_hours_window_arithmetic():
    import zoneinfo

    tz = zoneinfo.ZoneInfo(CHICAGO)
    morning = dt.datetime(2026, 9, 2, 6, 0, tzinfo=tz)
    assert quiet_hours_end(morning, start=dt.time(21), end=dt.time(7), tz=tz) == dt.datetime(
        2026, 9, 2, 7, 0, tzinfo=tz
    )
    noon = dt.datetime(2026, 9, 2, 12, 0, tzinfo=tz)
    assert quiet_hours_end(noon, start=dt.time(21), end=dt.time(7), tz=tz) is None
    lunch = quiet_hours_end(noon, start=dt.time(11), end=dt.time(13), tz=tz)
    assert lunch == dt.datetime(2026, 9, 2, 13, 0, tzinfo=tz)


def test_daily_digest_merges_the_days_messages_into_one(family, categories, settings):
    settings.NOTIFY_DIGEST_HOUR = 18
    Preference.objects.create(guardian=family["mother"], delivery_mode="digest", channels=["email"])
    _plan(family, categories, "general", body="First notice")
    later = NOW + dt.timedelta(hours=1)
    _plan(family, categories, "attendance", now=later)
    pending = Notification.objects.filter(guardian=family["mother"], digest=True)
    assert pending.count() == 2
    evening = dt.datetime(2026, 9, 1, 23, 0, tzinfo=dt.UTC)  # 18:00 CDT
    assert all(n.deferred_until == evening for n in pending)
    before = set(planning.notifications_due(now=evening - dt.timedelta(minutes=1)))
    assert not before & set(pending.values_list("pk", flat=True))
    for pk in planning.notifications_due(now=evening):
        for delivery_id in planning.notification_dispatch(notification_id=pk, now=evening):
            sending.delivery_send(delivery_id=delivery_id)
    mails = [m for m in TestProvider.outbox if m.to == family["mother"].email]
    assert len(mails) == 1
    assert "First notice" in mails[0].body and "Sam" in mails[0].body
    # One portal link for the whole digest, not one per merged message.
    assert mails[0].body.count("/portal/l/") == 1
    assert set(pending.values_list("status", flat=True)) == {NotificationStatus.MERGED}


def test_language_falls_back_to_the_district_default(family, categories):
    family["mother"].preferred_language = "fr"  # no French template exists
    family["mother"].save()
    Preference.objects.create(guardian=family["father"], language="es")
    result = _plan(family, categories)
    assert result[family["mother"].pk].content["sms"]["language"] == "en"
    assert result[family["father"].pk].content["sms"]["language"] == "es"
    assert "Responda STOP" in result[family["father"].pk].content["sms"]["body"]


def test_a_district_template_wins_over_the_built_in_one(family, categories):
    Template.objects.create(
        district=family["district"], category=categories["attendance"], channel="sms",
        language="en", body="{{ student_first_name }} absent today.",
    )  # fmt: skip
    result = _plan(family, categories)
    assert result[family["mother"].pk].content["sms"]["body"] == "Sam absent today."
    assert result[family["mother"].pk].content["sms"]["template"] == "district"


def test_sms_segments_gsm7_and_ucs2():
    assert sms_length("a" * 160).segments == 1
    assert sms_length("a" * 161).segments == 2
    assert sms_length("€" * 80).segments == 1  # extension chars count double
    assert sms_length("€" * 81).segments == 2
    ucs2 = sms_length("ñandú ✓" + "a" * 63)
    assert ucs2.encoding == "UCS-2" and ucs2.segments == 1
    assert sms_length("✓" * 71).segments == 2
