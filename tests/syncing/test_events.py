"""SIS change events: kept while a run is active and synced after it (coalesced per record),
delivered by the sandbox's PowerSchool event subscription to the signed webhook, and
PowerSchool data-version deltas through the engine."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from attendance.models import (
    Enrollment,
    ExitReason,
    Guardian,
    SectionEnrollment,
    Staff,
    Student,
)
from sis.services import sis_connection_connector
from syncing.engine.run import run_execute
from syncing.events import sync_events_drain, sync_run_followup
from syncing.models import (
    NOT_REFETCHABLE,
    Mode,
    PendingEvent,
    QuarantinedRecord,
    RunStatus,
    ScheduleKind,
    SourceLink,
    SyncChange,
    SyncRun,
    SyncSchedule,
)
from syncing.schedules import schedule_save, schedule_webhook_secret
from syncing.services import sync_start
from syncing.tasks import sync_run_execute
from syncing.webhooks import _targets, signed_headers
from tests.syncing.sandbox import connection_for, sandbox_for


def _sync(connection, mode="full"):
    run, created = sync_start(connection=connection, mode=mode, enqueue=False)
    assert created
    run = run_execute(run.pk)
    quarantined = list(QuarantinedRecord.objects.filter(run=run).values_list("entity", "message"))
    assert run.status == RunStatus.COMPLETED, (run.error_summary, quarantined[:3])
    return run


@pytest.fixture
def ps(district):
    with sandbox_for(provider="powerschool", students=40) as sandbox:
        connection = connection_for(sandbox, district)
        _sync(connection)
        schedule_save(schedule=SyncSchedule(connection=connection, kind=ScheduleKind.REALTIME))
        yield sandbox, connection


def _post_events(client, connection, events):
    body = json.dumps({"events": events}).encode()
    secret = schedule_webhook_secret(connection_id=connection.pk)
    return client.post(
        reverse("syncing:sis-events", args=[connection.pk]),
        body,
        content_type="application/json",
        headers=signed_headers(secret, body),
    )


def test_events_during_an_active_run_are_kept_and_synced_after_it(ps, client):
    sandbox, connection = ps
    links = list(SourceLink.objects.filter(connection=connection, entity="student")[:2])
    active, _ = sync_start(connection=connection, mode=Mode.DELTA, enqueue=False)

    first = _post_events(client, connection, [{"entity": "students", "id": links[0].source_id}])
    again = _post_events(
        client,
        connection,
        [
            {"entity": "students", "id": links[0].source_id},  # the same record again
            {"entity": "students", "id": links[1].source_id},
        ],
    )
    assert first.status_code == again.status_code == 202
    assert first.json()["kept"] and again.json()["run"] == active.pk
    kept = sorted(PendingEvent.objects.values_list("entity", "source_id"))
    # A student's event re-fetches the student and its enrollment; coalesced per record.
    assert kept == sorted((e, link.source_id) for link in links for e in ("enrollment", "student"))
    assert sync_events_drain(connection_id=connection.pk) is None  # still active
    assert SyncRun.objects.filter(connection=connection).count() == 2  # full + the active

    # The SIS changed one of them meanwhile; the active run ends, and the kept events run.
    sandbox.state.district.overrides["student"].setdefault(links[1].source_id, {})["last"] = (
        "Eventually"
    )
    result = sync_run_execute.apply(args=[active.pk]).get()
    assert result["status"] == RunStatus.COMPLETED
    follow_up = SyncRun.objects.filter(connection=connection, mode=Mode.TARGETED).get()
    assert follow_up.trigger == "event"
    assert sorted(map(tuple, follow_up.targets)) == kept
    assert not PendingEvent.objects.exists()

    assert run_execute(follow_up.pk).status == RunStatus.COMPLETED
    assert Student.objects.get(pk=links[1].object_id).legal_last_name == "Eventually"


def test_an_event_with_no_active_run_starts_a_targeted_run_at_once(ps, client):
    _, connection = ps
    link = SourceLink.objects.filter(connection=connection, entity="student").first()
    response = _post_events(client, connection, [{"entity": "students", "id": link.source_id}])
    assert response.status_code == 202 and response.json()["queued"]
    assert not PendingEvent.objects.exists()
    run = SyncRun.objects.get(pk=response.json()["run"])
    assert run.mode == Mode.TARGETED
    assert run.targets == [["student", link.source_id], ["enrollment", link.source_id]]


class _Capture(BaseHTTPRequestHandler):
    received: list[tuple[bytes, dict[str, str]]] = []
    arrived = threading.Event()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        names = ("X-Sync-Timestamp", "X-Sync-Signature")
        signed = {name: self.headers.get(name, "") for name in names}
        _Capture.received.append((body, signed))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        _Capture.arrived.set()

    def log_message(self, format: str, *args: object) -> None:
        return


def test_the_powerschool_subscription_delivers_signed_events_to_the_webhook(ps, client):
    sandbox, connection = ps
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    _Capture.received.clear()
    _Capture.arrived.clear()
    try:
        connector = sis_connection_connector(connection)
        secret = schedule_webhook_secret(connection_id=connection.pk)
        callback = f"http://127.0.0.1:{receiver.server_address[1]}/hooks/sync/events/1"
        connector.events_subscribe(callback_url=callback, secret=secret)
        registered = connector.events_subscription()["event_subscriptions"]
        assert registered["callback_url"] == callback and "secret" not in registered

        changes = sandbox.control("advance", {"days": 1})["changes"]
        assert _Capture.arrived.wait(10)
    finally:
        receiver.shutdown()
        receiver.server_close()
    body, signed = _Capture.received[0]
    events = json.loads(body)["events"]
    edited = {c["id"] for c in changes if c["kind"] == "edit"}
    assert edited <= {e["id"] for e in events if e["entity"] == "students"}

    # Delivered to our webhook as the sandbox sent it, the signature passes.
    response = client.post(
        reverse("syncing:sis-events", args=[connection.pk]),
        body,
        content_type="application/json",
        headers=signed,
    )
    assert response.status_code == 202
    run = SyncRun.objects.get(pk=response.json()["run"])
    assert {sid for entity, sid in run.targets if entity == "student"} >= edited
    connector.events_unsubscribe()
    assert connector.events_subscription() == {}


def test_a_powerschool_delta_reads_data_version_changes_only(ps):
    sandbox, connection = ps
    full = SyncRun.objects.get(connection=connection, mode=Mode.FULL)
    assert full.watermark_to == "1000"  # PowerSchool's data version, not a timestamp
    changes = sandbox.control("advance", {"days": 1})["changes"]
    sandbox.control("reset-stats", {})

    run, _ = sync_start(connection=connection, mode=Mode.DELTA, enqueue=False)
    delta = run_execute(run.pk)

    # A delta only hears of a transfer's new enrollment (the old one is simply absent): the
    # old span is closed the day before the new one starts, nothing waits in quarantine.
    assert not QuarantinedRecord.objects.filter(run=delta).exists()
    transferred = [c["id"] for c in changes if c["kind"] == "transfer"]
    assert transferred, [c["kind"] for c in changes]  # the scripted day holds a transfer
    for source_id in transferred:
        student = SourceLink.objects.get(
            connection=connection, entity="student", source_id=source_id
        ).object_id
        spans = sorted(
            Enrollment.objects.filter(student_id=student, is_primary=True),
            key=lambda span: span.exit_date is None,  # the closed span first
        )
        assert [s.exit_date is None for s in spans] == [False, True]
        old, new = spans
        assert old.exit_reason == ExitReason.TRANSFERRED
        # The day before the new span, or the old span's first day if the SIS dates the move
        # earlier (the sandbox's first day precedes the school year) — as a full sync does.
        assert old.exit_date == max(old.entry_date, new.entry_date - dt.timedelta(days=1))
        assert Student.objects.get(pk=student).school_id == new.school_id
    assert (delta.watermark_from, delta.watermark_to) == ("1000", "1001")
    for change in changes:
        if change["kind"] == "edit":
            student = SourceLink.objects.get(
                connection=connection, entity="student", source_id=change["id"]
            ).object_id
            assert Student.objects.get(pk=student).legal_last_name == change["detail"]["new"]
    new = [c["id"] for c in changes if c["kind"] == "new_student"]
    assert SourceLink.objects.filter(entity="student", source_id__in=new).count() == len(new)
    # Only the changed students were read (one by one), not the whole district again.
    assert delta.counts["student"].get("unchanged", 0) < 10


def test_section_enrollments_name_students_by_dcid_although_cc_uses_ids(ps):
    sandbox, connection = ps
    connector = sis_connection_connector(connection)
    page = next(iter(connector.fetch("section_enrollment")))
    record = page.records[0]
    raw_student = record.raw["tables"]["cc"]["studentid"]
    assert raw_student != record.student_id  # the two ids really differ
    link = SourceLink.objects.get(
        connection=connection, entity="section_enrollment", source_id=record.source_id
    )
    enrollment = SectionEnrollment.objects.get(pk=link.object_id)
    student_link = SourceLink.objects.get(
        connection=connection, entity="student", object_id=enrollment.student_id
    )
    assert student_link.source_id == record.student_id
    assert SectionEnrollment.objects.count() == sandbox.counts()["section_enrollment"]
    # CC's DateLeft of a class still reported is its last day, not a drop.
    assert enrollment.exit_date is not None and enrollment.exit_reason == ExitReason.ENDED


def _events_of(changes):
    """The events the sandbox's subscription sends for ``changes`` (entity names as PowerSchool
    reports them)."""
    resources = {"student": "students", "guardian": "person", "section_enrollment": "cc"}
    return [{"entity": resources[c["entity"]], "id": c["id"]} for c in changes]


def _targeted(connection, targets, source=None):
    run, created = sync_start(
        connection=connection,
        mode=Mode.TARGETED,
        trigger="event",
        target_entity=targets[0][0],
        target_source_id=targets[0][1],
        targets=targets,
        enqueue=False,
    )
    assert created
    return run_execute(run.pk, source=source)


def test_powerschool_events_re_fetch_what_they_name_as_a_delta_would(ps):
    """Every kind of change the sandbox scripts (edit, new student, withdrawal, transfer,
    section change, guardian phone, guardian deleted), synced from its events alone: a delta
    afterwards finds nothing left to do for the records the events named."""
    sandbox, connection = ps
    changes = sandbox.control("advance", {"days": 1})["changes"]
    targets = _targets({"events": _events_of(changes)})
    run = _targeted(connection, targets)
    assert run.status == RunStatus.COMPLETED, run.error_summary
    assert not any(NOT_REFETCHABLE in counts for counts in run.counts.values()), run.counts
    kinds = {c["kind"]: c for c in changes}
    assert {"transfer", "withdrawal", "guardian_phone", "delete", "section_change"} <= set(kinds)
    assert run.counts["guardian"] == {"update": 1, "deactivate": 1}
    assert run.counts["enrollment"].get("create")  # the transfer's new span

    delta, _ = sync_start(connection=connection, mode=Mode.DELTA, enqueue=False)
    delta = run_execute(delta.pk)
    named = {(entity, source_id) for entity, source_id in targets}
    students = {source_id for entity, source_id in targets if entity == "student"}
    left = [
        (change.entity, change.source_id, change.action)
        for change in SyncChange.objects.filter(run=delta)
        if (change.entity, change.source_id) in named
        or (
            change.entity in ("student", "enrollment")
            and change.source_id.split(":")[0] in students
        )
    ]
    assert left == []
    # What the delta did find was never named by an event (a new student's classes and
    # guardians, the withdrawn student's classes), so it did find something.
    assert SyncChange.objects.filter(run=delta).exists()

    phone = kinds["guardian_phone"]
    guardian = SourceLink.objects.get(
        connection=connection, entity="guardian", source_id=phone["id"]
    )
    digits = "".join(ch for ch in phone["detail"]["mobile"] if ch.isdigit())
    assert Guardian.objects.get(pk=guardian.object_id).mobile_phone.endswith(digits)
    deleted = kinds["delete"]
    assert not SourceLink.objects.get(
        connection=connection, entity="guardian", source_id=deleted["id"]
    ).active


def test_an_event_for_a_student_gone_at_the_sis_ends_the_student_and_its_spans(connection, source):
    from tests.syncing.helpers import sync

    sync(connection, source)
    source.drop("student", "stu-5")
    source.drop("enrollment", "enr-5")
    run = _targeted(connection, [["student", "stu-5"], ["enrollment", "stu-5"]], source=source)
    assert run.status == RunStatus.COMPLETED
    assert run.counts["student"] == {"deactivate": 1}
    assert run.counts["enrollment"] == {"deactivate": 1}
    assert not QuarantinedRecord.objects.exists()
    student = Student.objects.get(local_id="S00005")
    assert student.active is False
    span = Enrollment.objects.get(student=student)
    assert span.exit_date is not None and span.exit_reason == ExitReason.NOT_IN_SIS


def test_a_student_event_re_reads_the_students_spans_as_a_full_sync_would(connection, source):
    """The event's enrollment target is the student's whole set of spans: a transfer the SIS
    made (the old span gone, a new one elsewhere) closes one span and opens the other."""
    from sis.connectors.records import EnrollmentRecord
    from tests.syncing.helpers import sync

    sync(connection, source)
    student = Student.objects.get(local_id="S00005")
    old_school = student.school_id
    source.drop("enrollment", "enr-5")
    source.put(
        EnrollmentRecord(
            source_id="enr-5-moved",
            student_id="stu-5",
            school_id="sch-0",
            entry_date=dt.date(2026, 10, 1),
            grade_level="05",
        )
    )
    run = _targeted(connection, [["student", "stu-5"], ["enrollment", "stu-5"]], source=source)
    assert run.counts["enrollment"] == {"create": 1, "deactivate": 1}, run.counts
    old, new = Enrollment.objects.filter(student=student).order_by("entry_date")
    assert (old.exit_date, old.exit_reason) == (dt.date(2026, 9, 30), ExitReason.TRANSFERRED)
    assert new.exit_date is None and new.school_id != old_school
    student.refresh_from_db()
    assert student.school_id == new.school_id


def test_records_the_connector_cannot_re_fetch_are_counted_and_a_delta_follows(ps):
    _, connection = ps
    term = SourceLink.objects.filter(connection=connection, entity="term").first()
    run = _targeted(connection, [["term", term.source_id]])
    assert run.status == RunStatus.COMPLETED
    assert run.counts["term"] == {NOT_REFETCHABLE: 1}

    follow_up = sync_run_followup(run=run)
    assert follow_up is not None and follow_up.mode == Mode.DELTA
    assert follow_up.trigger == "event"
    # A targeted run that re-fetched everything needs no delta.
    follow_up.status = RunStatus.COMPLETED
    follow_up.save(update_fields=["status"])
    student = SourceLink.objects.filter(connection=connection, entity="student").first()
    complete = _targeted(connection, [["student", student.source_id]])
    assert sync_run_followup(run=complete) is None


def test_a_oneroster_users_event_re_fetches_a_teacher(district):
    with sandbox_for(provider="oneroster-1.2", students=20) as sandbox:
        connection = connection_for(sandbox, district)
        _sync(connection)
        students = Student.objects.count()
        link = SourceLink.objects.filter(connection=connection, entity="staff").first()
        sandbox.state.district.overrides["staff"] = {link.source_id: {"last": "Renamed"}}

        run = _targeted(
            connection, _targets({"events": [{"entity": "users", "id": link.source_id}]})
        )

        assert run.status == RunStatus.COMPLETED, run.error_summary
        assert run.counts == {"staff": {"update": 1}}  # read as a student too: nothing there
        assert Staff.objects.get(pk=link.object_id).last_name == "Renamed"
        assert Student.objects.count() == students


def test_powerschool_re_fetches_contacts_links_and_cc_rows_one_by_one(ps, district):
    from sis.connectors.errors import UnsupportedOperation
    from sis.services import sis_connection_create

    sandbox, connection = ps
    by_query = sis_connection_connector(connection)
    link = SourceLink.objects.filter(connection=connection, entity="student_guardian").first()
    student, guardian = link.source_id.split(":")
    assert by_query.fetch_one("guardian", guardian).source_id == guardian
    assert by_query.fetch_one("student_guardian", link.source_id).source_id == link.source_id
    assert by_query.fetch_one("student_guardian", f"{student}:999999") is None
    cc = SourceLink.objects.filter(connection=connection, entity="section_enrollment").last()
    assert by_query.fetch_one("section_enrollment", cc.source_id).source_id == cc.source_id
    assert by_query.fetch_one("section_enrollment", "999999999") is None

    # The contacts API (per student) instead of the PowerQuery.
    contacts = sis_connection_create(
        district=district,
        name="Contacts",
        provider="powerschool",
        client_id=sandbox.client_id,
        client_secret=sandbox.client_secret,
        base_url=sandbox.api_base_url,
        token_url=sandbox.token_url,
        options={"guardian_source": "contacts"},
    )
    by_student = sis_connection_connector(contacts)
    assert by_student.fetch_one("student_guardian", link.source_id).source_id == link.source_id
    assert by_student.fetch_one("student_guardian", f"999999999:{guardian}") is None  # gone
    with pytest.raises(UnsupportedOperation):
        by_student.fetch_one("guardian", guardian)  # contacts are listed per student only


def test_a_student_gone_at_the_sis_ends_its_school_and_class_spans(ps):
    """A re-drive or event naming only the student: gone at the SIS, it takes its spans with
    it, as a full sync would."""
    from tests.syncing.sandbox import Filtered

    _, connection = ps
    link = SourceLink.objects.filter(connection=connection, entity="student").first()
    today = dt.datetime.now(ZoneInfo(connection.district.timezone)).date()  # the sync date
    classes = SectionEnrollment.objects.filter(student_id=link.object_id)
    # PowerSchool's CC rows carry a class's scheduled last day: attending means it is ahead.
    attending = set(classes.filter(exit_date__gt=today).values_list("id", flat=True))
    assert attending
    gone = Filtered(connection, lambda record: record.source_id == link.source_id)
    run = _targeted(connection, [["student", link.source_id]], source=gone)
    assert run.status == RunStatus.COMPLETED, run.error_summary
    assert run.counts["student"] == {"deactivate": 1}
    assert run.counts["enrollment"] == {"deactivate": 1}
    assert run.counts["section_enrollment"] == {"deactivate": classes.count()}
    assert Student.objects.get(pk=link.object_id).active is False
    assert not Enrollment.objects.filter(student_id=link.object_id, exit_date__isnull=True).exists()
    ended = classes.filter(id__in=attending, exit_reason=ExitReason.NOT_IN_SIS)
    assert ended.count() == len(attending)
    assert not classes.filter(exit_date__gt=today).exists()  # ended at the sync date
    assert not SourceLink.objects.filter(
        connection=connection, entity="section_enrollment", active=True,
        object_id__in=classes.values("id"),
    ).exists()  # fmt: skip
