"""Celery tasks of the sync engine: thin callers of the engine and services.

``acks_late`` and ``reject_on_worker_lost`` (config/celery.py) hand the message of a worker
killed mid-run to another worker; ``run_execute`` resumes from the run's checkpoint.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings

from core.tasks import BaseTask


# Its own time limits, above the visibility timeout every other task stays under: a big district
# on a slow SIS syncs for hours, and the copy the broker hands out after the visibility timeout
# finds the connection's lock taken and leaves the run to its worker (run_execute).
@shared_task(
    base=BaseTask,
    name="syncing.tasks.sync_run_execute",
    soft_time_limit=settings.SYNC_RUN_TIME_LIMIT_SECONDS,
    time_limit=settings.SYNC_RUN_TIME_LIMIT_SECONDS + 300,
)
def sync_run_execute(run_id: int) -> dict[str, Any]:
    from syncing.engine.run import run_execute
    from syncing.events import sync_run_followup
    from syncing.models import FINISHED_STATUSES

    run = run_execute(run_id)
    if run.status in FINISHED_STATUSES:
        # Events that arrived during the run wait for it (and a targeted run may need a delta).
        sync_run_followup(run=run)
    return {"run": run.pk, "status": run.status}


@shared_task(base=BaseTask, name="syncing.tasks.sync_events_drain")
def sync_events_drain() -> int:
    """Periodic, every minute: hand runs no worker is executing back to the workers, then
    start what waited for the active run of connections whose run ended without the task
    above (rejected, cancelled, run from the command line): an owed scheduled full sync, else
    the kept events. Returns how many runs it resumed or started."""
    from syncing.events import sync_waiting_start_all
    from syncing.services import stranded_runs_resume

    return len(stranded_runs_resume()) + sync_waiting_start_all()


@shared_task(base=BaseTask, name="syncing.tasks.writeback_send_due")
def writeback_send_due() -> dict[str, int]:
    """Send and verify the write-back items that are due (the ``writeback`` queue)."""
    from syncing.writeback import writeback_send_due as send

    return send()


@shared_task(base=BaseTask, name="syncing.tasks.sync_scheduled")
def sync_scheduled(connection_id: int, mode: str, slot: str = "") -> dict[str, Any]:
    """Started by a django-celery-beat periodic task. The idempotency key is the firing the
    message belongs to, so a beat firing twice, or its message delivered again, starts one
    run."""
    from syncing.schedules import scheduled_sync_start

    run, created = scheduled_sync_start(connection_id=connection_id, mode=mode, slot=slot)
    return {"run": run.pk if run else None, "created": created}


@shared_task(base=BaseTask, name="syncing.tasks.conflicts_digest")
def conflicts_digest() -> int:
    from syncing.services import conflicts_digest_send

    return conflicts_digest_send()


@shared_task(base=BaseTask, name="syncing.tasks.sync_run_details_purge")
def sync_run_details_purge() -> dict[str, int]:
    """Delete the staged changes and page records of runs finished more than
    SYNC_RUN_DETAIL_RETENTION_DAYS ago, and quarantined records closed as long ago
    (idempotent)."""
    from syncing.retention import sync_run_details_purge as purge

    return purge().as_dict()
