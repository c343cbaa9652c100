"""A worker killed (SIGKILL) at random points of a sync: after redelivery the database equals a
clean run's, with no duplicate rows and no doubled history. Real Celery worker, real Redis
broker, real PostgreSQL, sandbox over HTTP. (The ``sync`` benchmark runs the same at 20,000
students with five kills.)"""

from __future__ import annotations

import random

import pytest

from syncing.engine.run import run_execute
from syncing.models import RunStatus, SyncRun
from syncing.services import sync_start
from tests.factories import DistrictFactory
from tests.syncing.kill_resume import (
    district_digest,
    kill_while_running,
    pauses_within,
    sync_worker,
)
from tests.syncing.sandbox import connection_for, sandbox_for

STUDENTS = 1000
KILLS = 3


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_killed_workers_resume_to_the_same_database_as_a_clean_run(tmp_path):
    log_path = tmp_path / "worker.log"
    with (
        sandbox_for(students=STUDENTS, page_cap=200) as sandbox,
        sync_worker(log_path, batch_size=25) as worker,
    ):
        clean_district = DistrictFactory(name="Clean")
        clean = run_execute(
            sync_start(connection=connection_for(sandbox, clean_district), enqueue=False)[0].pk
        )
        assert clean.status == RunStatus.COMPLETED

        district = DistrictFactory(name="Killed")
        connection = connection_for(sandbox, district)
        run, _ = sync_start(connection=connection)  # queued to the real worker
        kills, phases = kill_while_running(
            run,
            worker,
            kills=KILLS,
            rng=random.Random(5),
            # Small batches for the worker (it applies more slowly than the clean run), pauses
            # that fit in the clean run's shorter phase: every kill lands in its phase.
            pause=pauses_within(clean, KILLS),
            phases=("fetch", "apply", "apply"),
        )
        log = log_path.read_text(errors="replace")
        assert run.status == RunStatus.COMPLETED, (run.status, run.error_summary, log[-3000:])
    assert kills == KILLS, log[-2000:]
    assert phases == ["fetch", "apply", "apply"]
    assert SyncRun.objects.filter(connection=connection).count() == 1
    assert district_digest(district.pk) == district_digest(clean_district.pk)
