"""Attendance marks → one message per student, day and guardian (test provider)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.utils import timezone

from attendance.models import AttendanceStatus
from attendance.services import attendance_record, student_withdraw
from notifications.models import Delivery, Notification, NotificationStatus
from notifications.providers.test import TestProvider
from notifications.services import planning, sending
from notifications.services.events import attendance_change_handle
from tests.factories import SectionFactory, StudentGuardianFactory

from .conftest import NOW, TODAY

pytestmark = pytest.mark.django_db


def _send_due(now):
    for notification_id in planning.notifications_due(now=now):
        for delivery_id in planning.notification_dispatch(notification_id=notification_id, now=now):
            sending.delivery_send(delivery_id=delivery_id)


def _record(student, status, section=None, period=""):
    record, _ = attendance_record(
        student=student, date=TODAY, status=status, section=section, period=period
    )
    return record


def test_it_notifies_each_guardian_once_per_day_on_every_channel(family):
    record = _record(family["student"], AttendanceStatus.ABSENT)
    attendance_change_handle(record_id=record.pk, now=NOW)
    _send_due(NOW)
    notifications = Notification.objects.filter(event_key__startswith="attendance:")
    assert notifications.count() == 2
    assert set(notifications.values_list("status", flat=True)) == {NotificationStatus.SENT}
    sms = [m for m in TestProvider.outbox if m.channel == "sms"]
    assert {m.to for m in sms} == {family["mother"].mobile_phone, family["father"].mobile_phone}
    assert "absent" in sms[0].body and family["school"].name in sms[0].body
    assert len(TestProvider.outbox) == 4  # sms + email for each guardian
    # The same event again (a retried task) sends nothing more.
    attendance_change_handle(record_id=record.pk, now=NOW)
    _send_due(NOW)
    assert len(TestProvider.outbox) == 4


def test_more_periods_update_the_pending_message_instead_of_sending_more(family, settings):
    settings.NOTIFY_ATTENDANCE_HOLD_SECONDS = 600
    school = family["school"]
    first = SectionFactory(school=school, periods=["1"])
    third = SectionFactory(school=school, periods=["3"])
    r1 = _record(family["student"], AttendanceStatus.ABSENT, section=first, period="1")
    attendance_change_handle(record_id=r1.pk, now=NOW)
    r3 = _record(family["student"], AttendanceStatus.TARDY, section=third, period="3")
    attendance_change_handle(record_id=r3.pk, now=NOW + dt.timedelta(minutes=5))
    assert planning.notifications_due(now=NOW + dt.timedelta(minutes=5)) == []
    _send_due(NOW + dt.timedelta(minutes=11))
    sms = [m for m in TestProvider.outbox if m.channel == "sms"]
    assert len(sms) == 2
    assert "period 1, 3" in sms[0].body
    assert "absent and tardy" in sms[0].body


def test_a_correction_to_present_before_sending_cancels_the_message(family, settings):
    settings.NOTIFY_ATTENDANCE_HOLD_SECONDS = 600
    record = _record(family["student"], AttendanceStatus.ABSENT)
    attendance_change_handle(record_id=record.pk, now=NOW)
    record = _record(family["student"], AttendanceStatus.PRESENT)
    attendance_change_handle(record_id=record.pk, now=NOW + dt.timedelta(minutes=2))
    _send_due(NOW + dt.timedelta(hours=1))
    assert TestProvider.outbox == []
    statuses = set(Notification.objects.values_list("status", flat=True))
    assert statuses == {NotificationStatus.CANCELLED}
    assert "Corrected to present" in Notification.objects.first().summary


def test_excused_absences_and_withdrawn_students_never_notify(family):
    record = _record(family["student"], AttendanceStatus.EXCUSED_ABSENCE)
    attendance_change_handle(record_id=record.pk, now=NOW)
    assert Notification.objects.count() == 0
    record = _record(family["student"], AttendanceStatus.ABSENT)
    student_withdraw(student=family["student"], exit_date=TODAY)
    attendance_change_handle(record_id=record.pk, now=NOW)
    assert Notification.objects.count() == 0


def test_old_attendance_from_a_backfill_does_not_notify(family):
    record = _record(family["student"], AttendanceStatus.ABSENT)
    attendance_change_handle(record_id=record.pk, now=NOW + dt.timedelta(days=10))
    assert Notification.objects.count() == 0


def test_no_contact_custody_rule_means_no_message_and_an_explanation(family):
    link = family["links"][1]
    link.contact_allowed = False
    link.save()
    record = _record(family["student"], AttendanceStatus.ABSENT)
    attendance_change_handle(record_id=record.pk, now=NOW)
    _send_due(NOW)
    father = Notification.objects.get(guardian=family["father"])
    assert father.status == NotificationStatus.SUPPRESSED
    assert "Contact not allowed" in father.summary
    assert father.explanation[0]["step"] == "contact_rights"
    assert not Delivery.objects.filter(notification=father).exists()
    assert family["father"].mobile_phone not in {m.to for m in TestProvider.outbox}
    assert family["mother"].mobile_phone in {m.to for m in TestProvider.outbox}


def test_the_signal_hands_the_record_to_the_task(
    family, eager_celery, django_capture_on_commit_callbacks
):
    today = timezone.localdate(timezone=zoneinfo.ZoneInfo(family["district"].timezone))
    with django_capture_on_commit_callbacks(execute=True):
        attendance_record(student=family["student"], date=today, status=AttendanceStatus.ABSENT)
    assert Notification.objects.filter(event_key__startswith="attendance:").count() == 2
    assert len([m for m in TestProvider.outbox if m.channel == "sms"]) == 2


def test_chronic_absence_sends_one_escalation_per_threshold(family):
    student = family["student"]
    for day in range(1, 4):
        date = TODAY - dt.timedelta(days=day)
        attendance_record(student=student, date=date, status=AttendanceStatus.ABSENT)
    for day in range(4, 12):
        date = TODAY - dt.timedelta(days=day)
        attendance_record(student=student, date=date, status=AttendanceStatus.PRESENT)
    record = _record(student, AttendanceStatus.ABSENT)
    attendance_change_handle(record_id=record.pk, now=NOW)
    keys = set(Notification.objects.values_list("event_key", flat=True))
    chronic = {k for k in keys if k.startswith("chronic:")}
    # 4 absences of 12 days: both the count (3) and the percentage (10 %) thresholds.
    assert len(chronic) == 2
    attendance_change_handle(record_id=record.pk, now=NOW)
    assert Notification.objects.filter(event_key__startswith="chronic:").count() == 4  # 2 × 2


def test_a_new_guardian_link_later_the_same_day_gets_the_message_too(family):
    record = _record(family["student"], AttendanceStatus.ABSENT)
    attendance_change_handle(record_id=record.pk, now=NOW)
    StudentGuardianFactory(student=family["student"], priority=3)
    attendance_change_handle(record_id=record.pk, now=NOW)
    assert Notification.objects.filter(event_key__startswith="attendance:").count() == 3


@pytest.mark.django_db(transaction=True)
def test_the_batch_path_sends_each_message_once_even_when_run_twice_at_once(family):
    """Bulk imports go through attendance_changes_handle → notifications_dispatch_many →
    deliveries_send_many; two workers running the same batch still send once."""
    import threading

    from django.db import connection

    from notifications.services.events import attendance_changes_handle
    from notifications.services.planning import notifications_dispatch_many
    from notifications.services.sending import deliveries_send_many

    record = _record(family["student"], AttendanceStatus.ABSENT)
    barrier = threading.Barrier(2)

    def worker():
        try:
            barrier.wait()
            planned = attendance_changes_handle(record_ids=[record.pk], now=NOW, enqueue=False)
            ids = notifications_dispatch_many(notification_ids=[n.pk for n in planned], now=NOW)
            deliveries_send_many(delivery_ids=ids)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # Whatever one worker skipped (rows locked by the other) the sweep would pick up; here
    # the other worker dispatched them, so everything is sent exactly once.
    leftover = planning.notifications_due(now=NOW)
    for pk in leftover:
        deliveries_send_many(
            delivery_ids=planning.notifications_dispatch_many(notification_ids=[pk], now=NOW)
        )
    assert len(TestProvider.outbox) == 4
    assert len({(m.to, m.channel) for m in TestProvider.outbox}) == 4
    assert set(Notification.objects.values_list("status", flat=True)) == {NotificationStatus.SENT}


def test_a_spanish_message_uses_spanish_status_words_and_dates(family):
    from notifications.models import Preference

    Preference.objects.create(guardian=family["mother"], language="es")
    record = _record(family["student"], AttendanceStatus.ABSENT)
    attendance_change_handle(record_id=record.pk, now=NOW)
    _send_due(NOW)
    to_mother = [
        m.body
        for m in TestProvider.outbox
        if m.channel == "sms" and m.to == family["mother"].mobile_phone
    ]
    to_father = [
        m.body
        for m in TestProvider.outbox
        if m.channel == "sms" and m.to == family["father"].mobile_phone
    ]
    assert len(to_mother) == 1 and len(to_father) == 1
    months = "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre"
    spanish_month = [*months.split(), "diciembre"][TODAY.month - 1]
    assert "ausente" in to_mother[0] and f"{TODAY.day} de {spanish_month}" in to_mother[0]
    assert "absent" not in to_mother[0]
    assert "absent" in to_father[0] and TODAY.strftime("%b") in to_father[0]
