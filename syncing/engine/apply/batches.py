"""The batch loop: claim staged changes of one rank and apply them atomically."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from syncing.engine.apply.context import ApplyContext
from syncing.engine.apply.creates import apply_creates
from syncing.engine.apply.deactivations import apply_deactivations
from syncing.engine.apply.updates import apply_updates
from syncing.engine.dialect import sql as pgsql  # or its portable twin off PostgreSQL
from syncing.engine.stage.context import action_of_rank
from syncing.entities import SPECS, EntitySpec
from syncing.models import ChangeAction, ChangeState, SyncChange, SyncRun

# The crosswalk's planner statistics are refreshed once this many links were created since the
# last refresh, or as many as it then held, whichever is more: a first load of 1.2 million
# links refreshes them about six times (each ANALYZE samples the whole table: ~0.3 s at that
# size), and they are never more than half stale.
ANALYZE_AFTER_LINKS = 20000

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
