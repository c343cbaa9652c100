"""Retention of a finished run's working rows.

A run stages every change it applies as a SyncChange row (the record's values: names, birth
dates, contact details) and records every page it fetched, with the crosswalk ids it saw, as a
SyncPage row. Both exist to check, apply and resume the run; once it has finished they only
feed its detail page, and a first load of a large district leaves over a million of them. After
``SYNC_RUN_DETAIL_RETENTION_DAYS`` they are deleted, and so are the change samples shown to the
admin who reviewed a held run, and quarantined records closed (resolved by a re-drive, or
discarded) as long ago: their payload is the SIS record as it came. The run row keeps its
counts, timings, errors and decision, the domain's history tables keep what changed, open
quarantined records and identity suggestions stay in their queues, and conflicts stay: a
decided one is the audit of who chose which value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from syncing.models import (
    FINISHED_STATUSES,
    QuarantinedRecord,
    QuarantineStatus,
    SyncChange,
    SyncPage,
    SyncRun,
)


@dataclass
class PurgeResult:
    runs: int = 0
    changes: int = 0
    pages: int = 0
    quarantined: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _period(retention_days: int | None = None) -> dt.timedelta:
    days = retention_days if retention_days is not None else settings.SYNC_RUN_DETAIL_RETENTION_DAYS
    return dt.timedelta(days=days)


def details_kept_until(run: SyncRun) -> dt.datetime | None:
    """When a finished run's working rows become due for deletion (None while it is active)."""
    return None if run.finished_at is None else run.finished_at + _period()


def runs_due_for_purge(
    *, now: dt.datetime | None = None, retention_days: int | None = None
) -> QuerySet[SyncRun]:
    """Finished runs older than the retention period whose working rows are still kept. A
    pending, running or held run is never due, however old: it still needs them."""
    return SyncRun.objects.filter(
        status__in=FINISHED_STATUSES,
        finished_at__lt=(now or timezone.now()) - _period(retention_days),
        details_purged_at__isnull=True,
    ).order_by("finished_at", "id")


def sync_run_details_purge(
    *,
    now: dt.datetime | None = None,
    retention_days: int | None = None,
    batch_size: int = 10_000,
    progress: Callable[[int], None] | None = None,
) -> PurgeResult:
    """Delete the staged changes and page records of every run due (see
    :func:`runs_due_for_purge`), ``batch_size`` changes per transaction so that a run of a
    million changes never holds one long transaction, and the quarantined records closed
    before the same cutoff. Stopped half-way, it goes on from where it was; run again, it
    deletes nothing more. ``progress`` is called with 1 per run done."""
    now = now or timezone.now()  # one cutoff for the runs and the quarantine
    result = PurgeResult()
    result.quarantined = QuarantinedRecord.objects.filter(
        status__in=(QuarantineStatus.RESOLVED, QuarantineStatus.DISCARDED),
        updated_at__lt=now - _period(retention_days),
    ).delete()[0]
    run_ids = list(
        runs_due_for_purge(now=now, retention_days=retention_days).values_list("id", flat=True)
    )
    for run_id in run_ids:
        result.changes += _changes_delete(run_id, batch_size)
        with transaction.atomic():
            result.pages += SyncPage.objects.filter(run_id=run_id).delete()[0]
            run = SyncRun.objects.select_for_update().get(pk=run_id)
            run.held_details = {k: v for k, v in run.held_details.items() if k != "samples"}
            run.details_purged_at = timezone.now()
            run.save(update_fields=["held_details", "details_purged_at", "updated_at"])
        result.runs += 1
        if progress is not None:
            progress(1)
    return result


def _changes_delete(run_id: int, batch_size: int) -> int:
    deleted = 0
    while True:
        # Through the run's (run, rank, id) index; the change table has no dependants, so
        # this is one DELETE per batch, not a collector loading the rows.
        batch = SyncChange.objects.filter(run_id=run_id).order_by().values("id")[:batch_size]
        count = SyncChange.objects.filter(pk__in=batch).delete()[0]
        deleted += count
        if count < batch_size:
            return deleted
