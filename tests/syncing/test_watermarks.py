"""Where the next delta starts: never after a change the run did not read (real PostgreSQL, the
fake SIS; the SIS's clock from a real HTTP answer of the sandbox)."""

from __future__ import annotations

import datetime as dt

import pytest

from syncing.engine.run import run_execute
from syncing.engine.stage import walk as stage_walk
from syncing.models import Mode, RunStatus, SyncChange
from syncing.services import sync_start
from tests.syncing.helpers import sync
from tests.syncing.test_staging_resume import Dying, WorkerDied, _connection

T0 = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)


def _stamped(**kwargs: object) -> Dying:
    """The fake SIS with every record last modified at T0."""
    source = Dying(**kwargs)  # type: ignore[arg-type]
    for records in source.records.values():
        for record in records.values():
            record.modified_at = T0
    return source


def _at(watermark: str) -> dt.datetime:
    return dt.datetime.fromisoformat(watermark.replace("Z", "+00:00"))


@pytest.mark.django_db(transaction=True)
def test_a_record_changed_while_the_run_read_others_is_read_by_the_next_delta():
    """The SIS answered first at T0 + 5 min; a guardian read later was modified at T0 + 20 min.
    A student changed at T0 + 5 min, after its page was read, must not fall behind the
    watermark: it starts at the SIS's clock of the first answer, not at the newest change."""
    connection = _connection("Clock")
    source = _stamped()
    source.first_answer_at = T0 + dt.timedelta(minutes=5)
    source.get("guardian", "gua-3").modified_at = T0 + dt.timedelta(minutes=20)
    run = sync(connection, source)
    assert run.status == RunStatus.COMPLETED
    # Less a minute: the answer was stamped after the SIS built it.
    assert _at(run.watermark_to) == T0 + dt.timedelta(minutes=4)


@pytest.mark.django_db(transaction=True)
def test_without_a_sis_clock_the_newest_change_read_is_the_watermark():
    connection = _connection("NoClock")
    source = _stamped()
    source.get("guardian", "gua-3").modified_at = T0 + dt.timedelta(minutes=20)
    run = sync(connection, source)
    assert _at(run.watermark_to) == T0 + dt.timedelta(minutes=20)


@pytest.mark.django_db(transaction=True)
def test_a_restart_does_not_move_the_watermark_past_the_entities_it_skipped():
    """Students were staged (newest change T0), then the worker died. While nobody ran the
    run, the SIS changed a student (T0 + 5 min, never read: students are skipped now) and a
    guardian (T0 + 20 min, read by the restart). The next delta must read the student."""
    connection = _connection("Restart")
    run, _ = sync_start(connection=connection, enqueue=False)
    with pytest.raises(WorkerDied):
        run_execute(run.pk, source=_stamped(die_at=("guardian", 0)))
    again = _stamped()
    student = again.get("student", "stu-5")
    student.first_name, student.modified_at = "Edited", T0 + dt.timedelta(minutes=5)
    again.get("guardian", "gua-3").modified_at = T0 + dt.timedelta(minutes=20)
    run = run_execute(run.pk, source=again)
    assert run.status == RunStatus.COMPLETED
    assert not SyncChange.objects.filter(run=run, entity="student", action="update").exists()
    assert _at(run.watermark_to) <= T0 < student.modified_at


@pytest.mark.django_db(transaction=True)
def test_a_restart_after_the_last_entity_keeps_the_sis_counter(monkeypatch):
    """The worker died right after the last entity's checkpoint: the restarted run fetches
    nothing, so its connector never reads the SIS's counters; the first attempt's stands."""
    connection = _connection("AllDone")
    run, _ = sync_start(connection=connection, enqueue=False)
    save = stage_walk.staging_checkpoint_save

    def save_then_die(ctx: object, source: object, entities: list[str]) -> None:
        save(ctx, source, entities)
        if entities[-1] == "enrollment":
            raise WorkerDied()

    monkeypatch.setattr(stage_walk, "staging_checkpoint_save", save_then_die)
    first = Dying()
    first.delta_watermark = "1001"
    with pytest.raises(WorkerDied):
        run_execute(run.pk, source=first)
    monkeypatch.setattr(stage_walk, "staging_checkpoint_save", save)
    run = run_execute(run.pk, source=Dying())
    assert run.status == RunStatus.COMPLETED
    assert run.watermark_to == "1001"


@pytest.mark.django_db(transaction=True)
def test_a_targeted_run_does_not_move_the_delta_watermark():
    """A re-fetched record changed just now says nothing about the others: the next delta
    still starts where the last full or delta run left off."""
    connection = _connection("Targeted")
    source = _stamped()
    full = sync(connection, source)
    source.get("student", "stu-1").modified_at = T0 + dt.timedelta(hours=3)
    source.get("student", "stu-1").first_name = "Renamed"
    targeted = sync(
        connection, source, Mode.TARGETED, target_entity="student", target_source_id="stu-1"
    )
    assert targeted.status == RunStatus.COMPLETED and targeted.watermark_to == ""
    delta = sync(connection, source, Mode.DELTA)
    assert delta.watermark_from == full.watermark_to


@pytest.mark.django_db(transaction=True)
def test_naive_modification_times_survive_a_staging_restart():
    """A plugin's records may carry times without a zone (UTC): a restart compares them with
    the checkpoint's and the SIS clock's without failing the run."""
    connection = _connection("Naive")
    naive = T0.replace(tzinfo=None)
    run, _ = sync_start(connection=connection, enqueue=False)
    first = _stamped(die_at=("guardian", 0))
    for records in first.records.values():
        for record in records.values():
            record.modified_at = naive
    with pytest.raises(WorkerDied):
        run_execute(run.pk, source=first)
    again = _stamped()
    for records in again.records.values():
        for record in records.values():
            record.modified_at = naive + dt.timedelta(minutes=20)
    again.first_answer_at = T0 + dt.timedelta(hours=1)
    run = run_execute(run.pk, source=again)
    assert run.status == RunStatus.COMPLETED, run.error_summary
    assert _at(run.watermark_to) == T0
