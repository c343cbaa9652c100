from __future__ import annotations

import pytest

from gateway.errors import RateLimited
from sis.connectors.errors import AuthenticationFailed, ConnectorError, RepeatedPage
from sis.connectors.records import EnrollmentStatus, Entity, StudentGuardianRecord
from tests.sis.conftest import fetch_all, make_connector


def test_it_fetches_a_whole_district_matching_the_sandbox_counts(ps_sandbox):
    connector = make_connector(ps_sandbox)
    expected = ps_sandbox.counts()
    for entity in connector.entities:
        records, quarantined, _ = fetch_all(connector, entity)
        assert quarantined == []
        assert len(records) == expected[str(entity)], entity
        assert len({r.source_id for r in records}) == len(records), entity
    assert connector.stats["token_requests"] == 1


def test_it_reports_counts_per_entity_like_the_sis(ps_sandbox):
    counts = make_connector(ps_sandbox).test()
    assert counts == ps_sandbox.counts()


def test_it_maps_students_guardians_and_enrollments(ps_sandbox):
    connector = make_connector(ps_sandbox)
    student = connector.fetch_one(Entity.STUDENT, "100007")
    assert student is not None and student.last_name and student.school_id
    assert student.raw["id"] == 100007  # the raw payload is kept
    enrollments, _, _ = fetch_all(connector, Entity.ENROLLMENT)
    assert {e.enrollment_status for e in enrollments} == {EnrollmentStatus.ACTIVE}
    links, _, _ = fetch_all(connector, Entity.STUDENT_GUARDIAN)
    assert all(isinstance(link, StudentGuardianRecord) for link in links)
    assert {link.relationship for link in links} >= {"mother", "father"}
    assert all("555-01" in g.mobile_phone for g in fetch_all(connector, Entity.GUARDIAN)[0])


def test_a_bad_secret_is_a_permanent_error_with_a_clear_message(ps_sandbox):
    connector = make_connector(ps_sandbox, client_secret="wrong")
    with pytest.raises(AuthenticationFailed) as info:
        connector.test()
    assert "refused the client credentials" in str(info.value)
    assert "wrong" not in str(info.value)


def test_a_token_expiring_mid_fetch_causes_exactly_one_reauthentication(ps_sandbox):
    connector = make_connector(ps_sandbox, key="expiry")
    pages = connector.fetch(Entity.STUDENT)
    first = next(pages)
    ps_sandbox.control("reset-stats", {})
    ps_sandbox.control("expire-tokens", {})
    rest = sum(len(p.records) for p in pages)
    assert len(first.records) + rest == ps_sandbox.counts()["student"]
    assert ps_sandbox.stats()["token_requests"] == 1
    assert connector.stats["reauthentications"] == 1


def test_the_plugin_throttle_is_a_transient_wait(ps_sandbox):
    connector = make_connector(ps_sandbox, key="throttle")
    connector.authenticate()
    ps_sandbox.inject("throttle", path="/ws/v1/district/student", times=1)
    records, _, _ = fetch_all(connector, Entity.STUDENT)
    assert len(records) == ps_sandbox.counts()["student"]
    assert ps_sandbox.stats().get("fault_throttle") == 1


def test_a_long_throttle_wait_is_raised_for_the_task_to_retry_later(ps_sandbox):
    connector = make_connector(ps_sandbox, key="throttle-long")
    connector.authenticate()
    ps_sandbox.control("config", {"throttle_wait": 60})
    ps_sandbox.inject("throttle", path="/ws/v1/district/school", times=5)
    with pytest.raises(RateLimited) as info:
        list(connector.fetch(Entity.SCHOOL))
    assert info.value.retry_after is not None and info.value.retry_after >= 60


def test_a_429_with_retry_after_is_waited_out(ps_sandbox):
    connector = make_connector(ps_sandbox, key="429")
    connector.authenticate()
    ps_sandbox.inject("429", path="/ws/v1/district/student", times=1)
    records, _, _ = fetch_all(connector, Entity.STUDENT)
    assert len(records) == ps_sandbox.counts()["student"]


def test_a_page_served_twice_is_refetched(ps_sandbox):
    connector = make_connector(ps_sandbox, key="dup")
    connector.authenticate()
    ps_sandbox.inject("duplicate_page", path="/ws/v1/district/student", skip=2)
    records, _, _ = fetch_all(connector, Entity.STUDENT)
    assert len({r.source_id for r in records}) == ps_sandbox.counts()["student"]


def test_a_page_that_keeps_repeating_stops_the_fetch(ps_sandbox):
    connector = make_connector(ps_sandbox, key="dup2")
    connector.authenticate()
    ps_sandbox.inject("duplicate_page", path="/ws/v1/district/student", skip=2, times=2)
    with pytest.raises(RepeatedPage):
        list(connector.fetch(Entity.STUDENT))


def test_a_malformed_record_is_quarantined_and_the_fetch_goes_on(ps_sandbox):
    connector = make_connector(ps_sandbox, key="malformed")
    connector.authenticate()
    ps_sandbox.inject("malformed", path="/ws/v1/district/student", skip=1)
    records, quarantined, _ = fetch_all(connector, Entity.STUDENT)
    assert len(quarantined) == 1
    assert quarantined[0].source_id and "name" in quarantined[0].reason
    assert len(records) == ps_sandbox.counts()["student"] - 1


def test_writes_are_recorded_by_the_sandbox(ps_sandbox):
    connector = make_connector(ps_sandbox, key="write")
    connector.student_write(source_id="100001", changes={"name": {"last_name": "Novak"}})
    # Refused (a staff id is not a Users DCID; see test_writeback_powerschool.py for the real
    # flow), but recorded all the same.
    with pytest.raises(ConnectorError, match="users_dcid must name a teacher"):
        connector.scores_write(
            users_dcid="20001",
            term_id="3600",
            assignment_scores=[{"studentsdcid": 100001, "score": 9}],
        )
    writes = ps_sandbox.control("writes")["writes"]
    assert [w["path"] for w in writes[-2:]] == ["/ws/v1/student", "/ws/xte/score"]
    assert writes[-2]["body"]["students"]["student"][0]["id"] == "100001"


def test_after_a_day_of_changes_a_full_fetch_still_matches():
    from sis.sandbox.testing import running_sandbox

    with running_sandbox(provider="powerschool", students=150, page_cap=40) as sandbox:
        changes = sandbox.control("advance", {"days": 2})["changes"]
        connector = make_connector(sandbox, key="after-changes")
        expected = sandbox.counts()
        guardians, _, _ = fetch_all(connector, Entity.GUARDIAN)
        deleted = {c["id"] for c in changes if c["kind"] == "delete"}
        assert len(guardians) == expected["guardian"] and deleted
        assert not deleted & {g.source_id for g in guardians}  # gone over PowerSchool
        students, _, _ = fetch_all(connector, Entity.STUDENT)
        assert len(students) == expected["student"] > 150
        withdrawn = {c["id"] for c in changes if c["kind"] == "withdrawal"}
        assert all(not s.active for s in students if s.source_id in withdrawn)
        transfers = {c["id"]: str(c["detail"]["to"]) for c in changes if c["kind"] == "transfer"}
        by_id = {s.source_id: s for s in students}
        assert all(by_id[sid].school_id == school for sid, school in transfers.items())
