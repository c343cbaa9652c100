"""A worker that dies while staging: the restarted run skips the entities it had staged to their
end and starts again at the first one it had not (real PostgreSQL; the real-worker kill test in
test_kill_resume.py covers the same with SIGKILLs)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from sis.models import SISConnection
from syncing.engine.run import run_execute
from syncing.models import Mode, RunStatus, SyncChange, SyncPage, SyncRun
from syncing.services import sync_start
from tests.factories import DistrictFactory
from tests.syncing.fakes import FakeSource, district_records
from tests.syncing.helpers import sync
from tests.syncing.kill_resume import district_digest


class WorkerDied(BaseException):
    """Stands in for a SIGKILL: not an ``Exception``, so the run is not marked failed."""


class Dying(FakeSource):
    """The fake SIS, counting fetches per entity; it "kills the worker" once, at a chosen page
    of a chosen entity."""

    delta_watermark = ""  # the SIS's own change counter, when a test sets one

    def __init__(self, *, die_at: tuple[str, int] | None = None) -> None:
        super().__init__(page_size=25)
        district_records(self)
        self.die_at = die_at
        self.per_entity: Counter[str] = Counter()

    def fetch(self, entity: Any, *, since: str | None = None) -> Iterator[Any]:
        self.per_entity[str(entity)] += 1
        for page in super().fetch(entity, since=since):
            if self.die_at == (str(entity), page.number):
                self.die_at = None
                raise WorkerDied()
            yield page


def _connection(name: str) -> SISConnection:
    district: Any = DistrictFactory(name=name)
    return SISConnection.objects.create(
        district=district,
        name="Fake SIS",
        provider="powerschool",
        base_url="http://127.0.0.1:9",
    )


@pytest.mark.django_db(transaction=True)
def test_a_restarted_run_goes_on_at_the_entity_it_was_staging():
    clean_connection = _connection("Clean")
    clean = run_execute(
        sync_start(connection=clean_connection, enqueue=False)[0].pk, source=Dying()
    )
    assert clean.status == RunStatus.COMPLETED

    connection = _connection("Restarted")
    run, _ = sync_start(connection=connection, enqueue=False)
    source = Dying(die_at=("guardian", 1))
    with pytest.raises(WorkerDied):
        run_execute(run.pk, source=source)
    run.refresh_from_db()
    assert (run.status, run.phase, run.staged_at) == (RunStatus.RUNNING, "fetch", None)
    assert run.staging_checkpoint["entities"] == ["school", "student"]
    # The guardian page staged before the death is there, and is forgotten at the restart.
    assert SyncPage.objects.filter(run=run, entity="guardian").count() == 1

    again = Dying()
    run = run_execute(run.pk, source=again)
    assert run.status == RunStatus.COMPLETED
    # Schools and students were not fetched again; guardians and what follows were.
    assert again.per_entity == Counter({"guardian": 1, "student_guardian": 1, "enrollment": 1})
    assert (
        SyncChange.objects.filter(run=run).count() == SyncChange.objects.filter(run=clean).count()
    )
    assert run.counts == clean.counts
    assert run.pages_done == clean.pages_done
    assert SyncRun.objects.filter(connection=connection).count() == 1
    assert district_digest(connection.district_id) == district_digest(clean_connection.district_id)


@pytest.mark.django_db(transaction=True)
def test_a_restart_keeps_the_sis_watermark_it_read_first():
    """The SIS's own change counter (PowerSchool data versions) read by the first attempt is
    the run's watermark: the restart reads the counters again, later, and a delta from those
    would skip what changed meanwhile in the entities staged before the restart."""
    connection = _connection("Watermark")
    run, _ = sync_start(connection=connection, enqueue=False)
    first = Dying(die_at=("student_guardian", 0))
    first.delta_watermark = "1001"
    with pytest.raises(WorkerDied):
        run_execute(run.pk, source=first)
    again = Dying()
    again.delta_watermark = "1050"
    run = run_execute(run.pk, source=again)
    assert run.status == RunStatus.COMPLETED
    assert run.watermark_to == "1001"


@pytest.mark.django_db(transaction=True)
def test_a_run_that_died_before_finishing_an_entity_starts_over():
    connection = _connection("Early")
    run, _ = sync_start(connection=connection, enqueue=False)
    with pytest.raises(WorkerDied):
        run_execute(run.pk, source=Dying(die_at=("school", 0)))
    run.refresh_from_db()
    assert run.staging_checkpoint == {}
    again = Dying()
    assert run_execute(run.pk, source=again).status == RunStatus.COMPLETED
    assert set(again.per_entity) == {s.value for s in FakeSource.entities}


@pytest.mark.django_db(transaction=True)
def test_a_targeted_run_always_starts_over(connection, source):
    sync(connection, source)
    run, _ = sync_start(
        connection=connection,
        mode=Mode.TARGETED,
        target_entity="student",
        target_source_id="stu-1",
        enqueue=False,
    )
    SyncRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, staging_checkpoint={"entities": ["student"], "counts": {}}
    )
    source.get("student", "stu-1").first_name = "Renamed"
    run = run_execute(run.pk, source=source)
    assert run.status == RunStatus.COMPLETED
    assert run.counts["student"].get("update") == 1
