"""Creates: new domain rows inserted straight from their staged values."""

from __future__ import annotations

import datetime as dt
from typing import Any

from attendance import bulk
from attendance.models import ExitReason
from syncing.engine.apply.context import (
    ApplyContext,
    guarded,
    quarantine_change,
    refresh_student_schools,
)
from syncing.engine.dialect import sql as pgsql  # or its portable twin off PostgreSQL
from syncing.entities import EntitySpec
from syncing.models import SyncChange


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
                quarantine_change(
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
            refresh_student_schools(ctx, pgsql.enrollment_students([row[0] for row in inserted]))

    by_id = {c["id"]: c for c in changes}

    def fail(change_id: int, constraint: str) -> None:
        change = by_id[change_id]
        change["values"] = (
            SyncChange.objects.filter(pk=change_id).values_list("values", flat=True).first() or {}
        )
        quarantine_change(
            ctx, change, "constraint_violation", f"The record breaks the rule {constraint}."
        )

    guarded(ready, write, fail)


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
