"""Batch claims: each apply batch marks and reads its staged changes in one statement;
shares split a rank between threads without ever splitting one value of the share field."""

from __future__ import annotations

import pytest
from django.db import connection as db
from django.db import transaction

from syncing.engine.apply import even_batch_size
from syncing.engine.dialect import sql as engine_sql
from syncing.models import SyncChange, SyncRun

RANK = 34


@pytest.fixture
def staged(connection) -> tuple[SyncRun, dict[int, object]]:
    run = SyncRun.objects.create(district=connection.district, connection=connection)
    students: list[object] = [f"stu-{n % 7}" for n in range(40)] + [None, None]
    ids = {}
    for number, student in enumerate(students):
        values = {} if student is None else {"student_id": student}
        change = SyncChange.objects.create(
            run=run,
            entity="enrollment",
            source_id=f"enr-{number}",
            action="create",
            rank=RANK,
            values=values,
        )
        ids[change.pk] = student
    return run, ids


def test_claims_take_staged_changes_in_id_order_once(staged):
    run, ids = staged
    first = engine_sql.changes_claim(run.pk, RANK, limit=10, with_values=True)
    assert [c["id"] for c in first] == sorted(ids)[:10]
    assert first[0]["values"] == {"student_id": "stu-0"}
    rest = engine_sql.changes_claim(run.pk, RANK, limit=100, with_values=False)
    assert [c["id"] for c in rest] == sorted(ids)[10:]
    assert "values" not in rest[0]
    assert engine_sql.changes_claim(run.pk, RANK, limit=100, with_values=False) == []
    assert set(SyncChange.objects.filter(run=run).values_list("state", flat=True)) == {"applied"}


def test_a_rolled_back_claim_leaves_its_changes_staged(staged):
    run, ids = staged
    with pytest.raises(RuntimeError), transaction.atomic():
        assert len(engine_sql.changes_claim(run.pk, RANK, limit=5, with_values=False)) == 5
        raise RuntimeError("the batch failed")
    assert SyncChange.objects.filter(run=run, state="staged").count() == len(ids)


def test_shares_cover_the_rank_and_keep_each_student_in_one(staged):
    run, ids = staged
    taken: dict[int, set[int]] = {}
    for index in range(3):
        claimed = engine_sql.changes_claim(
            run.pk, RANK, limit=100, with_values=False, share=("student_id", index, 3)
        )
        taken[index] = {c["id"] for c in claimed}
    # Every change claimed once, the ones without a student included.
    assert sorted(i for share in taken.values() for i in share) == sorted(ids)
    owners: dict[object, set[int]] = {}
    for index, share in taken.items():
        for change_id in share:
            owners.setdefault(ids[change_id], set()).add(index)
    assert all(len(indexes) == 1 for indexes in owners.values())
    assert len([share for share in taken.values() if share]) > 1


def test_a_claim_starts_after_its_floor(staged):
    run, ids = staged
    ordered = sorted(ids)
    claimed = engine_sql.changes_claim(run.pk, RANK, limit=5, with_values=False, after=ordered[9])
    assert [c["id"] for c in claimed] == ordered[10:15]
    # The changes below the floor stay staged for a caller that starts lower.
    assert [
        c["id"] for c in engine_sql.changes_claim(run.pk, RANK, limit=3, with_values=False)
    ] == (ordered[:3])


def test_claims_are_heap_only_updates(staged):
    """No index covers ``state`` and the table keeps room on its pages (migration 0008), so a
    claim rewrites no index entry: the cheapest write PostgreSQL has."""
    run, ids = staged
    with db.cursor() as cursor:
        cursor.execute("SELECT 'syncing_syncchange'::regclass::oid")
        (table,) = cursor.fetchone()
        claimed = engine_sql.changes_claim(run.pk, RANK, limit=100, with_values=False)
        cursor.execute(
            "SELECT pg_stat_get_xact_tuples_updated(%s), pg_stat_get_xact_tuples_hot_updated(%s)",
            [table, table],
        )
        updated, heap_only = cursor.fetchone()
    assert len(claimed) == len(ids)
    assert updated >= len(ids)
    assert heap_only == updated


@pytest.mark.parametrize(
    ("changes", "threads", "limit", "expected"),
    [
        (10_000, 2, 2_000, 1_667),  # three batches per thread instead of three and two
        (8_000, 2, 2_000, 2_000),  # already even
        (3_000, 2, 2_000, 1_500),
        (600_001, 2, 2_000, 1_987),
        (1, 2, 2_000, 1),
        (0, 2, 2_000, 1),
    ],
)
def test_threads_get_batches_of_one_even_size(changes, threads, limit, expected):
    size = even_batch_size(changes, threads, limit)
    assert size == expected
    assert size <= limit
    if changes:
        batches = -(-changes // size)
        assert batches % threads == 0 or batches < threads
