from __future__ import annotations

import pytest
from django.urls import reverse

from notifications.providers.test import TestProvider
from notifications.services.events import attendance_change_handle
from tests.factories import AttendanceRecordFactory

pytestmark = pytest.mark.django_db


def test_history_lists_messages_with_their_delivery_status(signed_in, family):
    from django.utils import timezone

    now = timezone.now()
    record = AttendanceRecordFactory(
        student=family.first, school=family.first.school, date=timezone.localdate(now)
    )
    notifications = attendance_change_handle(record_id=record.pk, now=now)
    from notifications.services.planning import notification_dispatch
    from notifications.services.sending import delivery_send

    for n in notifications:
        for delivery_id in notification_dispatch(notification_id=n.pk):
            delivery_send(delivery_id=delivery_id)
    assert TestProvider.messages_to("+13125550142")
    page = signed_in.get(reverse("portal:history"))
    html = page.content.decode()
    assert page.status_code == 200
    assert "Maya" in html and "Sent" in html
    mine = page.context["notifications"]
    assert mine and all(n.guardian_id == family.guardian.pk for n in mine)


def test_portal_pages_have_a_strict_csp_without_inline_styles(signed_in):
    for name in ("portal:home", "portal:settings", "portal:contacts", "portal:history"):
        response = signed_in.get(reverse(name))
        policy = response["Content-Security-Policy"]
        assert "unsafe-inline" not in policy
        assert "style-src 'self'" in policy and "script-src 'self'" in policy
        assert 'style="' not in response.content.decode()
        assert response["Cache-Control"] == "no-store"


def test_forms_are_csrf_protected(family):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    assert (
        client.post(reverse("portal:signin"), {"contact": "parent@example.org"}).status_code == 403
    )


def test_the_language_switch_translates_the_portal(client, family):
    page = client.get(reverse("portal:signin"))
    assert "Send me a code" in page.content.decode()
    response = client.post(reverse("portal:language"), {"language": "es", "next": "/portal/"})
    assert response["Location"] == "/portal/"
    page = client.get(reverse("portal:signin"))
    html = page.content.decode()
    assert 'lang="es"' in html and "Enviarme un código" in html


def test_the_language_switch_refuses_outside_redirects(client):
    response = client.post(
        reverse("portal:language"), {"language": "es", "next": "https://evil.example.org/"}
    )
    assert response["Location"] == "/portal/"


def test_every_label_and_description_points_at_an_element(signed_in, family):
    import re

    for url in (
        reverse("portal:settings"),
        reverse("portal:contacts"),
        reverse("portal:child", args=[family.first.pk]),
    ):
        html = signed_in.get(url).content.decode()
        for target in re.findall(r'<label for="([^"]+)"', html):
            assert f'id="{target}"' in html, (url, target)
        for refs in re.findall(r'aria-describedby="([^"]+)"', html):
            for target in refs.split():
                assert f'id="{target}"' in html, (url, target)
