"""Twilio SMS end to end: our provider → the Twilio fake (checked against Twilio's OpenAPI
description) → signed status callbacks → the live Django server."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection
from django.urls import reverse

from attendance.models import AttendanceStatus
from attendance.services import attendance_record
from notifications.models import (
    ConsentEvent,
    ContactPoint,
    Delivery,
    DeliveryEvent,
    DeliveryStatus,
    Notification,
    NotificationStatus,
)
from notifications.providers import providers_reset
from notifications.providers.test import TestProvider
from notifications.services import planning, sending
from notifications.services.events import attendance_change_handle
from tests.threads import in_threads

from . import twilio_fake
from .conftest import AUTH_TOKEN, NOW, PREVIOUS_TOKEN, SERVICE_SID, TODAY
from .twilio_fake import twilio_signature


@pytest.fixture
def live_twilio(twilio, live_server, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    return twilio


def _absence(family, now=NOW):
    record, _ = attendance_record(
        student=family["student"], date=TODAY, status=AttendanceStatus.ABSENT
    )
    return attendance_change_handle(record_id=record.pk, now=now)


def _send_all(now=NOW):
    outcomes = []
    for notification_id in planning.notifications_due(now=now):
        for delivery_id in planning.notification_dispatch(notification_id=notification_id, now=now):
            outcomes.append(sending.delivery_send(delivery_id=delivery_id))
    return outcomes


def _sms(guardian):
    return Delivery.objects.get(notification__guardian=guardian, channel="sms")


@pytest.mark.django_db(transaction=True)
def test_it_sends_with_the_documented_parameters_and_callbacks_move_status_forward(
    live_twilio, family, settings
):
    _absence(family)
    _send_all()
    assert sorted(live_twilio.numbers_sent()) == sorted(
        [family["mother"].mobile_phone, family["father"].mobile_phone]
    )
    sent = live_twilio.received[0].params
    assert sent["MessagingServiceSid"] == SERVICE_SID and "From" not in sent
    assert sent["StatusCallback"].startswith(settings.PUBLIC_BASE_URL + "/hooks/twilio/status/")
    live_twilio.wait_for_callbacks()
    assert set(live_twilio.callback_results) == {204}
    delivery = _sms(family["mother"])
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.provider_message_id.startswith("SM")
    assert list(delivery.events.values_list("status", flat=True)) == [
        "accepted",
        "sent",
        "delivered",
    ]
    assert delivery.notification.status == NotificationStatus.SENT


@pytest.mark.django_db(transaction=True)
def test_duplicate_and_out_of_order_callbacks_never_move_status_back(live_twilio, family):
    live_twilio.duplicate_callbacks = True
    live_twilio.reverse_callbacks = True  # the final status arrives before "sent"
    live_twilio.outcomes[family["father"].mobile_phone] = twilio_fake.UNDELIVERED
    _absence(family)
    _send_all()
    live_twilio.wait_for_callbacks()
    delivery = _sms(family["mother"])
    assert delivery.status == DeliveryStatus.DELIVERED
    # send + delivered + sent: each duplicate was recognised and dropped.
    assert delivery.events.count() == 3
    assert list(delivery.events.values_list("status", flat=True)) == [
        "accepted",
        "delivered",
        "sent",
    ]
    undelivered = _sms(family["father"])
    assert undelivered.status == DeliveryStatus.UNDELIVERED
    assert undelivered.error_code == "30003"


@pytest.mark.django_db
def test_21610_opts_the_number_out_and_falls_back_to_email(twilio, family):
    twilio.outcomes[family["mother"].mobile_phone] = twilio_fake.OPTED_OUT
    _absence(family)
    outcomes = _send_all()
    delivery = _sms(family["mother"])
    assert delivery.status == DeliveryStatus.FAILED and delivery.error_code == "21610"
    point = ContactPoint.objects.get(guardian=family["mother"], kind="sms")
    assert point.opted_out and point.opt_out_source == "stop"
    assert ConsentEvent.objects.filter(contact_point=point, kind="opt_out").exists()
    # The attendance plan already had e-mail, so no extra fallback delivery is made.
    assert not Delivery.objects.filter(is_fallback=True).exists()
    assert all(not o.follow_up for o in outcomes)


@pytest.mark.django_db
def test_permanent_failure_falls_back_to_the_other_channel_when_not_planned(
    twilio, family, categories
):
    from notifications.models import Preference

    Preference.objects.create(guardian=family["mother"], channels=["sms"])
    twilio.outcomes[family["mother"].mobile_phone] = twilio_fake.INVALID
    _absence(family)
    outcomes = _send_all()
    follow_ups = [pk for o in outcomes for pk in o.follow_up]
    assert len(follow_ups) == 1
    assert sending.delivery_send(delivery_id=follow_ups[0]).status == "sent"
    fallback = Delivery.objects.get(pk=follow_ups[0])
    assert fallback.channel == "email" and fallback.is_fallback
    point = ContactPoint.objects.get(guardian=family["mother"], kind="sms")
    assert point.undeliverable and point.last_failure_code == "21211"
    assert [m.to for m in TestProvider.outbox if m.channel == "email"].count(
        family["mother"].email
    ) == 1


@pytest.mark.django_db
def test_server_errors_are_transient_and_retried_later(twilio, family):
    twilio.outcomes[family["mother"].mobile_phone] = twilio_fake.SERVER_ERROR
    _absence(family)
    outcomes = _send_all()
    retrying = [o for o in outcomes if o.retry_in is not None]
    assert len(retrying) == 1 and retrying[0].retry_in > 0
    delivery = _sms(family["mother"])
    assert delivery.status == DeliveryStatus.RETRYING and delivery.next_attempt_at
    # The provider recovers: the retry sends exactly once.
    twilio.outcomes.clear()
    assert sending.delivery_send(delivery_id=delivery.pk).status == "accepted"
    assert sending.delivery_send(delivery_id=delivery.pk).status == "accepted"
    assert twilio.numbers_sent().count(family["mother"].mobile_phone) == 1


@pytest.mark.django_db
def test_a_from_number_is_used_without_a_messaging_service(twilio, family, settings):
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    settings.TWILIO_FROM_NUMBER = "+13125550100"
    providers_reset()
    _absence(family)
    _send_all()
    assert twilio.received[0].params["From"] == "+13125550100"
    assert "MessagingServiceSid" not in twilio.received[0].params
    assert twilio.rejected == []


# --- webhook authenticity -------------------------------------------------------------------


def _signed_post(client, url, data, token):
    signature = twilio_signature(token, "http://testserver" + url, data)
    return client.post(url, data, HTTP_X_TWILIO_SIGNATURE=signature)


@pytest.mark.django_db
def test_forged_or_unsigned_callbacks_get_403_and_change_nothing(client, twilio, family, caplog):
    _absence(family)
    _send_all()
    delivery = _sms(family["mother"])
    url = reverse("notifications:twilio_status", kwargs={"delivery_uuid": delivery.uuid})
    data = {"MessageSid": delivery.provider_message_id, "MessageStatus": "delivered"}
    assert client.post(url, data).status_code == 403
    assert _signed_post(client, url, data, "not-the-token").status_code == 403
    tampered = _signed_post(client, url, data, AUTH_TOKEN)
    assert tampered.status_code == 204  # a valid one passes...
    other = {"MessageSid": delivery.provider_message_id, "MessageStatus": "failed"}
    signature = twilio_signature(AUTH_TOKEN, "http://testserver" + url, data)
    assert client.post(url, other, HTTP_X_TWILIO_SIGNATURE=signature).status_code == 403
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert "webhook rejected" in caplog.text
    assert family["mother"].mobile_phone not in caplog.text


@pytest.mark.django_db
def test_both_tokens_verify_during_a_rotation(client, twilio, family):
    _absence(family)
    _send_all()
    delivery = _sms(family["mother"])
    url = reverse("notifications:twilio_status", kwargs={"delivery_uuid": delivery.uuid})
    sid = delivery.provider_message_id
    sent = {"MessageSid": sid, "MessageStatus": "sent"}
    assert _signed_post(client, url, sent, PREVIOUS_TOKEN).status_code == 204
    done = {"MessageSid": sid, "MessageStatus": "delivered"}
    assert _signed_post(client, url, done, AUTH_TOKEN).status_code == 204
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    # A replay with the same idempotency token is recorded once.
    headers = {"HTTP_I_TWILIO_IDEMPOTENCY_TOKEN": "replayed-token"}
    url_sig = twilio_signature(AUTH_TOKEN, "http://testserver" + url, sent)
    for _ in range(2):
        client.post(url, sent, HTTP_X_TWILIO_SIGNATURE=url_sig, **headers)
    assert DeliveryEvent.objects.filter(dedup_key="twilio:replayed-token").count() == 1


# --- inbound replies --------------------------------------------------------------------------


def _inbound(client, body, from_number, token=AUTH_TOKEN):
    url = reverse("notifications:twilio_inbound")
    data = {"From": from_number, "Body": body, "To": "+13125550100", "MessageSid": "SM1"}
    return _signed_post(client, url, data, token)


@pytest.mark.django_db
def test_stop_start_and_help_replies(client, twilio, family):
    number = family["mother"].mobile_phone
    assert _inbound(client, " stop ", number).status_code == 200
    point = ContactPoint.objects.get(guardian=family["mother"], kind="sms")
    assert point.opted_out and point.opt_out_source == "stop"
    help_reply = _inbound(client, "HELP", number)
    assert b"Reply STOP" in help_reply.content
    assert _inbound(client, "START", number).status_code == 200
    point.refresh_from_db()
    assert not point.opted_out
    kinds = list(ConsentEvent.objects.order_by("id").values_list("kind", "keyword"))
    assert kinds == [("opt_out", "STOP"), ("help", "HELP"), ("opt_in", "START")]
    assert _inbound(client, "STOP", number, token="forged").status_code == 403


@pytest.mark.django_db
def test_after_stop_no_further_sms_is_sent(client, twilio, family):
    _inbound(client, "STOP", family["mother"].mobile_phone)
    _absence(family)
    _send_all()
    assert family["mother"].mobile_phone not in twilio.numbers_sent()
    mother = Notification.objects.get(guardian=family["mother"])
    assert "opted out" in mother.explanation[1]["detail"]
    assert [d.channel for d in mother.deliveries.all()] == ["email"]


# --- races ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_four_workers_handling_the_same_event_send_one_sms(twilio, family):
    record, _ = attendance_record(
        student=family["student"], date=TODAY, status=AttendanceStatus.ABSENT
    )

    def worker():
        for _ in range(5):
            attendance_change_handle(record_id=record.pk, now=NOW)
            _send_all()

    in_threads(4, worker)
    sent = twilio.numbers_sent()
    assert sent.count(family["mother"].mobile_phone) == 1
    assert sent.count(family["father"].mobile_phone) == 1
    assert Notification.objects.count() == 2
    assert Delivery.objects.filter(channel="sms").count() == 2


@pytest.mark.django_db(transaction=True)
def test_stop_wins_against_sends_racing_it(twilio, family, categories):
    """Deliveries to one number are sent by 4 workers while a STOP arrives: nothing reaches
    the provider after the opt-out committed."""
    from notifications.services.contacts import contacts_opt_out
    from notifications.services.direct import contact_point_message_send

    point = ContactPoint.objects.get(guardian=family["mother"], kind="sms")
    committed_at = []

    def sender():
        for _ in range(5):
            contact_point_message_send(contact_point=point, body="Reminder", purpose="race")

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
    after = [r for r in twilio.received if r.at > committed_at[0]]
    assert after == []
    cancelled = Delivery.objects.filter(to=point.value, status="cancelled").count()
    sent = len(twilio.received)
    assert sent + cancelled == 20


@pytest.mark.django_db
def test_the_sender_rate_counts_segments(twilio, family, settings, categories):
    """2 segments/s per sender: three 2-segment messages take six slots half a second apart,
    so their calls arrive about two seconds apart from first to last (one second if the rate
    counted messages instead of segments)."""
    import uuid as uuid_module

    from notifications.services.direct import contact_point_message_send

    settings.TWILIO_SEGMENTS_PER_SECOND = 2
    # A sender of its own, so no earlier test's pacing state applies.
    settings.TWILIO_MESSAGING_SERVICE_SID = "MG" + uuid_module.uuid4().hex
    providers_reset()
    point = ContactPoint.objects.get(guardian=family["mother"], kind="sms")
    body = "Attendance reminder. " * 9  # ~190 GSM-7 characters: 2 segments
    for _ in range(3):
        delivery, _outcome = contact_point_message_send(contact_point=point, body=body)
        assert delivery.segments == 2
    times = sorted(r.at for r in twilio.received)
    assert len(times) == 3
    # The limiter paces the calls by its own clock; arrival times at the fake also carry each
    # request's transit and any scheduling delay, usually a millisecond or so, but a full run
    # once measured 0.77 s where the pacing meant 1.0 s. So the line is drawn halfway between
    # paced by segments (2 s) and paced by messages (1 s). Unpaced, the three would arrive
    # within a few milliseconds.
    assert times[-1] - times[0] >= 1.5
