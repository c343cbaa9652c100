"""What every applier shares: the run's context, field policies, references resolved
through the crosswalk, rows the database refuses isolated and quarantined."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction

from attendance import bulk
from attendance.models import Student
from syncing.engine.dialect import sql as pgsql  # or its portable twin off PostgreSQL
from syncing.engine.stage.context import quarantine_record
from syncing.entities import EntitySpec
from syncing.models import ChangeState, FieldPolicy, Policy, SourceLink, SyncChange, SyncRun


@dataclass
class ApplyContext:
    """One run's applying: what every batch needs (the district's today, the connector's
    capabilities, the field policies) and the counters the batches keep."""

    run: SyncRun
    on: dt.date
    capabilities: set[str] = field(default_factory=set)
    region: str = "US"
    policies: dict[tuple[str, str], str] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    # Links created by this run since the crosswalk's statistics were last refreshed, and
    # before that refresh (see apply.batches.ANALYZE_AFTER_LINKS).
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


def resolve_links(run: SyncRun, entity: str, source_ids: set[str]) -> dict[str, int]:
    if not source_ids:
        return {}
    return dict(
        SourceLink.objects.filter(
            connection_id=run.connection_id, entity=entity, source_id__any=list(source_ids)
        ).values_list("source_id", "object_id")
    )


def resolve_refs(
    ctx: ApplyContext, spec: EntitySpec, changes: Sequence[dict[str, Any]]
) -> dict[str, dict[str, int]]:
    return {
        ref.attname: resolve_links(
            ctx.run,
            ref.entity,
            {c["values"][ref.attname] for c in changes if c["values"].get(ref.attname)},
        )
        for ref in spec.refs
    }


def guarded(
    items: list[Any], write: Callable[[list[Any]], object], fail: Callable[[Any, str], None]
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
        guarded(items[:middle], write, fail)
        guarded(items[middle:], write, fail)


def model_row(
    ctx: ApplyContext, spec: EntitySpec, values: dict[str, Any], refs: dict[str, dict[str, int]]
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


def quarantine_change(ctx: ApplyContext, change: dict[str, Any], code: str, message: str) -> None:
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


def refresh_student_schools(ctx: ApplyContext, student_ids: set[int]) -> None:
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
