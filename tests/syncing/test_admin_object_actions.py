"""Decisions as buttons on an object's own admin page (the page the held-run e-mail links to),
and admin actions that act only where the user administers."""

from __future__ import annotations

import dataclasses
import re

import pytest
from django.urls import reverse

from attendance.models import MembershipRole, Student
from attendance.services import student_update
from syncing.engine.run import run_execute
from syncing.models import Approval, Conflict, RunStatus, SyncRun
from tests.factories import DistrictFactory, MembershipFactory, UserFactory
from tests.syncing.helpers import held_by_dropped_students, sync

DECISIONS = ("Approve all", "Approve all but deactivations", "Reject (apply nothing)")


def _do(run: SyncRun, action: str) -> str:
    return reverse("admin:syncing_syncrun_do", args=[run.pk, action])


@pytest.fixture
def held(connection, source):
    run = held_by_dropped_students(connection, source)
    assert run.status == RunStatus.HELD
    return run


def test_a_held_runs_page_decides_it_with_a_button(client, held, source):
    client.force_login(UserFactory(username="root", is_superuser=True))
    page = client.get(reverse("admin:syncing_syncrun_change", args=[held.pk])).text
    for label in (*DECISIONS, "Cancel the run"):
        assert f">{label}</button>" in page
    assert f'formaction="{_do(held, "approve_except_deactivations")}"' in page

    assert client.get(_do(held, "approve_except_deactivations")).status_code == 405
    answer = client.post(_do(held, "approve_except_deactivations"), follow=True)
    assert answer.redirect_chain[-1][0] == reverse("admin:syncing_syncrun_change", args=[held.pk])
    assert "Approve all but deactivations: 1." in answer.text
    held.refresh_from_db()
    assert held.approval == Approval.EXCEPT_DEACTIVATIONS

    assert run_execute(held.pk, source=source).status == RunStatus.COMPLETED
    assert Student.objects.filter(active=True).count() == 60  # the 20 dropped kept
    page = client.get(reverse("admin:syncing_syncrun_change", args=[held.pk])).text
    assert not any(f">{label}</button>" in page for label in DECISIONS)

    # A page left open from before: its button no longer applies, and says so.
    stale = client.post(_do(held, "approve_all"), follow=True)
    assert "That can no longer be done" in stale.text
    held.refresh_from_db()
    assert held.approval == Approval.EXCEPT_DEACTIVATIONS


def test_a_user_who_may_only_look_at_the_run_gets_no_buttons_and_no_decision(
    client, held, district
):
    # Administrator of another district, read-only in the run's: sees the run, decides nothing.
    user = UserFactory()
    MembershipFactory(user=user, district=DistrictFactory(), role=MembershipRole.DISTRICT_ADMIN)
    MembershipFactory(user=user, district=district, role=MembershipRole.READ_ONLY)
    client.force_login(user)
    page = client.get(reverse("admin:syncing_syncrun_change", args=[held.pk]))
    assert page.status_code == 200
    assert not any(f">{label}</button>" in page.text for label in DECISIONS)

    refused = client.post(_do(held, "approve_all"), follow=True)
    assert "That can no longer be done" in refused.text
    # The list's menu offers the action (they administer somewhere), but not on this run.
    listed = client.post(
        reverse("admin:syncing_syncrun_changelist"),
        {"action": "approve_all", "_selected_action": [held.pk]},
        follow=True,
    )
    assert "1 selected item(s) you may only view were left out." in listed.text
    held.refresh_from_db()
    assert (held.status, held.approval) == (RunStatus.HELD, "")


def test_a_read_only_member_is_offered_no_actions(client, held, district):
    user = UserFactory()
    MembershipFactory(user=user, district=district, role=MembershipRole.READ_ONLY)
    client.force_login(user)
    listing = client.get(reverse("admin:syncing_syncrun_changelist")).text
    assert 'name="action"' not in listing
    client.post(
        reverse("admin:syncing_syncrun_changelist"),
        {"action": "reject", "_selected_action": [held.pk]},
    )
    held.refresh_from_db()
    assert held.status == RunStatus.HELD


def test_a_conflict_is_resolved_from_its_page_and_a_sync_started_from_the_connections(
    client, connection, source
):
    sync(connection, source)
    student_update(student=Student.objects.get(local_id="S00002"), legal_first_name="Local")
    source.get("student", "stu-2").first_name = "Sis"
    sync(connection, source)
    conflict = Conflict.objects.get(status="open")
    root = UserFactory(username="root", is_superuser=True)
    client.force_login(root)
    page = client.get(reverse("admin:syncing_conflict_change", args=[conflict.pk])).text
    assert ">Keep the SIS value</button>" in page and ">Keep the local value</button>" in page
    client.post(reverse("admin:syncing_conflict_do", args=[conflict.pk, "resolve_sis"]))
    conflict.refresh_from_db()
    assert (conflict.status, conflict.resolved_by) == ("resolved_sis", root)
    assert Student.objects.get(local_id="S00002").legal_first_name == "Sis"

    answer = client.post(
        reverse("admin:syncing_syncconnection_do", args=[connection.pk, "sync_dry_run"]),
        follow=True,
    )
    run = SyncRun.objects.filter(connection=connection).latest("id")
    assert run.dry_run and run.status == RunStatus.PENDING
    run_page = reverse("admin:syncing_syncrun_change", args=[run.pk])
    assert f'<a href="{run_page}">sync run #{run.pk}</a> queued.' in answer.text


def test_a_runs_page_lists_its_own_first_changes(client, connection, source):
    sync(connection, source)  # the first run stages every record: more than 50 creates
    newcomer = dataclasses.replace(
        source.get("student", "stu-2"), source_id="stu-new", local_id="S09999", first_name="New"
    )
    source.put(newcomer)
    second = sync(connection, source)
    assert second.counts["student"]["create"] == 1
    client.force_login(UserFactory(username="root", is_superuser=True))
    page = client.get(reverse("admin:syncing_syncrun_change", args=[second.pk])).text
    # The second run's own change, not an empty list because the first run's came first.
    assert "create student stu-new" in page


def _labels(page: str) -> set[str]:
    return set(re.findall(r"<label>([^<]+):</label>", page))


def test_a_runs_page_shows_only_what_applies_to_it(client, connection, source):
    client.force_login(UserFactory(username="root", is_superuser=True))
    done = sync(connection, source)
    page = client.get(reverse("admin:syncing_syncrun_change", args=[done.pk])).text
    labels = _labels(page)
    assert "Counts per entity and action" in labels
    review = {"Held reason", "Staged totals and samples", "Approval", "Approved by"}
    assert not labels & (review | {"Phase", "Error summary"})  # never held, over, no error
    assert '<strong style="color:#2e7d32">Completed</strong>' in page
    students = done.counts["student"]["create"]
    assert f'<td style="text-align:right">{students:,}</td>' in page

    dry = sync(connection, source, dry_run=True)
    assert "Staged totals and samples" in _labels(
        client.get(reverse("admin:syncing_syncrun_change", args=[dry.pk])).text
    )
    for n in range(20):
        source.drop("student", f"stu-{n}")
    held = sync(connection, source)
    assert held.status == RunStatus.HELD
    labels = _labels(client.get(reverse("admin:syncing_syncrun_change", args=[held.pk])).text)
    assert {"Staged totals and samples", "Approval"} <= labels and "Phase" not in labels
