"""Updates: three-way merges against the baseline, conflicts, write-backs, and spans that
re-open or move as new rows."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from attendance import bulk
from attendance.models import ExitReason
from syncing.engine.apply.context import (
    ApplyContext,
    guarded,
    model_row,
    quarantine_change,
    refresh_student_schools,
    resolve_refs,
)
from syncing.engine.dialect import sql as pgsql  # or its portable twin off PostgreSQL
from syncing.engine.stage.context import content_hash
from syncing.entities import EntitySpec, plain_value, section_schools
from syncing.models import (
    ChangeState,
    Conflict,
    ConflictStatus,
    Policy,
    SourceLink,
    SyncChange,
    SyncRun,
    WriteBackItem,
)

# Optional references the SIS may leave out without meaning "clear it" (the student's current
# school is kept by the enrollment spans when the student record does not carry it).
KEEP_LOCAL_WHEN_MISSING = {("student", "school_id")}


def _three_way(
    ctx: ApplyContext,
    spec: EntitySpec,
    link: dict[str, Any],
    local: dict[str, Any],
    sis: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Merge one record. Returns (values to write, new baseline, conflicts, write-backs).

    Per field: only the SIS moved → take it; only the local value moved → keep it (and write
    it back when the connector can); both moved to the same value → agree; both moved apart →
    a conflict, settled by the field policy.
    """
    base_all = link["baseline"] or {}
    write: dict[str, Any] = {}
    baseline = dict(sis)
    conflicts: list[dict[str, Any]] = []
    writebacks: dict[str, Any] = {}
    can_write_back = bool(spec.writeback_capability) and (
        spec.writeback_capability in ctx.capabilities
    )
    for name in spec.fields:
        base = base_all.get(name)
        theirs = sis.get(name)
        ours = plain_value(local.get(name))
        if theirs == base:
            if ours != base and can_write_back:
                writebacks[name] = ours
            continue
        if ours in (base, theirs):
            if ours != theirs:
                write[name] = theirs
            continue
        policy = ctx.policy(spec.name, name)
        conflicts.append(
            {"field": name, "base": base, "sis": theirs, "local": ours, "policy": policy}
        )
        if policy == Policy.SIS_WINS:
            write[name] = theirs
        else:
            if policy == Policy.REVIEW:
                # Not agreed yet: keep the old baseline so the question stays open.
                baseline[name] = base
            elif can_write_back:
                writebacks[name] = ours
    return write, baseline, conflicts, writebacks


def _record_conflicts(
    ctx: ApplyContext, spec: EntitySpec, link: dict[str, Any], conflicts: list[dict[str, Any]]
) -> None:
    now = timezone.now()
    for item in conflicts:
        status = {
            Policy.SIS_WINS: ConflictStatus.RESOLVED_SIS,
            Policy.LOCAL_WINS: ConflictStatus.RESOLVED_LOCAL,
        }.get(item["policy"], ConflictStatus.OPEN)
        values = {
            "district_id": ctx.run.district_id,
            "school_id": link["school_id"],
            "run": ctx.run,
            "entity": spec.name,
            "base_value": item["base"],
            "sis_value": item["sis"],
            "local_value": item["local"],
            "policy": item["policy"],
        }
        if status == ConflictStatus.OPEN:
            Conflict.objects.update_or_create(
                link_id=link["id"], field=item["field"], status=status, defaults=values
            )
        else:
            Conflict.objects.create(
                link_id=link["id"],
                field=item["field"],
                status=status,
                resolved_at=now,
                resolution_value=item["sis"] if status == ConflictStatus.RESOLVED_SIS else None,
                **values,
            )
        ctx.stats["conflicts"] = ctx.stats.get("conflicts", 0) + 1


def writeback_queue(
    *, run: SyncRun, entity: str, object_id: int, source_id: str, target: str, value: Any
) -> bool:
    """Queue ``value`` for ``target`` of one object (one outbox row per object and target).
    Queuing the value already queued is a no-op; returns whether anything changed."""
    digest = content_hash(value)
    item, created = WriteBackItem.objects.get_or_create(
        connection_id=run.connection_id,
        entity=entity,
        object_id=object_id,
        target=target,
        defaults={
            "district_id": run.district_id,
            "source_id": source_id,
            "value": value,
            "value_hash": digest,
        },
    )
    if created:
        return True
    if item.value_hash == digest:
        return False
    item.value, item.value_hash, item.status, item.attempts = value, digest, "pending", 0
    item.save(update_fields=["value", "value_hash", "status", "attempts", "updated_at"])
    return True


def _span_needs_new_row(spec: EntitySpec, local: dict[str, Any], row: dict[str, Any]) -> bool:
    """A re-entry (the SIS reopens a span we closed) or a move (the span's school, section or
    person changed) opens a new span instead of rewriting history."""
    if not spec.is_span:
        return False
    if local.get("exit_date") is not None and row.get("exit_date") is None:
        return True
    return _span_moved(spec, local, row)


def _span_moved(spec: EntitySpec, local: dict[str, Any], row: dict[str, Any]) -> bool:
    """Whether the SIS moved the span to another school, section or person."""
    return any(
        local.get(ref.attname) != row.get(ref.attname)
        for ref in spec.refs
        if row.get(ref.attname) is not None
    )


def apply_updates(ctx: ApplyContext, spec: EntitySpec, changes: list[dict[str, Any]]) -> None:
    links: dict[int, dict[str, Any]] = {
        row["id"]: dict(row)
        for row in SourceLink.objects.filter(pk__any=[c["link_id"] for c in changes]).values(
            "id", "object_id", "baseline", "school_id", "source_id"
        )
    }
    ref_names = [ref.attname for ref in spec.refs]
    local_rows = {
        row["id"]: row
        for row in spec.model._default_manager.filter(
            pk__any=[link["object_id"] for link in links.values()]
        ).values("id", *spec.fields, *ref_names)
    }
    refs = resolve_refs(ctx, spec, changes)
    updates: list[dict[str, Any]] = []
    reopen: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = []
    link_updates: list[dict[str, Any]] = []
    school_of_section: dict[int, int] = {}
    if spec.name == "section_enrollment":
        school_of_section = section_schools(
            {r["section_id"] for r in local_rows.values()}
            | set(refs.get("section_id", {}).values())
        )
    for change in changes:
        link = links.get(change["link_id"])
        local = local_rows.get(link["object_id"]) if link is not None else None
        if link is None or local is None:
            quarantine_change(
                ctx, change, "local_object_missing", "The linked local record is gone."
            )
            continue
        row, missing = model_row(ctx, spec, change["values"], refs)
        if missing:
            quarantine_change(
                ctx, change, "unknown_reference", f"{missing} refers to an unknown record."
            )
            continue
        for entity_name, attname in KEEP_LOCAL_WHEN_MISSING:
            if entity_name == spec.name and row.get(attname) is None:
                row[attname] = local.get(attname)
        if _span_needs_new_row(spec, local, row):
            reopen.append((change, link, row))
            continue
        write, baseline, conflicts, writebacks = _three_way(
            ctx, spec, link, local, change["values"]
        )
        for name in spec.fields:
            if name not in write:
                row[name] = plain_value(local.get(name))
            else:
                row[name] = write[name]
        if spec.derive is not None:
            row.update(spec.derive(row, ctx.region))
        row["id"] = local["id"]
        updates.append(row)
        if conflicts:
            _record_conflicts(ctx, spec, link, conflicts)
        for target, value in writebacks.items():
            writeback_queue(
                run=ctx.run,
                entity=spec.name,
                object_id=local["id"],
                source_id=link["source_id"],
                target=target,
                value=value,
            )
        school = spec.school_of(row, local["id"], school_of_section)
        link_updates.append(
            {
                "id": link["id"],
                "object_id": local["id"],
                "content_hash": change["content_hash"],
                "baseline": baseline,
                "active": True,
                "school_id": school,
                "last_run_id": ctx.run.pk,
            }
        )
    change_by_object = {
        links[c["link_id"]]["object_id"]: c for c in changes if c["link_id"] in links
    }
    columns = [
        name
        for name in {*spec.fields, *ref_names, *(updates[0].keys() if updates else ())}
        if name not in ("id", "district_id")
    ]
    guarded(
        updates,
        lambda items: bulk.bulk_update(spec.model, items, fields=columns, change_reason=ctx.reason),
        lambda row, constraint: quarantine_change(
            ctx,
            change_by_object[row["id"]],
            "constraint_violation",
            f"The record breaks the rule {constraint}.",
        ),
    )
    failed = set(
        SyncChange.objects.filter(
            pk__any=[c["id"] for c in changes], state=ChangeState.FAILED
        ).values_list("link_id", flat=True)
    )
    pgsql.links_update([lu for lu in link_updates if lu["id"] not in failed])
    _open_new_spans(ctx, spec, reopen, local_rows)
    if spec.name == "enrollment":
        students = {r["student_id"] for r in updates}
        students |= {r["student_id"] for r in local_rows.values()}
        refresh_student_schools(ctx, students)


def _open_new_spans(
    ctx: ApplyContext,
    spec: EntitySpec,
    reopen: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]],
    local_rows: dict[int, dict[str, Any]],
) -> None:
    """For each (change, link, row) of ``reopen``: close the old span (if open) and open a new
    one; the link follows the new span. One statement per step for the whole batch (a daily
    delta re-opens hundreds of section enrollments; one at a time cost 8 ms each). A new span
    the database refuses is quarantined with its old span left as it was."""
    # (change, link, close of the old span or None, new span)
    items: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None, dict[str, Any]]] = []
    for change, link, row in reopen:
        local = local_rows[link["object_id"]]
        entry = dt.date.fromisoformat(row["entry_date"])
        moved = _span_moved(spec, local, row)
        old_exit = local.get("exit_date")
        close = None
        if old_exit is None or (moved and old_exit >= entry):
            # Still open (or scheduled to end after the new span starts): it ends the day
            # before the new one begins.
            old_exit = max(local["entry_date"], entry - dt.timedelta(days=1))
            reason = ExitReason.TRANSFERRED
            close = {"id": local["id"], "exit_date": old_exit, "exit_reason": reason}
        if not moved:
            entry = max(entry, old_exit + dt.timedelta(days=1))
        new_row = {**row, "entry_date": entry.isoformat()}
        new_row.pop("id", None)
        items.append((change, link, close, new_row))

    def write(
        batch: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None, dict[str, Any]]],
    ) -> None:
        bulk.bulk_update(
            spec.model,
            [close for _, _, close, _ in batch if close is not None],
            fields=["exit_date", "exit_reason"],
            change_reason=ctx.reason,
        )
        rows = [row for _, _, _, row in batch]
        object_ids = bulk.bulk_insert(spec.model, rows, change_reason=ctx.reason)
        school_of_section = (
            section_schools({row["section_id"] for row in rows})
            if spec.name == "section_enrollment"
            else {}
        )
        pgsql.links_update(
            [
                {
                    "id": link["id"],
                    "object_id": object_id,
                    "content_hash": change["content_hash"],
                    "baseline": change["values"],
                    "active": True,
                    "school_id": spec.school_of(row, object_id, school_of_section),
                    "last_run_id": ctx.run.pk,
                }
                for (change, link, _, row), object_id in zip(batch, object_ids, strict=True)
            ]
        )

    guarded(
        items,
        write,
        lambda item, constraint: quarantine_change(
            ctx, item[0], "constraint_violation", f"The record breaks the rule {constraint}."
        ),
    )
