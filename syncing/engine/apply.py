"""Apply staged changes in batches, with history, three-way merges and conflicts.

A batch is up to ``batch_size`` changes of one entity and one action. Each batch commits
atomically together with the changes' new state and the run's checkpoint, so a worker killed
mid-run resumes at the first change still ``staged`` and nothing is applied twice or lost.

A row the database refuses (a unique or check constraint the SIS data breaks) does not sink its
batch: the batch is split until the offending row is isolated, and that row is quarantined.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Greatest
from django.utils import timezone

from attendance import bulk
from attendance.models import ExitReason, Student
from syncing.engine.dialect import sql as pgsql  # or its portable twin off PostgreSQL
from syncing.engine.stage import action_of_rank, change_rank, quarantine_record
from syncing.entities import SPECS, EntitySpec, plain_value, section_schools
from syncing.models import (
    ChangeAction,
    ChangeState,
    Conflict,
    ConflictStatus,
    FieldPolicy,
    Policy,
    SourceLink,
    SyncChange,
    SyncRun,
    WriteBackItem,
)

# Optional references the SIS may leave out without meaning "clear it" (the student's current
# school is kept by the enrollment spans when the student record does not carry it).
KEEP_LOCAL_WHEN_MISSING = {("student", "school_id")}

# The crosswalk's planner statistics are refreshed once this many links were created since the
# last refresh, or as many as it then held, whichever is more: a first load of 1.2 million
# links refreshes them about six times (each ANALYZE samples the whole table: ~0.3 s at that
# size), and they are never more than half stale.
ANALYZE_AFTER_LINKS = 20000


@dataclass
class ApplyContext:
    run: SyncRun
    on: dt.date
    capabilities: set[str] = field(default_factory=set)
    region: str = "US"
    policies: dict[tuple[str, str], str] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    # Links created by this run since the crosswalk's statistics were last refreshed, and
    # before that refresh (see ANALYZE_AFTER_LINKS).
    links_unanalyzed: int = 0
    links_analyzed: int = 0
    # Several threads may apply one rank's batches at once: the lock guards the counters.
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def reason(self) -> str:
        return f"SIS sync run {self.run.pk}"

    def policy(self, entity: str, name: str) -> str:
        return self.policies.get((entity, name), Policy.REVIEW)


def policies_load(run: SyncRun) -> dict[tuple[str, str], str]:
    """Field policies of the run's district; a connection's own policy overrides."""
    result: dict[tuple[str, str], str] = {}
    rows = FieldPolicy.objects.filter(district_id=run.district_id).filter(
        connection_id__in=[run.connection_id]
    ) | FieldPolicy.objects.filter(district_id=run.district_id, connection__isnull=True)
    for policy in sorted(rows, key=lambda p: p.connection_id is not None):
        result[(policy.entity, policy.field)] = policy.policy
    return result


def _hash(value: Any) -> str:
    return hashlib.md5(
        orjson.dumps(value, option=orjson.OPT_SORT_KEYS), usedforsecurity=False
    ).hexdigest()


def _resolve(run: SyncRun, entity: str, source_ids: set[str]) -> dict[str, int]:
    if not source_ids:
        return {}
    return dict(
        SourceLink.objects.filter(
            connection_id=run.connection_id, entity=entity, source_id__any=list(source_ids)
        ).values_list("source_id", "object_id")
    )


def _resolve_refs(
    ctx: ApplyContext, spec: EntitySpec, changes: Sequence[dict[str, Any]]
) -> dict[str, dict[str, int]]:
    return {
        ref.attname: _resolve(
            ctx.run,
            ref.entity,
            {c["values"][ref.attname] for c in changes if c["values"].get(ref.attname)},
        )
        for ref in spec.refs
    }


def _guarded(
    items: list[Any],
    write: Callable[[list[Any]], object],
    fail: Callable[[Any, str], None],
) -> None:
    """Write ``items``; on a constraint violation split them until the offending items are
    isolated and hand each of those to ``fail`` with the constraint's name."""
    if not items:
        return
    try:
        with transaction.atomic():
            write(items)
    except IntegrityError as exc:
        if len(items) == 1:
            cause = getattr(exc.__cause__, "diag", None)
            fail(items[0], getattr(cause, "constraint_name", None) or "constraint")
            return
        middle = len(items) // 2
        _guarded(items[:middle], write, fail)
        _guarded(items[middle:], write, fail)


def _model_row(
    ctx: ApplyContext,
    spec: EntitySpec,
    values: dict[str, Any],
    refs: dict[str, dict[str, int]],
) -> tuple[dict[str, Any], str | None]:
    """Our row for staged ``values``; second item is the missing required reference, if any."""
    row: dict[str, Any] = {name: values.get(name) for name in spec.fields}
    for ref in spec.refs:
        target = values.get(ref.attname)
        resolved = refs[ref.attname].get(target) if target else None
        if resolved is None and target and ref.required:
            return row, ref.attname
        if resolved is None and ref.required:
            return row, ref.attname
        row[ref.attname] = resolved
    if spec.derive is not None:
        row.update(spec.derive(values, ctx.region))
    if any(f.attname == "district_id" for f in spec.model._meta.concrete_fields):
        row["district_id"] = ctx.run.district_id
    return row, None


def _fail(ctx: ApplyContext, change: dict[str, Any], code: str, message: str) -> None:
    quarantine_record(
        run=ctx.run,
        entity=change["entity"],
        source_id=change["source_id"],
        payload=change.get("values") or {},
        reason_code=code,
        message=message,
    )
    SyncChange.objects.filter(pk=change["id"]).update(state=ChangeState.FAILED)
    ctx.stats["quarantined"] = ctx.stats.get("quarantined", 0) + 1


def _insert_links(ctx: ApplyContext, rows: list[dict[str, Any]]) -> None:
    bulk.bulk_insert(SourceLink, rows)


def _link_row(
    ctx: ApplyContext,
    spec: EntitySpec,
    change: dict[str, Any],
    object_id: int,
    school_id: int | None,
) -> dict[str, Any]:
    return {
        "district_id": ctx.run.district_id,
        "connection_id": ctx.run.connection_id,
        "entity": spec.name,
        "source_id": change["source_id"],
        "object_id": object_id,
        "school_id": school_id,
        "content_hash": change["content_hash"],
        "baseline": change["values"],
        "first_run_id": ctx.run.pk,
        "last_run_id": ctx.run.pk,
        "active": True,
    }


# --- creates ------------------------------------------------------------------------------------


def apply_creates(ctx: ApplyContext, spec: EntitySpec, changes: list[dict[str, Any]]) -> None:
    """Set-based: the domain rows are inserted straight from the staged values (references
    resolved by joins), then their links; nothing per row in Python."""
    run = ctx.run
    unresolved = dict(pgsql.creates_unresolved(spec, run.connection_id, [c["id"] for c in changes]))
    if unresolved:
        payloads = dict(
            SyncChange.objects.filter(pk__in=list(unresolved)).values_list("id", "values")
        )
        for change in changes:
            if change["id"] in unresolved:
                change["values"] = payloads.get(change["id"], {})
                _fail(
                    ctx,
                    change,
                    "unknown_reference",
                    f"{unresolved[change['id']]} refers to an unknown record.",
                )
    ready = sorted(c["id"] for c in changes if c["id"] not in unresolved)
    if spec.name == "enrollment":
        _close_superseded_spans(ctx, spec, ready)

    def write(change_ids: list[int]) -> None:
        inserted = pgsql.creates_insert(
            spec,
            connection_id=run.connection_id,
            district_id=run.district_id,
            change_ids=change_ids,
            reason=ctx.reason,
        )
        pgsql.links_insert_for_creates(
            run_id=run.pk,
            connection_id=run.connection_id,
            district_id=run.district_id,
            created=[
                (change_id, object_id, school_id)
                for change_id, (object_id, school_id) in zip(change_ids, inserted, strict=True)
            ],
        )
        if spec.name == "enrollment":
            _refresh_student_schools(ctx, pgsql.enrollment_students([row[0] for row in inserted]))

    by_id = {c["id"]: c for c in changes}

    def fail(change_id: int, constraint: str) -> None:
        change = by_id[change_id]
        change["values"] = (
            SyncChange.objects.filter(pk=change_id).values_list("values", flat=True).first() or {}
        )
        _fail(ctx, change, "constraint_violation", f"The record breaks the rule {constraint}.")

    _guarded(ready, write, fail)


def _close_superseded_spans(ctx: ApplyContext, spec: EntitySpec, change_ids: list[int]) -> None:
    """A new primary span for a student whose earlier primary span from this SIS is still open
    is a transfer: close the old span the day before the new one starts.

    A full sync sees the old span vanish and closes it first (deactivations apply before
    creates); a delta or targeted run only hears of the new span (PowerSchool reports a
    student's current enrollment, OneRoster vendors re-key enrollments by school), so without
    this the new span would break the one-open-primary rule and wait in quarantine for the
    weekly full sync. Spans opened locally or by another connection are left alone: those
    still make the create fail, for an admin to decide."""
    spans = pgsql.superseded_primary_spans(ctx.run.connection_id, change_ids)
    rows = [
        {
            "id": span_id,
            "exit_date": max(entry, new_entry - dt.timedelta(days=1)),
            "exit_reason": ExitReason.TRANSFERRED,
        }
        for span_id, _, entry, new_entry in spans
    ]
    if not rows:
        return
    bulk.bulk_update(
        spec.model, rows, fields=["exit_date", "exit_reason"], change_reason=ctx.reason
    )
    # As when a full sync sees the span vanish: the link goes inactive with its baseline kept,
    # and comes back (an update) if the SIS reports the old span again.
    pgsql.links_deactivate(ctx.run.pk, [link_id for _, link_id, _, _ in spans], {})


# --- updates ------------------------------------------------------------------------------------


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
    *,
    run: SyncRun,
    entity: str,
    object_id: int,
    source_id: str,
    target: str,
    value: Any,
) -> bool:
    """Queue ``value`` for ``target`` of one object (one outbox row per object and target).
    Queuing the value already queued is a no-op; returns whether anything changed."""
    digest = _hash(value)
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
    refs = _resolve_refs(ctx, spec, changes)
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
            _fail(ctx, change, "local_object_missing", "The linked local record is gone.")
            continue
        row, missing = _model_row(ctx, spec, change["values"], refs)
        if missing:
            _fail(ctx, change, "unknown_reference", f"{missing} refers to an unknown record.")
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
    _guarded(
        updates,
        lambda items: bulk.bulk_update(spec.model, items, fields=columns, change_reason=ctx.reason),
        lambda row, constraint: _fail(
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
        _refresh_student_schools(ctx, students)


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

    _guarded(
        items,
        write,
        lambda item, constraint: _fail(
            ctx, item[0], "constraint_violation", f"The record breaks the rule {constraint}."
        ),
    )


# --- deactivations ------------------------------------------------------------------------------


def apply_deactivations(ctx: ApplyContext, spec: EntitySpec, changes: list[dict[str, Any]]) -> None:
    # Only through links still active: one retired since staging (an admin confirmed that a
    # new source id is the same record, while the run was held) no longer speaks for it.
    links = dict(
        SourceLink.objects.filter(pk__any=[c["link_id"] for c in changes], active=True).values_list(
            "id", "object_id"
        )
    )
    object_ids = [links[c["link_id"]] for c in changes if c["link_id"] in links]
    if spec.is_span:
        transfers = _transfer_entries(ctx, spec, changes) if spec.name == "enrollment" else {}
        rows = []
        # Open spans, and spans whose end is still ahead (a class's scheduled last day, as
        # PowerSchool's CC rows carry): what the SIS dropped ends at the sync date, not then.
        for row in (
            spec.model._default_manager.filter(pk__any=object_ids)
            .filter(Q(exit_date__isnull=True) | Q(exit_date__gt=ctx.on))
            .values("id", "entry_date", "student_id")
        ):
            new_entry = transfers.get(row["student_id"])
            if new_entry is not None:
                # The SIS re-keyed the span by opening one elsewhere: a transfer, closed the
                # day before the new span starts.
                exit_date = max(row["entry_date"], new_entry - dt.timedelta(days=1))
                reason = ExitReason.TRANSFERRED
            else:
                exit_date, reason = max(ctx.on, row["entry_date"]), ExitReason.NOT_IN_SIS
            rows.append({"id": row["id"], "exit_date": exit_date, "exit_reason": reason})
        bulk.bulk_update(
            spec.model, rows, fields=["exit_date", "exit_reason"], change_reason=ctx.reason
        )
        if spec.name == "enrollment":
            students = set(
                spec.model._default_manager.filter(pk__any=object_ids).values_list(
                    "student_id", flat=True
                )
            )
            # A transferring student's school is set when the new span opens (one history
            # row, not "no school" and then the new one).
            _refresh_student_schools(ctx, students - set(transfers))
    elif spec.deactivate_values:
        bulk.bulk_update(
            spec.model,
            [{"id": oid, **spec.deactivate_values} for oid in object_ids],
            fields=list(spec.deactivate_values),
            change_reason=ctx.reason,
        )
    # What the SIS now says about these records is "gone": the baseline records it, so a
    # return of the record reads as a change made by the SIS (not a local edit to keep).
    pgsql.links_deactivate(ctx.run.pk, list(links), dict(spec.deactivate_values or {}))


def _transfer_entries(
    ctx: ApplyContext, spec: EntitySpec, changes: list[dict[str, Any]]
) -> dict[int, dt.date]:
    """Students (local ids) of these vanished spans who get a new primary span in this run,
    with its entry date."""
    baselines = SourceLink.objects.filter(pk__any=[c["link_id"] for c in changes]).values_list(
        "baseline", flat=True
    )
    student_sources = {b.get("student_id") for b in baselines if b and b.get("student_id")}
    if not student_sources:
        return {}
    entries: dict[str, dt.date] = {}
    for values in SyncChange.objects.filter(
        run=ctx.run,
        entity=spec.name,
        action=ChangeAction.CREATE,
        rank=change_rank(spec, ChangeAction.CREATE),  # one rank of the change table's index
        state=ChangeState.STAGED,
        values__student_id__in=list(student_sources),
    ).values_list("values", flat=True):
        if values.get("entry_date") and values.get("is_primary", True):
            entries[values["student_id"]] = dt.date.fromisoformat(values["entry_date"])
    local = _resolve(ctx.run, "student", set(entries))
    return {local[source]: entry for source, entry in entries.items() if source in local}


def _refresh_student_schools(ctx: ApplyContext, student_ids: set[int]) -> None:
    """Keep Student.school on the school of the open primary enrollment (as the enrollment
    services do); students without one keep theirs. History only for real changes."""
    if not student_ids:
        return
    open_schools = pgsql.open_primary_schools(list(student_ids))
    closed = student_ids - set(open_schools)
    rows: list[dict[str, int | None]] = [
        {"id": sid, "school_id": school} for sid, school in open_schools.items()
    ]
    # A student whose every span is closed is no longer at any school.
    rows += [{"id": sid, "school_id": None} for sid in closed]
    bulk.bulk_update(Student, rows, fields=["school_id"], change_reason=ctx.reason)


# --- the batch loop -----------------------------------------------------------------------------

_APPLIERS = {
    ChangeAction.CREATE: apply_creates,
    ChangeAction.UPDATE: apply_updates,
    ChangeAction.DEACTIVATE: apply_deactivations,
}


def creates_partition(spec: EntitySpec) -> str | None:
    """How batches of ``spec``'s creates may be applied concurrently:

    - ``""``: any batches at once (each writes only its own new rows);
    - a field name: batches at once if no two threads ever take changes with the same value
      there. Enrollment creates also close superseded spans and move their students' school,
      so each thread takes the enrollments of its own share of the students (by
      ``student_id``); a student's spans then apply in the same order as one batch at a time;
    - ``None``: one batch at a time (an entity referring to itself needs its parents first).
    """
    if any(ref.entity == spec.name for ref in spec.refs):
        return None
    if spec.name == "enrollment":
        return "student_id"
    return ""


def next_head(run: SyncRun, *, after_rank: int = -1) -> dict[str, Any] | None:
    """``rank``, ``entity``, ``action`` and ``id`` of the first staged change of a rank above
    ``after_rank``, if any. Ranks are applied in order, so the rows of the ranks above the one
    just drained are still staged and the walk stops at the first of them; without
    ``after_rank`` it reads every applied row before the first staged one."""
    head = (
        SyncChange.objects.filter(run=run, rank__gt=after_rank, state=ChangeState.STAGED)
        .order_by("rank", "id")
        .values("rank", "entity", "action", "id")
        .first()
    )
    return dict(head) if head is not None else None


def apply_batch(
    ctx: ApplyContext,
    rank: int,
    *,
    limit: int,
    share: tuple[str, int, int] | None = None,
    after: int = 0,
) -> int:
    """Claim up to ``limit`` staged changes of ``rank`` (one entity and action) with ids above
    ``after`` and apply them as one atomic batch with their state and the run's progress;
    returns the id of the last change it took (0: none of the rank left to take there), the
    ``after`` of the next batch. Changes another thread holds are left to it; with ``share``
    (field, index, shares), only that share of the rank is taken."""
    run = ctx.run
    action = action_of_rank(rank)
    with transaction.atomic():
        pgsql.batch_settings()
        # Creates are written from the staged values inside the database: not loaded here.
        changes = pgsql.changes_claim(
            run.pk,
            rank,
            limit=limit,
            with_values=action != ChangeAction.CREATE,
            share=share,
            after=after,
        )
        if not changes:
            return 0
        spec = SPECS[changes[0]["entity"]]
        if action == ChangeAction.CREATE:
            _analyze_if_stale(ctx, spec, len(changes))
        _APPLIERS[action](ctx, spec, changes)
        SyncRun.objects.filter(pk=run.pk).update(
            checkpoint=Greatest(F("checkpoint"), changes[-1]["id"]),
            changes_applied=F("changes_applied") + len(changes),
            updated_at=timezone.now(),
        )
    return int(changes[-1]["id"])


def _analyze_if_stale(ctx: ApplyContext, spec: EntitySpec, creating: int) -> None:
    """Creates resolve their references through the crosswalk with unique-index probes; the
    crosswalk's statistics still steer the plans around them (a first load without refreshes
    went from seconds to many minutes), and a first load grows it from nothing long before
    autovacuum looks."""
    with ctx.lock:
        stale = ctx.links_unanalyzed >= max(ANALYZE_AFTER_LINKS, ctx.links_analyzed)
        if spec.refs and stale:
            ctx.links_analyzed += ctx.links_unanalyzed
            ctx.links_unanalyzed = 0
        else:
            stale = False
        ctx.links_unanalyzed += creating
    if stale:
        pgsql.links_analyze()
