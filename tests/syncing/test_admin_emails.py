"""What administrators are e-mailed about runs and conflicts: enough to act on, with a link
that opens the right admin page for them, and no student data."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from syncing.models import Conflict, RunStatus, SourceLink, SyncRun
from syncing.services import conflicts_digest_send, run_notify
from tests.factories import MembershipFactory

BASE = "https://attendance.example.org"


@pytest.fixture
def admin_user(connection, settings):
    settings.PUBLIC_BASE_URL = BASE
    membership = MembershipFactory(
        district=connection.district, user__email="admin@example.org", user__is_staff=True
    )
    return membership.user


def _link_in(body: str) -> str:
    link = next(word for word in body.split() if word.startswith(BASE))
    parts = urlsplit(link)
    return parts.path + (f"?{parts.query}" if parts.query else "")


@pytest.mark.parametrize("status", [RunStatus.HELD, RunStatus.FAILED])
def test_a_held_or_failed_run_mails_why_and_a_link_to_the_run(
    status, connection, admin_user, mailoutbox, client
):
    run = SyncRun.objects.create(
        district=connection.district,
        connection=connection,
        mode="full",
        trigger="schedule",
        status=status,
        held_reason="40 student deactivations at Maple Middle School (20.0% of 200) exceed "
        "the limit of 10%.",
        error_summary="UpstreamUnavailable: the SIS did not answer.",
    )
    assert run_notify(run=run) == 1
    (message,) = mailoutbox
    assert message.to == ["admin@example.org"]
    expected = run.held_reason if status == RunStatus.HELD else run.error_summary
    assert expected in message.body
    path = _link_in(message.body)
    assert path == f"/admin/syncing/syncrun/{run.pk}/change/"
    client.force_login(admin_user)
    page = client.get(path)
    assert page.status_code == 200 and f"sync #{run.pk}" in page.content.decode()


def test_the_conflict_digest_links_to_the_open_conflicts(
    connection, admin_user, mailoutbox, client
):
    link = SourceLink.objects.create(
        district=connection.district,
        connection=connection,
        entity="student",
        source_id="s-1",
        object_id=1,
        content_hash="x",
    )
    for field in ("legal_first_name", "grade_level"):
        Conflict.objects.create(
            district=connection.district, link=link, entity="student", field=field,
            sis_value="Zelda", local_value="Yolanda", policy="review",
        )  # fmt: skip
    assert conflicts_digest_send() == 1
    (message,) = mailoutbox
    assert message.subject == "2 sync conflicts wait for review"
    assert "Zelda" not in message.body and "Yolanda" not in message.body  # counts only
    client.force_login(admin_user)
    page = client.get(_link_in(message.body))
    assert page.status_code == 200
    assert "2 conflicts" in page.content.decode()
