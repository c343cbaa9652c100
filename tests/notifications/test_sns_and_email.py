"""AWS SNS through moto's real server; e-mail through anymail's test backend with tracking
webhooks (basic auth), and through SMTP to a local aiosmtpd server."""

from __future__ import annotations

import base64
import json
import socket
import uuid

import pytest
import requests
from django.core import mail
from django.urls import reverse

from attendance.models import AttendanceStatus
from attendance.services import attendance_record
from notifications.models import ContactPoint, Delivery, DeliveryStatus
from notifications.providers import providers_reset
from notifications.services import planning, sending
from notifications.services.events import attendance_change_handle

from .conftest import NOW, TODAY

pytestmark = pytest.mark.django_db


def _absence_sent(family):
    record, _ = attendance_record(
        student=family["student"], date=TODAY, status=AttendanceStatus.ABSENT
    )
    attendance_change_handle(record_id=record.pk, now=NOW)
    outcomes = []
    for pk in planning.notifications_due(now=NOW):
        for delivery_id in planning.notification_dispatch(notification_id=pk, now=NOW):
            outcomes.append(sending.delivery_send(delivery_id=delivery_id))
    return outcomes


# --- SNS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def sns(settings, moto_server, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    requests.post(f"{moto_server}/moto-api/reset", timeout=10)
    settings.NOTIFY_SMS_PROVIDER = "sns"
    settings.AWS_SNS_ENDPOINT_URL = moto_server
    settings.AWS_SNS_REGION = "us-east-1"
    settings.SNS_SEGMENTS_PER_SECOND = None
    providers_reset()
    return moto_server


def _sns_messages(server):
    data = requests.get(f"{server}/moto-api/data.json", timeout=10).json()
    return data["sns"]["SMS"] if "SMS" in data.get("sns", {}) else data["sns"]


def test_sns_publishes_transactional_sms_and_stops_at_accepted(sns, family):
    _absence_sent(family)
    delivery = Delivery.objects.get(notification__guardian=family["mother"], channel="sms")
    assert delivery.provider == "sns"
    assert delivery.status == DeliveryStatus.ACCEPTED  # SNS never calls back
    assert delivery.provider_message_id
    raw = json.dumps(_sns_messages(sns))
    assert family["mother"].mobile_phone in raw


def test_sns_calls_go_through_the_gateway(sns, family, caplog):
    from prometheus_client import REGISTRY

    def calls(route: str) -> float:
        labels = {"provider": route.split(":")[0], "route": route, "status_class": "2xx"}
        return REGISTRY.get_sample_value("sas_gateway_calls_total", labels) or 0.0

    before = (calls("sns:us-east-1"), calls("sns-api:us-east-1"))
    _absence_sent(family)
    sms = Delivery.objects.filter(channel="sms", status=DeliveryStatus.ACCEPTED).count()
    assert sms >= 1
    # One opt-out lookup (its own route) and one publish (the paced route) per message, each
    # counted and logged by the gateway — boto3 only signs.
    assert calls("sns:us-east-1") - before[0] == sms
    assert calls("sns-api:us-east-1") - before[1] == sms
    logged = [getattr(r, "path", None) for r in caplog.records if r.getMessage() == "gateway call"]
    assert logged.count("/Publish") == sms
    assert logged.count("/CheckIfPhoneNumberIsOptedOut") == sms


def test_sns_opted_out_numbers_are_checked_before_sending(sns, family):
    # moto answers "opted out" for numbers ending in 99.
    point = ContactPoint.objects.get(guardian=family["mother"], kind="sms")
    point.value = "+13125550199"
    point.save()
    _absence_sent(family)
    delivery = Delivery.objects.get(notification__guardian=family["mother"], channel="sms")
    assert delivery.status == DeliveryStatus.FAILED and delivery.error_code == "OptedOut"
    point.refresh_from_db()
    assert point.opted_out and point.opt_out_source == "stop"
    assert "+13125550199" not in json.dumps(_sns_messages(sns))


# --- anymail ----------------------------------------------------------------------------------


@pytest.fixture
def anymail_email(settings):
    settings.NOTIFY_EMAIL_PROVIDER = "email"
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hookuser:hookpass"}
    providers_reset()


def _postmark(client, payload, auth="hookuser:hookpass"):
    headers = {}
    if auth:
        headers["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(auth.encode()).decode()
    return client.post(
        reverse("notifications:anymail_postmark_tracking"),
        data=json.dumps(payload),
        content_type="application/json",
        **headers,
    )


def test_email_carries_our_delivery_id_and_tracking_webhooks_update_it(
    client, anymail_email, family
):
    _absence_sent(family)
    delivery = Delivery.objects.get(notification__guardian=family["mother"], channel="email")
    sent = [m for m in mail.outbox if m.to == [family["mother"].email]]
    assert len(sent) == 1
    assert sent[0].metadata == {"delivery_id": str(delivery.uuid)}
    assert delivery.status == DeliveryStatus.SENT
    delivered = {
        "RecordType": "Delivery",
        "MessageID": "pm-1",
        "Recipient": family["mother"].email,
        "DeliveredAt": "2026-09-01T15:01:00Z",
        "Metadata": {"delivery_id": str(delivery.uuid)},
    }
    assert _postmark(client, delivered).status_code == 200
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    complaint = {
        "RecordType": "SpamComplaint",
        "ID": 42,
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "MessageID": "pm-1",
        "Email": family["mother"].email,
        "BouncedAt": "2026-09-01T16:00:00Z",
        "Metadata": {"delivery_id": str(delivery.uuid)},
    }
    assert _postmark(client, complaint).status_code == 200
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED  # a complaint is an event, not a status
    point = ContactPoint.objects.get(guardian=family["mother"], kind="email")
    assert point.opted_out and point.opt_out_source == "complaint"
    assert list(delivery.events.values_list("provider_status", flat=True)) == [
        "sent",
        "delivered",
        "complained",
    ]


def test_tracking_webhooks_without_basic_auth_get_403(client, anymail_email, family, caplog):
    _absence_sent(family)
    delivery = Delivery.objects.get(notification__guardian=family["mother"], channel="email")
    payload = {
        "RecordType": "Bounce",
        "Type": "HardBounce",
        "ID": 1,
        "MessageID": "x",
        "Email": family["mother"].email,
        "BouncedAt": "2026-09-01T16:00:00Z",
        "Metadata": {"delivery_id": str(delivery.uuid)},
    }
    assert _postmark(client, payload, auth=None).status_code == 403
    assert _postmark(client, payload, auth="hookuser:wrong").status_code == 403
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SENT
    assert family["mother"].email not in caplog.text
    assert _postmark(client, payload).status_code == 200
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.BOUNCED
    point = ContactPoint.objects.get(guardian=family["mother"], kind="email")
    assert point.opted_out and point.opt_out_source == "bounce"


# --- SMTP -------------------------------------------------------------------------------------


@pytest.fixture
def smtp_server(settings):
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    received = []

    class Collect(Message):
        def handle_message(self, message):
            received.append(message)

    # aiosmtpd connects to its own port once started, so it needs a concrete free port.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Collect(), hostname="127.0.0.1", port=port)
    controller.start()
    settings.NOTIFY_EMAIL_PROVIDER = "email"
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_USE_TLS = False
    providers_reset()
    yield received
    controller.stop()


def test_email_over_smtp(smtp_server, family):
    _absence_sent(family)
    delivery = Delivery.objects.get(notification__guardian=family["mother"], channel="email")
    assert delivery.status == DeliveryStatus.SENT
    messages = [m for m in smtp_server if m["To"] == family["mother"].email]
    assert len(messages) == 1
    assert messages[0]["X-Delivery-Id"] == str(delivery.uuid)
    assert delivery.provider_message_id in messages[0]["Message-ID"]


def test_smtp_down_is_transient(settings, family):
    settings.NOTIFY_EMAIL_PROVIDER = "email"
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = 9  # discard port: nothing listens
    settings.EMAIL_TIMEOUT = 2
    providers_reset()
    outcomes = _absence_sent(family)
    assert any(o.retry_in for o in outcomes)
    delivery = Delivery.objects.get(notification__guardian=family["mother"], channel="email")
    assert delivery.status == DeliveryStatus.RETRYING


# --- anymail ESP calls through the gateway ----------------------------------------------------


@pytest.fixture
def postmark_api(settings):
    """A real local HTTP server answering Postmark's send API (``POST /email``), with the
    Postmark backend pointed at it."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received = []
    answers = []  # status codes to answer, in turn (then 200)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append({"path": self.path, "headers": dict(self.headers), "body": body})
            status = answers.pop(0) if answers else 200
            answer = {"ErrorCode": 0, "Message": "OK", "MessageID": f"pm-{len(received)}"}
            if status != 200:
                answer = {"ErrorCode": 500, "Message": "Internal error"}
            answer["To"] = body["To"]
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # Breaker counts of earlier runs (the route name is fixed) must not open this one's.
    settings.GATEWAY_KEY_PREFIX = f"gw-test-{uuid.uuid4().hex[:8]}"
    settings.NOTIFY_EMAIL_PROVIDER = "email"
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {
        "POSTMARK_SERVER_TOKEN": "test-server-token",
        "POSTMARK_API_URL": f"http://127.0.0.1:{server.server_address[1]}/",
    }
    providers_reset()
    yield received, answers
    server.shutdown()
    server.server_close()


def _gateway_calls(status_class):
    from prometheus_client import REGISTRY

    labels = {"provider": "email", "route": "email:postmark", "status_class": status_class}
    return REGISTRY.get_sample_value("sas_gateway_calls_total", labels) or 0.0


def test_anymail_esp_calls_go_through_the_gateway(postmark_api, family, caplog):
    received, _answers = postmark_api
    before = _gateway_calls("2xx")
    _absence_sent(family)
    delivery = Delivery.objects.get(notification__guardian=family["mother"], channel="email")
    assert delivery.status == DeliveryStatus.SENT and delivery.provider_message_id.startswith("pm-")
    to_mother = [r for r in received if r["body"]["To"] == family["mother"].email]
    assert len(to_mother) == 1 and to_mother[0]["path"] == "/email"
    assert to_mother[0]["headers"]["X-Postmark-Server-Token"] == "test-server-token"
    assert to_mother[0]["body"]["Metadata"] == {"delivery_id": str(delivery.uuid)}
    # Counted by the gateway route, like every other outbound call.
    assert _gateway_calls("2xx") - before == len(received) == 2
    logged = [r for r in caplog.records if r.getMessage() == "gateway call"]
    assert [getattr(r, "route", None) for r in logged].count("email:postmark") == 2


def test_an_esp_server_error_is_transient_through_the_gateway(postmark_api, family):
    received, answers = postmark_api
    answers.extend([500, 500])
    before = _gateway_calls("5xx")
    outcomes = _absence_sent(family)
    retrying = Delivery.objects.filter(channel="email", status=DeliveryStatus.RETRYING)
    assert retrying.count() == 2
    assert {o.status for o in outcomes if o.retry_in is not None} == {"retrying"}
    assert _gateway_calls("5xx") - before == 2
    # The ESP recovers: the retry goes out once.
    delivery = retrying.first()
    assert sending.delivery_send(delivery_id=delivery.pk).status == "sent"
    assert len([r for r in received if r["body"]["To"] == delivery.to]) == 2
