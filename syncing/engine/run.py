"""Drive one run through its phases; safe to call again for the same run after a crash.

``run_execute`` is what the Celery task and the ``sync`` command call. It holds the
connection's lock for as long as it works; a second caller for the same connection returns at
once. Phases are persisted on the run, so a redelivered task continues where the dead worker
stopped: staging starts again at the first entity it had not staged to its end (nothing in the
domain was touched yet), applying continues at the first change still staged.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError
from django.db import connections as db_connections
from django.db.models import Count, F
from django.utils import timezone

from attendance.models import District
from attendance.signals import rows_of_district
from core.logging import redact
from core.read_ahead import read_ahead
from sis.connectors.errors import MalformedRecord, UnsupportedOperation
from sis.connectors.records import as_utc, parse_datetime
from syncing.engine.apply import (
    ApplyContext,
    apply_batch,
    creates_partition,
    next_head,
    policies_load,
)
from syncing.engine.dialect import on_postgresql
from syncing.engine.dialect import sql as pgsql  # or its portable twin off PostgreSQL
from syncing.engine.progress import PageEstimate, pages_of_last_comparable_run
from syncing.engine.safety import held_details, safety_evaluate
from syncing.engine.stage import (
    StageContext,
    entities_for,
    fetched_records,
    quarantine_record,
    stage_deactivations,
    stage_page,
    stage_references,
    stage_resume,
    staging_checkpoint_save,
)
from syncing.entities import SPECS, EntitySpec
from syncing.locks import connection_lock
from syncing.models import (
    NOT_REFETCHABLE,
    ChangeAction,
    ChangeState,
    Mode,
    Phase,
    QuarantinedRecord,
    RunStatus,
    SourceLink,
    SyncChange,
    SyncRun,
)
from syncing.source import Source, source_capabilities, source_for_connection

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[SyncRun], None]

# How long a run waits for its connection's lock before deciding another worker has it.
LOCK_WAIT_SECONDS = 60.0
LOCK_POLL_SECONDS = 0.5


class BudgetExceeded(Exception):
    pass


def _district_today(district: District) -> dt.date:
    import zoneinfo

    return timezone.now().astimezone(zoneinfo.ZoneInfo(district.timezone)).date()


def error_budget(records: int) -> int:
    """How many quarantined records a run may have and still apply."""
    percent = float(getattr(settings, "SYNC_ERROR_BUDGET_PERCENT", 5))
    floor = int(getattr(settings, "SYNC_ERROR_BUDGET_MIN", 10))
    return max(floor, int(records * percent / 100))


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


# A run that staged this many changes refreshes the change table's statistics before applying.
ANALYZE_AFTER_CHANGES = 5000

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


def _stage(
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


def _quarantined_in_run(run: SyncRun) -> int:
    return QuarantinedRecord.objects.filter(run=run, status="open").count()


def _after_staging(run: SyncRun) -> bool:
    """Budget and safety. Returns True when the run may apply now."""
    fetched = fetched_records(run)
    records = sum(fetched.values())
    quarantined = _quarantined_in_run(run)
    budget = error_budget(records)
    run.quarantined_count = quarantined
    run.changes_total = SyncChange.objects.filter(run=run, state=ChangeState.STAGED).count()
    run.staged_at = timezone.now()
    if quarantined > budget:
        run.status = RunStatus.FAILED
        run.error_summary = (
            f"{quarantined} records failed validation, more than the error budget of {budget}; "
            "nothing was applied."
        )
        run.finished_at = timezone.now()
        SyncChange.objects.filter(run=run, state=ChangeState.STAGED).update(
            state=ChangeState.REJECTED
        )
        run.save()
        return False
    if run.dry_run:
        run.status = RunStatus.COMPLETED_WITH_QUARANTINE if quarantined else RunStatus.COMPLETED
        breaches = safety_evaluate(
            run,
            on=_district_today(run.district),
            fetched=fetched,
            full=run.mode == Mode.FULL,
        )
        if breaches:
            run.held_reason = " ".join(b.describe() for b in breaches)
            run.held_details = held_details(run, breaches)
        run.finished_at = timezone.now()
        run.save()
        return False
    if run.approval == "":
        breaches = safety_evaluate(
            run,
            on=_district_today(run.district),
            fetched=fetched,
            full=run.mode == Mode.FULL,
        )
        if breaches:
            run.status = RunStatus.HELD
            run.held_reason = " ".join(b.describe() for b in breaches)
            run.held_details = held_details(run, breaches)
            run.save()
            return False
    run.phase = Phase.APPLY
    run.save()
    return True


def _apply(run: SyncRun, source: Source | None, progress: ProgressCallback | None) -> None:
    capabilities = source_capabilities(source) if source is not None else set()
    ctx = ApplyContext(
        run=run,
        on=_district_today(run.district),
        capabilities=capabilities,
        region=run.district.phone_region,
        policies=policies_load(run),
    )
    batch_size = int(getattr(settings, "SYNC_BATCH_SIZE", 2000))
    threads = _apply_threads()
    if run.changes_total >= ANALYZE_AFTER_CHANGES:
        pgsql.changes_analyze()
    threaded: set[int] = set()
    rank = -1
    while True:
        head = next_head(run, after_rank=rank)
        if head is None and rank >= 0 and _claimed_fewer_than_staged(run):
            # Every rank was drained in order, yet the counts say a change is still staged
            # behind them (not expected: each rank is taken to its end). It gets another pass
            # rather than being left unapplied; the walk from the start reads every applied
            # row, so it is only taken when the counts call for it.
            head = next_head(run)
        if head is None:
            break
        spec = SPECS[head["entity"]]
        rank, after = int(head["rank"]), int(head["id"]) - 1
        many = SyncChange.objects.filter(
            run=run, rank=rank, id__gt=after, state=ChangeState.STAGED
        ).values("id")[2 * batch_size - 1 : 2 * batch_size]
        partition = creates_partition(spec) if head["action"] == ChangeAction.CREATE else None
        # A rank goes to the threads once; a second pass over it goes one batch at a time.
        if threads > 1 and partition is not None and rank not in threaded and many.exists():
            threaded.add(rank)
            staged = int(run.counts.get(spec.name, {}).get(head["action"], 0))
            _apply_rank_in_threads(
                ctx,
                rank,
                even_batch_size(staged, threads, batch_size),
                threads,
                progress,
                partition=partition,
                after=after,
            )
            continue
        first = after
        while last := apply_batch(ctx, rank, limit=batch_size, after=after):
            after = last
            _report_applied(run, progress)
        if after == first:
            # The head is staged but could not be claimed: another session holds it.
            raise RuntimeError(f"staged changes of rank {rank} are held by another session")
    SyncRun.objects.filter(pk=run.pk).update(phase=Phase.FINISH, updated_at=timezone.now())
    run.refresh_from_db()


def _claimed_fewer_than_staged(run: SyncRun) -> bool:
    """Whether the run's batches have claimed fewer changes than were staged for applying
    (``changes_total`` is counted when applying starts; every batch adds what it claimed)."""
    run.refresh_from_db(fields=["changes_applied", "changes_total"])
    return run.changes_applied < run.changes_total


def even_batch_size(changes: int, threads: int, batch_size: int) -> int:
    """The largest batch size up to ``batch_size`` that gives each of ``threads`` the same
    number of batches of ``changes``. 10,000 creates in batches of 2,000 are three batches for
    one thread and two for the other, which then idles for a batch's time while its core
    could work; in batches of 1,667 each thread takes three. (``changes`` is what was staged;
    on a resume fewer are left and the shares may come out uneven again, never a batch larger
    than ``batch_size``.)"""
    rounds = max(1, -(-changes // (threads * batch_size)))
    return max(1, min(batch_size, -(-changes // (threads * rounds))))


def _apply_threads() -> int:
    """Threads applying one rank's creates at once: each its own database session, so the
    database works on both cores. One off PostgreSQL, and one inside a caller's transaction
    (other sessions could not see its staged changes)."""
    if not on_postgresql() or db_connections["default"].in_atomic_block:
        return 1
    return max(1, int(getattr(settings, "SYNC_APPLY_THREADS", 2)))


def _apply_rank_in_threads(
    ctx: ApplyContext,
    rank: int,
    batch_size: int,
    threads: int,
    progress: ProgressCallback | None,
    *,
    partition: str = "",
    after: int = 0,
) -> None:
    """Apply every staged change of ``rank`` above id ``after`` with ``threads`` threads. Each
    claims its next batch itself (the database skips the changes the other holds; with a
    ``partition`` field, each thread takes only its own share of that field's values), from
    the last id it took, and applies it atomically with their state, so a killed worker
    resumes at the changes still staged, whichever thread had them. This thread reports
    progress meanwhile. The first error stops the others after their current batch and is
    raised."""
    stop = threading.Event()

    def drain(index: int) -> None:
        share = (partition, index, threads) if partition else None
        floor = after
        try:
            while not stop.is_set() and (
                last := apply_batch(ctx, rank, limit=batch_size, share=share, after=floor)
            ):
                floor = last
        except BaseException:
            stop.set()
            raise
        finally:
            db_connections.close_all()  # this thread's own sessions

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sync-apply") as pool:
        # Each thread gets a copy of this context (the district of the rows it writes).
        futures = [
            pool.submit(contextvars.copy_context().run, drain, index) for index in range(threads)
        ]
        running = set(futures)
        try:
            while running:
                running = wait(running, timeout=0.5).not_done
                _report_applied(ctx.run, progress)
        except BaseException:
            # This thread was interrupted (the task's time limit): the others stop after their
            # current batch instead of applying the rest of the rank unwatched.
            stop.set()
            raise
        for future in futures:
            future.result()


def _report_applied(run: SyncRun, progress: ProgressCallback | None) -> None:
    if progress is not None:
        run.refresh_from_db(fields=["changes_applied", "changes_total"])
        progress(run)


def _finish(run: SyncRun) -> None:
    from syncing.models import Conflict

    quarantined = _quarantined_in_run(run)
    counts = dict(run.counts)
    # The counts are what was applied: changes that failed (each quarantined by this run, in
    # apply's _fail) or were rejected (only a held run's: approved except deactivations, or
    # withdrawn by a confirmed identity match) come off. Other runs skip this walk over all
    # their changes (no index covers their state).
    failed = (
        SyncChange.objects.filter(run=run, state__in=[ChangeState.FAILED, ChangeState.REJECTED])
        .values_list("entity", "action")
        .order_by()
        .annotate(n=Count("id"))
        if quarantined or run.approval
        else []
    )
    for entity, action, n in failed:
        bucket = counts.setdefault(entity, {})
        bucket[action] = max(0, bucket.get(action, 0) - n)
    run.counts = counts
    run.quarantined_count = quarantined
    run.conflicts_count = Conflict.objects.filter(run=run).count()
    run.status = RunStatus.COMPLETED_WITH_QUARANTINE if quarantined else RunStatus.COMPLETED
    run.finished_at = timezone.now()
    from syncing.services import quarantine_settle

    quarantine_settle(run=run)
    if run.mode != Mode.TARGETED and not run.watermark_to:
        # No modification times from the SIS: a delta that saw nothing keeps its starting
        # point; otherwise the next delta starts where this run started reading.
        run.watermark_to = run.watermark_from or (run.started_at or timezone.now()).isoformat()
    run.save()


@contextmanager
def _collect_own_garbage_only() -> Iterator[None]:
    """Let the garbage collector skip every object that existed before the run (Django's,
    the modules', the worker's) until the run ends.

    A run allocates hundreds of thousands of short-lived objects per 10,000 records, and each
    of Python's full collections it triggers walked the whole process heap: a fifth to a
    third of staging time (10,000 students staged in 0.52 s instead of 0.75 s). Frozen objects
    are still freed by reference counting; only their cycles wait for the run's end. A process
    that froze its heap itself (a pre-fork server) is left as it is."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def run_execute(
    run_id: int,
    *,
    source: Source | None = None,
    progress: ProgressCallback | None = None,
) -> SyncRun:
    """Run (or resume) a sync run to its next resting state: held, failed or finished."""
    run = SyncRun.objects.select_related("district", "connection").get(pk=run_id)
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        with connection_lock(run.connection_id) as acquired:
            if acquired:
                # Every domain row a run writes is its district's (see rows_of_district).
                with rows_of_district(run.district_id), _collect_own_garbage_only():
                    return _execute_locked(run, source=source, progress=progress)
        run.refresh_from_db()
        if run.status not in (RunStatus.PENDING, RunStatus.RUNNING) or (
            time.monotonic() >= deadline
        ):
            logger.info("sync already running", extra={"run_id": run_id})
            return run
        # A redelivery right after its worker was killed finds the dead worker's session still
        # holding the lock until PostgreSQL notices the client is gone (it finishes the statement
        # in progress first): wait for it instead of leaving the run stranded as "running".
        time.sleep(LOCK_POLL_SECONDS)


def _execute_locked(
    run: SyncRun, *, source: Source | None, progress: ProgressCallback | None
) -> SyncRun:
    """The run under its connection's lock: stage, check, apply, finish (or resume)."""
    run_id = run.pk
    run.refresh_from_db()
    if run.status not in (RunStatus.PENDING, RunStatus.RUNNING):
        return run
    # Taken up (see SyncRun.executions): the minute drain may hand the run out again if this
    # worker dies with its message. Kept in step in memory too: the run is saved whole below.
    SyncRun.objects.filter(pk=run.pk).update(executions=F("executions") + 1)
    run.executions += 1
    try:
        if run.status == RunStatus.PENDING:
            # Only if still pending: an admin may have cancelled it since it was read.
            started = SyncRun.objects.filter(pk=run.pk, status=RunStatus.PENDING).update(
                status=RunStatus.RUNNING,
                started_at=run.started_at or timezone.now(),
                updated_at=timezone.now(),
            )
            run.refresh_from_db()
            if not started:
                return run
        if source is None:
            source = source_for_connection(run.connection)
        if run.phase == Phase.FETCH:
            if run.staged_at is None:
                # From the first entity not staged to its end when a worker died (or the start).
                point = stage_resume(run)
                run.refresh_from_db()
                _stage(run, source, progress, point)
                if not _after_staging(run):
                    _notify_if_needed(run)
                    return run
            else:
                # Staged and approved (held runs come back here after approval).
                run.phase = Phase.APPLY
                run.save(update_fields=["phase", "updated_at"])
        if run.phase == Phase.APPLY:
            _apply(run, source, progress)
        if run.phase == Phase.FINISH:
            _finish(run)
    except Exception as exc:
        logger.exception("sync run failed", extra={"run_id": run_id})
        run.refresh_from_db()
        run.status = RunStatus.FAILED
        run.error_summary = error_summary(exc)
        run.finished_at = timezone.now()
        run.save()
        _notify_if_needed(run)
        raise
    finally:
        # This execution ended, whichever way (a worker killed mid-run never gets here).
        try:
            SyncRun.objects.filter(pk=run_id).update(last_ended_execution=F("executions"))
            run.last_ended_execution = run.executions
        except DatabaseError:
            # The database is gone (a failover): the error in flight is the one to report; the
            # minute drain will take this execution for a dead worker's and resume the run.
            logger.warning("sync run's end not recorded", extra={"run_id": run_id})
    return run


def error_summary(exc: BaseException) -> str:
    """What a failed run says about its error: stored on the run, shown in the admin and the
    API, e-mailed to administrators — so no record values. PostgreSQL's messages quote them
    ("Key (district_id, local_id)=(3, S0042) already exists", "invalid input syntax for type
    date: …"), so a database error is named by its kind, SQLSTATE, table and constraint."""
    if isinstance(exc, SoftTimeLimitExceeded):
        limit = settings.SYNC_RUN_TIME_LIMIT_SECONDS
        return (
            f"Stopped after {limit} seconds, the longest a sync may run in a worker "
            "(SYNC_RUN_TIME_LIMIT_SECONDS). What it had applied is kept and the next sync takes "
            "up the rest; a district this size on this SIS needs a higher limit."
        )
    if isinstance(exc, DatabaseError):
        cause = exc.__cause__
        diag = getattr(cause, "diag", None)
        parts = [f"{type(exc).__name__}: database error {getattr(cause, 'sqlstate', None) or ''}"]
        for label, attribute in (("table", "table_name"), ("constraint", "constraint_name")):
            value = getattr(diag, attribute, None)
            if value:
                parts.append(f"{label} {value}")
        return ", ".join(part.strip() for part in parts)
    return redact(f"{type(exc).__name__}: {exc}")[:2000]


def _notify_if_needed(run: SyncRun) -> None:
    from syncing.services import run_notify

    if run.status in (RunStatus.FAILED, RunStatus.HELD) and not run.dry_run:
        run_notify(run=run)


def staged_changes(run: SyncRun, *, limit: int | None = None) -> list[dict[str, Any]]:
    rows = SyncChange.objects.filter(run=run).order_by("rank", "id")
    values = rows.values("entity", "action", "source_id", "diff", "state")
    return [dict(row) for row in (values[:limit] if limit else values)]


__all__ = ["ChangeAction", "run_execute", "staged_changes"]
