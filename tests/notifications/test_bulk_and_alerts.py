"""Bulk notices (plan in the database, send in batches, progress, cancel), operational alerts
and contact points from SIS guardian fields."""

from __future__ import annotations

import pytest
from django.core import mail

from attendance.models import MembershipRole
from notifications import tasks
from notifications.models import BulkNoticeState, ContactPoint, Notification, NotificationStatus
from notifications.providers.test import TestProvider
from notifications.selectors import bulk_notice_progress
from notifications.services import bulk
from notifications.services.alerts import operational_alert_send
from tests.factories import (
    EnrollmentFactory,
    GuardianFactory,
    MembershipFactory,
    StudentFactory,
    StudentGuardianFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def school_families(family):
    """Five more students at the family's school; two siblings share a guardian."""
    district, school = family["district"], family["school"]
    shared = GuardianFactory(district=district)
    for number in range(5):
        student = StudentFactory(district=district, school=school, grade_level="03")
        EnrollmentFactory(student=student, school=school)
        guardian = shared if number < 2 else GuardianFactory(district=district)
        StudentGuardianFactory(student=student, guardian=guardian)
    return family


def _notice(family, categories, **kwargs):
    return bulk.bulk_notice_create(
        district=family["district"],
        author=None,
        title="Early dismissal",
        category=categories["emergency"],
        texts={"en": {"subject": "Early dismissal", "body": "School closes at noon today."}},
        **kwargs,
    )


def test_a_bulk_notice_reaches_each_guardian_once_with_progress(school_families, categories):
    family = school_families
    notice = _notice(family, categories)
    assert bulk.bulk_notice_audience_count(notice=notice) == {"students": 6, "guardians": 6}
    bulk.bulk_notice_start(notice=notice)
    batches = bulk.bulk_notice_plan(notice_id=notice.pk)
    notice.refresh_from_db()
    assert notice.state == BulkNoticeState.SENDING and notice.recipients_planned == 6
    for batch in batches:
        tasks.bulk_notice_send_batch(notice.pk, batch)
    progress = bulk.bulk_notice_progress_refresh(notice_id=notice.pk)
    assert progress["planned"] == 12 and progress["sent"] == 12 and progress["waiting"] == 0
    notice.refresh_from_db()
    assert notice.state == BulkNoticeState.COMPLETED and notice.deliveries_sent == 12
    texts = {m.body for m in TestProvider.outbox if m.channel == "sms"}
    assert texts == {"School closes at noon today."}
    # Each e-mail ends with its guardian's own portal link (notifications.links).
    emails = [m.body.split("\n\n") for m in TestProvider.outbox if m.channel == "email"]
    assert len(emails) == 6 and {body[0] for body in emails} == {"School closes at noon today."}
    links = {body[-1].rsplit(" ", 1)[-1] for body in emails}
    assert len(links) == 6 and all("/portal/l/" in link for link in links)
    assert len({m.to for m in TestProvider.outbox if m.channel == "sms"}) == 6


def test_a_bulk_notice_can_be_narrowed_to_grades(school_families, categories):
    notice = _notice(school_families, categories, grade_levels=["03"])
    assert bulk.bulk_notice_audience_count(notice=notice)["students"] == 5


def test_a_bulk_notice_can_be_cancelled_midway(school_families, categories, monkeypatch):
    monkeypatch.setattr(bulk, "BATCH_SIZE", 2)
    notice = _notice(school_families, categories)
    bulk.bulk_notice_start(notice=notice)
    batches = bulk.bulk_notice_plan(notice_id=notice.pk)
    assert len(batches) == 3
    tasks.bulk_notice_send_batch(notice.pk, batches[0])
    sent_before = len(TestProvider.outbox)
    assert bulk.bulk_notice_cancel(notice=notice, user=None) == 4
    for batch in batches[1:]:
        tasks.bulk_notice_send_batch(notice.pk, batch)
    assert len(TestProvider.outbox) == sent_before == 4
    statuses = Notification.objects.filter(bulk_notice=notice).values_list("status", flat=True)
    assert sorted(set(statuses)) == [NotificationStatus.CANCELLED, NotificationStatus.SENT]
    notice.refresh_from_db()
    assert notice.state == BulkNoticeState.CANCELLED
    assert bulk_notice_progress(notice=notice)["sent"] == 4


def test_a_bulk_notice_needs_the_district_language(family, categories):
    from core.errors import ApplicationError

    with pytest.raises(ApplicationError):
        bulk.bulk_notice_create(
            district=family["district"], author=None, title="x", category=categories["general"],
            texts={"es": {"body": "Hola"}},
        )  # fmt: skip


def test_operational_alerts_email_district_admins_once(family, categories, settings):
    settings.NOTIFY_EMAIL_PROVIDER = "email"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    from notifications.providers import providers_reset

    providers_reset()
    admin = UserFactory(email="admin@example.org")
    MembershipFactory(user=admin, district=family["district"], role=MembershipRole.DISTRICT_ADMIN)
    MembershipFactory(user=UserFactory(email=""), district=family["district"])
    sent = operational_alert_send(
        district=family["district"], kind="sync_failed", subject="Nightly sync failed",
        body="The nightly roster sync failed after 3 attempts.", key="run-1",
    )  # fmt: skip
    assert sent == 1
    assert mail.outbox[0].to == ["admin@example.org"]
    assert "Nightly sync failed" in mail.outbox[0].subject
    again = operational_alert_send(
        district=family["district"], kind="sync_failed", subject="x", body="y", key="run-1"
    )
    assert again == 0


def test_sis_contacts_become_verified_contact_points_and_keep_consent(family):
    mother = family["mother"]
    sms = ContactPoint.objects.get(guardian=mother, kind="sms")
    assert sms.verified and sms.source == "sis" and sms.value == mother.mobile_phone
    sms.opted_out, sms.opt_out_source = True, "stop"
    sms.save()
    old_email = mother.email
    mother.email = "new-address@example.org"
    mother.save()  # the roster's contacts follow (notifications.receivers)
    emails = ContactPoint.objects.filter(guardian=mother, kind="email")
    assert {(e.value, e.active) for e in emails} == {
        ("new-address@example.org", True),
        (old_email, False),
    }
    sms.refresh_from_db()
    assert sms.opted_out  # a sync never resets consent
    # The same number added for another guardian inherits the opt-out.
    other = GuardianFactory(district=family["district"], mobile_phone=mother.mobile_phone)
    assert ContactPoint.objects.get(guardian=other, kind="sms").opted_out
