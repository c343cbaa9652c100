"""Identity churn (an SIS re-keys everyone) and the Grand Bend sample district over OneRoster
1.2."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.db.models import Count

from attendance.models import (
    Enrollment,
    School,
    Section,
    SectionEnrollment,
    Student,
    StudentGuardian,
)
from syncing.engine.run import run_execute
from syncing.models import Approval, IdentityMatch, QuarantinedRecord, RunStatus, SourceLink
from syncing.services import identity_match_confirm, run_approve, sync_start
from tests.factories import UserFactory
from tests.syncing.helpers import rekey_students, sync
from tests.syncing.sandbox import connection_for, sandbox_for


def test_a_rekeyed_sis_is_matched_by_confirmed_suggestions_never_duplicated(connection, source):
    sync(connection, source)
    rekey_students(source)  # the upgrade gives every student a new source id
    run = sync(connection, source)
    assert run.status == RunStatus.HELD  # every old id vanished at once
    assert Student.objects.count() == 60  # no duplicates created
    matches = IdentityMatch.objects.filter(status="suggested", entity="student")
    assert matches.count() == 60
    match = matches.get(new_source_id="v2-stu-4")
    assert set(match.evidence["same"]) >= {"local_id", "legal_first_name", "birth_date"}

    admin = UserFactory()
    run_approve(run=run, user=admin, approval=Approval.REJECT, enqueue=False)
    for match in matches:
        identity_match_confirm(match=match, user=admin)
    history = Student.history.count()
    run = sync(connection, source)
    # The dependents now point at the new ids: many updates at once, so an admin approves.
    if run.status == RunStatus.HELD:
        run_approve(run=run, user=admin, approval=Approval.ALL, enqueue=False)
        run = run_execute(run.pk, source=source)
    assert run.status == RunStatus.COMPLETED, run.held_reason
    assert run.counts["student"] == {"unchanged": 60}
    assert Student.objects.count() == 60
    assert Student.objects.filter(active=True).count() == 60
    assert Student.history.count() == history  # re-keying rewrote no student
    assert Enrollment.objects.count() == 60  # no span closed and reopened
    assert SourceLink.objects.filter(entity="student", active=True).count() == 60
    assert not SourceLink.objects.filter(
        entity="student", active=True, source_id__startswith="stu-"
    ).exists()


GRAND_BEND = Path(settings.SIS_SANDBOX_GRAND_BEND_PATH)


@pytest.mark.slow
@pytest.mark.skipif(not GRAND_BEND.exists(), reason="Grand Bend dataset not present")
def test_grand_bend_over_oneroster_12(district):
    with sandbox_for(
        provider="oneroster-1.2", dataset="grand-bend", dataset_path=str(GRAND_BEND)
    ) as sandbox:
        connection = connection_for(sandbox, district)
        run, _ = sync_start(connection=connection, enqueue=False)
        run = run_execute(run.pk)
    assert run.status in (RunStatus.COMPLETED, RunStatus.COMPLETED_WITH_QUARANTINE), (
        run.error_summary
    )
    assert School.objects.count() == 3
    assert Student.objects.count() == 960
    assert StudentGuardian.objects.count() == 1872
    # MasterSchedule.xml lists 532 sections under 520 distinct SectionIdentifiers (the
    # sandbox's source ids), each with its own number; and the class schedule.
    assert Section.objects.count() == 520
    assert SectionEnrollment.objects.count() > 0
    # Three guardians have an address with a space in it: applied without it, and reported.
    # Nothing else is quarantined.
    assert set(QuarantinedRecord.objects.values_list("entity", "reason_code")) <= {
        ("guardian", "invalid_email")
    }
    duplicates = Student.objects.values("local_id").annotate(n=Count("id")).filter(n__gt=1).count()
    assert duplicates == 0
    assert (
        StudentGuardian.objects.values("student", "guardian")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
        == 0
    )
