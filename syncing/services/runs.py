"""Runs: start one (one per connection at a time), decide a held one, cancel, and hand
stranded runs to the workers again."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import ApplicationError, ConflictError
from core.tasks import enqueue_on_commit
from syncing.entities import SPECS
from syncing.locks import connection_lock_held
from syncing.models import (
    ACTIVE_STATUSES,
    Approval,
    ChangeAction,
    ChangeState,
    Mode,
    Phase,
    RunStatus,
    SyncChange,
    SyncRun,
    Trigger,
)
from syncing.services.alerts import run_notify

logger = logging.getLogger(__name__)


def sync_start(
    *,
    connection: Any,
    mode: str = Mode.FULL,
    trigger: str = Trigger.ADMIN,
    dry_run: bool = False,
    user: Any = None,
    target_entity: str = "",
    target_source_id: str = "",
    idempotency_key: str | None = None,
    targets: list[list[str]] | None = None,
    enqueue: bool = True,
) -> tuple[SyncRun, bool]:
    """Create a run for ``connection`` and queue it. Returns (run, created).

    While a run of the connection is pending, running or held, starting another is a no-op
    that returns that run; so is a repeated ``idempotency_key`` (a beat that fires twice).
    """
    if mode not in Mode.values:
        raise ApplicationError(f"Unknown sync mode {mode!r}.", code="invalid_mode")
    if mode == Mode.TARGETED and (target_entity not in SPECS or not target_source_id):
        raise ApplicationError(
            "A targeted sync needs a known entity and a source id.", code="invalid_target"
        )
    if not getattr(connection, "enabled", True):
        raise ApplicationError("The connection is disabled.", code="connection_disabled")
    if idempotency_key:
        existing = SyncRun.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing, False
    try:
        with transaction.atomic():
            run = SyncRun.objects.create(
                district_id=connection.district_id,
                connection=connection,
                mode=mode,
                trigger=trigger,
                dry_run=dry_run,
                requested_by=user if getattr(user, "pk", None) else None,
                target_entity=target_entity,
                target_source_id=target_source_id,
                targets=targets or [],
                idempotency_key=idempotency_key,
            )
    except IntegrityError:
        active = (
            SyncRun.objects.filter(connection=connection, status__in=ACTIVE_STATUSES)
            .order_by("-id")
            .first()
        )
        if active is None and idempotency_key:
            active = SyncRun.objects.filter(idempotency_key=idempotency_key).first()
        if active is None:  # pragma: no cover - the conflicting run finished in between
            raise
        return active, False
    if enqueue:
        from syncing.tasks import sync_run_execute

        enqueue_on_commit(sync_run_execute, run.pk)
    return run, True


def run_approve(*, run: SyncRun, user: Any, approval: str, enqueue: bool = True) -> SyncRun:
    """Decide a held run: apply everything, everything but deactivations, or nothing."""
    if approval not in Approval.values:
        raise ApplicationError("Unknown decision.", code="invalid_approval")
    with transaction.atomic():
        run = SyncRun.objects.select_for_update().get(pk=run.pk)
        if run.status != RunStatus.HELD:
            raise ConflictError("Only a held run can be approved or rejected.", code="not_held")
        run.approval = approval
        run.approved_by = user if getattr(user, "pk", None) else None
        run.approved_at = timezone.now()
        staged = SyncChange.objects.filter(run=run, state=ChangeState.STAGED)
        if approval == Approval.REJECT:
            staged.update(state=ChangeState.REJECTED)
            run.status = RunStatus.CANCELLED
            run.finished_at = timezone.now()
            run.save()
            return run
        if approval == Approval.EXCEPT_DEACTIVATIONS:
            staged.filter(action=ChangeAction.DEACTIVATE).update(state=ChangeState.REJECTED)
        run.changes_total = SyncChange.objects.filter(run=run, state=ChangeState.STAGED).count()
        run.status = RunStatus.RUNNING
        run.phase = Phase.APPLY
        run.save()
        if enqueue:
            from syncing.tasks import sync_run_execute

            enqueue_on_commit(sync_run_execute, run.pk)
    return run


def run_cancel(*, run: SyncRun) -> SyncRun:
    """Cancel a pending or held run, or a running one whose worker is gone (nothing holds the
    connection's lock). A run a worker is executing cannot be stopped midway: the worker would
    go on staging and applying, and a new run could start beside it."""
    with transaction.atomic():
        run = SyncRun.objects.select_for_update().get(pk=run.pk)
        if run.status not in ACTIVE_STATUSES:
            return run
        if run.status != RunStatus.HELD and connection_lock_held(run.connection_id):
            raise ConflictError(
                "A worker is running this sync; it cannot be stopped midway. Cancel it once it "
                "is held, or let it finish.",
                code="run_in_progress",
            )
        SyncChange.objects.filter(run=run, state=ChangeState.STAGED).update(
            state=ChangeState.REJECTED
        )
        run.status = RunStatus.CANCELLED
        run.finished_at = timezone.now()
        run.save()
    return run


# A run no worker has held for this long (running) or picked up (pending) lost its worker and
# its message; the minute drain hands it out again. Pending waits longer: its message may only
# be queued behind other long tasks, and a copy that finds the run taken waits a minute for the
# lock before it leaves.
STRANDED_RUNNING_AFTER = timedelta(minutes=10)
STRANDED_PENDING_AFTER = timedelta(minutes=60)
# A copy no worker has taken up after this long is taken for lost (a broker restarted without
# its queue, a send that failed) and sent again.
STRANDED_RESEND_AFTER = timedelta(hours=2)
# Copies sent because a worker died with the run, after which a run found dead again is failed:
# one that kills every worker taking it up (out of memory on the same page) must not take them
# down for ever.
STRANDED_MAX_HANDOUTS = 2


def stranded_runs_resume(*, now: Any = None) -> list[int]:
    """Hand pending and running runs that no worker is executing back to the workers; returns
    their ids.

    A running run's worker holds its connection's lock; when nothing holds it and the run has
    not moved for :data:`STRANDED_RUNNING_AFTER`, no worker is on it and no message may be
    left to resume it: its worker was killed and the broker dropped the redelivery as poisoned
    (``CELERY_MAX_DELIVERIES``), or the redelivery was acknowledged by the copy handed out
    when a long run passed the visibility timeout; or its message (a pending run's, an
    approved run's) is only queued behind long tasks. A copy is sent and the run resumes where
    it was (staging at the entity it was on, applying at its checkpoint); a copy for a run
    that is in fact picked up finds the lock taken, or the run finished, and does nothing. No
    second copy is sent until a worker took the run up since the last one (or
    :data:`STRANDED_RESEND_AFTER` passed: the copy was lost). When the run's last execution
    never ended (``SyncRun.executions``: a worker died with it) for the
    :data:`STRANDED_MAX_HANDOUTS` + 1st time, the run is failed and its administrators told."""
    from syncing.tasks import sync_run_execute

    now = now or timezone.now()
    quiet = SyncRun.objects.filter(
        status=RunStatus.RUNNING, updated_at__lt=now - STRANDED_RUNNING_AFTER
    ) | SyncRun.objects.filter(
        status=RunStatus.PENDING, updated_at__lt=now - STRANDED_PENDING_AFTER
    )
    resumed = []
    for run in quiet.order_by("id"):
        if connection_lock_held(run.connection_id):
            continue  # a worker has it (a long page or batch, or a run still staging)
        queued = (
            run.handed_out_at_execution is not None
            and run.executions <= run.handed_out_at_execution
        )
        if queued and run.updated_at > now - STRANDED_RESEND_AFTER:
            continue  # the last copy is still waiting for a worker: one is enough
        lost_worker = run.executions > run.last_ended_execution and not queued
        # Only if unchanged since read (no worker took it up meanwhile; no other drain acted).
        unchanged = SyncRun.objects.filter(
            pk=run.pk, status=run.status, updated_at=run.updated_at, executions=run.executions
        )
        if lost_worker and run.lost_worker_handouts >= STRANDED_MAX_HANDOUTS:
            summary = (
                f"The run lost its worker again after being handed out "
                f"{run.lost_worker_handouts} times (killed while running it, or cut off from "
                "the database: out of memory? a database failover? see the worker logs); it "
                "was stopped so it does not take more workers down."
            )
            if unchanged.update(
                status=RunStatus.FAILED, error_summary=summary, finished_at=now, updated_at=now
            ):
                logger.error("sync run failed: it kept losing its worker", extra={"run_id": run.pk})
                run.refresh_from_db()
                run_notify(run=run)
            continue
        # The new updated_at starts another quiet spell.
        if unchanged.update(
            updated_at=now,
            lost_worker_handouts=run.lost_worker_handouts + lost_worker,
            handed_out_at_execution=run.executions,
        ):
            logger.warning(
                "sync run handed to the workers again: no worker was running it",
                extra={"run_id": run.pk, "status": run.status, "lost_worker": lost_worker},
            )
            enqueue_on_commit(sync_run_execute, run.pk)
            resumed.append(run.pk)
    return resumed


# --- conflicts ----------------------------------------------------------------------------------
