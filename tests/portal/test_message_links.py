"""Guardians' e-mails carry a link that opens the portal signed in as them (issue 8, item 1),
minted when the message is sent (notifications.links): what is stored keeps a mark instead."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from notifications.links import MARK
from notifications.models import Delivery
from notifications.providers.test import TestProvider
from notifications.services.events import attendance_change_handle
from notifications.services.planning import notification_dispatch
from notifications.services.sending import delivery_send
from tests.factories import AttendanceRecordFactory

pytestmark = pytest.mark.django_db

LINK = re.compile(r"http://testserver(/portal/l/[^/\s]+/)")


def _absence_sent(family):
    now = timezone.now()
    record = AttendanceRecordFactory(
        student=family.first, school=family.first.school, date=timezone.localdate(now)
    )
    ids = []
    for notification in attendance_change_handle(record_id=record.pk, now=now):
        for delivery_id in notification_dispatch(notification_id=notification.pk):
            delivery_send(delivery_id=delivery_id)
            ids.append(delivery_id)
    return list(Delivery.objects.filter(pk__in=ids))


def test_an_absence_email_links_to_the_portal_signed_in_as_its_guardian(client, family):
    deliveries = _absence_sent(family)
    email = next(
        d
        for d in deliveries
        if d.channel == "email" and d.notification.guardian_id == family.guardian.pk
    )
    # Stored: the mark, never a working link.
    assert MARK in email.body and "/portal/l/" not in email.body
    sent = TestProvider.messages_to("parent@example.org")
    assert len(sent) == 1 and MARK not in sent[0].body
    path = LINK.search(sent[0].body).group(1)
    # A text carries no link (one segment); the same absence's SMS says what happened.
    texts = TestProvider.messages_to("+13125550142")
    assert texts and all("/portal/" not in m.body and MARK not in m.body for m in texts)
    # The link opens the portal as this guardian, once.
    assert client.get(path).status_code == 200  # a button: link scanners spend nothing
    assert client.post(path)["Location"] == reverse("portal:home")
    home = client.get(reverse("portal:home"))
    assert "Maya" in home.content.decode()
    client.logout()
    assert client.post(path)["Location"] != reverse("portal:home")


def test_each_guardian_gets_their_own_link_and_a_resend_a_fresh_one(client, family):
    _absence_sent(family)
    mine = LINK.search(TestProvider.messages_to("parent@example.org")[0].body).group(1)
    theirs = LINK.search(TestProvider.messages_to("other.parent@example.org")[0].body).group(1)
    assert mine != theirs
    client.post(theirs)
    home = client.get(reverse("portal:home"))
    assert "Maya" in home.content.decode() and "Leo" not in home.content.decode()
    # Sent again (a retry), the message carries a new link; the stored body is unchanged.
    email = Delivery.objects.get(to="parent@example.org")
    Delivery.objects.filter(pk=email.pk).update(status="retrying")
    delivery_send(delivery_id=email.pk)
    again = LINK.search(TestProvider.messages_to("parent@example.org")[-1].body).group(1)
    assert again != mine
    assert Delivery.objects.get(pk=email.pk).body == email.body


def test_an_sms_template_with_the_link_is_counted_with_a_real_links_length(family):
    from notifications.models import Category, Template
    from notifications.services.templates import message_render, templates_cache_clear
    from portal.services import portal_link_length

    Template.objects.create(
        district=family.guardian.district,
        category=Category.objects.get(code="attendance"),
        channel="sms",
        language="en",
        body="{{ student_first_name }} was absent. " + "x" * 80 + " {{ portal_link }}",
    )
    templates_cache_clear()
    rendered = message_render(
        district=family.guardian.district,
        code="attendance",
        channel="sms",
        language="en",
        context={"student_first_name": "Maya"},
    )
    assert rendered is not None and rendered.body.endswith(MARK)
    # 99 characters of text and the link: more than one segment only because of the link.
    assert rendered.length.units == len(rendered.body) - len(MARK) + portal_link_length()
    assert rendered.length.segments == 2


def test_a_digest_carries_one_link_not_one_per_part():
    from notifications.links import without_link_lines

    part = f"Maya was absent.\n\nChoose how and when we contact you: {MARK}"
    assert without_link_lines(part) == "Maya was absent."
    assert without_link_lines("No link here.\n\nBye") == "No link here.\n\nBye"
