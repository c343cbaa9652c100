"""PowerSchool data versions, DCID vs ID, event subscriptions and OneRoster administrators,
against the sandbox over real HTTP."""

from __future__ import annotations

import pytest

from sis.connectors.records import Entity
from sis.sandbox.testing import running_sandbox
from tests.sis.conftest import fetch_all, make_connector


@pytest.fixture
def ps():
    # Its own sandbox: these tests advance the day counter.
    with running_sandbox(provider="powerschool", students=120, page_cap=50) as sandbox:
        yield sandbox


def test_a_fetch_without_a_data_version_lists_everything_and_records_the_version(ps):
    connector = make_connector(ps, key="dv-full")
    records, _, _ = fetch_all(connector, Entity.STUDENT)
    assert len(records) == ps.counts()["student"]
    assert connector.delta_watermark == "1000"
    assert not connector.is_delta(Entity.STUDENT, since=None)
    # A timestamp watermark (from before data versions) is not a data version: full listing.
    assert not connector.is_delta(Entity.STUDENT, since="2026-08-01T00:00:00Z")


def test_a_data_version_delta_returns_only_what_changed(ps):
    changes = ps.control("advance", {"days": 1})["changes"]
    connector = make_connector(ps, key="dv-delta")
    pages = list(connector.fetch(Entity.STUDENT, since="1000"))
    assert pages and all(page.delta for page in pages)
    got = {r.source_id for page in pages for r in page.records}
    changed = {c["id"] for c in changes if c["entity"] == "student"}
    assert got == changed
    assert connector.delta_watermark == "1001"

    guardians = {c["id"] for c in changes if c["entity"] == "guardian" and c["kind"] != "delete"}
    got_guardians = {r.source_id for r in fetch_all(connector, Entity.GUARDIAN, since="1000")[0]}
    assert guardians <= got_guardians

    moved = {c["id"] for c in changes if c["entity"] == "section_enrollment"}
    got_moves = {
        r.source_id for r in fetch_all(connector, Entity.SECTION_ENROLLMENT, since="1000")[0]
    }
    assert moved <= got_moves
    # Nothing changed since the newest version: an empty delta.
    assert fetch_all(connector, Entity.STUDENT, since="1001")[0] == []


def test_cc_rows_are_mapped_from_student_ids_to_dcids(ps):
    connector = make_connector(ps, key="dcid")
    students = {r.source_id for r in fetch_all(connector, Entity.STUDENT)[0]}
    enrollments, quarantined, _ = fetch_all(connector, Entity.SECTION_ENROLLMENT)
    assert not quarantined
    assert len(enrollments) == ps.counts()["section_enrollment"]
    assert {e.student_id for e in enrollments} <= students
    assert all(e.raw["tables"]["cc"]["studentid"] != e.student_id for e in enrollments)


def test_the_event_subscription_is_registered_read_and_removed(ps):
    connector = make_connector(ps, key="events")
    assert connector.events_subscription() == {}
    connector.events_subscribe(callback_url="http://127.0.0.1:9/hook", secret="s3cret")
    registered = connector.events_subscription()["event_subscriptions"]
    assert registered["callback_url"] == "http://127.0.0.1:9/hook"
    assert "secret" not in registered  # never echoed back
    assert {r["resource"] for r in registered["resource"]} >= {"/ws/v1/student"}
    connector.events_unsubscribe()
    assert connector.events_subscription() == {}


@pytest.mark.parametrize("provider", ["oneroster-1.1", "oneroster-1.2"])
def test_oneroster_staff_includes_administrators(provider):
    with running_sandbox(provider=provider, students=1200) as sandbox:
        connector = make_connector(sandbox, key=f"admins-{provider}")
        staff, quarantined, _ = fetch_all(connector, Entity.STAFF)
        assert not quarantined
        assert len(staff) == sandbox.counts()["staff"] == connector.count(Entity.STAFF)
        administrators = [s for s in staff if s.role == "administrator"]
        schools = sandbox.counts()["school"]
        assert len(administrators) == schools  # one per school in the generated district
        assert len({s.source_id for s in staff}) == len(staff)
        field = "role" if provider == "oneroster-1.1" else "roles.role"
        assert connector._filter(Entity.STAFF, None, roles=("administrator",)) == (
            f"{field}='administrator'"
        )
        one = connector.fetch_one(Entity.STAFF, administrators[0].source_id)
        assert one is not None and one.role == "administrator"

        teachers_only = make_connector(sandbox, key=f"teachers-{provider}")
        teachers_only.config.options["administrators"] = False
        teachers_only = type(teachers_only)(teachers_only.config)
        assert len(fetch_all(teachers_only, Entity.STAFF)[0]) == len(staff) - schools
