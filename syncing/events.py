"""SIS change events (PowerSchool event subscriptions, any signed webhook): each becomes a
targeted sync of the records it names.

An event that arrives while a run of its connection is pending, running or held is not lost:
it is kept as a :class:`~syncing.models.PendingEvent` (one row per record, so repeats
coalesce) and all kept records are synced in one targeted run once the active run is over —
right after the run finishes (``syncing.tasks.sync_run_execute``) and, for runs that end any
other way (rejected, cancelled, run from the command line), by the periodic drain.

A record the connector cannot re-fetch on its own (counted as ``not_refetchable`` in the
targeted run) is read by a delta run started right after the targeted run, when the connection
can do deltas; otherwise by the connection's next scheduled sync.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, transaction

from syncing.models import (
    ACTIVE_STATUSES,
    Mode,
    PendingEvent,
    RunStatus,
    SyncRun,
    SyncSchedule,
    Trigger,
)
from syncing.schedules import scheduled_full_owed_start

logger = logging.getLogger(__name__)

#: records per targeted run; more wait for the next one
MAX_TARGETS = 500


def sync_events_receive(*, connection: Any, targets: list[list[str]]) -> tuple[SyncRun, bool, bool]:
    """Start a targeted run for ``targets`` ([[entity, source id], ...]) or, when a run of the
    connection is active, keep them for after it. Returns (run, created, kept)."""
    from syncing.services import sync_start

    if PendingEvent.objects.filter(connection=connection).exists():
        # Earlier events still wait: join them, so records sync in the order they arrived.
        run = _active_run(connection.pk)
        if run is not None:
            pending_events_keep(connection, targets)
            return run, False, True
    now, later = targets[:MAX_TARGETS], targets[MAX_TARGETS:]
    run, created = sync_start(
        connection=connection,
        mode=Mode.TARGETED,
        trigger=Trigger.EVENT,
        target_entity=now[0][0],
        target_source_id=now[0][1],
        targets=now,
    )
    if created:
        if later:  # synced by the targeted run that follows this one
            pending_events_keep(connection, later)
        return run, True, False
    pending_events_keep(connection, targets)
    return run, False, True


def pending_events_keep(connection: Any, targets: list[list[str]]) -> None:
    """Keep records ([[entity, source id], ...]) for the targeted run after the active one."""
    rows = [
        PendingEvent(
            district_id=connection.district_id,
            connection_id=connection.pk,
            entity=entity,
            source_id=source_id,
        )
        for entity, source_id in targets
    ]
    # The unique (connection, entity, source id) coalesces a record reported many times.
    PendingEvent.objects.bulk_create(rows, ignore_conflicts=True)


def _active_run(connection_id: int) -> SyncRun | None:
    return (
        SyncRun.objects.filter(connection_id=connection_id, status__in=ACTIVE_STATUSES)
        .order_by("-id")
        .first()
    )


def sync_run_followup(*, run: SyncRun) -> SyncRun | None:
    """What follows a finished run: the scheduled full sync that waited for it; else a delta
    when a targeted run could not re-fetch some of its records; else the targeted run of the
    events kept meanwhile (each one's own follow-up starts the next). Returns the run started,
    if any."""
    from sis.services import sis_connection_capabilities
    from syncing.services import sync_start

    owed = scheduled_full_owed_start(connection_id=run.connection_id)
    if owed is not None:  # reads everything, the records below included
        return owed
    applied = run.status in (RunStatus.COMPLETED, RunStatus.COMPLETED_WITH_QUARANTINE)
    if run.mode == Mode.TARGETED and run.entities_not_refetched and applied and not run.dry_run:
        connection = run.connection
        if connection.enabled and "delta" in sis_connection_capabilities(connection):
            delta, created = sync_start(
                connection=connection, mode=Mode.DELTA, trigger=Trigger.EVENT
            )
            if created:
                logger.info("delta after a targeted run", extra={"run_id": delta.pk})
                return delta
    return sync_events_drain(connection_id=run.connection_id)


def sync_events_drain(*, connection_id: int) -> SyncRun | None:
    """Start one targeted run for the kept events of a connection, if no run is active.
    Returns the run started (None: nothing kept, or a run is still active)."""
    from sis.models import SISConnection
    from syncing.services import sync_start

    with transaction.atomic():
        events = list(
            PendingEvent.objects.select_for_update(skip_locked=True)
            .filter(connection_id=connection_id)
            .order_by("id")[:MAX_TARGETS]
        )
        if not events or _active_run(connection_id) is not None:
            return None
        connection = SISConnection.objects.filter(pk=connection_id, enabled=True).first()
        if connection is None:
            return None
        targets = [[event.entity, event.source_id] for event in events]
        try:
            run, created = sync_start(
                connection=connection,
                mode=Mode.TARGETED,
                trigger=Trigger.EVENT,
                target_entity=targets[0][0],
                target_source_id=targets[0][1],
                targets=targets,
            )
        except IntegrityError:  # pragma: no cover - a run started in between; next drain
            return None
        if not created:
            return None
        PendingEvent.objects.filter(pk__in=[event.pk for event in events]).delete()
    logger.info("kept sync events started", extra={"run_id": run.pk, "records": len(targets)})
    return run


def sync_waiting_start_all() -> int:
    """The periodic drain: for every connection with no active run, the scheduled full sync
    it owes, else its kept events. Returns how many runs started."""
    started = 0
    owing = set(
        SyncSchedule.objects.exclude(full_owed_key="").values_list("connection_id", flat=True)
    )
    waiting = set(PendingEvent.objects.values_list("connection_id", flat=True))
    for connection_id in sorted(owing | waiting):
        run = scheduled_full_owed_start(connection_id=connection_id)
        if run is None:
            run = sync_events_drain(connection_id=connection_id)
        started += run is not None
    return started
