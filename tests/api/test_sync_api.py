"""SIS connections, sync runs and conflicts over the API: reads, starting a run through the
real task path against the sandbox SIS, resolving conflicts, validation, filters and scopes."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from attendance.models import ApiAccessLog, Student
from gateway.inbound.api_keys import api_key_create
from sis.models import SISConnection, SISCredential
from syncing.models import Conflict, RunStatus, SyncRun
from tests.api.sync_notify_data import make_sync_notify_rows
from tests.syncing.sandbox import connection_for, sandbox_for

pytestmark = pytest.mark.django_db

SYNC_SCOPES = ["sync:read", "sync:run", "conflicts:resolve"]


@pytest.fixture
def rows(tenant):
    return make_sync_notify_rows(tenant)


@pytest.fixture
def api(tenant):
    key = api_key_create(district=tenant.district, name="sync", scopes=SYNC_SCOPES)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key.plaintext)
    return client


def key_with(tenant, *scopes):
    client = APIClient()
    client.credentials(
        HTTP_X_API_KEY=api_key_create(
            district=tenant.district, name="+".join(scopes), scopes=list(scopes)
        ).plaintext
    )
    return client


def results(response):
    assert response.status_code == 200, response.content
    return response.json()["results"]


# --- SIS connections ----------------------------------------------------------------------------


def test_connections_are_listed_without_any_secret(api, rows):
    connection = rows.connection
    SISCredential.objects.create(
        connection=connection, client_id_encrypted="cid-cipher", client_secret_encrypted="s3cr3t"
    )
    connection.base_url = "https://user:hunter2@sis.example.org/api?token=abc"
    connection.options = {"page_size": 50}
    connection.save()
    listed = results(api.get("/api/v1/sis-connections/"))
    assert [c["id"] for c in listed] == [connection.pk]
    detail = api.get(f"/api/v1/sis-connections/{connection.pk}/")
    assert detail.status_code == 200
    body = detail.json()
    assert body["base_url"] == "https://sis.example.org/api"
    text = detail.content.decode()
    for secret in ("hunter2", "token=abc", "s3cr3t", "cid-cipher", "client_secret", "options"):
        assert secret not in text
    assert set(body) == set(listed[0])


def test_connections_filter_and_etag(api, rows, tenant):
    SISConnection.objects.create(
        district=tenant.district, name="Old CSV", provider="oneroster-csv", enabled=False
    )
    names = [c["name"] for c in results(api.get("/api/v1/sis-connections/?enabled=false"))]
    assert names == ["Old CSV"]
    assert len(results(api.get("/api/v1/sis-connections/?provider=powerschool"))) == 1
    first = api.get(f"/api/v1/sis-connections/{rows.connection.pk}/")
    again = api.get(
        f"/api/v1/sis-connections/{rows.connection.pk}/", HTTP_IF_NONE_MATCH=first["ETag"]
    )
    assert again.status_code == 304


# --- sync runs: reads ---------------------------------------------------------------------------


def test_run_detail_has_counts_progress_and_reasons(api, rows):
    run = rows.run
    run.status = RunStatus.HELD
    run.held_reason = "12% of students would be deactivated (limit 10%)."
    run.error_summary = ""
    run.save()
    body = api.get(f"/api/v1/sync-runs/{run.pk}/").json()
    assert body["status"] == "held"
    assert body["held_reason"].startswith("12% of students")
    assert body["counts"] == {"student": {"create": 3}}
    assert body["progress_percent"] == run.progress_percent
    assert body["trigger"] == "schedule"
    assert "held_details" not in body


def test_runs_filter_by_connection_status_mode_and_time(api, rows, tenant):
    other_connection = SISConnection.objects.create(
        district=tenant.district, name="Second SIS", provider="oneroster-1.2"
    )
    failed = SyncRun.objects.create(
        district=tenant.district,
        connection=other_connection,
        mode="delta",
        trigger="api",
        status=RunStatus.FAILED,
        error_summary="The SIS answered 401.",
    )
    SyncRun.objects.filter(pk=rows.run.pk).update(created_at=timezone.now() - dt.timedelta(days=3))

    def ids(query):
        return [r["id"] for r in results(api.get("/api/v1/sync-runs/", query))]

    assert ids({"connection": other_connection.pk}) == [failed.pk]
    assert ids({"status": ["failed", "held"]}) == [failed.pk]
    assert ids({"mode": "full"}) == [rows.run.pk]
    since = (timezone.now() - dt.timedelta(days=1)).isoformat()
    assert ids({"created_since": since}) == [failed.pk]
    assert ids({"ordering": "-id"}) == [failed.pk, rows.run.pk]
    bad = api.get("/api/v1/sync-runs/", {"status": "exploded"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "validation_error"


def test_runs_paginate_with_a_cursor(api, rows, tenant):
    for _ in range(4):
        SyncRun.objects.create(
            district=tenant.district,
            connection=rows.connection,
            mode="delta",
            trigger="schedule",
            status=RunStatus.COMPLETED,
        )
    seen, url = [], "/api/v1/sync-runs/?page_size=2"
    while url:
        body = api.get(url).json()
        assert len(body["results"]) <= 2
        seen += [r["id"] for r in body["results"]]
        url = body["next"]
    assert seen == sorted(SyncRun.objects.values_list("pk", flat=True))


# --- sync runs: start ---------------------------------------------------------------------------


def test_post_starts_a_run_and_a_second_post_answers_the_active_one(
    api, rows, django_capture_on_commit_callbacks
):
    body = {"connection": rows.connection.pk, "mode": "delta", "dry_run": True}
    with django_capture_on_commit_callbacks() as queued:
        started = api.post("/api/v1/sync-runs/", body, format="json")
    assert started.status_code == 202, started.content
    run = started.json()
    assert (run["status"], run["mode"], run["trigger"], run["dry_run"]) == (
        "pending", "delta", "api", True,
    )  # fmt: skip
    assert len(queued) == 1  # the sync task, queued after commit
    with django_capture_on_commit_callbacks() as queued_again:
        again = api.post("/api/v1/sync-runs/", {"connection": rows.connection.pk}, format="json")
    assert again.status_code == 200
    assert again.json()["id"] == run["id"]
    assert queued_again == []
    assert SyncRun.objects.filter(connection=rows.connection, trigger="api").count() == 1
    # A client retrying with its Idempotency-Key gets the first answer back, replayed.
    SyncRun.objects.filter(pk=run["id"]).update(status=RunStatus.COMPLETED)
    keyed = api.post("/api/v1/sync-runs/", body, format="json", HTTP_IDEMPOTENCY_KEY="start-1")
    assert keyed.status_code == 202
    replayed = api.post("/api/v1/sync-runs/", body, format="json", HTTP_IDEMPOTENCY_KEY="start-1")
    assert (replayed.status_code, replayed["Idempotent-Replayed"]) == (202, "true")
    assert replayed.json()["id"] == keyed.json()["id"] != run["id"]
    assert SyncRun.objects.filter(connection=rows.connection, trigger="api").count() == 2


def test_post_validates_its_body(api, rows):
    def post(body):
        return api.post("/api/v1/sync-runs/", body, format="json")

    missing = post({"mode": "full"})
    assert missing.status_code == 400
    assert "connection" in missing.json()["error"]["details"]
    assert post({"connection": rows.connection.pk, "mode": "targeted"}).status_code == 400
    assert post({"connection": 99999999}).json()["error"]["code"] == "unknown_connection"
    rows.connection.enabled = False
    rows.connection.save()
    disabled = post({"connection": rows.connection.pk})
    assert disabled.status_code == 400
    assert disabled.json()["error"]["code"] == "connection_disabled"
    assert not SyncRun.objects.filter(trigger="api").exists()


@pytest.mark.django_db(transaction=True)
def test_a_run_started_over_the_api_syncs_the_sandbox(tenant, eager_celery):
    """The real path: POST → sync_start → on commit → the Celery task (eager) → the engine
    → the sandbox SIS over HTTP. Then the run is read back over the API."""
    api = key_with(tenant, "sync:read", "sync:run")
    with sandbox_for(students=20) as sandbox:
        connection = connection_for(sandbox, tenant.district)
        started = api.post(
            "/api/v1/sync-runs/", {"connection": connection.pk, "mode": "full"}, format="json"
        )
        assert started.status_code == 202, started.content
        expected = sandbox.counts()
    run = api.get(f"/api/v1/sync-runs/{started.json()['id']}/").json()
    assert run["status"] == "completed", run["error_summary"]
    assert run["progress_percent"] == 100
    assert run["counts"]["student"]["create"] == expected["student"]
    synced = Student.objects.filter(district=tenant.district).exclude(local_id__startswith="A")
    assert synced.count() == expected["student"]


# --- conflicts ----------------------------------------------------------------------------------


def test_conflicts_list_filters_and_logs_the_students_read(api, rows, tenant):
    conflict = rows.conflict
    listed = results(api.get("/api/v1/conflicts/"))
    assert [c["id"] for c in listed] == [conflict.pk]
    assert listed[0]["object_id"] == tenant.students[0].pk
    assert (listed[0]["sis_value"], listed[0]["local_value"]) == ("FromSis", "FromHere")
    log = ApiAccessLog.objects.get(endpoint="api/v1/conflicts/")
    assert log.student_ids == [tenant.students[0].pk]

    def ids(query):
        return [c["id"] for c in results(api.get("/api/v1/conflicts/", query))]

    assert ids({"entity": "student", "field": "legal_last_name"}) == [conflict.pk]
    assert ids({"entity": "guardian"}) == []
    assert ids({"status": "open", "connection": rows.connection.pk}) == [conflict.pk]
    assert ids({"status": "resolved_sis"}) == []
    assert ids({"older_than_days": 2}) == []
    Conflict.objects.filter(pk=conflict.pk).update(created_at=timezone.now() - dt.timedelta(days=3))
    assert ids({"older_than_days": 2}) == [conflict.pk]
    assert api.get("/api/v1/conflicts/", {"older_than_days": "1.5"}).status_code == 400
    detail = api.get(f"/api/v1/conflicts/{conflict.pk}/")
    assert detail.status_code == 200 and detail["ETag"]


def test_resolving_writes_the_value_and_names_the_api_client_in_history(api, rows, tenant):
    conflict = rows.conflict
    student = tenant.students[0]
    response = api.post(
        f"/api/v1/conflicts/{conflict.pk}/resolve/",
        {"choice": "edit", "value": "Agreed"},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "resolved_edit"
    assert response.json()["resolution_value"] == "Agreed"
    student.refresh_from_db()
    assert student.legal_last_name == "Agreed"
    reason = Student.history.filter(id=student.pk).latest("history_id").history_change_reason
    assert reason.startswith(f"Conflict {conflict.pk} resolved by API client sync")
    assert "api_key:sas_" in reason
    again = api.post(f"/api/v1/conflicts/{conflict.pk}/resolve/", {"choice": "sis"}, format="json")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_resolved"


def test_resolve_validates_the_choice_and_the_value(api, rows):
    url = f"/api/v1/conflicts/{rows.conflict.pk}/resolve/"
    assert api.post(url, {"choice": "mine"}, format="json").status_code == 400
    no_value = api.post(url, {"choice": "edit"}, format="json")
    assert no_value.status_code == 400
    assert "value" in no_value.json()["error"]["details"]
    assert api.post(url, {"choice": "sis", "value": "x"}, format="json").status_code == 400
    too_long = api.post(url, {"choice": "edit", "value": "x" * 500}, format="json")
    assert too_long.status_code == 400
    assert too_long.json()["error"]["code"] == "invalid_value"
    null = api.post(url, {"choice": "edit", "value": None}, format="json")
    assert null.status_code == 400
    assert api.post("/api/v1/conflicts/99999999/resolve/", {"choice": "sis"}).status_code == 404
    rows.conflict.refresh_from_db()
    assert rows.conflict.status == "open"


def test_sync_scopes_are_enforced(tenant, rows):
    read_only = key_with(tenant, "sync:read")
    assert read_only.get("/api/v1/sync-runs/").status_code == 200
    assert read_only.get("/api/v1/conflicts/").status_code == 200
    assert read_only.get("/api/v1/sis-connections/").status_code == 200
    start = read_only.post("/api/v1/sync-runs/", {"connection": rows.connection.pk})
    assert start.status_code == 403
    resolve = read_only.post(f"/api/v1/conflicts/{rows.conflict.pk}/resolve/", {"choice": "sis"})
    assert resolve.status_code == 403
    runner = key_with(tenant, "sync:run")
    assert runner.get("/api/v1/sync-runs/").status_code == 403
    assert runner.get(f"/api/v1/conflicts/{rows.conflict.pk}/").status_code == 403
    roster = key_with(tenant, "roster:read")
    assert roster.get("/api/v1/sis-connections/").status_code == 403
    assert not SyncRun.objects.filter(trigger="api").exists()
    rows.conflict.refresh_from_db()
    assert rows.conflict.status == "open"


def test_list_pages_cost_the_same_queries_for_one_row_or_many(api, rows, tenant):
    """No per-row queries: a page of 25 costs what a page of one does (conflicts on students,
    guardians and enrollments need one query per entity kind for the FERPA log, not per row)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from syncing.models import SourceLink

    api.get("/api/v1/districts/")  # the key's first use also records last_used_at

    def queries(path):
        with CaptureQueriesContext(connection) as captured:
            assert api.get(path).status_code == 200
        return len(captured)

    guardian_link = SourceLink.objects.create(
        district=tenant.district,
        connection=rows.connection,
        entity="guardian",
        source_id="g-1",
        object_id=tenant.guardian.pk,
        content_hash="x",
    )
    Conflict.objects.create(
        district=tenant.district, link=guardian_link, entity="guardian", field="email",
        sis_value="a@example.org", local_value="b@example.org", policy="review",
    )  # fmt: skip
    paths = ["/api/v1/sis-connections/", "/api/v1/sync-runs/", "/api/v1/conflicts/"]
    few = {path: queries(path) for path in paths}
    for n in range(24):
        connection_n = SISConnection.objects.create(
            district=tenant.district, name=f"SIS {n}", provider="powerschool"
        )
        SyncRun.objects.create(
            district=tenant.district, connection=connection_n, mode="full", trigger="api"
        )
        link = SourceLink.objects.create(
            district=tenant.district,
            connection=connection_n,
            entity="student",
            source_id=f"s-{n}",
            object_id=tenant.students[n % 3].pk,
            content_hash="x",
        )
        Conflict.objects.create(
            district=tenant.district, link=link, entity="student", field="legal_first_name",
            sis_value="A", local_value="B", policy="review",
        )  # fmt: skip
    assert {path: queries(path) for path in paths} == few
    logged = ApiAccessLog.objects.filter(endpoint="api/v1/conflicts/").latest("id")
    assert set(logged.student_ids) == {s.pk for s in tenant.students}
