"""How many pages a run's staging will read, estimated while it reads them.

The SIS reports a listing's size on its first page at best, so before staging reaches an
entity nothing in this run says how many pages it has. The last comparable run does: the same
connection and mode, finished with its pages still recorded (syncing/retention.py deletes
them after a while). Without one (a connection's first run) the expected count stays unknown
until the end rather than a made-up share, and a progress bar shows motion instead of a
percentage that jumps back each time an entity's size becomes known.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Count

from syncing.models import RunStatus, SyncPage, SyncRun

# Called with the run whenever staging or applying moved on (the sync command's progress bar).
ProgressCallback = Callable[[SyncRun], None]


def pages_of_last_comparable_run(run: SyncRun) -> dict[str, int] | None:
    """Pages per entity of the connection's newest completed run of ``run``'s mode whose page
    records are kept; ``None`` when there is none."""
    previous = (
        SyncRun.objects.filter(
            connection_id=run.connection_id,
            mode=run.mode,
            status__in=[RunStatus.COMPLETED, RunStatus.COMPLETED_WITH_QUARANTINE],
            details_purged_at__isnull=True,
            pages_done__gt=0,
        )
        .exclude(pk=run.pk)
        .order_by("-finished_at")
        .values_list("pk", flat=True)
        .first()
    )
    if previous is None:
        return None
    rows = SyncPage.objects.filter(run_id=previous).values_list("entity").annotate(n=Count("id"))
    return dict(rows.order_by())


class PageEstimate:
    """The run's expected pages while staging ``entities`` in order, after ``staged_before``
    pages of entities staged before a restart: the pages of the entities staged since, the
    current entity's (the most of what the SIS reports for it, what it has staged and what
    the last comparable run read of it) and the last comparable run's for the entities to
    come."""

    def __init__(
        self, entities: list[str], staged_before: int, previous: dict[str, int] | None
    ) -> None:
        self.previous = previous
        self.to_come = list(entities)
        self.staged = staged_before
        self.current: str | None = None
        self.current_reported = 0
        self.current_staged = 0

    def page(self, entity: str, page: Any) -> None:
        """A page of ``entity`` is about to be staged."""
        self._reach(entity)
        if page.number == 0 and page.total:
            size = max(1, len(page.records) + len(page.quarantined))
            self.current_reported += -(-page.total // size)
        self.current_staged += 1

    def entity_done(self, entity: str) -> None:
        """``entity``'s last page is staged (it may have had none)."""
        self._reach(entity)
        self.staged += self.current_staged
        self.current, self.current_reported, self.current_staged = None, 0, 0

    def total(self) -> int | None:
        """The expected pages of the whole run, or ``None`` while an entity to come has no
        comparable run to go by."""
        if self.previous is None:
            return None if self.to_come else self.staged + self._current_pages()
        return (
            self.staged
            + self._current_pages()
            + sum(self.previous.get(entity, 0) for entity in self.to_come)
        )

    def _current_pages(self) -> int:
        if self.current is None:
            return 0
        before = (self.previous or {}).get(self.current, 0)
        return max(before, self.current_reported, self.current_staged)

    def _reach(self, entity: str) -> None:
        if entity != self.current:
            self.current = entity
            if entity in self.to_come:
                self.to_come.remove(entity)
