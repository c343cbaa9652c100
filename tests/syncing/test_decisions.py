"""Admin decisions that meet a run in flight: cancelling, identity matches, re-drives, conflict
resolution, and the event webhook's edges."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest
from django.db import connection as db
from django.urls import reverse

from attendance.models import Guardian, Student
from attendance.services import student_update
from core.errors import ConflictError
from sis.connectors.records import GuardianRecord
from sis.models import SISConnection
from syncing.engine.run import run_execute
from syncing.locks import _NAMESPACE
from syncing.models import (
    Approval,
    ChangeState,
    Conflict,
    ConflictStatus,
    IdentityMatch,
    Mode,
    PendingEvent,
    QuarantinedRecord,
    RunStatus,
    SourceLink,
    SyncChange,
    SyncRun,
    WriteBackItem,
)
from syncing.services import (
    conflict_resolve,
    identity_match_confirm,
    identity_match_reject,
    quarantine_redrive,
    run_approve,
    run_cancel,
    sync_start,
)
from tests.factories import UserFactory
from tests.syncing.helpers import held_by_dropped_students, rekey_students, sync


def _hold_connection_lock(connection_id: int) -> psycopg.Connection:
    """Another session holding the connection's sync lock, as a busy worker does."""
    params = db.get_connection_params()
    other = psycopg.connect(
        host=params.get("host"),
        port=params.get("port"),
        user=params.get("user"),
        dbname=params.get("dbname"),
        autocommit=True,
    )
    other.execute("SELECT pg_advisory_lock(%s, %s)", [_NAMESPACE, connection_id])
    return other


# --- cancelling ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_run_a_worker_is_executing_cannot_be_cancelled(connection, source):
    run, _ = sync_start(connection=connection, enqueue=False)
    SyncRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    worker = _hold_connection_lock(connection.pk)
    try:
        with pytest.raises(ConflictError) as refused:
            run_cancel(run=run)
        assert refused.value.code == "run_in_progress"
        run.refresh_from_db()
        assert run.status == RunStatus.RUNNING
        # The one-active-run rule still holds: a trigger returns the running run.
        again, created = sync_start(connection=connection, enqueue=False)
        assert not created and again.pk == run.pk
    finally:
        worker.close()
    # Its worker gone (nothing holds the lock), a stalled run can be cancelled.
    assert run_cancel(run=run).status == RunStatus.CANCELLED


def test_a_cancelled_pending_run_is_not_started_by_its_task(connection, source):
    run, _ = sync_start(connection=connection, enqueue=False)
    assert run_cancel(run=run).status == RunStatus.CANCELLED
    run = run_execute(run.pk, source=source)
    assert run.status == RunStatus.CANCELLED
    assert not Student.objects.exists()
    assert not SyncChange.objects.filter(run=run).exists()


def test_a_held_run_can_be_cancelled(connection, source):
    held = held_by_dropped_students(connection, source)
    assert held.status == RunStatus.HELD
    assert run_cancel(run=held).status == RunStatus.CANCELLED
    assert not SyncChange.objects.filter(run=held, state=ChangeState.STAGED).exists()
    assert Student.objects.filter(active=True).count() == 60


# --- identity matches ---------------------------------------------------------------------------


def test_confirming_a_held_rekey_then_approving_keeps_every_student(connection, source):
    sync(connection, source)
    rekey_students(source)
    held = sync(connection, source)
    assert held.status == RunStatus.HELD
    assert SyncChange.objects.filter(run=held, entity="student", action="deactivate").count() == 60
    admin = UserFactory()
    for match in IdentityMatch.objects.filter(status="suggested", entity="student"):
        identity_match_confirm(match=match, user=admin)
    # The old links' deactivations are withdrawn from the held run.
    assert not SyncChange.objects.filter(
        run=held, entity="student", action="deactivate", state=ChangeState.STAGED
    ).exists()
    run_approve(run=held, user=admin, approval=Approval.ALL, enqueue=False)
    assert run_execute(held.pk, source=source).status in (
        RunStatus.COMPLETED,
        RunStatus.COMPLETED_WITH_QUARANTINE,
    )
    assert Student.objects.filter(active=True).count() == 60
    assert Student.objects.count() == 60  # nobody duplicated
    after = sync(connection, source)
    assert Student.objects.filter(active=True).count() == 60
    assert after.counts["student"].get("deactivate", 0) == 0


def test_a_deactivation_staged_through_a_link_retired_since_is_not_applied(connection, source):
    held = held_by_dropped_students(connection, source)
    assert held.status == RunStatus.HELD
    # A link retired after staging (as a confirmed identity match does) no longer speaks for
    # its record, whatever the held run staged through it.
    SourceLink.objects.filter(entity="student", source_id="stu-0").update(active=False)
    run_approve(run=held, user=None, approval=Approval.ALL, enqueue=False)
    run_execute(held.pk, source=source)
    assert Student.objects.get(local_id="S00000").active
    assert Student.objects.filter(active=True).count() == 41


def test_confirming_while_a_sync_runs_is_refused(connection, source):
    sync(connection, source)
    rekey_students(source)
    held = sync(connection, source)
    run_cancel(run=held)
    match = IdentityMatch.objects.filter(status="suggested", entity="student").first()
    running, _ = sync_start(connection=connection, enqueue=False)
    SyncRun.objects.filter(pk=running.pk).update(status=RunStatus.RUNNING)
    with pytest.raises(ConflictError) as refused:
        identity_match_confirm(match=match, user=None)
    assert refused.value.code == "sync_in_progress"
    match.refresh_from_db()
    assert match.status == "suggested"


def test_a_record_linked_to_two_sis_records_is_refused(connection, source):
    source.get("guardian", "gua-0").local_id = "G0"
    sync(connection, source)
    for new_id in ("gua-x1", "gua-x2"):
        source.put(GuardianRecord(source_id=new_id, first_name="A", last_name="B", local_id="G0"))
        sync(connection, source)
    first, second = IdentityMatch.objects.filter(status="suggested").order_by("id")
    assert first.object_id == second.object_id
    identity_match_confirm(match=first, user=None)
    with pytest.raises(ConflictError) as refused:
        identity_match_confirm(match=second, user=None)
    assert refused.value.code == "object_already_linked"
    links = SourceLink.objects.filter(entity="guardian", object_id=first.object_id, active=True)
    assert list(links.values_list("source_id", flat=True)) == ["gua-x1"]


def _rekeyed_guardian(source, **changes) -> None:
    old = source.get("guardian", "gua-0")
    source.drop("guardian", "gua-0")
    source.put(dataclasses.replace(old, source_id="gua-0-v2", **changes))
    source.get("student_guardian", "sg-0").guardian_id = "gua-0-v2"


def test_rejecting_a_match_whose_record_is_already_quarantined(connection, source):
    source.get("guardian", "gua-0").local_id = "G0"
    sync(connection, source)
    _rekeyed_guardian(source, email="not an email")  # parked with a warning as well
    sync(connection, source)
    match = IdentityMatch.objects.get(new_source_id="gua-0-v2", status="suggested")
    assert QuarantinedRecord.objects.filter(source_id="gua-0-v2", status="open").exists()
    identity_match_reject(match=match, user=UserFactory())
    record = QuarantinedRecord.objects.get(source_id="gua-0-v2", status="open")
    assert record.reason_code == "duplicate_key"


def test_a_rejected_match_stays_rejected(connection, source):
    source.get("guardian", "gua-0").local_id = "G0"
    sync(connection, source)
    _rekeyed_guardian(source)
    sync(connection, source)
    identity_match_reject(match=IdentityMatch.objects.get(status="suggested"), user=None)
    run = sync(connection, source)
    assert not IdentityMatch.objects.filter(status="suggested").exists()
    assert run.counts["guardian"]["quarantined"] == 1
    record = QuarantinedRecord.objects.get(source_id="gua-0-v2", status="open")
    assert record.reason_code == "duplicate_key" and record.attempts == 2
    assert Guardian.objects.filter(local_id="G0").count() == 1


# --- re-drive -----------------------------------------------------------------------------------


def test_a_redrive_while_a_run_is_held_waits_for_the_run_after_it(connection, source, district):
    held = SyncRun.objects.create(
        district=district, connection=connection, mode=Mode.FULL, trigger="admin", status="held"
    )
    record = QuarantinedRecord.objects.create(
        district=district,
        connection=connection,
        entity="student",
        source_id="stu-3",
        reason_code="bad_date",
    )
    run, started = quarantine_redrive(records=QuarantinedRecord.objects.filter(pk=record.pk))
    assert run.pk == held.pk and not started
    assert list(PendingEvent.objects.values_list("entity", "source_id")) == [("student", "stu-3")]
    run_approve(run=held, user=None, approval=Approval.REJECT, enqueue=False)
    from syncing.events import sync_events_drain

    follow_up = sync_events_drain(connection_id=connection.pk)
    assert follow_up is not None and follow_up.targets == [["student", "stu-3"]]


# --- conflicts ----------------------------------------------------------------------------------


def _conflict_on_last_name(connection, source) -> Conflict:
    sync(connection, source)
    student = Student.objects.get(local_id="S00001")
    student_update(student=student, legal_last_name="LocalName")
    source.get("student", "stu-1").last_name = "SisName"
    sync(connection, source)
    return Conflict.objects.get(status=ConflictStatus.OPEN)


def test_keeping_local_keeps_the_value_the_record_has_now(connection, source):
    conflict = _conflict_on_last_name(connection, source)
    student = Student.objects.get(local_id="S00001")
    student_update(student=student, legal_last_name="CorrectedLocally")
    conflict_resolve(conflict=conflict, user=None, choice="local")
    student.refresh_from_db()
    conflict.refresh_from_db()
    assert student.legal_last_name == "CorrectedLocally"
    assert conflict.resolution_value == "CorrectedLocally"
    item = WriteBackItem.objects.get(target="legal_last_name")  # PowerSchool writes it back
    assert item.value == "CorrectedLocally"


def test_keeping_local_queues_no_write_back_a_connector_cannot_send(district, source):
    connection = SISConnection.objects.create(
        district=district, name="OneRoster", provider="oneroster-1.1", base_url="http://127.0.0.1:9"
    )
    conflict = _conflict_on_last_name(connection, source)
    conflict_resolve(conflict=conflict, user=UserFactory(), choice="local")
    assert not WriteBackItem.objects.exists()
    assert Student.objects.get(local_id="S00001").legal_last_name == "LocalName"


# --- the admin's word for it --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_admin_says_why_a_running_run_was_not_cancelled(client, connection):
    run, _ = sync_start(connection=connection, enqueue=False)
    SyncRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    client.force_login(UserFactory(username="root", is_superuser=True))
    worker = _hold_connection_lock(connection.pk)
    try:
        page = client.post(
            reverse("admin:syncing_syncrun_changelist"),
            {"action": "cancel", "_selected_action": [run.pk]},
            follow=True,
        )
    finally:
        worker.close()
    assert f"Run #{run.pk}: A worker is running this sync".encode() in page.content
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING


def test_the_admin_says_a_redrive_waits_for_the_active_run(client, connection, district):
    held = SyncRun.objects.create(
        district=district, connection=connection, mode=Mode.FULL, trigger="admin", status="held"
    )
    record = QuarantinedRecord.objects.create(
        district=district, connection=connection, entity="student", source_id="stu-3",
        reason_code="bad_date",
    )  # fmt: skip
    client.force_login(UserFactory(username="root", is_superuser=True))
    page = client.post(
        reverse("admin:syncing_quarantinedrecord_changelist"),
        {"action": "redrive", "_selected_action": [record.pk]},
        follow=True,
    )
    run_page = reverse("admin:syncing_syncrun_change", args=[held.pk])
    assert f'connection\'s <a href="{run_page}">sync run #{held.pk}</a> is active' in page.text
    assert PendingEvent.objects.filter(source_id="stu-3").exists()


# --- what a failed run says ---------------------------------------------------------------------


def test_a_failed_runs_error_names_the_constraint_not_the_values(district):
    from django.db import IntegrityError, transaction

    from syncing.engine.run import error_summary
    from tests.factories import StudentFactory

    StudentFactory(district=district, local_id="S0042")
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        StudentFactory(district=district, local_id="S0042")
    assert "S0042" in str(caught.value)  # what PostgreSQL says quotes the row
    summary = error_summary(caught.value)
    assert "S0042" not in summary
    assert summary == (
        "IntegrityError: database error 23505, table attendance_student, "
        "constraint student_unique_local_id"
    )
    assert error_summary(ValueError("plain words")) == "ValueError: plain words"


def test_the_admin_confirms_and_rejects_identity_matches(client, connection, source):
    sync(connection, source)
    rekey_students(source)
    held = sync(connection, source)
    client.force_login(UserFactory(username="root", is_superuser=True))
    url = reverse("admin:syncing_identitymatch_changelist")
    first, second, *_ = IdentityMatch.objects.filter(status="suggested").order_by("id")
    page = client.post(url, {"action": "confirm", "_selected_action": [first.pk]}, follow=True)
    assert b"Confirmed: 1." in page.content
    page = client.post(url, {"action": "reject", "_selected_action": [second.pk]}, follow=True)
    assert b"Rejected: 1." in page.content
    assert dict(
        IdentityMatch.objects.filter(pk__in=[first.pk, second.pk]).values_list("pk", "status")
    ) == {first.pk: "confirmed", second.pk: "rejected"}
    # While a run is in progress the admin says why nothing was confirmed.
    SyncRun.objects.filter(pk=held.pk).update(status=RunStatus.RUNNING)
    third = IdentityMatch.objects.filter(status="suggested").first()
    page = client.post(url, {"action": "confirm", "_selected_action": [third.pk]}, follow=True)
    assert b"A sync of this connection is in progress" in page.content
