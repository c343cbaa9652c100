"""One run per connection at a time, whoever triggers it."""

from __future__ import annotations

import threading

import pytest
from django.db import connection as db

from syncing.engine import run as engine_run
from syncing.engine.run import run_execute
from syncing.models import SyncRun
from syncing.services import sync_start
from tests.syncing.helpers import lock_held_elsewhere


@pytest.mark.django_db(transaction=True)
def test_two_triggers_at_once_make_one_run(connection, source):
    barrier = threading.Barrier(2)
    results = []

    def trigger():
        try:
            barrier.wait()
            run, created = sync_start(connection=connection, enqueue=False)
            results.append((run.pk, created))
        finally:
            db.close()

    threads = [threading.Thread(target=trigger) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({pk for pk, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, True]
    assert SyncRun.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_second_executor_of_a_locked_connection_does_nothing(connection, source, monkeypatch):
    monkeypatch.setattr(engine_run, "LOCK_WAIT_SECONDS", 1.0)
    run, _ = sync_start(connection=connection, enqueue=False)
    with lock_held_elsewhere(connection.pk):
        result = run_execute(run.pk, source=source)
        assert result.status == "pending"  # untouched: another worker owns the connection
        assert source.fetches == 0
    result = run_execute(run.pk, source=source)
    assert result.status == "completed"


def test_a_repeated_idempotency_key_is_one_run(connection):
    first, created = sync_start(connection=connection, idempotency_key="beat:1:x", enqueue=False)
    assert created
    second, created = sync_start(connection=connection, idempotency_key="beat:1:x", enqueue=False)
    assert (second.pk, created) == (first.pk, False)


@pytest.mark.django_db(transaction=True)
def test_an_executor_waits_for_a_lock_a_dead_worker_still_holds(connection, source):
    """A redelivery right after a SIGKILL finds the dead worker's session still holding the
    lock for a moment: it waits for it and runs, instead of leaving the run stranded."""
    run, _ = sync_start(connection=connection, enqueue=False)
    with lock_held_elsewhere(connection.pk, release_after=1.5):
        result = run_execute(run.pk, source=source)
    assert result.status == "completed"
    assert source.fetches > 0
