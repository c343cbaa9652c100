"""Re-drives of quarantined records whose SIS item now maps differently: a span the SIS
re-keyed (a transfer) and links parked under their item's id."""

from __future__ import annotations

from attendance.models import Enrollment, ExitReason, Student
from syncing.engine.run import run_execute
from syncing.models import QuarantinedRecord, RunStatus, SourceLink
from syncing.services import quarantine_redrive, sync_start
from tests.syncing.sandbox import connection_for, sandbox_for


def test_redrive_of_a_span_after_a_transfer_moves_the_student(district):
    with sandbox_for(provider="powerschool", students=40) as sandbox:
        connection = connection_for(sandbox, district)
        run, _ = sync_start(connection=connection, mode="full", enqueue=False)
        assert run_execute(run.pk).status == RunStatus.COMPLETED
        changes = sandbox.control("advance", {"days": 1})["changes"]
        transfer = next(c for c in changes if c["kind"] == "transfer")
        student_link = SourceLink.objects.get(
            connection=connection, entity="student", source_id=transfer["id"]
        )
        student = Student.objects.get(pk=student_link.object_id)
        old_span = Enrollment.objects.get(student=student, exit_date__isnull=True)
        span_link = SourceLink.objects.get(
            connection=connection, entity="enrollment", object_id=old_span.pk
        )
        # The span was parked earlier (a warning, a failed update) and is still open.
        parked = QuarantinedRecord.objects.create(
            district=district, connection=connection, entity="enrollment",
            source_id=span_link.source_id, reason_code="malformed", message="earlier",
        )  # fmt: skip
        redrive, started = quarantine_redrive(records=[parked])
        assert started
        redrive = run_execute(redrive.pk)
    old_span.refresh_from_db()
    student.refresh_from_db()
    # As a full sync or the student's event would: the old span closed as a transfer, the
    # new one open, the student at the new school.
    assert old_span.exit_reason == ExitReason.TRANSFERRED, (old_span.exit_reason, redrive.counts)
    new_span = Enrollment.objects.get(student=student, exit_date__isnull=True)
    assert student.school_id == new_span.school_id != old_span.school_id


def test_redrive_of_links_parked_under_their_guardian_brings_them(district):
    with sandbox_for(provider="oneroster-1.2", students=20) as sandbox:
        connection = connection_for(sandbox, district)
        # The users listing is read for guardians, then for student-guardian links: the
        # second read gets a malformed page, whose links are parked under the guardian's id.
        sandbox.inject("malformed", path="/users", times=1, skip=2)
        run, _ = sync_start(connection=connection, mode="full", enqueue=False)
        run_execute(run.pk)
        parked = list(QuarantinedRecord.objects.filter(status="open", entity="student_guardian"))
        assert parked
        guardian = parked[0].source_id
        links = SourceLink.objects.filter(
            entity="student_guardian", source_id__endswith=f":{guardian}", active=True
        )
        assert not links.exists()
        redrive, _ = quarantine_redrive(records=parked[:1])
        redrive = run_execute(redrive.pk)
    # The guardian user reads fine again: its links to its students arrive, and the record
    # parked under the guardian's id leaves quarantine (the links have ids of their own).
    assert links.exists(), redrive.counts
    parked[0].refresh_from_db()
    assert parked[0].status == "resolved"


def test_a_redrive_that_parks_the_record_again_keeps_it_open(connection, source):
    from tests.syncing.helpers import sync

    source.get("student", "stu-7").last_name = ""  # a required field missing
    sync(connection, source)
    parked = QuarantinedRecord.objects.get(entity="student", source_id="stu-7")
    redrive, _ = quarantine_redrive(records=[parked])
    run_execute(redrive.pk, source=source)
    parked.refresh_from_db()
    assert (parked.status, parked.attempts, parked.run_id) == ("open", 2, redrive.pk)

    source.get("student", "stu-7").last_name = "Fixed"
    redrive, _ = quarantine_redrive(records=[parked])
    run_execute(redrive.pk, source=source)
    parked.refresh_from_db()
    assert parked.status == "resolved"
    assert Student.objects.filter(legal_last_name="Fixed").exists()
