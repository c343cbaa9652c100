from __future__ import annotations

import pytest
from django.urls import reverse

from portal.models import AuditAction, PortalAudit
from portal.services import audit_record
from tests.factories import GuardianFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_audit_admin_is_read_only_and_scoped_to_the_district(client, family):
    mine = audit_record(
        guardian=family.guardian,
        action=AuditAction.PREFERENCE,
        via="code:sms",
        student=family.first,
        category="attendance",
        changes={"channels": [None, ["email"]]},
    )
    elsewhere = audit_record(guardian=GuardianFactory(), action=AuditAction.SIGN_IN, via="code:sms")
    user = UserFactory()
    MembershipFactory(user=user, district=family.guardian.district)
    client.force_login(user)
    page = client.get(reverse("admin:portal_portalaudit_changelist"))
    assert page.status_code == 200
    shown = {row.pk for row in page.context["cl"].result_list}
    assert mine.pk in shown and elsewhere.pk not in shown
    assert client.get(
        reverse("admin:portal_portalaudit_change", args=[elsewhere.pk])
    ).status_code in (302, 404)
    detail = client.get(reverse("admin:portal_portalaudit_change", args=[mine.pk]))
    assert detail.status_code == 200 and b"email" in detail.content
    assert (
        client.post(
            reverse("admin:portal_portalaudit_delete", args=[mine.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert PortalAudit.objects.filter(pk=mine.pk).exists()
