"""Entities read from one SIS listing (a OneRoster student's user item holds its school
enrollments; PowerSchool's student listing too; guardians and their links to students come from
the same guardian pages) are fetched once per sync, not once per entity."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from attendance.models import Enrollment, Guardian, Student, StudentGuardian
from sis.services import sis_connection_connector
from syncing.engine.run import fetched_pages, listing_groups, run_execute
from syncing.engine.stage import entities_for
from syncing.entities import SPECS
from syncing.models import RunStatus
from syncing.services import sync_start
from tests.syncing.sandbox import connection_for, sandbox_for


class Keyed:
    """A source whose entities are read from the listings ``keys`` names (None: its own)."""

    def __init__(self, keys: dict[str, Any]) -> None:
        self.keys = keys

    def shared_listing(self, entity: Any, *, since: str | None) -> Any:
        return self.keys.get(str(entity))


def _names(groups: list[list[Any]]) -> list[list[str]]:
    return [[spec.name for spec in group] for group in groups]


def _specs(*names: str) -> list[Any]:
    return sorted((SPECS[name] for name in names), key=lambda spec: spec.rank)


def test_entities_read_from_one_listing_are_grouped_where_the_first_stands():
    source = Keyed(
        {"student": "users", "enrollment": "users", "guardian": "g", "student_guardian": "g"}
    )
    specs = _specs("school", "student", "guardian", "student_guardian", "enrollment")
    assert _names(listing_groups(source, specs, None)) == [
        ["school"],
        ["student", "enrollment"],
        ["guardian", "student_guardian"],
    ]


def test_an_entity_joins_a_listing_only_once_what_it_refers_to_is_staged():
    # Student guardian links refer to guardians, staged after students: read with the students,
    # their references would be checked before any guardian was staged.
    source = Keyed({"student": "users", "student_guardian": "users"})
    specs = _specs("school", "student", "guardian", "student_guardian")
    assert _names(listing_groups(source, specs, None)) == [
        ["school"],
        ["student"],
        ["guardian"],
        ["student_guardian"],
    ]


def test_a_restarted_run_still_reads_shared_listings_once():
    # Schools were staged to their end before the worker died: the students' and enrollments'
    # references to them need not wait for anything.
    source = Keyed({"student": "users", "enrollment": "users"})
    specs = _specs("student", "guardian", "enrollment")
    assert _names(listing_groups(source, specs, None)) == [["student", "enrollment"], ["guardian"]]


def test_a_source_without_shared_listings_reads_each_entity_alone():
    specs = _specs("school", "student", "enrollment")
    assert _names(listing_groups(object(), specs, None)) == [
        ["school"],
        ["student"],
        ["enrollment"],
    ]


def _listing_requests(stats: dict[str, int]) -> Counter[str]:
    """Requests per method and path to the SIS's data (not tokens, not the sandbox's controls)."""
    return Counter(
        {
            key: n
            for key, n in stats.items()
            if key.startswith(("GET ", "POST ")) and "token" not in key
        }
    )


@pytest.mark.parametrize("provider", ["oneroster-1.2", "powerschool"])
def test_a_full_sync_reads_each_listing_once(district, provider):
    with sandbox_for(provider=provider, students=60) as sandbox:
        connection = connection_for(sandbox, district)
        connector = sis_connection_connector(connection)
        # What reading each entity on its own asks of the SIS.
        alone: dict[str, Counter[str]] = {}
        for spec in entities_for(connector):
            sandbox.control("reset-stats", {})
            pages = list(connector.fetch(spec.name))
            assert pages, spec.name
            alone[spec.name] = _listing_requests(sandbox.stats())
        sandbox.control("reset-stats", {})
        run, _ = sync_start(connection=connection, enqueue=False)
        run = run_execute(run.pk)
        synced = _listing_requests(sandbox.stats())
        expected = sandbox.counts()
    assert run.status == RunStatus.COMPLETED, run.error_summary
    # Enrollments are read with the students, student-guardian links with the guardians: the
    # sync asks for everything else exactly as often as reading each entity alone would.
    once = sum(
        (n for name, n in alone.items() if name not in ("enrollment", "student_guardian")),
        Counter(),
    )
    assert alone["enrollment"] and alone["student_guardian"]
    assert synced == once
    assert Student.objects.count() == expected["student"]
    assert Enrollment.objects.count() == expected["enrollment"]
    assert Guardian.objects.count() == expected["guardian"]
    assert StudentGuardian.objects.count() == expected["student_guardian"]


def test_pages_read_together_map_as_reading_each_entity_alone(district):
    with sandbox_for(provider="oneroster-1.2", students=60) as sandbox:
        connector = sis_connection_connector(connection_for(sandbox, district))
        specs = entities_for(connector)
        together: dict[str, list[str]] = {}
        for spec, page in fetched_pages(connector, specs, None):
            if page is not None:
                together.setdefault(spec.name, []).extend(r.source_id for r in page.records)
        alone = {
            spec.name: [r.source_id for page in connector.fetch(spec.name) for r in page.records]
            for spec in specs
        }
    assert together == alone
    assert together["enrollment"] and together["student_guardian"]


class WorkerDied(BaseException):
    """Stands in for a SIGKILL: not an ``Exception``, so the run is not marked failed."""


@pytest.mark.django_db(transaction=True)
def test_a_worker_dying_between_entities_of_one_listing_reads_it_again_for_the_rest(
    monkeypatch,
):
    from attendance.models import District
    from syncing.engine import run as engine
    from tests.syncing.kill_resume import district_digest

    real_save = engine.staging_checkpoint_save

    def dies_after_students(ctx: Any, source: Any, entities: list[str]) -> None:
        real_save(ctx, source, entities)
        if entities[-1] == "student":  # students staged to their end, enrollments not yet
            raise WorkerDied()

    with sandbox_for(provider="oneroster-1.2", students=40) as sandbox:
        clean_connection = connection_for(
            sandbox, District.objects.create(name="Clean", slug="clean")
        )
        clean = run_execute(sync_start(connection=clean_connection, enqueue=False)[0].pk)
        assert clean.status == RunStatus.COMPLETED, clean.error_summary

        connection = connection_for(
            sandbox, District.objects.create(name="Restarted", slug="restarted")
        )
        run, _ = sync_start(connection=connection, enqueue=False)
        monkeypatch.setattr(engine, "staging_checkpoint_save", dies_after_students)
        with pytest.raises(WorkerDied):
            run_execute(run.pk)
        monkeypatch.setattr(engine, "staging_checkpoint_save", real_save)
        run.refresh_from_db()
        assert "student" in run.staging_checkpoint["entities"]
        assert "enrollment" not in run.staging_checkpoint["entities"]
        sandbox.control("reset-stats", {})
        run = run_execute(run.pk)
        reread = _listing_requests(sandbox.stats())
    assert run.status == RunStatus.COMPLETED, run.error_summary
    # The students' listing was read again, for the enrollments only.
    assert any(key.endswith("/students") for key in reread)
    assert run.counts == clean.counts
    assert district_digest(connection.district_id) == district_digest(clean_connection.district_id)
