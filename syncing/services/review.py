"""An administrator's decisions on what a run left: conflicts, quarantined records,
identity matches."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from attendance import bulk
from core.errors import ApplicationError, ConflictError
from sis.services import sis_connection_capabilities
from syncing.engine.stage import content_hash
from syncing.entities import SPECS, plain_value
from syncing.events import pending_events_keep
from syncing.models import (
    ChangeAction,
    ChangeState,
    Conflict,
    ConflictStatus,
    IdentityMatch,
    MatchStatus,
    Mode,
    QuarantinedRecord,
    QuarantineStatus,
    RunStatus,
    SourceLink,
    SyncChange,
    SyncRun,
    Trigger,
)
from syncing.services.runs import sync_start


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
            connection_id=match.connection_id, entity=match.entity, source_id=match.new_source_id
        ).first()
        if existing is not None:
            raise ConflictError("The new source id is already linked.", code="already_linked")
        # A run staging now would not have seen the new link and would deactivate the record
        # through it; a held run has finished staging (its deactivation through the old link
        # is rejected below).
        if SyncRun.objects.filter(
            connection_id=match.connection_id, status__in=[RunStatus.PENDING, RunStatus.RUNNING]
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
