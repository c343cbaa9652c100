"""Safety holds and quarantine against the sandbox over HTTP."""

from __future__ import annotations

import datetime as dt

from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from attendance.models import School, Student
from syncing.engine.run import run_execute
from syncing.models import (
    Approval,
    QuarantinedRecord,
    RunStatus,
    SafetyBlackout,
    SourceLink,
    SyncChange,
)
from syncing.services import quarantine_redrive, run_approve, sync_start
from tests.factories import UserFactory
from tests.syncing.sandbox import Filtered, connection_for, sandbox_for


def _sync(connection, source=None, mode="full"):
    run, created = sync_start(connection=connection, mode=mode, enqueue=False)
    assert created
    return run_execute(run.pk, source=source)


def _active_students():
    return Student.objects.filter(active=True).count()


def test_a_30_percent_drop_at_one_school_is_held_and_partial_approval_spares_students(
    district, client
):
    with sandbox_for(students=150) as sandbox:
        connection = connection_for(sandbox, district)
        _sync(connection)
        school = SourceLink.objects.filter(entity="school").order_by("source_id").first()
        at_school = list(
            SourceLink.objects.filter(entity="student", school_id=school.object_id)
            .order_by("source_id")
            .values_list("source_id", flat=True)
        )
        dropped = set(at_school[: int(len(at_school) * 0.3)])
        # Meanwhile a real change arrives: it must still be applied on partial approval.
        changes = sandbox.control("advance", {"days": 1})["changes"]
        edit = next(c for c in changes if c["kind"] == "edit")
        source = Filtered(
            connection,
            lambda r: getattr(r, "student_id", None) in dropped or r.source_id in dropped,
        )
        active_before = _active_students()
        run = _sync(connection, source)
        assert run.status == RunStatus.HELD
        assert "student deactivations" in run.held_reason
        # Named as the admins know it, in the admin and the e-mail alike.
        assert f"at {School.objects.get(pk=school.object_id).name} (" in run.held_reason
        assert run.held_details["totals"]["student"]["deactivate"] >= len(dropped)
        assert run.held_details["samples"]["student"]["deactivate"]
        assert _active_students() == active_before  # nothing applied
        assert not SyncChange.objects.filter(run=run, state="applied").exists()
        # The reviewing admin reads why, the staged totals and samples as tables.
        client.force_login(UserFactory(username="reviewer", is_superuser=True))
        page = client.get(reverse("admin:syncing_syncrun_change", args=[run.pk])).content.decode()
        assert "Held because:" in page
        assert escape(run.held_details["breaches"][0]["text"]) in page
        assert "<th>deactivate</th>" in page
        deactivated = run.held_details["samples"]["student"]["deactivate"]
        assert f"<strong>student deactivate</strong>: {len(deactivated)} of " in page
        assert f"<td>{deactivated[0]['source_id']}</td>" in page
        updated = run.held_details["samples"]["student"]["update"][0]
        field, (old, new) = next(iter(updated["diff"].items()))
        assert escape(f"{field}: {old!r} → {new!r}") in page
        # A second trigger while held is a no-op.
        again, created = sync_start(connection=connection, enqueue=False)
        assert (again.pk, created) == (run.pk, False)

        run_approve(
            run=run, user=UserFactory(), approval=Approval.EXCEPT_DEACTIVATIONS, enqueue=False
        )
        run = run_execute(run.pk, source=source)
    assert run.status in (RunStatus.COMPLETED, RunStatus.COMPLETED_WITH_QUARANTINE)
    # The run's counts say what was applied: none of the rejected deactivations.
    assert run.counts["student"].get("deactivate", 0) == 0
    assert run.counts["student"]["update"] >= 1
    edited = Student.objects.get(local_id=str(int(edit["id"]) + 100000))
    assert edited.legal_last_name == edit["detail"]["new"]
    still = SourceLink.objects.filter(entity="student", source_id__in=dropped)
    assert Student.objects.filter(pk__in=still.values("object_id"), active=True).count() == len(
        dropped
    )


def test_an_empty_roster_is_held_and_rejecting_changes_nothing(district):
    with sandbox_for(students=60) as sandbox:
        connection = connection_for(sandbox, district)
        _sync(connection)
        empty = Filtered(connection, lambda r: r.entity == "student")
        run = _sync(connection, empty)
        assert run.status == RunStatus.HELD
        assert "returned no student records" in run.held_reason
        run_approve(run=run, user=UserFactory(), approval=Approval.REJECT, enqueue=False)
        run.refresh_from_db()
        assert run.status == RunStatus.CANCELLED
    assert _active_students() == 60


def test_a_blackout_holds_deactivations(district):
    with sandbox_for(students=60) as sandbox:
        connection = connection_for(sandbox, district)
        _sync(connection)
        today = timezone.localdate()
        SafetyBlackout.objects.create(
            district=district, start_date=today - dt.timedelta(days=3),
            end_date=today + dt.timedelta(days=3), reason="Summer rollover",
        )  # fmt: skip
        one = SourceLink.objects.filter(entity="student").first().source_id
        run = _sync(connection, Filtered(connection, lambda r: r.source_id == one))
    assert run.status == RunStatus.HELD
    assert "blackout" in run.held_reason


def test_malformed_records_are_quarantined_and_redriven_after_the_sis_fixes_them(district):
    with sandbox_for(students=60, page_cap=20) as sandbox:
        connection = connection_for(sandbox, district)
        sandbox.inject("malformed", path="/ws/v1/district/student", times=1, skip=1)
        run = _sync(connection)
        assert run.status == RunStatus.COMPLETED_WITH_QUARANTINE
        assert run.quarantined_count >= 1
        bad = QuarantinedRecord.objects.filter(entity="student", status="open")
        assert bad.count() == 1
        record = bad.get()
        assert record.payload  # the raw payload is kept
        assert record.reason_code == "malformed"
        assert Student.objects.count() == 59
        # The fault is gone: a re-drive fetches the record fresh and applies it.
        redrive, started = quarantine_redrive(records=[record])
        assert started
        redrive = run_execute(redrive.pk)
    assert redrive.status == RunStatus.COMPLETED, redrive.error_summary
    assert Student.objects.count() == 60
    record.refresh_from_db()
    assert record.status == "resolved"


def test_past_the_error_budget_a_run_fails_without_applying(district, settings):
    settings.SYNC_ERROR_BUDGET_MIN = 0
    settings.SYNC_ERROR_BUDGET_PERCENT = 0
    with sandbox_for(students=30) as sandbox:
        connection = connection_for(sandbox, district)
        sandbox.inject("malformed", path="/ws/v1/district/student", times=1, skip=1)
        run = _sync(connection)
    assert run.status == RunStatus.FAILED
    assert "error budget" in run.error_summary
    assert Student.objects.count() == 0
