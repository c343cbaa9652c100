from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from notifications.models import Delivery
from notifications.providers.test import TestProvider
from portal.models import AuditAction, PortalAudit, SignInChallenge
from portal.services import portal_link_for
from tests.portal.helpers import last_code_to

pytestmark = pytest.mark.django_db


def _request_code(client, contact, capture):
    with capture(execute=True):
        return client.post(reverse("portal:signin"), {"contact": contact})


def test_it_sends_a_code_by_sms_and_signs_in(client, family, django_capture_on_commit_callbacks):
    response = _request_code(client, "(312) 555-0142", django_capture_on_commit_callbacks)
    assert response.status_code == 302 and response["Location"] == reverse("portal:code")
    code = last_code_to("+13125550142")
    challenge = SignInChallenge.objects.get()
    assert code not in challenge.code_hash and len(challenge.code_hash) == 64

    response = client.post(reverse("portal:code"), {"code": code})
    assert response.status_code == 302 and response["Location"] == reverse("portal:home")
    page = client.get(reverse("portal:home"))
    assert page.status_code == 200
    names = [s.display_first_name for s in page.context["children"]]
    assert sorted(names) == ["Leo", "Maya"]  # "Sam" is hidden: no contact rights
    assert PortalAudit.objects.filter(guardian=family.guardian, action=AuditAction.SIGN_IN).exists()
    # The code is single use.
    client.post(reverse("portal:signout"))
    session = client.session
    session["portal_challenge"] = {"id": str(challenge.public_id), "kind": "sms"}
    session.save()
    response = client.post(reverse("portal:code"), {"code": code})
    assert response["Location"] == reverse("portal:signin")


def test_the_answer_does_not_reveal_whether_the_contact_exists(
    client, family, django_capture_on_commit_callbacks
):
    known = _request_code(client, "parent@example.org", django_capture_on_commit_callbacks)
    other = type(client)()
    unknown = _request_code(other, "nobody@example.org", django_capture_on_commit_callbacks)
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"]
    page_known = client.get(reverse("portal:code")).content.decode()
    page_unknown = other.get(reverse("portal:code")).content.decode()
    strip = lambda html: html.split('name="csrfmiddlewaretoken"')[0]  # noqa: E731
    assert strip(page_known) == strip(page_unknown)
    assert len(TestProvider.outbox) == 1
    assert SignInChallenge.objects.count() == 2  # a row for each: the same work either way
    # Any code fails for the unknown contact.
    response = other.post(reverse("portal:code"), {"code": "123456"})
    assert response.status_code == 200 and "not right" in response.content.decode()


def test_wrong_codes_are_limited_per_challenge(
    client, family, django_capture_on_commit_callbacks, settings
):
    settings.PORTAL_CODE_MAX_ATTEMPTS = 3
    _request_code(client, "parent@example.org", django_capture_on_commit_callbacks)
    code = last_code_to("parent@example.org")
    wrong = f"{(int(code) + 1) % 1000000:06d}"
    assert client.post(reverse("portal:code"), {"code": wrong}).status_code == 200
    assert client.post(reverse("portal:code"), {"code": wrong}).status_code == 200
    response = client.post(reverse("portal:code"), {"code": wrong})
    assert response["Location"] == reverse("portal:signin")  # used up: ask for a new code
    session = client.session
    session["portal_challenge"] = {
        "id": str(SignInChallenge.objects.get().public_id),
        "kind": "email",
    }
    session.save()
    response = client.post(reverse("portal:code"), {"code": code})
    assert response["Location"] == reverse("portal:signin")  # even the right code is refused now


def test_an_expired_code_is_refused(client, family, django_capture_on_commit_callbacks):
    _request_code(client, "parent@example.org", django_capture_on_commit_callbacks)
    code = last_code_to("parent@example.org")
    SignInChallenge.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    response = client.post(reverse("portal:code"), {"code": code})
    assert response["Location"] == reverse("portal:signin")


def test_sign_in_is_throttled_per_contact_with_a_friendly_429(
    client, family, django_capture_on_commit_callbacks, settings
):
    settings.PORTAL_SIGNIN_CONTACT_RATE = "2/15m"
    for _ in range(2):
        fresh = type(client)()  # new sessions: the contact limit still counts
        assert (
            _request_code(
                fresh, "parent@example.org", django_capture_on_commit_callbacks
            ).status_code
            == 302
        )
    response = _request_code(
        type(client)(), "parent@example.org", django_capture_on_commit_callbacks
    )
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 900
    assert "try again in" in response.content.decode().lower()
    assert len(TestProvider.messages_to("parent@example.org")) == 2


def test_sign_in_is_throttled_per_session(
    client, family, django_capture_on_commit_callbacks, settings
):
    settings.PORTAL_SIGNIN_SESSION_RATE = "3/15m"
    statuses = [
        _request_code(
            client, f"someone{i}@example.org", django_capture_on_commit_callbacks
        ).status_code
        for i in range(4)
    ]
    assert statuses == [302, 302, 302, 429]


def test_the_email_carries_a_single_use_sign_in_link(
    client, family, django_capture_on_commit_callbacks
):
    _request_code(client, "PARENT@example.org", django_capture_on_commit_callbacks)
    body = TestProvider.messages_to("parent@example.org")[-1].body
    link = next(word for word in body.split() if word.startswith("http://testserver/portal/s/"))
    path = link.removeprefix("http://testserver")
    browser = type(client)()
    # A GET (a mail scanner) does not spend the link.
    assert browser.get(path).status_code == 200
    response = browser.post(path)
    assert response["Location"] == reverse("portal:home")
    again = type(client)().post(path)
    assert again["Location"] == reverse("portal:signin")


def test_portal_link_for_signs_the_guardian_in_once(client, family):
    url = portal_link_for(family.guardian)
    assert url.startswith("http://testserver/portal/l/")
    assert len(url) < 100  # it travels in text messages
    path = url.removeprefix("http://testserver")
    response = client.post(path)
    assert response["Location"] == reverse("portal:home")
    assert client.get(reverse("portal:home")).context["guardian"] == family.guardian
    assert type(client)().post(path)["Location"] == reverse("portal:signin")


def test_a_forged_or_tampered_link_is_refused(client, family):
    path = portal_link_for(family.guardian).removeprefix("http://testserver")
    row, nonce, signature = path.rstrip("/").split("/")[-1].split(".")
    for bad in (
        f"{row}.{nonce}.{'A' * len(signature)}",
        f"{int(row) + 1}.{nonce}.{signature}",
        "x",
    ):
        response = client.post(reverse("portal:message_link", args=[bad]))
        assert response["Location"] == reverse("portal:signin")


def test_sign_in_code_goes_through_notifications_and_obeys_opt_out(
    client, family, django_capture_on_commit_callbacks
):
    from notifications.services.contacts import contacts_opt_out

    contacts_opt_out(kind="sms", value="+13125550142", source="stop", keyword="STOP")
    _request_code(client, "312-555-0142", django_capture_on_commit_callbacks)
    assert TestProvider.messages_to("+13125550142") == []
    _request_code(type(client)(), "parent@example.org", django_capture_on_commit_callbacks)
    delivery = Delivery.objects.get(to="parent@example.org")
    assert delivery.notification.guardian == family.guardian


def test_sessions_are_short_and_rotated(
    client, family, django_capture_on_commit_callbacks, settings
):
    _request_code(client, "parent@example.org", django_capture_on_commit_callbacks)
    before = client.session.session_key
    client.post(reverse("portal:code"), {"code": last_code_to("parent@example.org")})
    assert client.session.session_key != before
    assert client.session.get_expiry_age() <= settings.PORTAL_SESSION_IDLE_SECONDS
    session = client.session
    session["portal_signed_in_at"] -= settings.PORTAL_SESSION_MAX_SECONDS + 1
    session.save()
    assert client.get(reverse("portal:home"))["Location"] == reverse("portal:signin")


def test_pages_need_a_session(client, family):
    for name in ("portal:home", "portal:settings", "portal:contacts", "portal:history"):
        assert client.get(reverse(name))["Location"] == reverse("portal:signin")


def test_known_and_unknown_contacts_cost_the_same_queries(client, family):
    """The timing shape: the request does the same database work either way (the lookup and
    the sending happen in the task, after the response)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def shape(contact):
        browser = type(client)()
        browser.get(reverse("portal:signin"))
        with CaptureQueriesContext(connection) as queries:
            response = browser.post(reverse("portal:signin"), {"contact": contact})
        assert response.status_code == 302
        return [
            q["sql"].split(" ")[0] + (" " + q["sql"].split('"')[1] if '"' in q["sql"] else "")
            if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))
            else "savepoint"
            for q in queries.captured_queries
        ]

    assert shape("parent@example.org") == shape("nobody@example.org")
    assert shape("(312) 555-0142") == shape("(312) 555-0199")
