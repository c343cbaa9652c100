"""The same event enqueued many times, handled by 4 real Celery worker processes on the
``notify`` queue at once: exactly one SMS per guardian reaches the Twilio fake."""

from __future__ import annotations

import pytest

from attendance.models import AttendanceStatus
from attendance.services import attendance_record
from notifications import tasks
from notifications.models import Delivery, DeliveryStatus
from notifications.services.events import attendance_changes_handle
from tests.workers import celery_worker

from .conftest import ACCOUNT_SID, AUTH_TOKEN, NOW, SERVICE_SID, TODAY
from .twilio_fake import TwilioFake


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_four_worker_processes_handling_the_same_event_send_one_sms(family, tmp_path):
    fake = TwilioFake(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, send_callbacks=False)
    env = {
        "SMS_PROVIDER": "twilio",
        "EMAIL_PROVIDER": "console",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_MESSAGING_SERVICE_SID": SERVICE_SID,
        "TWILIO_API_BASE_URL": fake.url,
        "TWILIO_SEGMENTS_PER_SECOND": "0",
    }
    record, _ = attendance_record(
        student=family["student"], date=TODAY, status=AttendanceStatus.ABSENT
    )
    planned = attendance_changes_handle(record_ids=[record.pk], now=NOW, enqueue=False)
    ids = [n.pk for n in planned]
    assert len(ids) == 2
    log_path = tmp_path / "worker.log"
    try:
        with celery_worker(queue="notify", concurrency=4, log_path=log_path, env=env):
            # The batch task and the single one, each enqueued four times.
            results = [tasks.notifications_dispatch_batch.delay(ids) for _ in range(4)]
            results += [tasks.notification_dispatch.delay(pk) for pk in ids for _ in range(4)]
            for result in results:
                result.get(timeout=120)
    finally:
        fake.stop()
    log = log_path.read_text(errors="replace")
    sent = fake.numbers_sent()
    assert sorted(sent) == sorted([family["mother"].mobile_phone, family["father"].mobile_phone])
    sms = Delivery.objects.filter(channel="sms")
    assert sms.count() == 2, log[-2000:]
    assert {d.status for d in sms} == {DeliveryStatus.ACCEPTED}
    assert {d.provider for d in sms} == {"twilio"}
