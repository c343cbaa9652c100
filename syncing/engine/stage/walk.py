"""A run's staging from start (or its checkpoint) to end: every page of every entity in
dependency order, fetched ahead while the page before is staged; or, for a targeted run, the
few records it names."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from django.db.models import F

from core.read_ahead import read_ahead
from sis.connectors.errors import MalformedRecord, UnsupportedOperation
from sis.connectors.records import as_utc, parse_datetime
from syncing.engine.progress import PageEstimate, ProgressCallback, pages_of_last_comparable_run
from syncing.engine.stage.checkpoint import entities_for, staging_checkpoint_save
from syncing.engine.stage.context import StageContext, quarantine_record
from syncing.engine.stage.pages import stage_deactivations, stage_page, stage_references
from syncing.entities import SPECS, EntitySpec
from syncing.models import NOT_REFETCHABLE, Mode, RunStatus, SourceLink, SyncRun
from syncing.source import Source, source_capabilities


def _previous_watermark(run: SyncRun) -> str:
    previous = (
        SyncRun.objects.filter(
            connection_id=run.connection_id,
            status__in=[RunStatus.COMPLETED, RunStatus.COMPLETED_WITH_QUARANTINE],
            dry_run=False,
        )
        .exclude(pk=run.pk)
        .exclude(mode=Mode.TARGETED)  # older targeted runs stored one
        .exclude(watermark_to="")
        .order_by("-finished_at")
        .values_list("watermark_to", flat=True)
        .first()
    )
    return previous or ""


# Pages fetched ahead of the one being staged (each is one SIS page: memory stays flat, a few
# MB). Eight rather than two: the download keeps going while an entity's references are
# checked after its last page (identical 30,000-student re-sync: 0.98-1.00x the download
# instead of 1.07-1.08x).
PAGES_AHEAD = 8


def _fetched_ahead(
    source: Source, specs: list[EntitySpec], since: str | None
) -> Iterator[tuple[EntitySpec, Any]]:
    """``(spec, page)`` for every page of every entity in order, then ``(spec, None)`` after an
    entity's last page. A thread fetches up to :data:`PAGES_AHEAD` pages ahead: the download
    (waiting on the SIS, parsing, mapping) overlaps with staging (waiting on the database).
    The thread only talks to the SIS; an error there is raised here, in order."""

    def pages() -> Iterator[tuple[EntitySpec, Any]]:
        for spec in specs:
            for page in source.fetch(spec.name, since=since):
                yield spec, page
            yield spec, None

    yield from read_ahead(pages(), depth=PAGES_AHEAD, name="sync-fetch")


def _gone(spec: EntitySpec, source_id: str) -> Any:
    """Stands in for a record the SIS no longer has: staged, it deactivates its link."""
    return SimpleNamespace(entity=spec.name, source_id=source_id, status="tobedeleted", raw={})


def _is_stand_in(record: Any) -> bool:
    return isinstance(record, SimpleNamespace)


def _student_links(run: SyncRun, source_id: str) -> Any:
    """The local id of the student linked by ``source_id`` (a query: empty when none)."""
    return SourceLink.objects.filter(
        connection_id=run.connection_id, entity="student", source_id=source_id
    ).values_list("object_id", flat=True)


def _linked_spans(run: SyncRun, entity: str, students: Any) -> list[str]:
    """Source ids of the still-linked ``entity`` spans (school or class) of ``students``."""
    spans = SPECS[entity].model._default_manager.filter(student_id__in=students).values("id")
    return list(
        SourceLink.objects.filter(
            connection_id=run.connection_id, entity=entity, active=True, object_id__in=spans
        ).values_list("source_id", flat=True)
    )


def _spans_of_gone_student(
    run: SyncRun, source_id: str, provided: set[str]
) -> Iterator[tuple[str, list[Any]]]:
    """(entity, deletions) for the still-linked school and class spans of the student whose
    link has ``source_id``: what a full sync would deactivate once the SIS dropped it."""
    for entity in ("enrollment", "section_enrollment"):
        if entity in provided:
            linked = _linked_spans(run, entity, _student_links(run, source_id))
            if linked:
                yield entity, [_gone(SPECS[entity], sid) for sid in linked]


def _targeted_records(run: SyncRun, source: Source, spec: EntitySpec, source_id: str) -> list[Any]:
    """What a targeted run stages for one target: the record as the SIS has it now; else
    what the SIS item now maps to and the target's deletion (a record re-keyed, or parked
    under its item's id). An enrollment target naming a *student* (a student's event), or a
    span the SIS has re-keyed, is that student's whole set of spans, as a full sync would see
    it: the spans the SIS returns, and the deletion of every other span of the student still
    linked (a transfer's old school, or all of them when the student is gone)."""
    mapped = source.fetch_item(spec.name, source_id) or []
    exact = [r for r in mapped if str(r.source_id) == source_id]
    if spec.name == "enrollment" and not exact:
        owners = {str(getattr(r, "student_id", "") or "") for r in mapped} - {""}
        if source_id not in owners and len(owners) == 1:
            # A span id the SIS has re-keyed (a re-drive after a transfer): its student's set.
            source_id = owners.pop()
        student = list(_student_links(run, source_id))
        spans = [r for r in mapped if str(getattr(r, "student_id", "")) == source_id]
        if student or spans:  # a new student has no link yet, only spans
            returned = {str(r.source_id) for r in spans}
            linked = _linked_spans(run, "enrollment", student)
            return spans + [_gone(spec, sid) for sid in linked if sid not in returned]
    # No record by that id: the target named the item itself (a record parked when its item
    # failed to map) or a record the item no longer has; stage what the item has now.
    return exact or [*mapped, _gone(spec, source_id)]


def stage_run(
    run: SyncRun, source: Source, progress: ProgressCallback | None, point: dict[str, Any]
) -> None:
    """Stage the run from its staging checkpoint ``point`` (see ``stage_resume``)."""
    district = run.district
    done = list(point.get("entities", []))
    ctx = StageContext(run=run, region=district.phone_region, counts=point.get("counts") or {})
    if point.get("max_modified"):
        ctx.max_modified = dt.datetime.fromisoformat(point["max_modified"])
    specs = [spec for spec in entities_for(source) if spec.name not in done]
    if run.mode == Mode.TARGETED:
        targets = run.target_pairs
        provided = {spec.name for spec in specs}
        for number, (entity, source_id) in enumerate(
            sorted(targets, key=lambda t: SPECS[t[0]].rank)
        ):
            if entity not in provided:  # e.g. a OneRoster "users" event read as staff too
                continue
            spec = SPECS[entity]
            try:
                records = _targeted_records(run, source, spec, source_id)
            except UnsupportedOperation:
                # Counted, so the run says so; a delta follows the run (syncing.events).
                ctx.count(entity, NOT_REFETCHABLE)
                continue
            except MalformedRecord as exc:
                quarantine_record(
                    run=run,
                    entity=entity,
                    source_id=source_id,
                    payload={},
                    reason_code="malformed",
                    message=str(exc),
                )
                continue
            stage_page(ctx, spec, SimpleNamespace(records=records, quarantined=[], number=number))
            stage_references(ctx, spec)
            if spec.name == "student" and all(_is_stand_in(r) for r in records):
                # The student is gone at the SIS: its school and class spans end with it.
                for dependent, gone in _spans_of_gone_student(run, source_id, provided):
                    page = SimpleNamespace(records=gone, quarantined=[], number=number)
                    stage_page(ctx, SPECS[dependent], page)
    else:
        since = None
        if run.mode == Mode.DELTA:
            run.watermark_from = _previous_watermark(run)
            run.save(update_fields=["watermark_from", "updated_at"])
            # A connector without deltas lists everything; the diff still finds the changes,
            # and a delta never deactivates what it did not see.
            if "delta" in source_capabilities(source):
                since = run.watermark_from or None
        # run.pages_done: the pages of the entities staged before a restart.
        estimate = PageEstimate(
            [spec.name for spec in specs], run.pages_done, pages_of_last_comparable_run(run)
        )
        expected = estimate.total()
        SyncRun.objects.filter(pk=run.pk).update(pages_expected=expected)
        for spec, page in _fetched_ahead(source, specs, since):
            if page is None:
                # The entity's last page is staged.
                stage_references(ctx, spec)
                if run.mode == Mode.FULL:
                    # What the SIS no longer returns. An empty listing stages every link for
                    # deactivation, and the safety check holds the run (empty source).
                    stage_deactivations(ctx, spec)
                done.append(spec.name)
                staging_checkpoint_save(ctx, source, done)
                estimate.entity_done(spec.name)
                continue
            estimate.page(spec.name, page)
            if (total := estimate.total()) != expected:
                expected = total
                SyncRun.objects.filter(pk=run.pk).update(pages_expected=expected)
            stage_page(ctx, spec, page)
            if progress is not None:
                run.refresh_from_db(fields=["pages_done", "pages_expected", "counts"])
                progress(run)
    updates: dict[str, Any] = {"counts": ctx.counts}
    if run.mode != Mode.TARGETED:
        updates["pages_expected"] = F("pages_done")  # what it turned out to be
    # A targeted run read a few records: no statement about what changed elsewhere, so only
    # full and delta runs move where the next delta starts.
    watermark = _next_watermark(run, ctx) if run.mode != Mode.TARGETED else ""
    if watermark:
        updates["watermark_to"] = watermark
    SyncRun.objects.filter(pk=run.pk).update(**updates)
    run.refresh_from_db()


# Taken off the SIS's clock at the first answer: its Date header is stamped when the answer is
# sent, after the SIS built the page (a change committed meanwhile carries an earlier time), in
# whole seconds, and the SIS's database clock may run a little behind its web server's. A minute
# of changes read again by the next delta costs a hash comparison each.
_SIS_CLOCK_MARGIN = dt.timedelta(minutes=1)


def _next_watermark(run: SyncRun, ctx: StageContext) -> str:
    """Where the next delta starts, once every entity is staged (so the staging checkpoint
    holds the SIS's counter and clock as first read, see staging_checkpoint_save). The SIS's
    own change counter when it has one (PowerSchool data versions). Otherwise the newest
    modification time the run saw, but never past the SIS's clock at the run's first answer,
    nor, after a restart, past the newest modification time of the entities staged before it:
    a record changed at the SIS after its page was read, while later pages were being read,
    carries an earlier time than their newest, and a delta from there would skip it for good.
    Changes made during a run are read again by the next delta instead."""
    point = run.staging_checkpoint or {}
    if point.get("source_watermark"):
        return str(point["source_watermark"])
    newest = ctx.max_modified
    if newest is None:
        return ""
    newest = as_utc(newest)
    if before_restart := parse_datetime(point.get("newest_before_restart")):
        newest = min(newest, before_restart)
    if first_answer := parse_datetime(point.get("first_answer_at")):
        newest = min(newest, first_answer - _SIS_CLOCK_MARGIN)
    return newest.isoformat().replace("+00:00", "Z")
