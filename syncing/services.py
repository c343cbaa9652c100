"""Writes of the sync engine: start runs, decide held runs, resolve conflicts, re-drive the
quarantine, confirm identity matches, notify administrators. Admin actions, the API, tasks and
the ``sync`` command call these; they never touch the models directly."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from attendance import bulk
from attendance.models import Membership, MembershipRole
from core.errors import ApplicationError, ConflictError
from core.links import public_url
from core.tasks import enqueue_on_commit
from sis.services import sis_connection_capabilities
from syncing.engine.stage import content_hash
from syncing.entities import SPECS, plain_value
from syncing.events import pending_events_keep
from syncing.locks import connection_lock_held
from syncing.models import (
    ACTIVE_STATUSES,
    Approval,
    ChangeAction,
    ChangeState,
    Conflict,
    ConflictStatus,
    IdentityMatch,
    MatchStatus,
    Mode,
    Phase,
    QuarantinedRecord,
    QuarantineStatus,
    RunStatus,
    SourceLink,
    SyncChange,
    SyncRun,
    Trigger,
)

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


def conflict_resolve(
    *, conflict: Conflict, user: Any, choice: str, value: Any = None, actor: str = ""
) -> Conflict:
    """Settle an open conflict with the SIS value, the local value, or an edited value.

    The chosen value is written to the object (with history) and the baseline becomes the SIS
    value, the one agreed with the SIS; when the local side wins and the connector can write
    the field, the local value is queued for write-back. ``actor`` names who decided when it is
    not a user (an API client): it goes into the history row's reason.
    """
    if choice not in ("sis", "local", "edit"):
        raise ApplicationError("Choose sis, local or edit.", code="invalid_choice")
    if choice == "edit":
        _edited_value_check(conflict, value)
    with transaction.atomic():
        conflict = Conflict.objects.select_for_update().select_related("link").get(pk=conflict.pk)
        if conflict.status != ConflictStatus.OPEN:
            raise ConflictError("The conflict is already resolved.", code="already_resolved")
        link = conflict.link
        spec = SPECS[conflict.entity]
        if choice == "local":
            # The record's value now: a local correction made since the sync recorded the
            # conflict is what "keep local" keeps, not the value the conflict remembers.
            chosen = plain_value(
                spec.model._default_manager.filter(pk=link.object_id)
                .values_list(conflict.field, flat=True)
                .first()
            )
        else:
            chosen = {"sis": conflict.sis_value, "edit": value}[choice]
        row: dict[str, Any] = {"id": link.object_id, conflict.field: chosen}
        if spec.derive is not None:
            current = dict(
                spec.model._default_manager.filter(pk=link.object_id).values(*spec.fields)[0]
            )
            current[conflict.field] = chosen
            row.update(spec.derive(current, conflict.district.phone_region))
        bulk.bulk_update(
            spec.model,
            [row],
            fields=[k for k in row if k != "id"],
            # simple-history keeps at most 100 characters of a reason.
            change_reason=f"Conflict {conflict.pk} resolved{f' by {actor}' if actor else ''}"[:100],
            user_id=getattr(user, "pk", None),
        )
        baseline = dict(link.baseline)
        baseline[conflict.field] = conflict.sis_value
        link.baseline = baseline
        link.save(update_fields=["baseline", "updated_at"])
        if choice != "sis" and chosen != conflict.sis_value:
            capability = spec.writeback_capability
            if capability and capability in sis_connection_capabilities(link.connection):
                from syncing.engine.apply import writeback_queue

                writeback_queue(
                    run=conflict.run
                    or SyncRun(connection_id=link.connection_id, district_id=link.district_id),
                    entity=conflict.entity,
                    object_id=link.object_id,
                    source_id=link.source_id,
                    target=conflict.field,
                    value=chosen,
                )
        conflict.status = {
            "sis": ConflictStatus.RESOLVED_SIS,
            "local": ConflictStatus.RESOLVED_LOCAL,
            "edit": ConflictStatus.RESOLVED_EDIT,
        }[choice]
        conflict.resolution_value = chosen
        conflict.resolved_by = user if getattr(user, "pk", None) else None
        conflict.resolved_at = timezone.now()
        conflict.save()
    return conflict


def _edited_value_check(conflict: Conflict, value: Any) -> None:
    """An edited value must fit the field (a date for a date, at most max_length characters):
    the database would refuse it otherwise, in the middle of the write."""
    from django.core.exceptions import FieldDoesNotExist, ValidationError

    try:
        field = SPECS[conflict.entity].model._meta.get_field(conflict.field)
        field.clean(value, None)  # type: ignore[union-attr]
    except FieldDoesNotExist:  # pragma: no cover - conflicts name fields of their entity
        raise ApplicationError(
            "This conflict cannot take an edited value.", code="invalid_value"
        ) from None
    except ValidationError as exc:
        raise ApplicationError(
            "The value does not fit the field.",
            code="invalid_value",
            details={"value": exc.messages},
        ) from exc


def conflicts_resolve_bulk(*, conflicts: Any, user: Any, choice: str) -> int:
    done = 0
    for conflict in conflicts.filter(status=ConflictStatus.OPEN):
        conflict_resolve(conflict=conflict, user=user, choice=choice)
        done += 1
    return done


# --- quarantine ---------------------------------------------------------------------------------


def quarantine_redrive(*, records: Any, user: Any = None) -> tuple[SyncRun | None, bool]:
    """Re-fetch quarantined records fresh from the SIS in one targeted run — never from the
    stale payload, which could undo a newer change. Returns the run and whether it is the
    re-drive's own: while another run of the connection is active, that run comes back and the
    records wait as pending events for the targeted run after it."""
    targets: dict[int, list[list[str]]] = {}
    connections: dict[int, Any] = {}
    for record in records:
        if record.status != QuarantineStatus.OPEN or record.entity not in SPECS:
            continue
        if not record.source_id:
            continue
        targets.setdefault(record.connection_id, []).append([record.entity, record.source_id])
        connections[record.connection_id] = record.connection
    if not targets:
        raise ApplicationError(
            "None of these records can be re-fetched; fix them in the SIS and run a sync.",
            code="not_redrivable",
        )
    run, started = None, False
    for connection_id, items in targets.items():
        run, started = sync_start(
            connection=connections[connection_id],
            mode=Mode.TARGETED,
            trigger=Trigger.ADMIN,
            user=user,
            target_entity=items[0][0],
            target_source_id=items[0][1],
            targets=items,
        )
        if not started:
            # Another run of the connection is active (sync_start returned it): keep the
            # records as pending events, re-fetched by the targeted run that follows it.
            pending_events_keep(connections[connection_id], items)
    return run, started


def quarantine_discard(*, records: Any) -> int:
    """Stop tracking quarantined records (an admin decided the SIS will not fix them). Only
    open ones change; the count of those is returned. A later run that meets the record
    still malformed parks it again as a new open record."""
    return int(
        records.filter(status=QuarantineStatus.OPEN).update(
            status=QuarantineStatus.DISCARDED, updated_at=timezone.now()
        )
    )


def quarantine_settle(*, run: SyncRun) -> None:
    """After a run: quarantined records the run saw again and that went through cleanly (now
    linked and unchanged, or applied) leave quarantine; so do the targets of a targeted run
    that it read without parking them again (a record parked under its SIS item's id, whose
    records have ids of their own, or one the SIS no longer has)."""
    open_records = QuarantinedRecord.objects.filter(
        connection_id=run.connection_id, status=QuarantineStatus.OPEN
    ).exclude(run=run)
    not_read = run.entities_not_refetched
    read = {(entity, source_id) for entity, source_id in run.target_pairs if entity not in not_read}
    for entity, source_id in open_records.values_list("entity", "source_id"):
        if (entity, source_id) not in read and not SourceLink.objects.filter(
            connection_id=run.connection_id,
            entity=entity,
            source_id=source_id,
            active=True,
            last_run=run,
        ).exists():
            continue
        QuarantinedRecord.objects.filter(
            connection_id=run.connection_id,
            entity=entity,
            source_id=source_id,
            status=QuarantineStatus.OPEN,
        ).exclude(run=run).update(status=QuarantineStatus.RESOLVED, updated_at=timezone.now())


# --- identity matches ---------------------------------------------------------------------------


def identity_match_confirm(*, match: IdentityMatch, user: Any) -> SourceLink:
    """The new source id is the same record: re-key the crosswalk (no duplicate is created).
    The next sync then treats the record as known and applies any field changes."""
    with transaction.atomic():
        match = IdentityMatch.objects.select_for_update().get(pk=match.pk)
        if match.status != MatchStatus.SUGGESTED:
            raise ConflictError("The suggestion was already decided.", code="already_decided")
        existing = SourceLink.objects.filter(
            connection_id=match.connection_id,
            entity=match.entity,
            source_id=match.new_source_id,
        ).first()
        if existing is not None:
            raise ConflictError("The new source id is already linked.", code="already_linked")
        # A run staging now would not have seen the new link and would deactivate the record
        # through it; a held run has finished staging (its deactivation through the old link
        # is rejected below).
        if SyncRun.objects.filter(
            connection_id=match.connection_id,
            status__in=[RunStatus.PENDING, RunStatus.RUNNING],
        ).exists():
            raise ConflictError(
                "A sync of this connection is in progress; confirm once it has finished.",
                code="sync_in_progress",
            )
        old = match.old_link
        others = SourceLink.objects.filter(
            connection_id=match.connection_id,
            entity=match.entity,
            object_id=match.object_id,
            active=True,
        )
        if old is not None:
            others = others.exclude(pk=old.pk)
        if others.exists():
            raise ConflictError(
                "Another SIS record is already linked to this local record.",
                code="object_already_linked",
            )
        if old is not None:
            old.active = False
            old.save(update_fields=["active", "updated_at"])
            # The old source id is gone from the SIS: a held run's staged deactivation through
            # the old link would deactivate the very record the new link now keeps.
            SyncChange.objects.filter(
                link_id=old.pk, state=ChangeState.STAGED, action=ChangeAction.DEACTIVATE
            ).update(state=ChangeState.REJECTED)
            baseline = old.baseline
            school_id = old.school_id
        else:
            baseline = {}
            school_id = None
        fields = SPECS[match.entity].fields
        same = bool(baseline) and all(
            baseline.get(name) == match.values.get(name) for name in fields
        )
        link = SourceLink.objects.create(
            district_id=match.district_id,
            connection_id=match.connection_id,
            entity=match.entity,
            source_id=match.new_source_id,
            object_id=match.object_id,
            school_id=school_id,
            # Same values as agreed before: nothing to do next sync. Otherwise an empty hash
            # makes the next sync merge the record three-way against the baseline.
            content_hash=content_hash(match.values) if same else "",
            baseline={**baseline, **match.values} if same else (baseline or match.values),
            active=True,
        )
        match.status = MatchStatus.CONFIRMED
        match.decided_by = user if getattr(user, "pk", None) else None
        match.decided_at = timezone.now()
        match.save()
    return link


def identity_match_reject(*, match: IdentityMatch, user: Any) -> IdentityMatch:
    """Not the same record. It still cannot be created while its natural key is taken, so it
    is quarantined for the SIS to fix."""
    with transaction.atomic():
        match = IdentityMatch.objects.select_for_update().get(pk=match.pk)
        if match.status != MatchStatus.SUGGESTED:
            raise ConflictError("The suggestion was already decided.", code="already_decided")
        match.status = MatchStatus.REJECTED
        match.decided_by = user if getattr(user, "pk", None) else None
        match.decided_at = timezone.now()
        match.save()
        # One open row per record: the record may be parked already (a warning on the same
        # run, or the rejection of an earlier suggestion).
        QuarantinedRecord.objects.update_or_create(
            connection_id=match.connection_id,
            entity=match.entity,
            source_id=match.new_source_id,
            status=QuarantineStatus.OPEN,
            defaults={
                "district_id": match.district_id,
                "run": match.run,
                "payload": match.values,
                "reason_code": "duplicate_key",
                "message": "Another local record already uses this record's local id.",
            },
        )
    return match


# --- notifications ------------------------------------------------------------------------------


def _district_admin_emails(district_id: int) -> list[str]:
    return sorted(
        {
            email
            for email in Membership.objects.filter(
                district_id=district_id,
                role=MembershipRole.DISTRICT_ADMIN,
                user__is_active=True,
            ).values_list("user__email", flat=True)
            if email
        }
    )


def admins_notify(*, district_id: int, subject: str, body: str) -> int:
    """The one place the sync engine tells administrators something (re-routed to the
    notifications app later). Returns the number of recipients."""
    recipients = _district_admin_emails(district_id)
    if not recipients:
        return 0
    send_mail(
        subject,
        body,
        getattr(settings, "DEFAULT_FROM_EMAIL", "noreply@example.org"),
        recipients,
        fail_silently=True,
    )
    return len(recipients)


def run_notify(*, run: SyncRun) -> int:
    """E-mail the district's administrators about a failed or held run (no student data)."""
    link = public_url(reverse("admin:syncing_syncrun_change", args=[run.pk]))
    if run.status == RunStatus.HELD:
        subject = f"Roster sync held for review: {run.connection}"
        body = (
            f"Sync run #{run.pk} was held before applying anything.\n\n{run.held_reason}\n\n"
            "Review its staged changes and decide (approve, approve all but deactivations, or "
            f"reject): {link}"
        )
    elif run.status == RunStatus.FAILED:
        subject = f"Roster sync failed: {run.connection}"
        body = f"Sync run #{run.pk} failed.\n\n{run.error_summary}\n\nThe run: {link}"
    else:
        return 0
    return admins_notify(district_id=run.district_id, subject=subject, body=body)


def conflicts_digest_send() -> int:
    """The daily digest: per district, how many conflicts wait for review."""
    from django.db.models import Count

    sent = 0
    for row in (
        Conflict.objects.filter(status=ConflictStatus.OPEN)
        .values("district_id")
        .annotate(n=Count("id"))
    ):
        sent += admins_notify(
            district_id=row["district_id"],
            subject=f"{row['n']} sync conflicts wait for review",
            body=(
                f"{row['n']} fields changed both in the SIS and here since the last sync. "
                "Resolve them in the admin (Roster sync → Conflicts): "
                + public_url(reverse("admin:syncing_conflict_changelist") + "?status__exact=open")
            ),
        )
    return sent


__all__ = ["content_hash"]
