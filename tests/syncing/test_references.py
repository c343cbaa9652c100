"""References between staged records are checked once an entity is staged (set-based): unknown
required references are quarantined, unknown optional ones cleared, references to records
waiting for an identity decision wait too. And the apply phase's threads: one rank's creates
applied by two database sessions give the same tables as one."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from attendance.models import Enrollment, Student
from sis.connectors.records import EnrollmentRecord, StudentRecord
from sis.models import SISConnection
from syncing.engine.apply import driver as apply_driver
from syncing.engine.stage import change_rank
from syncing.entities import SPECS
from syncing.models import QuarantinedRecord, RunStatus, SyncChange, SyncRun
from tests.factories import DistrictFactory
from tests.syncing.fakes import FakeSource, district_records
from tests.syncing.helpers import sync


def test_an_unknown_required_reference_is_quarantined_and_the_rest_applies(connection, source):
    source.put(
        EnrollmentRecord(
            source_id="enr-stray",
            student_id="stu-404",
            school_id="sch-0",
            entry_date=dt.date(2026, 8, 17),
        )
    )
    run = sync(connection, source)
    assert run.status == RunStatus.COMPLETED_WITH_QUARANTINE, run.error_summary
    assert run.counts["enrollment"] == {"create": 60, "quarantined": 1}
    record = QuarantinedRecord.objects.get(source_id="enr-stray")
    assert record.reason_code == "unknown_reference"
    assert "student_id" in record.message
    assert record.payload["student_id"] == "stu-404"  # the staged values are kept
    assert Enrollment.objects.count() == 60
    assert not SyncChange.objects.filter(run=run, source_id="enr-stray").exists()


def test_an_unknown_optional_reference_is_cleared_on_create_and_on_update(connection, source):
    source.put(
        StudentRecord(
            source_id="stu-new",
            first_name="New",
            last_name="Kid",
            local_id="S99999",
            birth_date=dt.date(2012, 5, 5),
            grade_level="05",
            school_id="sch-404",
        )
    )
    run = sync(connection, source)
    assert run.status == RunStatus.COMPLETED, run.error_summary
    assert Student.objects.get(local_id="S99999").school_id is None
    assert not QuarantinedRecord.objects.exists()
    # An update naming an unknown school: the change records it as cleared, and the student
    # keeps the school its enrollment gives it.
    source.get("student", "stu-3").school_id = "sch-404"
    source.get("student", "stu-3").last_name = "Moved"
    run = sync(connection, source)
    change = SyncChange.objects.get(run=run, source_id="stu-3")
    assert change.values["school_id"] is None
    assert change.diff["school_id"] == ["sch-1", None]
    assert change.diff["legal_last_name"] == ["Last3", "Moved"]
    student = Student.objects.get(local_id="S00003")
    assert (student.legal_last_name, student.school.name) == ("Moved", "School 1")


def test_a_reference_to_a_record_waiting_for_an_identity_decision_waits(connection, source):
    sync(connection, source)
    # The SIS re-keys one student (same local id): an identity question, not a new student;
    # its enrollment, re-pointed at the new key, waits for the answer instead of failing.
    old = source.get("student", "stu-5")
    source.drop("student", "stu-5")
    source.put(dataclasses.replace(old, source_id="stu-5b"))
    source.get("enrollment", "enr-5").student_id = "stu-5b"
    run = sync(connection, source)
    assert run.counts["student"]["identity_match"] == 1
    assert run.counts["enrollment"]["waiting_identity"] == 1
    assert "update" not in run.counts["enrollment"]
    assert not QuarantinedRecord.objects.filter(entity="enrollment").exists()


@pytest.fixture
def two_connections(transactional_db):
    """Two districts with a connection each (committed: the apply threads have their own
    database sessions, which see only committed rows)."""
    pairs = []
    for name in ("Threads", "Serial"):
        district = DistrictFactory(timezone="America/Chicago", name=name)
        pairs.append(
            SISConnection.objects.create(
                district=district, name=name, provider="powerschool", base_url="http://127.0.0.1:9"
            )
        )
    return pairs


def test_creates_applied_by_two_threads_equal_those_applied_by_one(
    two_connections, settings, monkeypatch
):
    threaded, serial = two_connections
    source = FakeSource(page_size=40)
    district_records(source, schools=2, students=80)
    # Some students also attend a second school: two enrollments of one student, which the
    # threads must keep together (their student's school is refreshed with each).
    for i in range(0, 80, 5):
        source.put(
            EnrollmentRecord(
                source_id=f"enr-{i}-b",
                student_id=f"stu-{i}",
                school_id=f"sch-{(i + 1) % 2}",
                entry_date=dt.date(2026, 8, 24),
                primary=False,
            )
        )
    calls: list[int] = []
    in_threads = apply_driver._apply_rank_in_threads

    def counted(ctx, rank, *args, **kwargs):
        calls.append(rank)
        return in_threads(ctx, rank, *args, **kwargs)

    monkeypatch.setattr(apply_driver, "_apply_rank_in_threads", counted)

    def both(batch_size: int) -> tuple[SyncRun, SyncRun]:
        settings.SYNC_BATCH_SIZE = batch_size  # many batches per rank: the threads interleave
        calls.clear()
        settings.SYNC_APPLY_THREADS = 2
        run = sync(threaded, source)
        assert run.status == RunStatus.COMPLETED, run.error_summary
        assert change_rank(SPECS["enrollment"], "create") in calls
        settings.SYNC_APPLY_THREADS = 1
        calls.clear()
        other = sync(serial, source)
        assert other.status == RunStatus.COMPLETED, other.error_summary
        assert not calls
        assert run.counts == other.counts
        assert run.changes_applied == other.changes_applied == run.changes_total
        assert _roster(threaded) == _roster(serial)
        return run, other

    run, _ = both(7)
    for model in (Student, Enrollment):
        mine = model.objects.filter(**_district_filter(model, threaded))
        theirs = model.objects.filter(**_district_filter(model, serial))
        assert mine.count() == theirs.count() > 0
        assert model.history.filter(id__in=mine.values("id")).count() == mine.count()
    assert not SyncChange.objects.filter(run=run, state="staged").exists()
    # Transfers (from both schools, under the safety share of deactivations): the old span
    # vanishes, a new primary span opens at the other school.
    transfers = (3, 22, 41, 62)
    for i in transfers:
        source.drop("enrollment", f"enr-{i}")
        source.put(
            EnrollmentRecord(
                source_id=f"enr-{i}-t",
                student_id=f"stu-{i}",
                school_id=f"sch-{(i + 1) % 2}",
                entry_date=dt.date(2026, 10, 5),
            )
        )
    run, _ = both(1)
    assert run.counts["enrollment"] == {"create": 4, "deactivate": 4, "unchanged": 92}
    schools = {local_id: school for local_id, school, _ in _roster(threaded)}
    assert schools["S00003"] == "School 0"
    assert schools["S00022"] == "School 1"


def _roster(connection: SISConnection) -> list[tuple[object, ...]]:
    """Every student of the connection's district with its school and spans, by local id."""
    district = connection.district
    spans: dict[str, list[tuple[object, ...]]] = {}
    for local_id, *span in Enrollment.objects.filter(student__district=district).values_list(
        "student__local_id", "school__name", "entry_date", "exit_date", "exit_reason", "is_primary"
    ):
        spans.setdefault(local_id, []).append(tuple(span))
    return sorted(
        (local_id, school, sorted(spans.get(local_id, []), key=repr))
        for local_id, school in Student.objects.filter(district=district).values_list(
            "local_id", "school__name"
        )
    )


def _district_filter(model: type, connection: SISConnection) -> dict[str, object]:
    if model is Student:
        return {"district": connection.district}
    return {"school__district": connection.district}
