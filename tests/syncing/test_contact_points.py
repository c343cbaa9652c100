"""A synced guardian's roster phone and e-mail are its SIS contact points, so an absence
reaches them as soon as the sync commits, and a number the SIS replaced is no longer texted
(notifications.receivers → contact_points_sync_from_guardians). Sandbox over real HTTP,
real PostgreSQL."""

from __future__ import annotations

import pytest
from django.db.models import Q

from attendance.models import AttendanceStatus, Guardian, StudentGuardian
from attendance.services import attendance_record, guardian_update
from notifications.models import Category, ContactPoint, ContactSource
from notifications.services.contacts import (
    contact_point_add,
    contact_points_sync_from_guardians,
    contacts_opt_out,
)
from notifications.services.events import attendance_changes_handle
from syncing.models import RunStatus, SourceLink
from tests.factories import GuardianFactory
from tests.syncing.helpers import sync
from tests.syncing.sandbox import connection_for, sandbox_for


def _sis_points() -> set[tuple[int, str, str]]:
    return set(
        ContactPoint.objects.filter(
            source=ContactSource.SIS, active=True, verified=True
        ).values_list("guardian_id", "kind", "value")
    )


def _roster_contacts() -> set[tuple[int, str, str]]:
    wanted = set()
    for guardian_id, phone, email in Guardian.objects.values_list("id", "mobile_phone", "email"):
        if phone:
            wanted.add((guardian_id, "sms", phone))
        if email:
            wanted.add((guardian_id, "email", email.lower()))
    return wanted


def test_a_synced_roster_is_reachable_and_follows_the_sis(district):
    with sandbox_for(students=60) as sandbox:
        connection = connection_for(sandbox, district)
        run = sync(connection, None)
        assert run.status == RunStatus.COMPLETED, run.error_summary
        roster = _roster_contacts()
        assert len(roster) > Guardian.objects.count()  # phones and e-mails
        assert _sis_points() == roster

        # An absence of a synced student is planned for its guardians' synced contacts.
        link = (
            StudentGuardian.objects.filter(contact_allowed=True, student__active=True)
            .exclude(guardian__mobile_phone="")
            .select_related("student__district", "guardian")
            .first()
        )
        assert link is not None
        # (Seeded by a migration; a transactional test before this one may have flushed it.)
        Category.objects.update_or_create(
            code=Category.ATTENDANCE, defaults={"name": "Attendance", "default_channels": ["sms"]}
        )
        record, _ = attendance_record(
            student=link.student, date=district.today(), status=AttendanceStatus.ABSENT
        )
        planned = attendance_changes_handle(record_ids=[record.pk], enqueue=False)
        for_guardian = [n for n in planned if n.guardian_id == link.guardian_id]
        assert [n.status for n in for_guardian] == ["pending"], for_guardian[0].summary
        texted = ContactPoint.objects.get(pk=for_guardian[0].plan[0]["contact_point"])
        assert texted.value == link.guardian.mobile_phone

        # A day at the SIS: one guardian's number changes, another guardian is deleted.
        changes = sandbox.control("advance", {"days": 1})["changes"]
        run = sync(connection, None)
        assert run.status == RunStatus.COMPLETED, run.error_summary
        phone = next(c for c in changes if c["kind"] == "guardian_phone")
        moved = Guardian.objects.get(
            pk=SourceLink.objects.get(entity="guardian", source_id=phone["id"]).object_id
        )
        points = ContactPoint.objects.filter(guardian=moved, kind="sms")
        assert {(p.value, p.active) for p in points} >= {(moved.mobile_phone, True)}
        assert points.filter(active=True).count() == 1  # the old number is no longer texted
        assert _sis_points() == _roster_contacts()

        # An identical sync writes no contact point.
        before = list(ContactPoint.objects.values_list("id", "updated_at").order_by("id"))
        run = sync(connection, None)
        assert run.status == RunStatus.COMPLETED
        assert list(ContactPoint.objects.values_list("id", "updated_at").order_by("id")) == before


@pytest.mark.django_db
def test_roster_contacts_keep_consent_and_leave_added_contacts_alone(district):
    guardian = GuardianFactory(district=district)
    sms = ContactPoint.objects.get(guardian=guardian, kind="sms", source=ContactSource.SIS)
    assert sms.verified and sms.active
    # A number opted out for one guardian starts opted out for another who has it.
    contacts_opt_out(kind="sms", value=guardian.mobile_phone, source="stop", keyword="STOP")
    sibling = GuardianFactory(district=district, mobile_phone=guardian.mobile_phone)
    assert ContactPoint.objects.get(guardian=sibling, kind="sms").opted_out
    # A contact the guardian added in the portal is theirs, whatever the roster says.
    added = contact_point_add(
        guardian=guardian, kind="sms", raw="+1 312 555 0999", source=ContactSource.PORTAL
    )
    # The roster's e-mail changes: the old address stops, the new one starts.
    old_email = guardian.email
    guardian_update(guardian=guardian, email="new.address@example.org")
    emails = ContactPoint.objects.filter(guardian=guardian, kind="email")
    assert {(p.value, p.active) for p in emails} == {
        (old_email, False),
        ("new.address@example.org", True),
    }
    added.refresh_from_db()
    assert added.active and added.source != ContactSource.SIS
    sms.refresh_from_db()
    assert sms.opted_out  # the roster never resets consent
    # Nothing left to do: a second pass changes nothing.
    assert contact_points_sync_from_guardians(guardian_ids=[guardian.pk, sibling.pk]) == 0
    # The roster drops the mobile number: its point goes inactive, the added one stays.
    guardian_update(guardian=guardian, mobile_phone_raw="")
    active_sms = ContactPoint.objects.filter(guardian=guardian, kind="sms", active=True)
    assert list(active_sms) == [added]
    # ...and a number that comes back is the same point again.
    guardian_update(guardian=guardian, mobile_phone_raw=sms.raw_value)
    assert ContactPoint.objects.filter(Q(pk=sms.pk) | Q(pk=added.pk), active=True).count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_migration_builds_contact_points_of_guardians_written_before():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("notifications", "0003_drop_indexes_covered_by_composites")]
    after = [("notifications", "0004_contact_points_from_roster")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    district = old.get_model("attendance", "District").objects.create(name="Old", slug="old")
    guardians = old.get_model("attendance", "Guardian").objects
    points = old.get_model("notifications", "ContactPoint").objects
    first = guardians.create(
        district=district,
        first_name="A",
        last_name="B",
        email="A.B@Example.org",
        mobile_phone_raw="(312) 555-0100",
        mobile_phone="+13125550100",
    )
    # The same number on another guardian, opted out; and a guardian with no contacts.
    other = guardians.create(district=district, first_name="C", last_name="D")
    points.create(
        guardian=other,
        kind="sms",
        value="+13125550100",
        source="admin",
        opted_out=True,
        opt_out_source="stop",
    )
    guardians.create(district=district, first_name="E", last_name="F")
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    built = ContactPoint.objects.filter(guardian_id=first.pk).order_by("kind")
    assert [(p.kind, p.value, p.source, p.verified, p.opted_out) for p in built] == [
        ("email", "a.b@example.org", "sis", True, False),
        ("sms", "+13125550100", "sis", True, True),
    ]
    assert ContactPoint.objects.count() == 3
