"""The contact point admin changes consent only through the services: a typed number is
normalised and inherits an opt-out, a parent's request by phone is an audited opt-out of the
number across the district, a STOP reply is not the school's to undo, and the consent flags
cannot be ticked by hand. The message records are read-only, and large relations are not
drop-downs."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from attendance.models import MembershipRole
from notifications.models import (
    ConsentEvent,
    ConsentEventKind,
    ContactPoint,
    ContactSource,
    OptOutSource,
)
from notifications.services.contacts import contacts_opt_out
from tests.factories import DistrictFactory, GuardianFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user(client, family):
    user = UserFactory(username="office-clerk")
    MembershipFactory(user=user, district=family["district"], role=MembershipRole.DISTRICT_ADMIN)
    client.force_login(user)
    return user


def _sms(guardian) -> ContactPoint:
    return ContactPoint.objects.get(guardian=guardian, kind="sms")


def _add(client, **data):
    return client.post(reverse("admin:notifications_contactpoint_add"), data)


def _do(client, point: ContactPoint, action: str):
    return client.post(
        reverse("admin:notifications_contactpoint_do", args=[point.pk, action]), follow=True
    )


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_a_typed_number_is_normalised_and_added_unverified_by_the_administrator(
    client, admin_user, family
):
    mother = family["mother"]
    response = _add(client, guardian=mother.pk, kind="sms", address="(312) 555-0777", label="work")
    assert response.status_code == 302
    point = ContactPoint.objects.get(guardian=mother, value="+13125550777")
    assert (point.raw_value, point.label, point.source) == ("(312) 555-0777", "work", "admin")
    assert not point.verified and not point.usable


def test_a_point_confirmed_with_the_guardian_is_verified_and_audited(client, admin_user, family):
    response = _add(
        client,
        guardian=family["mother"].pk,
        kind="email",
        address=" Mum@Example.ORG ",
        verified="on",
    )
    assert response.status_code == 302
    point = ContactPoint.objects.get(guardian=family["mother"], value="mum@example.org")
    assert point.verified and point.usable
    event = ConsentEvent.objects.get(contact_point=point)
    assert (event.kind, event.source) == (ConsentEventKind.VERIFIED, "admin")
    assert "office-clerk" in event.detail


@pytest.mark.parametrize(
    ("kind", "address", "error"),
    [
        ("sms", "555-01", "That is not a valid phone number."),
        ("email", "not an address", "That is not a valid e-mail address."),
        ("sms", "(312) 555-0100", "This guardian already has this phone number."),
    ],
)
def test_a_bad_or_repeated_value_is_refused_and_nothing_is_saved(
    client, admin_user, family, kind, address, error
):
    mother = family["mother"]
    if "already" in error:
        mother.mobile_phone_raw, mother.mobile_phone = address, "+13125550100"
        mother.save()  # its SIS contact point follows (notifications.receivers)
    before = ContactPoint.objects.count()
    response = _add(client, guardian=mother.pk, kind=kind, address=address)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert ContactPoint.objects.count() == before


def test_a_number_that_replied_stop_is_added_opted_out(client, admin_user, family):
    contacts_opt_out(kind="sms", value=_sms(family["father"]).value, source=OptOutSource.STOP)
    response = _add(
        client,
        guardian=family["mother"].pk,
        kind="sms",
        address=_sms(family["father"]).raw_value,
        verified="on",
    )
    assert response.status_code == 302
    point = ContactPoint.objects.get(guardian=family["mother"], value=_sms(family["father"]).value)
    assert point.opted_out and point.opt_out_source == OptOutSource.STOP
    assert not point.usable


def test_consent_and_the_value_cannot_be_changed_by_hand(client, admin_user, family):
    point = _sms(family["mother"])
    response = client.post(
        reverse("admin:notifications_contactpoint_change", args=[point.pk]),
        {
            "label": "cell",
            # The roster decides whether its own points are active.
            "active": "",
            # Read-only on the page: a forged post of them changes nothing.
            "value": "+13125559999",
            "opted_out": "on",
            "opt_out_source": "admin",
            "verified": "",
            "source": "portal",
            # The consent history inline's (read-only) formset.
            "consent_events-TOTAL_FORMS": "0",
            "consent_events-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    point.refresh_from_db()
    assert point.label == "cell"
    assert (point.value, point.opted_out, point.verified, point.source, point.active) == (
        family["mother"].mobile_phone,
        False,
        True,
        ContactSource.SIS,
        True,
    )


def test_a_parents_request_opts_the_number_out_across_the_district_only(client, admin_user, family):
    point = _sms(family["mother"])
    # The same phone on a second guardian record of the district, and in another district.
    brother = GuardianFactory(
        district=family["district"],
        mobile_phone=point.value,
        mobile_phone_raw=point.raw_value,
    )
    elsewhere = GuardianFactory(
        district=DistrictFactory(), mobile_phone=point.value, mobile_phone_raw=point.raw_value
    )
    response = _do(client, point, "opt_out")
    assert "1 contact point(s) opted out" not in _messages(response)
    assert any("2 contact point(s) opted out" in m for m in _messages(response))
    for guardian, opted_out in ((family["mother"], True), (brother, True), (elsewhere, False)):
        sms = _sms(guardian)
        assert sms.opted_out is opted_out
        assert sms.opt_out_source == ("admin" if opted_out else "")
    events = ConsentEvent.objects.filter(kind=ConsentEventKind.OPT_OUT)
    assert events.count() == 2
    assert all(e.source == "admin" and "office-clerk" in e.detail for e in events)
    # The point's page shows its consent history, and now offers the way back.
    text = response.content.decode()
    assert "Consent history" in text and "recorded by administrator office-clerk" in text
    assert "Opt back in" in text


def test_the_administrators_opt_out_is_undone_by_the_administrator(client, admin_user, family):
    point = _sms(family["mother"])
    _do(client, point, "opt_out")
    response = _do(client, point, "opt_in")
    assert any("opted back in" in m for m in _messages(response))
    point.refresh_from_db()
    assert not point.opted_out and point.usable
    assert ConsentEvent.objects.filter(contact_point=point, kind=ConsentEventKind.OPT_IN).exists()


def test_a_stop_reply_is_not_undone_by_the_administrator(client, admin_user, family):
    point = _sms(family["mother"])
    contacts_opt_out(kind="sms", value=point.value, source=OptOutSource.STOP, keyword="STOP")
    response = _do(client, point, "opt_in")
    assert any("texting START" in m for m in _messages(response))
    point.refresh_from_db()
    assert point.opted_out and point.opt_out_source == OptOutSource.STOP
    assert not ConsentEvent.objects.filter(kind=ConsentEventKind.OPT_IN).exists()


def test_confirming_and_clearing_a_failure_are_audited_actions(client, admin_user, family):
    point = _sms(family["mother"])
    ContactPoint.objects.filter(pk=point.pk).update(
        verified=False, undeliverable=True, last_failure_code="21614"
    )
    _do(client, point, "verify")
    _do(client, point, "mark_deliverable")
    point.refresh_from_db()
    assert point.verified and not point.undeliverable and point.usable
    assert point.last_failure_code == "21614"  # kept on record
    assert ConsentEvent.objects.get(contact_point=point).kind == ConsentEventKind.VERIFIED


def test_a_read_only_member_gets_no_consent_buttons(client, family):
    user = UserFactory()
    MembershipFactory(user=user, district=family["district"], role=MembershipRole.READ_ONLY)
    client.force_login(user)
    point = _sms(family["mother"])
    page = client.get(reverse("admin:notifications_contactpoint_change", args=[point.pk]))
    assert page.status_code == 200 and "Opt out (the guardian asked)" not in page.content.decode()
    _do(client, point, "opt_out")
    point.refresh_from_db()
    assert not point.opted_out


@pytest.mark.parametrize("model", ["notification", "delivery", "consentevent"])
def test_message_records_and_the_consent_audit_cannot_be_added_by_hand(client, admin_user, model):
    assert client.get(reverse(f"admin:notifications_{model}_add")).status_code == 403


def test_a_preference_names_its_guardian_and_student_by_id_not_from_a_list(
    client, admin_user, family
):
    page = client.get(reverse("admin:notifications_preference_add"))
    text = page.content.decode()
    assert page.status_code == 200
    assert family["mother"].last_name not in text
    assert family["student"].legal_last_name not in text
    assert 'class="vForeignKeyRawIdAdminField"' in text


def test_a_point_the_office_added_can_be_retired_on_its_page(client, admin_user, family):
    _add(client, guardian=family["mother"].pk, kind="sms", address="(312) 555-0777")
    point = ContactPoint.objects.get(value="+13125550777")
    response = client.post(
        reverse("admin:notifications_contactpoint_change", args=[point.pk]),
        {
            "label": "old work phone",
            "active": "",
            "consent_events-TOTAL_FORMS": "0",
            "consent_events-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    point.refresh_from_db()
    assert (point.label, point.active) == ("old work phone", False)
