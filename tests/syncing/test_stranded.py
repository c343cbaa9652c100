"""Runs that outlive their worker and its message: the task's own time limits, and the minute
drain handing a run no worker executes back to the workers (real PostgreSQL; the last test
with a real Celery worker, the Redis broker and the sandbox over HTTP)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from config.celery import app as celery_app
from syncing import tasks as sync_tasks
from syncing.engine.apply import driver as apply_driver
from syncing.engine.run import error_summary, run_execute
from syncing.locks import connection_lock_held
from syncing.models import RunStatus, SyncRun
from syncing.services import (
    STRANDED_MAX_HANDOUTS,
    STRANDED_PENDING_AFTER,
    STRANDED_RESEND_AFTER,
    STRANDED_RUNNING_AFTER,
    stranded_runs_resume,
    sync_start,
)
from tests.factories import DistrictFactory
from tests.syncing.helpers import lock_held_elsewhere
from tests.syncing.kill_resume import district_digest, pool_children
from tests.syncing.sandbox import connection_for, sandbox_for
from tests.workers import celery_worker


def test_a_sync_run_may_outlast_the_visibility_timeout():
    """A big district on a slow SIS syncs for hours: the run's task is not stopped at the
    limits every other task keeps under the visibility timeout."""
    task = celery_app.tasks["syncing.tasks.sync_run_execute"]
    assert task.soft_time_limit == settings.SYNC_RUN_TIME_LIMIT_SECONDS
    assert task.time_limit > task.soft_time_limit > settings.CELERY_VISIBILITY_TIMEOUT
    other = celery_app.tasks["syncing.tasks.sync_events_drain"]
    assert other.time_limit < settings.CELERY_VISIBILITY_TIMEOUT  # the global limits


def test_a_run_stopped_by_its_time_limit_says_so():
    from celery.exceptions import SoftTimeLimitExceeded

    summary = error_summary(SoftTimeLimitExceeded())
    assert str(settings.SYNC_RUN_TIME_LIMIT_SECONDS) in summary
    assert "SYNC_RUN_TIME_LIMIT_SECONDS" in summary


@pytest.mark.django_db(transaction=True)
def test_a_time_limit_during_threaded_applying_stops_the_apply_threads(
    connection, source, settings, monkeypatch
):
    """The time limit lands in the thread watching the apply threads: they stop after their
    current batch rather than apply the rest of the rank after the run was marked failed."""
    from celery.exceptions import SoftTimeLimitExceeded

    settings.SYNC_BATCH_SIZE = 2
    settings.SYNC_APPLY_THREADS = 2
    apply_batch = apply_driver.apply_batch

    def slow_batch(*args: Any, **kwargs: Any) -> int:
        time.sleep(0.1)  # thirty batches a rank: the watching thread reports meanwhile
        return apply_batch(*args, **kwargs)

    monkeypatch.setattr(apply_driver, "apply_batch", slow_batch)

    def progress(run: SyncRun) -> None:
        if any(t.name.startswith("sync-apply") for t in threading.enumerate()):
            raise SoftTimeLimitExceeded()

    run, _ = sync_start(connection=connection, enqueue=False)
    with pytest.raises(SoftTimeLimitExceeded):
        run_execute(run.pk, source=source, progress=progress)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "SYNC_RUN_TIME_LIMIT_SECONDS" in run.error_summary
    time.sleep(0.5)  # had the threads gone on, they would be applying now
    # The students were being created when the limit came: the rest of them still wait.
    students = run.changes.filter(entity="student", action="create")
    assert 0 < students.filter(state="staged").count() < students.count()


def _quiet(run: SyncRun, status: str, *, for_: dt.timedelta) -> None:
    SyncRun.objects.filter(pk=run.pk).update(
        status=status, updated_at=timezone.now() - for_ - dt.timedelta(seconds=5)
    )


@pytest.fixture
def sent(monkeypatch):
    """Messages sync_run_execute would have sent to the broker (run ids)."""
    ids: list[int] = []
    monkeypatch.setattr(sync_tasks.sync_run_execute, "delay", lambda run_id: ids.append(run_id))
    return ids


@pytest.mark.django_db(transaction=True)
def test_a_run_no_worker_executes_is_handed_out_again_and_completes(connection, source, sent):
    run, _ = sync_start(connection=connection, enqueue=False)
    _quiet(run, RunStatus.RUNNING, for_=STRANDED_RUNNING_AFTER)

    assert stranded_runs_resume() == [run.pk]
    assert sent == [run.pk]
    # Handed out once per quiet spell, not at every minute's drain.
    assert stranded_runs_resume() == []
    assert sent == [run.pk]
    # The message's worker resumes it; its execution is counted, and counted as ended.
    run = run_execute(run.pk, source=source)
    assert run.status == RunStatus.COMPLETED
    assert source.fetches > 0
    run.refresh_from_db()
    assert run.executions == run.last_ended_execution == 1


def _taken_up(run: SyncRun, *, ended: bool) -> None:
    """A worker takes the run up; with ``ended``, the execution ends (held, failed, done with
    its part), else the worker is killed with it."""
    SyncRun.objects.filter(pk=run.pk).update(executions=F("executions") + 1)
    if ended:
        SyncRun.objects.filter(pk=run.pk).update(last_ended_execution=F("executions"))


@pytest.mark.django_db(transaction=True)
def test_a_queued_copy_is_not_sent_again_until_a_worker_took_the_run_up(connection, sent):
    """An approved run waits, "running", behind long tasks: one copy, not one every spell;
    and a copy nobody took up for hours is taken for lost and sent again."""
    run, _ = sync_start(connection=connection, enqueue=False)
    now = timezone.now()
    _quiet(run, RunStatus.RUNNING, for_=STRANDED_RUNNING_AFTER)
    assert stranded_runs_resume(now=now) == [run.pk]
    assert stranded_runs_resume(now=now + 3 * STRANDED_RUNNING_AFTER) == []
    # Lost (a broker restarted without its queue): sent again, once that long has passed.
    later = now + STRANDED_RESEND_AFTER + dt.timedelta(seconds=1)
    assert stranded_runs_resume(now=later) == [run.pk]
    # A worker took it up and died: the next quiet spell sends another.
    _taken_up(run, ended=False)
    assert stranded_runs_resume(now=later + 2 * STRANDED_RUNNING_AFTER) == [run.pk]
    assert sent == [run.pk, run.pk, run.pk]


@pytest.mark.django_db(transaction=True)
def test_a_run_that_keeps_losing_its_worker_is_failed_and_admins_told(connection, sent, mailoutbox):
    """Out of memory on the same page every time: handed out a bounded number of times, then
    failed, so it does not take workers down for ever."""
    from tests.factories import MembershipFactory

    MembershipFactory(district=connection.district, user__email="a@example.org")
    run, _ = sync_start(connection=connection, enqueue=False)
    _taken_up(run, ended=False)  # killed, and its redelivery dropped
    moment = timezone.now()
    _quiet(run, RunStatus.RUNNING, for_=STRANDED_RUNNING_AFTER)
    for _ in range(STRANDED_MAX_HANDOUTS):
        assert stranded_runs_resume(now=moment) == [run.pk]
        _taken_up(run, ended=False)  # the copy's worker dies with it too
        moment += STRANDED_RUNNING_AFTER + dt.timedelta(seconds=1)
    assert stranded_runs_resume(now=moment) == []
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "lost its worker" in run.error_summary
    assert len(sent) == STRANDED_MAX_HANDOUTS
    assert any("a@example.org" in message.to for message in mailoutbox)


@pytest.mark.django_db(transaction=True)
def test_copies_sent_for_queued_runs_do_not_use_up_the_budget(connection, sent):
    """A pending run waited behind long syncs (a copy), was staged and held, then approved and
    waited again (another copy); its worker is then killed once, by a deploy: it is resumed,
    not failed as a run that kills its workers."""
    run, _ = sync_start(connection=connection, enqueue=False)
    moment = timezone.now()
    _quiet(run, RunStatus.PENDING, for_=STRANDED_PENDING_AFTER)
    assert stranded_runs_resume(now=moment) == [run.pk]
    _taken_up(run, ended=True)  # staged, held; then approved: running, queued again
    moment += STRANDED_PENDING_AFTER
    SyncRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    assert stranded_runs_resume(now=moment) == [run.pk]
    for _ in range(STRANDED_MAX_HANDOUTS):
        _taken_up(run, ended=False)  # killed
        moment += STRANDED_RUNNING_AFTER + dt.timedelta(seconds=1)
        assert stranded_runs_resume(now=moment) == [run.pk]
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    assert run.lost_worker_handouts == STRANDED_MAX_HANDOUTS


@pytest.mark.django_db(transaction=True)
def test_runs_that_moved_lately_or_wait_briefly_are_left_alone(connection, district, sent):
    from sis.models import SISConnection

    running, _ = sync_start(connection=connection, enqueue=False)
    _quiet(running, RunStatus.RUNNING, for_=STRANDED_RUNNING_AFTER - dt.timedelta(minutes=1))
    other = SISConnection.objects.create(
        district=district, name="Second SIS", provider="powerschool", base_url="http://127.0.0.1:9"
    )
    pending, _ = sync_start(connection=other, enqueue=False)
    # A pending run's message may be queued behind long tasks: it waits longer.
    _quiet(pending, RunStatus.PENDING, for_=STRANDED_RUNNING_AFTER)
    assert stranded_runs_resume() == []
    _quiet(pending, RunStatus.PENDING, for_=STRANDED_PENDING_AFTER)
    assert stranded_runs_resume() == [pending.pk]
    # Held and finished runs wait for nobody.
    _quiet(pending, RunStatus.HELD, for_=STRANDED_PENDING_AFTER)
    _quiet(running, RunStatus.COMPLETED, for_=STRANDED_PENDING_AFTER)
    assert stranded_runs_resume() == []
    assert sent == [pending.pk]


@pytest.mark.django_db(transaction=True)
def test_a_run_whose_worker_holds_the_lock_is_not_handed_out(connection, sent):
    """A worker busy on one long page or batch has not touched the run for a while, but it
    holds the connection's lock."""
    run, _ = sync_start(connection=connection, enqueue=False)
    _quiet(run, RunStatus.RUNNING, for_=STRANDED_RUNNING_AFTER)
    with lock_held_elsewhere(connection.pk):
        assert stranded_runs_resume() == []
    assert sent == []
    assert stranded_runs_resume() == [run.pk]


def _phase(run: SyncRun) -> tuple[str, str]:
    run.refresh_from_db(fields=["status", "phase"])
    return run.status, run.phase


def _wait_for(condition: Callable[[], bool], log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, log_path.read_text(errors="replace")[-3000:]
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_run_whose_redelivery_was_dropped_is_resumed_by_the_drain(tmp_path, monkeypatch):
    """A worker SIGKILLed while applying, and its message's redelivery dropped as poisoned
    (one delivery allowed): the run stays "running" with no worker and no message. The drain
    hands it to the workers again; it completes as one run, equal to a clean run."""
    monkeypatch.setattr("syncing.services.runs.STRANDED_RUNNING_AFTER", dt.timedelta(0))
    log_path = tmp_path / "worker.log"
    env = {"CELERY_MAX_DELIVERIES": "1", "CELERY_VISIBILITY_TIMEOUT": "60", "SYNC_BATCH_SIZE": "25"}
    with (
        sandbox_for(provider="oneroster-1.2", students=300) as sandbox,
        celery_worker(queue="sync", log_path=log_path, env=env) as worker,
    ):
        clean_district = DistrictFactory(name="Clean")
        clean = run_execute(
            sync_start(connection=connection_for(sandbox, clean_district), enqueue=False)[0].pk
        )
        assert clean.status == RunStatus.COMPLETED
        district = DistrictFactory(name="Stranded")
        connection = connection_for(sandbox, district)
        run, _ = sync_start(connection=connection)  # to the real worker
        _wait_for(lambda: _phase(run) == ("running", "apply"), log_path)
        os.kill(pool_children(worker.pid)[0], signal.SIGKILL)
        # The redelivery is refused as poisoned: no worker and no message has the run now.
        _wait_for(lambda: "too many deliveries" in log_path.read_text(errors="replace"), log_path)
        _wait_for(lambda: not connection_lock_held(connection.pk), log_path)
        assert _phase(run) == ("running", "apply")  # stranded

        assert sync_tasks.sync_events_drain() >= 1  # the minute's drain, called here
        _wait_for(lambda: _phase(run)[0] != "running", log_path, timeout=120)
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED, (run.status, run.error_summary)
    assert SyncRun.objects.filter(connection=connection).count() == 1
    assert district_digest(district.pk) == district_digest(clean_district.pk)
