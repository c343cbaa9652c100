"""Deactivations: what the SIS no longer returns ends (spans) or goes inactive."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Q

from attendance import bulk
from attendance.models import ExitReason
from syncing.engine.apply.context import ApplyContext, refresh_student_schools, resolve_links
from syncing.engine.dialect import sql as pgsql  # or its portable twin off PostgreSQL
from syncing.engine.stage.context import change_rank
from syncing.entities import EntitySpec
from syncing.models import ChangeAction, ChangeState, SourceLink, SyncChange


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
            refresh_student_schools(ctx, students - set(transfers))
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
    local = resolve_links(ctx.run, "student", set(entries))
    return {local[source]: entry for source, entry in entries.items() if source in local}
