from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from notifications.models import Category, Notification, NotificationStatus
from portal.models import PortalLink, SignInChallenge
from portal.services import Contact, portal_link_for, signin_start
from tests.factories import GuardianFactory

pytestmark = pytest.mark.django_db


def test_purge_deletes_only_long_expired_records(family, capsys):
    old = timezone.now() - dt.timedelta(days=2)
    stale = SignInChallenge.objects.create(kind="email", value="x@example.org", expires_at=old)
    fresh = signin_start(contact=Contact("email", "y@example.org"))
    portal_link_for(family.guardian)
    PortalLink.objects.create(
        guardian=family.guardian, purpose="message", nonce_hash="", expires_at=old
    )
    call_command("portal_purge")
    assert "Deleted 2" in capsys.readouterr().out
    assert not SignInChallenge.objects.filter(pk=stale.pk).exists()
    assert SignInChallenge.objects.filter(pk=fresh.pk).exists()
    assert PortalLink.objects.count() == 1


def test_a_contact_shared_by_two_guardian_records_can_switch_between_them(
    client, family, django_capture_on_commit_callbacks
):
    # The same parent, known to a second district with the same e-mail address.
    twin = GuardianFactory(email="parent@example.org", first_name="Alex")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("portal:signin"), {"contact": "parent@example.org"})
    from tests.portal.helpers import last_code_to

    client.post(reverse("portal:code"), {"code": last_code_to("parent@example.org")})
    page = client.get(reverse("portal:home"))
    assert {a.pk for a in page.context["accounts"]} == {family.guardian.pk, twin.pk}
    client.post(reverse("portal:account_switch"), {"guardian": twin.pk})
    assert client.get(reverse("portal:home")).context["guardian"] == twin
    # Someone else's id is ignored.
    client.post(reverse("portal:account_switch"), {"guardian": family.other_guardian.pk})
    assert client.get(reverse("portal:home")).context["guardian"] == twin


def test_history_shows_the_last_90_days_of_this_guardian_only(signed_in, family):
    general = Category.objects.get(code="general")

    def make(guardian, key, age_days):
        n = Notification.objects.create(
            event_key=key,
            district=guardian.district,
            guardian=guardian,
            category=general,
            status=NotificationStatus.SENT,
            content={"email": {"subject": "s", "body": f"body {key}"}},
        )
        Notification.objects.filter(pk=n.pk).update(
            created_at=timezone.now() - dt.timedelta(days=age_days)
        )

    make(family.guardian, "recent", 3)
    make(family.guardian, "old", 91)
    make(family.other_guardian, "theirs", 1)
    html = signed_in.get(reverse("portal:history")).content.decode()
    assert "body recent" in html
    assert "body old" not in html and "body theirs" not in html


def test_a_deactivated_guardian_is_signed_out(signed_in, family):
    family.guardian.active = False
    family.guardian.save()
    assert signed_in.get(reverse("portal:home"))["Location"] == reverse("portal:signin")


def test_a_link_for_a_deactivated_guardian_does_not_sign_in(client, family):
    path = portal_link_for(family.guardian).removeprefix("http://testserver")
    family.guardian.active = False
    family.guardian.save()
    assert client.post(path)["Location"] == reverse("portal:signin")
