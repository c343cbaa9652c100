"""The district administrator's held-run review in a real browser: from the link in the e-mail
(and from the home page's Needs attention) to a decision, with the admin's real login form,
CSRF token and content security policy. Screenshots go to test-artifacts/admin/."""

from __future__ import annotations

import pytest
from django.urls import reverse

from attendance.models import Student
from syncing.engine.run import run_execute
from syncing.models import Approval, RunStatus, SourceLink
from syncing.services import sync_start
from tests.e2e.conftest import ARTIFACTS
from tests.factories import DistrictFactory, UserFactory
from tests.syncing.sandbox import Filtered, connection_for, sandbox_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SHOTS = ARTIFACTS / "admin"


def _sync(connection, source=None):
    run, created = sync_start(connection=connection, enqueue=False)
    assert created
    return run_execute(run.pk, source=source)


def test_an_administrator_approves_a_held_run_but_its_deactivations_from_its_page(
    chromium, e2e_settings, live_server
):
    SHOTS.mkdir(parents=True, exist_ok=True)
    UserFactory(username="dana", is_superuser=True, password="admin-pass")
    with sandbox_for(students=60) as sandbox:
        connection = connection_for(sandbox, DistrictFactory(timezone="America/Chicago"))
        _sync(connection)
        school = SourceLink.objects.filter(entity="school").order_by("source_id").first()
        dropped = set(
            SourceLink.objects.filter(entity="student", school_id=school.object_id)
            .order_by("source_id")
            .values_list("source_id", flat=True)[:8]
        )
        held = _sync(
            connection,
            Filtered(
                connection,
                lambda r: getattr(r, "student_id", None) in dropped or r.source_id in dropped,
            ),
        )
        assert held.status == RunStatus.HELD

        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        run_url = live_server.url + reverse("admin:syncing_syncrun_change", args=[held.pk])
        page.goto(run_url)  # the held-run e-mail's link: to the login form first
        page.fill("#id_username", "dana")
        page.fill("#id_password", "admin-pass")
        page.click("input[type=submit]")
        page.wait_for_url(run_url)
        assert "Held because:" in page.content()

        # The home page says so too, and its line leads to the run.
        page.goto(live_server.url + reverse("admin:index"))
        panel = page.locator("#needs-attention")
        page.screenshot(path=str(SHOTS / "home-needs-attention.png"), full_page=True)
        panel.get_by_role("link", name="1 sync run held for review").click()
        page.get_by_role("link", name=str(held.pk), exact=True).click()
        # The run's page, keeping the list's filter for the way back (?_changelist_filters=…).
        page.wait_for_url(lambda url: url.startswith(run_url))
        page.screenshot(path=str(SHOTS / "held-run.png"), full_page=True)

        # The decision runs the apply task (eager here) against the sandbox, then the page
        # comes back with the outcome.
        decide = page.get_by_role("button", name="Approve all but deactivations", exact=True)
        assert decide.count() == 2  # above the review and below it
        decide.last.click()
        page.wait_for_url(lambda url: url.startswith(run_url))
        page.screenshot(path=str(SHOTS / "held-run-approved.png"), full_page=True)
        assert "Approve all but deactivations: 1." in page.locator("ul.messagelist").inner_text()
        assert page.get_by_role("button", name="Approve all", exact=True).count() == 0
        page.goto(live_server.url + reverse("admin:index"))
        # (Other lines may stand: the suite's gateway state in Redis outlives its tests.)
        assert "held for review" not in panel.inner_text()
        context.close()

    held.refresh_from_db()
    assert held.approval == Approval.EXCEPT_DEACTIVATIONS
    assert held.status in (RunStatus.COMPLETED, RunStatus.COMPLETED_WITH_QUARANTINE)
    kept = SourceLink.objects.filter(entity="student", source_id__in=dropped)
    assert Student.objects.filter(pk__in=kept.values("object_id"), active=True).count() == len(
        dropped
    )
