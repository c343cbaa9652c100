"""Notifications, deliveries and bulk notices over the API: reads with masked addresses and the
FERPA log, filters, bulk notices created and sent through the real tasks (eager), cancel,
validation and scopes."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from attendance.models import ApiAccessLog
from gateway.inbound.api_keys import api_key_create
from notifications.models import BulkNotice, Notification, NotificationStatus
from notifications.providers import providers_reset
from notifications.providers.test import TestProvider
from notifications.services.templates import templates_cache_clear
from tests.api.sync_notify_data import category, make_sync_notify_rows
from tests.factories import SectionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def notify_settings(settings):
    settings.NOTIFY_SMS_PROVIDER = "test"
    settings.NOTIFY_EMAIL_PROVIDER = "test"
    providers_reset()
    TestProvider.reset()
    templates_cache_clear()
    yield settings
    providers_reset()
    TestProvider.reset()
    templates_cache_clear()


@pytest.fixture
def rows(tenant):
    return make_sync_notify_rows(tenant)


def key_with(tenant, *scopes):
    client = APIClient()
    key = api_key_create(district=tenant.district, name="+".join(scopes), scopes=list(scopes))
    client.credentials(HTTP_X_API_KEY=key.plaintext)
    return client


@pytest.fixture
def api(tenant):
    return key_with(tenant, "notifications:read", "notifications:send")


def results(response):
    assert response.status_code == 200, response.content
    return response.json()["results"]


# --- notifications and deliveries ---------------------------------------------------------------


def test_a_notification_shows_its_content_and_masked_deliveries(api, rows, tenant):
    notification = rows.notification
    body = api.get(f"/api/v1/notifications/{notification.pk}/").json()
    assert body["category"] == "attendance"
    assert body["student"] == tenant.students[0].pk
    assert body["channels"] == ["sms"]
    # What the guardian received, without the template bookkeeping.
    assert body["content"] == {"sms": {"subject": "", "body": "Absent today."}}
    [delivery] = body["deliveries"]
    assert delivery["to"] == "+1******0123"
    assert "+15555550123" not in str(body)
    assert "error_message" not in delivery
    log = ApiAccessLog.objects.get(endpoint="api/v1/notifications/<int:pk>/")
    assert log.student_ids == [tenant.students[0].pk]
    listed = results(api.get("/api/v1/deliveries/"))
    assert [d["id"] for d in listed] == [rows.delivery.pk]
    assert listed[0]["to"] == "+1******0123"
    assert listed[0]["student"] == tenant.students[0].pk
    assert ApiAccessLog.objects.filter(endpoint="api/v1/deliveries/").exists()


def test_notifications_filter_by_student_guardian_category_status_and_time(api, rows, tenant):
    second = Notification.objects.create(
        event_key="bulk:99",
        district=tenant.district,
        guardian=tenant.guardian,
        category=category("general"),
        status=NotificationStatus.SUPPRESSED,
        summary="No usable contact point",
    )
    Notification.objects.filter(pk=rows.notification.pk).update(
        created_at=timezone.now() - dt.timedelta(days=2)
    )

    def ids(query):
        return [n["id"] for n in results(api.get("/api/v1/notifications/", query))]

    first = rows.notification.pk
    assert ids({"student": tenant.students[0].pk}) == [first]
    assert ids({"student": tenant.students[1].pk}) == []
    assert ids({"guardian": tenant.guardian.pk}) == [first, second.pk]
    assert ids({"category": "general"}) == [second.pk]
    assert ids({"status": ["sent", "failed"]}) == [first]
    since = (timezone.now() - dt.timedelta(days=1)).isoformat()
    assert ids({"created_since": since}) == [second.pk]
    assert ids({"created_before": since}) == [first]
    assert ids({"ordering": "-id"}) == [second.pk, first]
    assert api.get("/api/v1/notifications/", {"status": "lost"}).status_code == 400
    assert api.get("/api/v1/notifications/", {"student": "x"}).status_code == 400


def test_deliveries_filter_and_paginate(api, rows, tenant):
    from notifications.models import Delivery

    for n in range(3):
        Delivery.objects.create(
            notification=rows.notification,
            channel="email",
            to=f"guardian{n}@example.org",
            body="Absent today.",
            provider="test",
            status="failed",
            idempotency_key=f"extra-{n}",
        )
    emails = results(api.get("/api/v1/deliveries/", {"channel": "email"}))
    assert len(emails) == 3
    assert emails[0]["to"] == "g***@example.org"
    assert len(results(api.get("/api/v1/deliveries/", {"status": "sent"}))) == 1
    assert len(results(api.get("/api/v1/deliveries/", {"student": tenant.students[0].pk}))) == 4
    seen, url = [], "/api/v1/deliveries/?page_size=3"
    while url:
        body = api.get(url).json()
        seen += [d["id"] for d in body["results"]]
        url = body["next"]
    assert seen == sorted(Delivery.objects.values_list("pk", flat=True))


# --- bulk notices -------------------------------------------------------------------------------


def _family_at(tenant):
    """The tenant's first student has one guardian, with its roster's contact points."""
    category("general")


@pytest.mark.django_db(transaction=True)
def test_a_bulk_notice_is_created_sent_and_reports_progress(tenant, eager_celery):
    _family_at(tenant)
    api = key_with(tenant, "notifications:read", "notifications:send")
    body = {
        "title": "Picture day",
        "category": "general",
        "texts": {
            "en": {"subject": "Picture day", "body": "Friday is picture day."},
            "es": {"subject": "Día de fotos", "body": "El viernes es día de fotos."},
        },
        "schools": [tenant.school.pk],
        "grade_levels": ["05"],
    }
    created = api.post("/api/v1/bulk-notices/", body, format="json")
    assert created.status_code == 202, created.content
    notice_id = created.json()["id"]
    assert created.json()["schools"] == [tenant.school.pk]
    # The plan and send tasks ran (eagerly) once the request committed.
    detail = api.get(f"/api/v1/bulk-notices/{notice_id}/").json()
    assert detail["state"] == "completed", detail
    assert detail["recipients_planned"] == 1
    assert detail["progress"]["sent"] == detail["progress"]["planned"] >= 1
    assert detail["progress"]["waiting"] == 0
    assert {m.to for m in TestProvider.outbox} <= {
        tenant.guardian.email,
        tenant.guardian.mobile_phone,
    }
    assert any("Friday is picture day." in m.body for m in TestProvider.outbox)
    listed = results(api.get("/api/v1/bulk-notices/", {"state": "completed"}))
    assert [n["id"] for n in listed] == [notice_id]


def test_a_bulk_notice_can_be_cancelled_before_it_is_sent(
    api, tenant, django_capture_on_commit_callbacks
):
    _family_at(tenant)
    body = {"title": "Closure", "category": "general", "texts": {"en": {"body": "Closed."}}}
    with django_capture_on_commit_callbacks() as queued:
        created = api.post("/api/v1/bulk-notices/", body, format="json")
    assert created.status_code == 202, created.content
    assert created.json()["state"] == "planning"
    assert len(queued) == 1  # the planning task, not run here
    notice_id = created.json()["id"]
    cancelled = api.post(f"/api/v1/bulk-notices/{notice_id}/cancel/")
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    assert BulkNotice.objects.get(pk=notice_id).state == "cancelled"
    assert api.post(f"/api/v1/bulk-notices/{notice_id}/cancel/").json()["state"] == "cancelled"
    assert api.post("/api/v1/bulk-notices/99999999/cancel/").status_code == 404


def test_bulk_notice_validation(api, tenant, other):
    category("general")

    def post(**changes):
        body = {"title": "T", "category": "general", "texts": {"en": {"body": "Hello."}}}
        return api.post("/api/v1/bulk-notices/", {**body, **changes}, format="json")

    no_default = post(texts={"es": {"body": "Hola."}})
    assert no_default.status_code == 400
    assert no_default.json()["error"]["code"] == "bulk_text_missing"
    assert post(texts={"fr": {"body": "Bonjour."}}).status_code == 400
    assert post(texts={}).status_code == 400
    assert post(texts={"en": {"subject": "No body"}}).status_code == 400
    unknown = post(category="no-such-category")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (422, "unknown_category")
    foreign = post(sections=[SectionFactory(school=other.school).pk])
    assert (foreign.status_code, foreign.json()["error"]["code"]) == (422, "unknown_section")
    assert foreign.json()["error"]["details"]["ids"]
    assert not BulkNotice.objects.exists()


def test_notification_scopes_are_enforced(tenant, rows):
    reader = key_with(tenant, "notifications:read")
    assert reader.get("/api/v1/notifications/").status_code == 200
    assert reader.get(f"/api/v1/bulk-notices/{rows.bulk_notice.pk}/").status_code == 200
    body = {"title": "T", "category": "general", "texts": {"en": {"body": "Hi."}}}
    assert reader.post("/api/v1/bulk-notices/", body, format="json").status_code == 403
    cancel = reader.post(f"/api/v1/bulk-notices/{rows.bulk_notice.pk}/cancel/")
    assert cancel.status_code == 403
    sender = key_with(tenant, "notifications:send")
    assert sender.get("/api/v1/notifications/").status_code == 403
    assert sender.get("/api/v1/deliveries/").status_code == 403
    roster = key_with(tenant, "roster:read", "attendance:read")
    assert roster.get("/api/v1/bulk-notices/").status_code == 403
    rows.bulk_notice.refresh_from_db()
    assert rows.bulk_notice.state == "draft"
    assert BulkNotice.objects.count() == 1


def test_list_pages_cost_the_same_queries_for_one_row_or_many(api, rows, tenant):
    """No per-row queries: a page of 25 costs what a page of one does."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from notifications.models import Delivery

    api.get("/api/v1/districts/")  # the key's first use also records last_used_at

    def queries(path):
        with CaptureQueriesContext(connection) as captured:
            assert api.get(path).status_code == 200
        return len(captured)

    paths = ["/api/v1/notifications/", "/api/v1/deliveries/", "/api/v1/bulk-notices/"]
    one = {path: queries(path) for path in paths}
    for n in range(24):
        notification = Notification.objects.create(
            event_key=f"extra:{n}",
            district=tenant.district,
            guardian=tenant.guardian,
            student=tenant.students[n % 3],
            category=category("general"),
        )
        Delivery.objects.create(
            notification=notification,
            channel="sms",
            to="+15555550100",
            body="x",
            provider="test",
            idempotency_key=f"extra:{n}",
        )
        notice = BulkNotice.objects.create(
            district=tenant.district, title=f"N{n}", category=category("general"), texts={}
        )
        notice.schools.set([tenant.school])
    assert {path: queries(path) for path in paths} == one
