"""A run's applying: every staged change, rank after rank, a rank's creates in several
threads each with its own database session."""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor, wait

from django.conf import settings
from django.db import connections as db_connections
from django.utils import timezone

from syncing.engine.apply.batches import apply_batch, creates_partition, next_head
from syncing.engine.apply.context import ApplyContext, policies_load
from syncing.engine.dialect import on_postgresql
from syncing.engine.dialect import sql as pgsql  # or its portable twin off PostgreSQL
from syncing.engine.progress import ProgressCallback
from syncing.entities import SPECS
from syncing.models import ChangeAction, ChangeState, Phase, SyncChange, SyncRun
from syncing.source import Source, source_capabilities

# A run that staged this many changes refreshes the change table's statistics before applying.
ANALYZE_AFTER_CHANGES = 5000


def apply_run(run: SyncRun, source: Source | None, progress: ProgressCallback | None) -> None:
    """Apply the run's staged changes in rank order (entities by dependency, then
    deactivations, updates, creates), from the first change still staged, and move the run to
    its finish. ``source`` says which fields the connector can write back."""
    capabilities = source_capabilities(source) if source is not None else set()
    ctx = ApplyContext(
        run=run,
        on=run.district.today(),
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
