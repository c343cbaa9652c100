"""Three-way merges: per field, SIS-only changes apply, local-only changes stay (and go to the
write-back outbox when the connector can write them), and both-moved is a Conflict settled by
the field policy."""

from __future__ import annotations

import pytest

from attendance.models import Student
from attendance.services import student_update
from syncing.models import Conflict, ConflictStatus, FieldPolicy, Policy, WriteBackItem
from syncing.services import conflict_resolve
from tests.factories import UserFactory
from tests.syncing.helpers import sync


@pytest.fixture
def synced(connection, source):
    source.enabled_capabilities = frozenset({"read_roster", "write_demographics"})
    sync(connection, source)
    return Student.objects.get(local_id="S00001")


def _both_move(source, student, *, sis="SisName", local="LocalName"):
    student_update(student=student, legal_last_name=local)
    source.get("student", "stu-1").last_name = sis


def test_only_the_sis_moved_applies(connection, source, synced):
    source.get("student", "stu-1").last_name = "FromSis"
    sync(connection, source)
    synced.refresh_from_db()
    assert synced.legal_last_name == "FromSis"
    assert not Conflict.objects.exists()


def test_only_the_local_value_moved_is_kept_and_queued_for_write_back(connection, source, synced):
    student_update(student=synced, legal_last_name="EditedHere")
    source.get("student", "stu-1").grade_level = "06"  # the SIS changes something else
    sync(connection, source)
    synced.refresh_from_db()
    assert synced.legal_last_name == "EditedHere"
    assert synced.grade_level == "06"
    item = WriteBackItem.objects.get(object_id=synced.pk, target="legal_last_name")
    assert item.value == "EditedHere" and item.status == "pending"
    # Queuing the same value again is a no-op (one row per object and target).
    source.get("student", "stu-1").grade_level = "07"
    sync(connection, source)
    assert WriteBackItem.objects.filter(object_id=synced.pk).count() == 1
    assert not Conflict.objects.exists()


def test_both_moved_to_the_same_value_is_agreement(connection, source, synced):
    _both_move(source, synced, sis="Same", local="Same")
    sync(connection, source)
    assert not Conflict.objects.exists()


def test_sis_wins_policy_applies_the_sis_value_and_records_the_conflict(
    connection, source, synced, district
):
    FieldPolicy.objects.create(
        district=district, entity="student", field="legal_last_name", policy=Policy.SIS_WINS
    )
    _both_move(source, synced)
    sync(connection, source)
    synced.refresh_from_db()
    assert synced.legal_last_name == "SisName"
    conflict = Conflict.objects.get()
    assert conflict.status == ConflictStatus.RESOLVED_SIS
    assert (conflict.base_value, conflict.sis_value, conflict.local_value) == (
        "Last1", "SisName", "LocalName",
    )  # fmt: skip


def test_local_wins_policy_keeps_the_local_value_and_writes_it_back(
    connection, source, synced, district
):
    FieldPolicy.objects.create(
        district=district,
        connection=connection,
        entity="student",
        field="legal_last_name",
        policy=Policy.LOCAL_WINS,
    )
    _both_move(source, synced)
    sync(connection, source)
    synced.refresh_from_db()
    assert synced.legal_last_name == "LocalName"
    assert Conflict.objects.get().status == ConflictStatus.RESOLVED_LOCAL
    assert WriteBackItem.objects.get(target="legal_last_name").value == "LocalName"


def test_review_policy_holds_the_field_and_the_admin_resolution_is_applied_and_audited(
    connection, source, synced
):
    _both_move(source, synced)
    sync(connection, source)
    synced.refresh_from_db()
    assert synced.legal_last_name == "LocalName"  # held: nothing decided silently
    conflict = Conflict.objects.get(status=ConflictStatus.OPEN)
    # Syncing again does not duplicate the open conflict.
    source.get("student", "stu-1").grade_level = "06"
    sync(connection, source)
    assert Conflict.objects.filter(status=ConflictStatus.OPEN).count() == 1

    admin = UserFactory()
    history_before = synced.history.count()
    conflict_resolve(conflict=conflict, user=admin, choice="sis")
    synced.refresh_from_db()
    assert synced.legal_last_name == "SisName"
    latest = synced.history.first()
    assert synced.history.count() == history_before + 1
    assert latest.history_user_id == admin.pk
    assert latest.history_change_reason == f"Conflict {conflict.pk} resolved"
    conflict.refresh_from_db()
    assert conflict.status == ConflictStatus.RESOLVED_SIS
    assert conflict.resolved_by == admin and conflict.resolved_at is not None
    # Agreed with the SIS now: the next sync changes nothing.
    before = synced.history.count()
    sync(connection, source)
    assert synced.history.count() == before
