from __future__ import annotations

import pytest
from django.urls import reverse

from notifications.models import ContactPoint
from notifications.providers.test import TestProvider
from notifications.services.contacts import contacts_opt_out
from portal.models import AuditAction, ContactVerification, PortalAudit
from tests.portal.helpers import last_code_to

pytestmark = pytest.mark.django_db


def test_adding_an_email_sends_a_code_and_verifying_makes_it_usable(signed_in, family):
    response = signed_in.post(reverse("portal:contacts"), {"contact": "Alex.Work@Example.org"})
    point = ContactPoint.objects.get(guardian=family.guardian, value="alex.work@example.org")
    assert response["Location"] == reverse("portal:contact_verify", args=[point.pk])
    assert not point.verified and point.source == "portal"
    code = last_code_to("alex.work@example.org")
    assert code not in ContactVerification.objects.get().code_hash

    wrong = f"{(int(code) + 1) % 1000000:06d}"
    page = signed_in.post(reverse("portal:contact_verify", args=[point.pk]), {"code": wrong})
    assert "not right" in page.content.decode()
    point.refresh_from_db()
    assert not point.verified

    response = signed_in.post(reverse("portal:contact_verify", args=[point.pk]), {"code": code})
    assert response["Location"] == reverse("portal:contacts")
    point.refresh_from_db()
    assert point.verified and point.usable
    actions = set(PortalAudit.objects.values_list("action", flat=True))
    assert {AuditAction.CONTACT_ADD, AuditAction.CONTACT_VERIFY} <= actions


def test_a_new_code_replaces_the_old_one(signed_in, family):
    signed_in.post(reverse("portal:contacts"), {"contact": "(312) 555-0177"})
    point = ContactPoint.objects.get(value="+13125550177")
    first = last_code_to("+13125550177")
    signed_in.post(reverse("portal:contact_resend", args=[point.pk]))
    second = last_code_to("+13125550177")
    assert len(TestProvider.messages_to("+13125550177")) == 2
    if first != second:
        page = signed_in.post(reverse("portal:contact_verify", args=[point.pk]), {"code": first})
        assert page.status_code == 200
    response = signed_in.post(reverse("portal:contact_verify", args=[point.pk]), {"code": second})
    assert response["Location"] == reverse("portal:contacts")


def test_invalid_contacts_get_a_clear_error(signed_in):
    page = signed_in.post(reverse("portal:contacts"), {"contact": "not a phone"})
    assert page.status_code == 200
    assert "Enter a mobile phone number" in page.content.decode()


def test_an_opted_out_number_shows_how_to_opt_back_in(signed_in, family, settings):
    settings.PORTAL_SMS_SENDER_DISPLAY = "(312) 555-0100"
    contacts_opt_out(kind="sms", value="+13125550142", source="stop", keyword="STOP")
    html = signed_in.get(reverse("portal:contacts")).content.decode()
    assert "Stopped" in html and "START" in html and "(312) 555-0100" in html
    assert "cannot undo a STOP" in html


def test_another_guardians_contact_point_is_not_reachable(signed_in, family):
    other = ContactPoint.objects.filter(guardian=family.other_guardian).first()
    assert signed_in.get(reverse("portal:contact_verify", args=[other.pk])).status_code == 404
    assert signed_in.post(reverse("portal:contact_resend", args=[other.pk])).status_code == 404
