"""A finished run's staged changes and page records are deleted after the retention period
(syncing/retention.py); its counts, the domain rows and their history stay, active runs are
never touched, and a second purge deletes nothing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from syncing.models import (
    QuarantinedRecord,
    QuarantineStatus,
    RunStatus,
    SyncChange,
    SyncPage,
    SyncRun,
)
from syncing.retention import runs_due_for_purge, sync_run_details_purge
from syncing.tasks import sync_run_details_purge as purge_task
from tests.factories import UserFactory
from tests.syncing.helpers import history_counts, row_counts, sync


def _age(run: SyncRun, days: int) -> None:
    SyncRun.objects.filter(pk=run.pk).update(finished_at=timezone.now() - dt.timedelta(days=days))


def _kept(run: SyncRun) -> tuple[int, int]:
    return (
        SyncChange.objects.filter(run_id=run.pk).count(),
        SyncPage.objects.filter(run_id=run.pk).count(),
    )


def test_an_old_run_loses_its_working_rows_and_keeps_its_counts(connection, source, settings):
    settings.SYNC_RUN_DETAIL_RETENTION_DAYS = 30
    old = sync(connection, source)
    source.put(dataclasses.replace(source.get("student", "stu-0"), first_name="Ada"))
    recent = sync(connection, source)
    changes, pages = _kept(old)
    assert changes > 20 and pages > 1  # several batches of 7 below, several pages
    assert _kept(recent)[0] >= 1
    recent_kept = _kept(recent)
    _age(old, 31)
    _age(recent, 29)
    counts = SyncRun.objects.get(pk=old.pk).counts
    rows, history = row_counts(), history_counts()

    assert list(runs_due_for_purge()) == [SyncRun.objects.get(pk=old.pk)]
    done = []
    result = sync_run_details_purge(batch_size=7, progress=done.append)

    assert result.as_dict() == {"runs": 1, "changes": changes, "pages": pages, "quarantined": 0}
    assert done == [1]
    assert _kept(old) == (0, 0)
    assert _kept(recent) == recent_kept
    old.refresh_from_db()
    assert old.details_purged_at is not None
    assert old.counts == counts and old.status == RunStatus.COMPLETED
    assert (row_counts(), history_counts()) == (rows, history)
    # Run again: nothing is due, nothing is deleted.
    assert sync_run_details_purge(batch_size=7).as_dict() == {
        "runs": 0,
        "changes": 0,
        "pages": 0,
        "quarantined": 0,
    }
    # The next sync still works against the crosswalk (the links were not touched).
    assert sync(connection, source).status == RunStatus.COMPLETED


def test_active_runs_and_open_quarantine_stay_review_samples_and_closed_records_go(
    connection, district
):
    long_ago = timezone.now() - dt.timedelta(days=400)
    held = SyncRun.objects.create(
        district=district, connection=connection, mode="full", trigger="admin", status="held"
    )
    SyncRun.objects.filter(pk=held.pk).update(created_at=long_ago, started_at=long_ago)
    SyncChange.objects.create(run=held, entity="student", source_id="s1", action="deactivate")
    SyncPage.objects.create(run=held, entity="student", number=1, seen_link_ids=[1, 2])
    decided = SyncRun.objects.create(
        district=district,
        connection=connection,
        mode="full",
        trigger="admin",
        status=RunStatus.CANCELLED,
        finished_at=long_ago,
        held_details={
            "totals": {"student": {"deactivate": 1}},
            "breaches": [{"text": "student: 1 deactivation"}],
            "samples": {"student": {"deactivate": [{"source_id": "s9", "diff": {}}]}},
        },
    )
    SyncChange.objects.create(run=decided, entity="student", source_id="s9", action="deactivate")

    parked = {
        status: QuarantinedRecord.objects.create(
            district=district,
            connection=connection,
            run=decided,
            entity="student",
            source_id=f"q-{status}",
            payload={"givenName": "Ada"},
            reason_code="bad_date",
            status=status,
        )
        for status in QuarantineStatus.values
    }
    QuarantinedRecord.objects.filter(status=QuarantineStatus.DISCARDED).update(updated_at=long_ago)

    result = sync_run_details_purge(retention_days=1)

    assert result.as_dict() == {"runs": 1, "changes": 1, "pages": 0, "quarantined": 1}
    assert _kept(held) == (1, 1)
    held.refresh_from_db()
    assert held.details_purged_at is None
    # Closed long ago: gone. Open, or closed within the period: kept.
    assert set(QuarantinedRecord.objects.values_list("pk", flat=True)) == {
        parked[QuarantineStatus.OPEN].pk,
        parked[QuarantineStatus.RESOLVED].pk,
    }
    decided.refresh_from_db()
    assert decided.held_details == {
        "totals": {"student": {"deactivate": 1}},
        "breaches": [{"text": "student: 1 deactivation"}],
    }


def test_the_command_the_task_and_the_admin(client, connection, source):
    run = sync(connection, source)
    changes, pages = _kept(run)
    _age(run, 3)
    client.force_login(UserFactory(username="root", is_superuser=True))
    url = reverse("admin:syncing_syncrun_change", args=[run.pk])
    assert b"kept until" in client.get(url).content
    out = io.StringIO()
    call_command("purge_sync_runs", "--days", "5", "--json", stdout=out)
    assert json.loads(out.getvalue()) == {"runs": 0, "changes": 0, "pages": 0, "quarantined": 0}
    out = io.StringIO()
    call_command("purge_sync_runs", "--days", "2", "--json", stdout=out)
    assert json.loads(out.getvalue()) == {
        "runs": 1,
        "changes": changes,
        "pages": pages,
        "quarantined": 0,
    }
    page = client.get(url).content
    assert b"(retention period ended; the counts above are kept)" in page
    assert b"kept until" not in page
    with pytest.raises(CommandError, match="at least 1"):
        call_command("purge_sync_runs", "--days", "0")
    # The scheduled task uses the setting (30 days): a 3-day-old run is not due.
    second = sync(connection, source)
    _age(second, 3)
    assert purge_task.apply().get() == {"runs": 0, "changes": 0, "pages": 0, "quarantined": 0}
    assert _kept(second)[1] > 0
