"""The batch path (bulk imports, bulk notices, the dispatch task): a few statements per batch,
with the guarantees of the single path — one message per event even with 4 workers, a STOP
wins against sends racing it, transient errors retry, permanent ones update the contact point,
and statuses only move forward."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from attendance.models import AttendanceStatus
from attendance.services import attendance_record
from notifications import tasks
from notifications.models import (
    Category,
    ContactPoint,
    Delivery,
    DeliveryEvent,
    DeliveryStatus,
    Notification,
    NotificationStatus,
)
from notifications.providers.test import TestProvider
from notifications.services import planning, receipts, sending
from notifications.services.contacts import contacts_opt_out
from notifications.services.events import attendance_changes_handle
from tests.factories import (
    EnrollmentFactory,
    GuardianFactory,
    StudentFactory,
    StudentGuardianFactory,
)
from tests.threads import in_threads

from . import twilio_fake
from .conftest import NOW, TODAY


def _absences(family, students):
    """``students`` absent students at the family's school, two guardians each."""
    record_ids = []
    for _ in range(students):
        student = StudentFactory(district=family["district"], school=family["school"])
        EnrollmentFactory(student=student, school=family["school"])
        for priority in (1, 2):
            guardian = GuardianFactory(district=family["district"])
            StudentGuardianFactory(student=student, guardian=guardian, priority=priority)
        record, _ = attendance_record(student=student, date=TODAY, status=AttendanceStatus.ABSENT)
        record_ids.append(record.pk)
    return record_ids


def _pipeline(record_ids):
    planned = attendance_changes_handle(record_ids=record_ids, now=NOW, enqueue=False)
    ids = planning.notifications_dispatch_many(notification_ids=[n.pk for n in planned], now=NOW)
    return ids, sending.deliveries_send_many(delivery_ids=ids)


@pytest.mark.django_db
def test_a_batch_costs_the_same_statements_whatever_its_size(family):
    counts = []
    for students in (2, 8):
        record_ids = _absences(family, students)
        planned = attendance_changes_handle(record_ids=record_ids, now=NOW, enqueue=False)
        ids = planning.notifications_dispatch_many(
            notification_ids=[n.pk for n in planned], now=NOW
        )
        assert len(ids) == 4 * students  # two guardians × SMS and e-mail
        for delivery in Delivery.objects.filter(pk__in=ids).select_related("notification"):
            n = delivery.notification
            assert delivery.idempotency_key == planning.idempotency_key(
                n.event_key, n.guardian_id, delivery.channel
            )
            assert delivery.body == n.content[delivery.channel]["body"] and delivery.uuid
            assert delivery.to == delivery.contact_point.value
        with CaptureQueriesContext(connection) as queries:
            outcomes = sending.deliveries_send_many(delivery_ids=ids)
        assert {o.status for o in outcomes} == {"sent"}
        counts.append(len(queries))
    # 8 statements, 3 more for the e-mails' portal links (their guardians, one insert of
    # links, one update of their hashes), and, inside the test's transaction, 3 savepoints
    # with their releases.
    assert counts[0] == counts[1] <= 17
    assert len(TestProvider.outbox) == 40
    assert DeliveryEvent.objects.filter(source="send").count() == 40
    assert set(Notification.objects.values_list("status", flat=True)) == {"sent"}


@pytest.mark.django_db(transaction=True)
def test_four_workers_running_the_dispatch_task_on_the_same_event_send_one_sms(twilio, family):
    record_ids = _absences(family, 3)
    planned = attendance_changes_handle(record_ids=record_ids, now=NOW, enqueue=False)
    ids = [n.pk for n in planned]
    in_threads(4, lambda: tasks.notifications_dispatch_batch(ids))
    # A worker that found rows locked by another skipped them; the sweep takes what is left.
    tasks.notifications_dispatch_batch(planning.notifications_due(now=NOW))
    sent = twilio.numbers_sent()
    assert len(sent) == 6 and len(set(sent)) == 6
    assert Delivery.objects.filter(channel="sms").count() == 6
    assert set(Delivery.objects.values_list("status", flat=True)) == {"accepted", "sent"}


def _deliveries_to(point, count):
    """``count`` recorded deliveries to one contact point, each its own event."""
    ids = []
    for number in range(count):
        notification = Notification.objects.create(
            event_key=f"race:{number}",
            district=point.guardian.district,
            guardian=point.guardian,
            category=Category.objects.get(code=Category.GENERAL),
            content={"sms": {"body": f"Reminder {number}"}},
            plan=[{"channel": "sms", "contact_point": point.pk}],
            status=NotificationStatus.DISPATCHED,
        )
        delivery = Delivery.objects.create(
            notification=notification,
            channel="sms",
            contact_point=point,
            to=point.value,
            body=f"Reminder {number}",
            segments=1,
            provider="twilio",
            idempotency_key=planning.idempotency_key(
                notification.event_key, point.guardian_id, "sms"
            ),
        )
        ids.append(delivery.pk)
    return ids


@pytest.mark.django_db(transaction=True)
def test_stop_wins_against_batches_racing_it(twilio, family, categories, monkeypatch):
    """4 workers send batches to one number while a STOP arrives: nothing reaches the
    provider after the opt-out committed, and the rest is cancelled, not sent."""
    monkeypatch.setattr(sending, "SEND_GROUP", 3)
    point = ContactPoint.objects.get(guardian=family["mother"], kind="sms")
    ids = _deliveries_to(point, 24)
    committed_at = []

    def sender():
        for start in range(0, len(ids), 6):
            sending.deliveries_send_many(delivery_ids=ids[start : start + 6])

    def stopper():
        time.sleep(0.05)
        contacts_opt_out(kind="sms", value=point.value, source="stop", keyword="STOP")
        committed_at.append(time.time())

    threads = [threading.Thread(target=lambda: (sender(), connection.close())) for _ in range(4)]
    stop_thread = threading.Thread(target=lambda: (stopper(), connection.close()))
    for thread in [*threads, stop_thread]:
        thread.start()
    for thread in [*threads, stop_thread]:
        thread.join(60)
    assert committed_at
    assert [r for r in twilio.received if r.at > committed_at[0]] == []
    statuses = list(Delivery.objects.filter(pk__in=ids).values_list("status", flat=True))
    assert len(twilio.received) == statuses.count("accepted")
    assert statuses.count("accepted") + statuses.count("cancelled") == 24


@pytest.mark.django_db
def test_errors_in_a_batch_retry_or_stop_one_by_one(twilio, family):
    record_ids = _absences(family, 3)
    planned = attendance_changes_handle(record_ids=record_ids, now=NOW, enqueue=False)
    guardians = sorted({n.guardian for n in planned}, key=lambda g: g.pk)
    twilio.outcomes[guardians[0].mobile_phone] = twilio_fake.SERVER_ERROR
    twilio.outcomes[guardians[1].mobile_phone] = twilio_fake.OPTED_OUT
    twilio.outcomes[guardians[2].mobile_phone] = twilio_fake.INVALID
    ids = planning.notifications_dispatch_many(notification_ids=[n.pk for n in planned], now=NOW)
    outcomes = sending.deliveries_send_many(delivery_ids=ids)
    by_id = {o.delivery_id: o for o in outcomes}
    assert set(by_id) == set(ids)
    sms = {d.notification.guardian_id: d for d in Delivery.objects.filter(channel="sms")}
    retrying = sms[guardians[0].pk]
    assert retrying.status == DeliveryStatus.RETRYING and retrying.next_attempt_at
    assert by_id[retrying.pk].retry_in and by_id[retrying.pk].retry_in > 0
    assert sms[guardians[1].pk].status == DeliveryStatus.FAILED
    assert sms[guardians[1].pk].error_code == "21610"
    opted = ContactPoint.objects.get(guardian=guardians[1], kind="sms")
    assert opted.opted_out and opted.opt_out_source == "stop"
    invalid = ContactPoint.objects.get(guardian=guardians[2], kind="sms")
    assert invalid.undeliverable and invalid.last_failure_code == "21211"
    accepted = [d for d in sms.values() if d.status == DeliveryStatus.ACCEPTED]
    assert len(accepted) == 3 and all(d.provider_message_id.startswith("SM") for d in accepted)
    assert len(twilio.received) == 3
    # The retry sends once the provider recovers, and only once.
    twilio.outcomes.clear()
    assert sending.deliveries_send_many(delivery_ids=[retrying.pk])[0].status == "accepted"
    assert sending.deliveries_send_many(delivery_ids=[retrying.pk]) == []
    assert twilio.numbers_sent().count(guardians[0].mobile_phone) == 1


@pytest.mark.django_db(transaction=True)
def test_a_callback_before_the_batch_records_its_result_is_not_overwritten(family, monkeypatch):
    """The provider's "delivered" callback can arrive while the batch is still sending; the
    batch's later "sent" must not move the status back."""
    original = TestProvider.deliver

    def deliver_then_callback(self, message):
        result = original(self, message)
        delivery = Delivery.objects.get(uuid=message.delivery_uuid)

        def callback():
            try:
                receipts.delivery_event_record(
                    delivery=delivery,
                    status=DeliveryStatus.DELIVERED,
                    source="callback",
                    raw={},
                    provider_message_id=result.provider_message_id,
                )
            finally:
                connection.close()

        thread = threading.Thread(target=callback)
        thread.start()
        thread.join(30)
        return result

    monkeypatch.setattr(TestProvider, "deliver", deliver_then_callback)
    ids, outcomes = _pipeline(_absences(family, 1))
    assert len(outcomes) == 4
    deliveries = Delivery.objects.filter(pk__in=ids)
    assert {d.status for d in deliveries} == {DeliveryStatus.DELIVERED}
    assert all(d.provider_message_id.startswith("test-") and d.sent_at for d in deliveries)
    for delivery in deliveries:
        assert sorted(delivery.events.values_list("source", "status")) == [
            ("callback", "delivered"),
            ("send", "sent"),
        ]


@pytest.mark.django_db
def test_a_crash_mid_batch_strands_only_the_delivery_in_flight(family, monkeypatch):
    """A bug in a provider call: what was sent is recorded, the delivery in flight stays
    "sending" (never resent blindly), the rest goes back to "retrying" and the sweep sends it
    once."""
    import datetime as dt

    record_ids = _absences(family, 2)
    planned = attendance_changes_handle(record_ids=record_ids, now=NOW, enqueue=False)
    ids = planning.notifications_dispatch_many(notification_ids=[n.pk for n in planned], now=NOW)
    crashing = sorted(ids)[3]
    original = TestProvider.deliver

    def deliver(self, message):
        if Delivery.objects.get(uuid=message.delivery_uuid).pk == crashing:
            raise RuntimeError("provider bug")
        return original(self, message)

    monkeypatch.setattr(TestProvider, "deliver", deliver)
    with pytest.raises(RuntimeError):
        sending.deliveries_send_many(delivery_ids=ids)
    status = dict(Delivery.objects.values_list("pk", "status"))
    assert [status[pk] for pk in sorted(ids)] == ["sent"] * 3 + ["sending"] + ["retrying"] * 4
    assert len(TestProvider.outbox) == 3
    now = dt.datetime.now(tz=dt.UTC)
    assert sending.deliveries_due(now=now) == []  # a retry may still be on its way
    later = now + sending.SWEEP_GRACE
    monkeypatch.setattr(TestProvider, "deliver", original)
    tasks.deliveries_send_batch(sending.deliveries_due(now=later))
    status = dict(Delivery.objects.values_list("pk", "status"))
    assert [status[pk] for pk in sorted(ids)] == ["sent"] * 3 + ["sending"] + ["sent"] * 4
    assert len(TestProvider.outbox) == 7 and len({m.to for m in TestProvider.outbox}) == 7
