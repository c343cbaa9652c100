"""Domain events other apps may react to (notifications listens to these).

Sent by the services after the transaction commits, with ids only, so a receiver never sees a
row that was rolled back and can hand the ids to a Celery task as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import NamedTuple

import django.dispatch


class AttendanceChange(NamedTuple):
    record_id: int
    previous_status: str | None  # None when the record is new
    status: str


# kwargs: changes (list[AttendanceChange]) — every record one commit wrote, in one send, so a
# bulk post of 1,000 records costs receivers one call, not 1,000.
attendance_changed = django.dispatch.Signal()

# kwargs: grade_ids (list[int]) — participation grades a computation created or changed.
# Unlike attendance_changed it is sent *inside* the transaction that wrote them: its receiver
# (syncing) queues them in the write-back outbox, which must commit together with the grades
# (a grade committed without its outbox row would never be written back, since recomputing
# an unchanged grade queues nothing). Receivers return how many items they queued.
participation_grades_changed = django.dispatch.Signal()

# kwargs: ids (list[int]) — rows of ``sender`` (a model) that a set-based writer in
# attendance.bulk inserted or really changed; district_id (int | None) — the district all of
# them belong to when the writer said so (``rows_of_district``), else None. Sent inside the
# writing transaction, because these writes send no post_save: receivers that must see every
# change (the API's roster page cache) listen here too, and wait for the commit themselves
# where it matters.
rows_written = django.dispatch.Signal()

_district_of_writes: ContextVar[int | None] = ContextVar("district_of_writes", default=None)


@contextmanager
def rows_of_district(district_id: int) -> Iterator[None]:
    """Declare that every row the set-based writers write in this block (and thread) belongs to
    ``district_id``. The sync engine writes one district per run: with the district in the
    signal, the roster cache's receiver needs no query per batch to find it (at 100,000
    students those lookups cost a tenth of a full sync)."""
    token = _district_of_writes.set(district_id)
    try:
        yield
    finally:
        _district_of_writes.reset(token)


def district_of_writes() -> int | None:
    """The district declared by the innermost ``rows_of_district`` around this call."""
    return _district_of_writes.get()
