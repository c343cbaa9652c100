"""The SIS event webhook's door: a signature over timestamp and body, a clock window, replays
answered as duplicates, and records beyond one run kept for the next."""

from __future__ import annotations

import json
import time

import pytest
from django.urls import reverse

from syncing.models import PendingEvent, ScheduleKind, SyncRun, SyncSchedule
from syncing.schedules import schedule_save, schedule_webhook_secret
from syncing.webhooks import signature_for, signed_headers

BODY = json.dumps({"events": [{"entity": "students", "id": "stu-3"}]}).encode()


@pytest.fixture
def secret(connection):
    schedule_save(schedule=SyncSchedule(connection=connection, kind=ScheduleKind.REALTIME))
    return schedule_webhook_secret(connection_id=connection.pk)


def _post(client, connection, body: bytes, headers: dict[str, str]):
    url = reverse("syncing:sis-events", args=[connection.pk])
    return client.post(url, body, content_type="application/json", headers=headers)


def _code(response) -> str:
    return response.json()["error"]["code"]


def test_a_signed_request_starts_a_targeted_run(client, connection, secret):
    response = _post(client, connection, BODY, signed_headers(secret, BODY))
    assert response.status_code == 202, response.content
    assert SyncRun.objects.get().targets == [["student", "stu-3"], ["enrollment", "stu-3"]]


@pytest.mark.parametrize(
    ("signature", "timestamp"),
    [
        pytest.param(None, None, id="no headers"),
        pytest.param("sha256=00", "1", id="wrong"),
        pytest.param("sha256=\u00e9", "1", id="non-ascii signature"),
        pytest.param("sha256=00", "\u0661", id="non-ascii digit timestamp"),
        pytest.param("sha256=00", "9" * 5000, id="timestamp too long for int()"),
    ],
)
def test_a_bad_signature_is_refused_in_the_error_shape(
    client, connection, secret, signature, timestamp
):
    headers = {}
    if signature is not None:
        headers = {"X-Sync-Signature": signature, "X-Sync-Timestamp": timestamp}
    response = _post(client, connection, BODY, headers)
    assert response.status_code == 403
    assert _code(response) == "bad_signature" and response.json()["error"]["message"]
    assert not SyncRun.objects.exists()


def test_the_signature_covers_the_timestamp_and_the_body(client, connection, secret):
    now = int(time.time())
    signed = signed_headers(secret, BODY, timestamp=now)
    moved = {**signed, "X-Sync-Timestamp": str(now + 1)}
    assert _code(_post(client, connection, BODY, moved)) == "bad_signature"
    other = json.dumps({"events": [{"entity": "students", "id": "stu-4"}]}).encode()
    assert _code(_post(client, connection, other, signed)) == "bad_signature"
    assert not SyncRun.objects.exists()


def test_a_request_signed_too_long_ago_is_refused(client, connection, secret, settings):
    settings.SYNC_WEBHOOK_TOLERANCE_SECONDS = 300
    for offset in (-301, 301):  # captured and replayed later, or a sender's clock far off
        at = int(time.time()) + offset
        response = _post(client, connection, BODY, signed_headers(secret, BODY, timestamp=at))
        assert response.status_code == 403 and _code(response) == "stale_signature"
    assert not SyncRun.objects.exists()
    within = signed_headers(secret, BODY, timestamp=int(time.time()) - 200)
    assert _post(client, connection, BODY, within).status_code == 202


def test_a_replayed_request_is_a_duplicate_that_starts_nothing(client, connection, secret):
    signed = signed_headers(secret, BODY)
    first = _post(client, connection, BODY, signed)
    assert first.status_code == 202 and first.json()["queued"]
    SyncRun.objects.update(status="completed")  # the run is over; a replay would start another
    again = _post(client, connection, BODY, signed)
    assert again.status_code == 200 and again.json() == {"duplicate": True, "queued": False}
    assert SyncRun.objects.count() == 1
    # The sender's next event (signed anew) is a new request.
    later = signed_headers(secret, BODY, timestamp=int(signed["X-Sync-Timestamp"]) + 1)
    assert _post(client, connection, BODY, later).status_code == 202
    assert SyncRun.objects.count() == 2


def test_a_refused_request_can_be_retried(client, connection, secret):
    connection.enabled = False
    connection.save(update_fields=["enabled"])
    signed = signed_headers(secret, BODY)
    refused = _post(client, connection, BODY, signed)
    assert refused.status_code == 409 and _code(refused) == "connection_disabled"
    connection.enabled = True
    connection.save(update_fields=["enabled"])
    # Not remembered as done: the sender's retry of the same request goes through.
    assert _post(client, connection, BODY, signed).status_code == 202


def test_a_connection_without_a_schedule_refuses_every_request(client, connection):
    at = int(time.time())
    headers = {"X-Sync-Timestamp": str(at), "X-Sync-Signature": signature_for("", BODY, at)}
    response = _post(client, connection, BODY, headers)
    assert response.status_code == 403 and _code(response) == "bad_signature"


def test_events_past_one_run_wait_for_the_next(client, connection, secret):
    events = [{"entity": "teachers", "id": f"t-{n}"} for n in range(520)]
    events.append({"entity": "teachers", "id": "t-0"})  # a repeat counts once
    body = json.dumps({"events": events}).encode()
    response = _post(client, connection, body, signed_headers(secret, body))
    assert response.status_code == 202
    run = SyncRun.objects.get()
    assert len(run.targets) == 500 and run.targets[0] == ["staff", "t-0"]
    kept = set(PendingEvent.objects.values_list("source_id", flat=True))
    assert kept == {f"t-{n}" for n in range(500, 520)}


@pytest.mark.parametrize(
    ("name", "entities"),
    [
        ("students", ["student", "enrollment"]),  # the record carries its school enrollment
        ("users", ["student", "enrollment", "staff", "guardian"]),  # a OneRoster user of any kind
        ("teachers", ["staff"]),
        ("person", ["guardian"]),
        ("cc", ["section_enrollment"]),
        ("guardian", ["guardian"]),  # our own entity names pass through
    ],
)
def test_what_an_event_re_fetches(client, connection, secret, name, entities):
    # An event naming both (PowerSchool) means the DCID, our source id.
    body = json.dumps({"events": [{"entity": name, "id": "7", "dcid": "42"}]}).encode()
    assert _post(client, connection, body, signed_headers(secret, body)).status_code == 202
    assert SyncRun.objects.get().targets == [[entity, "42"] for entity in entities]
