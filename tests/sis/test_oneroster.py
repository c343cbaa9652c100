from __future__ import annotations

import datetime as dt

import pytest

from sis.connectors.base import ConnectorConfig
from sis.connectors.errors import AuthenticationFailed, ConfigurationError, RepeatedPage
from sis.connectors.records import Entity, Status
from sis.connectors.registry import connector_class
from sis.sandbox.testing import running_sandbox
from tests.sis.conftest import fetch_all, make_connector


@pytest.mark.parametrize("sandbox_name", ["or12_sandbox", "or11_sandbox"])
def test_it_fetches_a_whole_district_matching_the_sandbox_counts(request, sandbox_name):
    sandbox = request.getfixturevalue(sandbox_name)
    connector = make_connector(sandbox, key=sandbox_name)
    expected = sandbox.counts()
    for entity in connector.entities:
        records, quarantined, _ = fetch_all(connector, entity)
        assert quarantined == []
        assert len(records) == expected[str(entity)], entity
        assert len({r.source_id for r in records}) == len(records), entity
    assert connector.test() == expected


def test_1_2_roles_and_primary_org_map_to_schools(or12_sandbox):
    connector = make_connector(or12_sandbox)
    students, _, _ = fetch_all(connector, Entity.STUDENT)
    assert all(s.school_id for s in students)
    assert all("roles" in s.raw for s in students)
    links, _, _ = fetch_all(connector, Entity.STUDENT_GUARDIAN)
    student_ids = {s.source_id for s in students}
    assert {link.student_id for link in links} <= student_ids


def test_oauth1_signatures_cover_the_query(or11_sandbox):
    connector = make_connector(or11_sandbox, key="oauth1")
    # limit/offset/filter are all in the signed query; the sandbox checks every one.
    records, _, pages = fetch_all(connector, Entity.GUARDIAN)
    assert pages > 1 and len(records) == or11_sandbox.counts()["guardian"]
    bad = make_connector(or11_sandbox, key="oauth1-bad", client_secret="wrong")
    with pytest.raises(AuthenticationFailed, match="Invalid OAuth 1.0a signature"):
        bad.test()


def test_a_bad_secret_is_a_permanent_error_with_a_clear_message(or12_sandbox):
    connector = make_connector(or12_sandbox, client_secret="wrong")
    with pytest.raises(AuthenticationFailed, match="refused the client credentials"):
        connector.test()


def test_a_token_expiring_mid_fetch_causes_exactly_one_reauthentication(or12_sandbox):
    connector = make_connector(or12_sandbox, key="expiry")
    pages = connector.fetch(Entity.SECTION_ENROLLMENT)
    first = next(pages)
    or12_sandbox.control("reset-stats", {})
    or12_sandbox.control("expire-tokens", {})
    total = len(first.records) + sum(len(p.records) for p in pages)
    assert total == or12_sandbox.counts()["section_enrollment"]
    assert or12_sandbox.stats()["token_requests"] == 1
    assert connector.stats["reauthentications"] == 1


def test_429_and_busy_answers_are_waited_out(or12_sandbox):
    connector = make_connector(or12_sandbox, key="429")
    connector.authenticate()
    or12_sandbox.inject("429", path="/students", skip=1)
    or12_sandbox.inject("throttle", path="/students", skip=1)
    records, _, _ = fetch_all(connector, Entity.STUDENT)
    assert len(records) == or12_sandbox.counts()["student"]
    stats = or12_sandbox.stats()
    assert stats["fault_429"] == 1 and stats["fault_throttle"] == 1


def test_a_repeated_page_is_detected(or12_sandbox):
    connector = make_connector(or12_sandbox, key="dup")
    connector.authenticate()
    or12_sandbox.inject("duplicate_page", path="/students", skip=1)
    records, _, _ = fetch_all(connector, Entity.STUDENT)
    assert len({r.source_id for r in records}) == or12_sandbox.counts()["student"]
    or12_sandbox.inject("duplicate_page", path="/students", skip=1, times=2)
    with pytest.raises(RepeatedPage):
        fetch_all(connector, Entity.STUDENT)


def test_a_malformed_record_is_reported_not_fatal(or12_sandbox):
    connector = make_connector(or12_sandbox, key="malformed")
    connector.authenticate()
    or12_sandbox.inject("malformed", path="/users", skip=1)
    records, quarantined, _ = fetch_all(connector, Entity.GUARDIAN)
    assert len(quarantined) == 1 and quarantined[0].source_id
    assert len(records) == or12_sandbox.counts()["guardian"] - 1


def test_a_delta_returns_exactly_the_changes_of_the_day(or12_sandbox):
    connector = make_connector(or12_sandbox, key="delta")
    advanced = or12_sandbox.control("advance", {"days": 1})
    changes = or12_sandbox.control("changes", method="GET")["changes"]
    assert changes == advanced["changes"]
    since = "2026-08-01T12:00:00Z"
    students, _, _ = fetch_all(connector, Entity.STUDENT, since=since)
    changed_students = {c["id"] for c in changes if c["entity"] == "student"}
    assert {s.source_id for s in students} == changed_students
    guardians, _, _ = fetch_all(connector, Entity.GUARDIAN, since=since)
    deleted = [c["id"] for c in changes if c["kind"] == "delete"]
    assert deleted and all(
        g.status == Status.TO_BE_DELETED for g in guardians if g.source_id in deleted
    )
    withdrawn = {c["id"] for c in changes if c["kind"] == "withdrawal"}
    enrollments, _, _ = fetch_all(connector, Entity.SECTION_ENROLLMENT, since=since)
    assert all(e.exit_date for e in enrollments if e.student_id in withdrawn)


def test_infinite_campus_profile_checks_the_token_url_and_serialises_calls():
    base = {
        "key": "ic",
        "base_url": "https://ic.example.org/campus/api/ims/oneroster/rostering/v1p2",
        "client_id": "id",
        "client_secret": "secret",
        "vendor": "infinite-campus",
    }
    cls = connector_class("oneroster-1.2")
    with pytest.raises(ConfigurationError, match="appName"):
        cls(ConnectorConfig(token_url="https://ic.example.org/campus/oauth2/token", **base))
    connector = cls(
        ConnectorConfig(
            token_url="https://ic.example.org/campus/oauth2/token?appName=district", **base
        )
    )
    policy = connector.route.policy
    assert policy.max_in_flight == 1 or policy.concurrency_windows[0].max_in_flight == 1
    with pytest.raises(ConfigurationError, match="retired OAuth 1.0a"):
        connector_class("oneroster-1.1")(ConnectorConfig(options={"auth": "oauth1"}, **base))


def test_infinite_campus_token_url_with_app_name_against_the_sandbox():
    with running_sandbox(provider="oneroster-1.2", students=20, app_name="district") as sandbox:
        connector = make_connector(sandbox, key="ic-sandbox", vendor="infinite-campus")
        assert connector.test()["student"] == 20


def test_options_are_validated_with_clear_errors():
    cls = connector_class("oneroster-1.2")
    config = {
        "key": "o",
        "base_url": "https://or.example.org",
        "token_url": "https://or.example.org/t",
        "client_id": "id",
        "client_secret": "secret",
    }
    with pytest.raises(ConfigurationError, match="Unknown option"):
        cls(ConnectorConfig(options={"pagesize": 10}, **config))
    with pytest.raises(ConfigurationError, match="'page_size' must be a whole number"):
        cls(ConnectorConfig(options={"page_size": "10"}, **config))
    with pytest.raises(ConfigurationError, match="'oauth2', 'oauth1'"):
        cls(ConnectorConfig(options={"auth": "saml"}, **config))


def test_gradebook_writes_are_put_under_our_own_sourced_ids(or12_sandbox):
    connector = make_connector(or12_sandbox, key="gradebook")
    connector.line_item_put(source_id="sas-li-1", line_item={"title": "Participation"})
    connector.result_put(
        source_id="sas-r-1", result={"score": 9, "lineItem": {"sourcedId": "sas-li-1"}}
    )
    writes = or12_sandbox.control("writes")["writes"]
    assert [w["path"] for w in writes[-2:]] == [
        "/ims/oneroster/gradebook/v1p2/lineItems/sas-li-1",
        "/ims/oneroster/gradebook/v1p2/results/sas-r-1",
    ]
    assert writes[-1]["method"] == "PUT"


def test_a_full_fetch_survives_a_seeded_mix_of_faults():
    faults = "500:0.04,503:0.02,timeout:0.02,429:0.04,throttle:0.02,malformed:0.02"
    with running_sandbox(provider="oneroster-1.2", students=300, seed=5, faults=faults) as sb:
        sb.control("config", {"timeout_seconds": 0.1, "retry_after": 0})
        connector = make_connector(sb, key="fault-mix")
        expected = sb.counts()
        for entity in (Entity.STUDENT, Entity.GUARDIAN, Entity.SECTION_ENROLLMENT):
            records, quarantined, _ = fetch_all(connector, entity)
            # Every item arrives once: mapped, or quarantined with its reason.
            assert len(records) + len(quarantined) == expected[str(entity)]
        stats = sb.stats()
        assert sum(v for k, v in stats.items() if k.startswith("fault_")) > 0


def test_a_connector_keeps_the_sis_clock_of_its_first_answer(or12_sandbox):
    connector = make_connector(or12_sandbox, key="clock")
    assert connector.first_answer_at is None
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    connector.authenticate()
    assert connector.first_answer_at is None  # the token endpoint may keep another clock
    next(iter(connector.fetch(Entity.SCHOOL)))
    first = connector.first_answer_at
    assert first is not None and before <= first <= dt.datetime.now(dt.UTC)
    next(iter(connector.fetch(Entity.STUDENT)))
    assert connector.first_answer_at == first
