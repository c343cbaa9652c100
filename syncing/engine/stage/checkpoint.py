"""Where staging stands: what was fetched, what is staged, and where a restart resumes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.db.models import Count, Q, Sum

from sis.connectors.records import as_utc
from syncing.engine.stage.context import StageContext
from syncing.entities import SPECS, EntitySpec
from syncing.models import IdentityMatch, MatchStatus, Mode, SyncChange, SyncPage, SyncRun


def entities_for(source: Any) -> list[EntitySpec]:
    provided = {str(e) for e in getattr(source, "entities", ())}
    return sorted((SPECS[e] for e in provided if e in SPECS), key=lambda s: s.rank)


def fetched_records(run: SyncRun) -> dict[str, int]:
    """How many records the SIS returned in this run, per entity (every entity named)."""
    fetched = dict.fromkeys(SPECS, 0)
    for entity, records in (
        SyncPage.objects.filter(run=run)
        .values_list("entity")
        .order_by()
        .annotate(records=Sum("records"))
    ):
        fetched[entity] = int(records or 0)
    return fetched


def stage_resume(run: SyncRun) -> dict[str, Any]:
    """Where staging (re)starts: what was staged of entities not staged to their end (a worker
    died while fetching them) is forgotten, and the run's staging checkpoint returned — the
    entities to skip, with the counts, newest modification time and SIS watermark they left
    (empty: from the first page). A targeted run, a few records, always starts over. Nothing
    in the domain was touched yet."""
    point = dict(run.staging_checkpoint or {}) if run.mode != Mode.TARGETED else {}
    done = list(point.get("entities", []))
    if done and point.get("max_modified"):
        # Changes the SIS made to the entities skipped now, after they were read, are newer than
        # the newest change read then: the next delta must start no later than that (the
        # earliest such time over several restarts).
        point["newest_before_restart"] = min(
            filter(None, (point.get("newest_before_restart"), point["max_modified"])),
            key=lambda text: as_utc(dt.datetime.fromisoformat(text)),
        )
    with transaction.atomic():
        SyncChange.objects.filter(run=run).exclude(entity__in=done).delete()
        SyncPage.objects.filter(run=run).exclude(entity__in=done).delete()
        IdentityMatch.objects.filter(run=run, status=MatchStatus.SUGGESTED).exclude(
            entity__in=done
        ).delete()
        SyncRun.objects.filter(pk=run.pk).update(
            pages_done=SyncPage.objects.filter(run=run).count(),
            counts=point.get("counts", {}),
            staging_checkpoint=point,
        )
    return point


def staging_checkpoint_save(ctx: StageContext, source: Any, entities: list[str]) -> None:
    """Record that ``entities`` are staged to their end (their pages, references and unseen
    links), with what the rest of staging needs to go on from there after a restart. The SIS
    watermark and the SIS's clock at the first answer kept are the first ones read: a
    restarted run reads them again, later, and a delta from those would skip what changed in
    between in the entities already staged."""
    previous = ctx.run.staging_checkpoint or {}
    watermark = previous.get("source_watermark") or getattr(source, "delta_watermark", None)
    first_answer = getattr(source, "first_answer_at", None)
    point = {
        **previous,
        "entities": entities,
        "counts": ctx.counts,
        "max_modified": ctx.max_modified.isoformat() if ctx.max_modified is not None else None,
        "source_watermark": str(watermark) if watermark else "",
        "first_answer_at": previous.get("first_answer_at")
        or (first_answer.isoformat() if first_answer is not None else None),
    }
    SyncRun.objects.filter(pk=ctx.run.pk).update(staging_checkpoint=point)
    ctx.run.staging_checkpoint = point


def staged_totals(run: SyncRun) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = {}
    for entity, action, n in (
        SyncChange.objects.filter(run=run)
        .filter(~Q(state="rejected"))
        .values_list("entity", "action")
        .order_by()
        .annotate(n=Count("id"))
    ):
        totals.setdefault(entity, {})[action] = n
    return totals
