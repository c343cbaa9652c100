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


def test_a_guardian_stops_messages_to_an_address_and_turns_them_back_on(signed_in, family):
    """Consent revoked in the portal: the address gets nothing more (audited twice: as
    consent, and as the guardian's portal action), and the guardian can undo it."""
    from notifications.models import ConsentEvent, ConsentEventKind

    point = ContactPoint.objects.get(guardian=family.guardian, kind="email")
    page = signed_in.get(reverse("portal:contacts")).content.decode()
    assert "emergencies included" in page
    response = signed_in.post(reverse("portal:contact_stop", args=[point.pk]), follow=True)
    html = response.content.decode()
    assert "We will send nothing more there." in html
    assert "You asked us to stop messages here." in html
    point.refresh_from_db()
    assert point.opted_out and point.opt_out_source == "portal" and not point.usable
    event = ConsentEvent.objects.get(contact_point=point, kind=ConsentEventKind.OPT_OUT)
    assert (event.source, event.detail) == ("portal", "asked in the parent portal")

    response = signed_in.post(reverse("portal:contact_resume", args=[point.pk]), follow=True)
    assert "Messages will go there again." in response.content.decode()
    point.refresh_from_db()
    assert not point.opted_out and point.usable
    actions = list(PortalAudit.objects.filter(contact_point=point).values_list("action", flat=True))
    assert sorted(actions) == sorted([AuditAction.CONTACT_STOP, AuditAction.CONTACT_RESUME])


def test_a_stop_reply_cannot_be_undone_in_the_portal(signed_in, family):
    point = ContactPoint.objects.get(guardian=family.guardian, kind="sms")
    contacts_opt_out(kind="sms", value=point.value, source="stop", keyword="STOP")
    page = signed_in.get(reverse("portal:contacts")).content.decode()
    assert "Send messages here again" not in page
    signed_in.post(reverse("portal:contact_resume", args=[point.pk]))
    point.refresh_from_db()
    assert point.opted_out and point.opt_out_source == "stop"
    # Nor through the service, whoever calls it from the portal.
    from core.errors import ApplicationError
    from portal.services import portal_contact_resume

    with pytest.raises(ApplicationError, match="replied STOP"):
        portal_contact_resume(guardian=family.guardian, contact_point=point, via="test")
    point.refresh_from_db()
    assert point.opted_out


def test_an_opt_out_the_office_recorded_says_so_and_the_guardian_may_undo_it(signed_in, family):
    point = ContactPoint.objects.get(guardian=family.guardian, kind="sms")
    contacts_opt_out(
        kind="sms", value=point.value, source="admin", district_id=point.guardian.district_id
    )
    html = signed_in.get(reverse("portal:contacts")).content.decode()
    assert "You asked us to stop messages here." in html and "You replied STOP" not in html
    signed_in.post(reverse("portal:contact_resume", args=[point.pk]))
    point.refresh_from_db()
    assert not point.opted_out


def test_another_guardians_contact_point_cannot_be_stopped(signed_in, family):
    other = ContactPoint.objects.filter(guardian=family.other_guardian).first()
    assert signed_in.post(reverse("portal:contact_stop", args=[other.pk])).status_code == 404
    assert signed_in.post(reverse("portal:contact_resume", args=[other.pk])).status_code == 404
    other.refresh_from_db()
    assert not other.opted_out
