"""The write-back sender against the sandbox SIS over real HTTP: what the SIS receives,
verification by read-back, transient and permanent errors, mismatches, idempotency."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from attendance.models import Section, Student
from syncing.engine.run import run_execute
from syncing.models import OutboxStatus, RunStatus, SourceLink, WriteBackItem
from syncing.services import sync_start
from syncing.writeback import participation_grade_queue, writeback_send_due
from tests.factories import ParticipationGradeFactory, UserFactory
from tests.syncing.sandbox import connection_for, sandbox_for


def _sync(connection, mode="full"):
    run, created = sync_start(connection=connection, mode=mode, enqueue=False)
    assert created
    run = run_execute(run.pk)
    assert run.status == RunStatus.COMPLETED, run.error_summary
    return run


def _student_writes(sandbox):
    return [w for w in sandbox.control("writes")["writes"] if w["path"] == "/ws/v1/student"]


@pytest.fixture
def ps(district):
    with sandbox_for(provider="powerschool", students=40) as sandbox:
        connection = connection_for(sandbox, district)
        _sync(connection)
        yield sandbox, connection


def _edit_and_sync(sandbox, connection, last_name="Okonkwo-Writeback"):
    """An administrator edits the last name here while the SIS changes the first name; the
    next sync's three-way merge applies the SIS's change and queues ours for write-back."""
    link = SourceLink.objects.filter(connection=connection, entity="student").order_by("id")[3]
    student = Student.objects.get(pk=link.object_id)
    sandbox.state.district.overrides["student"].setdefault(link.source_id, {})["first"] = "Ada"
    # (A plain update: student_update's full validation refuses the synced grade level "4".)
    Student.objects.filter(pk=student.pk).update(legal_last_name=last_name)
    _sync(connection)
    item = WriteBackItem.objects.get(connection=connection, object_id=student.pk)
    assert (item.status, item.target, item.value) == ("pending", "legal_last_name", last_name)
    return item, link


def test_it_sends_a_local_edit_and_verifies_it_by_reading_it_back(ps):
    sandbox, connection = ps
    item, link = _edit_and_sync(sandbox, connection)

    assert writeback_send_due() == {"verified": 1}

    writes = _student_writes(sandbox)
    assert len(writes) == 1
    sent = writes[0]["body"]["students"]["student"][0]
    assert sent["id"] == link.source_id and sent["action"] == "UPDATE"
    assert sent["name"] == {"last_name": "Okonkwo-Writeback"}
    assert sent["client_uid"] == f"wb-{item.pk}-{item.value_hash}"
    item.refresh_from_db()
    assert item.status == OutboxStatus.VERIFIED and item.attempts == 1
    assert item.sis_value == "Okonkwo-Writeback" and item.verified_at is not None
    # The SIS really holds it now: a targeted read over the API returns the new name.
    assert sandbox.state.district.get("student", link.source_id)["last"] == "Okonkwo-Writeback"


def test_the_same_item_is_never_written_twice(ps):
    sandbox, connection = ps
    item, _ = _edit_and_sync(sandbox, connection)
    writeback_send_due()
    assert writeback_send_due() == {}  # verified items are not taken again

    # A worker died after sending but before recording it: the abandoned "sending" item is
    # read back first, and since the SIS holds the value nothing is written again.
    WriteBackItem.objects.filter(pk=item.pk).update(
        status=OutboxStatus.SENDING, claimed_at=timezone.now() - dt.timedelta(hours=1)
    )
    assert writeback_send_due() == {"verified": 1}
    assert len(_student_writes(sandbox)) == 1


def test_an_abandoned_item_the_sis_never_got_is_sent(ps):
    sandbox, connection = ps
    item, _ = _edit_and_sync(sandbox, connection)
    WriteBackItem.objects.filter(pk=item.pk).update(
        status=OutboxStatus.SENDING, claimed_at=timezone.now() - dt.timedelta(hours=1)
    )
    assert writeback_send_due() == {"verified": 1}
    assert len(_student_writes(sandbox)) == 1


def test_a_transient_error_backs_off_and_the_retry_succeeds(ps):
    sandbox, connection = ps
    item, _ = _edit_and_sync(sandbox, connection)
    # More 503s than the gateway's own attempts: the item itself has to come back later.
    sandbox.inject("503", path="/ws/v1/student", times=3)

    assert writeback_send_due() == {"retry": 1}
    item.refresh_from_db()
    assert item.status == OutboxStatus.PENDING and item.attempts == 1
    assert item.next_attempt_at > timezone.now()
    assert "503" in item.last_error
    assert writeback_send_due() == {}  # not due yet

    WriteBackItem.objects.filter(pk=item.pk).update(next_attempt_at=timezone.now())
    assert writeback_send_due() == {"verified": 1}
    item.refresh_from_db()
    assert item.attempts == 2 and item.last_error == ""
    assert len(_student_writes(sandbox)) == 1  # the 503s never reached the SIS


def test_transient_errors_give_up_after_the_attempt_limit(ps, settings):
    sandbox, connection = ps
    settings.WRITEBACK_MAX_ATTEMPTS = 1
    item, _ = _edit_and_sync(sandbox, connection)
    sandbox.inject("503", path="/ws/v1/student", times=3)
    assert writeback_send_due() == {"failed": 1}
    item.refresh_from_db()
    assert item.status == OutboxStatus.FAILED and item.last_error.startswith("Gave up after 1")


def test_a_permanent_refusal_fails_the_item_with_the_reason(ps):
    sandbox, connection = ps
    item, _ = _edit_and_sync(sandbox, connection)
    sandbox.inject("409", path="/ws/v1/student")
    assert writeback_send_due() == {"failed": 1}
    item.refresh_from_db()
    assert item.status == OutboxStatus.FAILED
    assert "409" in item.last_error and "Injected refusal" in item.last_error
    assert item.attempts == 1 and item.next_attempt_at is None
    assert writeback_send_due() == {}  # failed is final until an administrator retries


def test_a_field_the_sis_does_not_take_fails_without_a_call(ps):
    sandbox, connection = ps
    from syncing.engine.apply import writeback_queue
    from syncing.models import SyncRun

    link = SourceLink.objects.filter(connection=connection, entity="student").first()
    writeback_queue(
        run=SyncRun(connection_id=connection.pk, district_id=connection.district_id),
        entity="student",
        object_id=link.object_id,
        source_id=link.source_id,
        target="local_id",
        value="999",
    )
    assert writeback_send_due() == {"failed": 1}
    item = WriteBackItem.objects.get(target="local_id")
    assert "does not let us write a student's local_id" in item.last_error
    assert _student_writes(sandbox) == []


def test_a_write_the_sis_does_not_keep_is_flagged_as_a_mismatch(ps):
    sandbox, connection = ps
    item, link = _edit_and_sync(sandbox, connection)
    before = sandbox.state.district.get("student", link.source_id)["last"]
    sandbox.inject("ignore_write", path="/ws/v1/student")

    assert writeback_send_due() == {"mismatch": 1}
    item.refresh_from_db()
    assert item.status == OutboxStatus.MISMATCH
    assert item.sis_value == before != "Okonkwo-Writeback"
    assert "another value" in item.last_error
    assert len(_student_writes(sandbox)) == 1


def test_the_admin_lists_the_outbox_and_retries_failed_items(ps, client):
    sandbox, connection = ps
    item, _ = _edit_and_sync(sandbox, connection)
    sandbox.inject("400", path="/ws/v1/student")
    writeback_send_due()
    client.force_login(UserFactory(username="root", is_superuser=True))
    url = reverse("admin:syncing_writebackitem_changelist")
    page = client.get(url)
    assert page.status_code == 200
    assert b"Failed" in page.content and b"Injected refusal" in page.content

    client.post(url, {"action": "retry", "_selected_action": [item.pk]}, follow=True)
    item.refresh_from_db()
    assert (item.status, item.attempts, item.last_error) == ("pending", 0, "")
    assert writeback_send_due() == {"verified": 1}


def test_participation_grades_go_to_the_oneroster_gradebook(district):
    with sandbox_for(provider="oneroster-1.2", students=40) as sandbox:
        connection = connection_for(sandbox, district)
        _sync(connection)
        section_link = SourceLink.objects.filter(connection=connection, entity="section").first()
        section = Section.objects.get(pk=section_link.object_id)
        student_link = SourceLink.objects.filter(connection=connection, entity="student").first()
        student = Student.objects.get(pk=student_link.object_id)
        grade = ParticipationGradeFactory(
            section=section, student=student, grading_period=section.term, value="87.50"
        )

        assert participation_grade_queue(grade=grade) == 1
        assert participation_grade_queue(grade=grade) == 0  # same value: nothing new
        assert writeback_send_due() == {"verified": 1}

        writes = sandbox.control("writes")["writes"]
        paths = [w["path"].rsplit("/", 2)[-2] for w in writes]
        assert paths == ["categories", "lineItems", "results"]
        line_item = writes[1]["body"]["lineItem"]
        assert line_item["class"]["sourcedId"] == section_link.source_id
        result = writes[2]["body"]["result"]
        assert result["student"]["sourcedId"] == student_link.source_id
        assert result["score"] == 87.5 and result["scoreStatus"] == "fully graded"
        assert result["lineItem"]["sourcedId"] == line_item["sourcedId"]
        item = WriteBackItem.objects.get(entity="participation_grade")
        assert item.status == OutboxStatus.VERIFIED and item.sis_value == 87.5


def test_a_grade_write_that_does_not_stick_is_a_mismatch(district):
    with sandbox_for(provider="oneroster-1.2", students=40) as sandbox:
        connection = connection_for(sandbox, district)
        _sync(connection)
        section = Section.objects.get(
            pk=SourceLink.objects.filter(connection=connection, entity="section")[0].object_id
        )
        student = Student.objects.get(
            pk=SourceLink.objects.filter(connection=connection, entity="student")[0].object_id
        )
        grade = ParticipationGradeFactory(
            section=section, student=student, grading_period=section.term, value=70
        )
        participation_grade_queue(grade=grade)
        sandbox.inject("ignore_write", path="/results/")
        assert writeback_send_due() == {"mismatch": 1}
        assert WriteBackItem.objects.get().sis_value is None


def test_the_sender_is_a_writeback_queue_task_scheduled_every_minute(ps):
    from django_celery_beat.models import PeriodicTask

    from config.celery import app
    from core.periodic import schedules_install
    from syncing.tasks import writeback_send_due as task

    router = app.amqp.router
    assert router.route({}, task.name)["queue"].name == "writeback"
    schedules_install()
    beat = PeriodicTask.objects.get(name="system:writeback-send")
    assert beat.task == task.name and beat.interval.every == 60
    assert PeriodicTask.objects.filter(name="system:sync-events-drain").exists()

    sandbox, connection = ps
    _edit_and_sync(sandbox, connection)
    assert task.apply().get() == {"verified": 1}


@pytest.mark.django_db(transaction=True)
def test_two_senders_at_once_write_each_item_once(district):
    import threading

    from django.db import connection as db

    with sandbox_for(provider="powerschool", students=40) as sandbox:
        connection = connection_for(sandbox, district)
        _sync(connection)
        links = list(SourceLink.objects.filter(connection=connection, entity="student")[:6])
        for n, link in enumerate(links):
            sandbox.state.district.overrides["student"].setdefault(link.source_id, {})["first"] = (
                "Ada"
            )
            Student.objects.filter(pk=link.object_id).update(legal_last_name=f"Parallel{n}")
        _sync(connection)
        assert WriteBackItem.objects.filter(status="pending").count() == len(links)

        outcomes = []
        start = threading.Barrier(2)

        def sender() -> None:
            start.wait()
            try:
                outcomes.append(writeback_send_due())
            finally:
                db.close()

        threads = [threading.Thread(target=sender) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

        assert sum(o.get("verified", 0) for o in outcomes) == len(links)
        written = [w["body"]["students"]["student"][0]["id"] for w in _student_writes(sandbox)]
        assert sorted(written) == sorted(link.source_id for link in links)  # once each


def test_a_sender_whose_claim_was_taken_over_does_not_write(ps):
    from syncing.writeback import _claim, _process

    sandbox, connection = ps
    item, _ = _edit_and_sync(sandbox, connection)
    [(claimed, previous)] = _claim(limit=10)
    # Meanwhile the claim went stale and another sender took the item over (re-stamped it).
    WriteBackItem.objects.filter(pk=item.pk).update(
        claimed_at=timezone.now() + dt.timedelta(seconds=1)
    )
    assert _process(claimed, previous, {}).status == "superseded"
    assert _student_writes(sandbox) == []
    item.refresh_from_db()
    assert item.status == OutboxStatus.SENDING  # still the other sender's
