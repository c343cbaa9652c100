from __future__ import annotations

import io
import json
import logging

import pytest

from core import logging as core_logging
from core.logging import JsonFormatter, RedactingFilter, RequestIdFilter, redact


@pytest.fixture
def log_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(previous)


def test_each_request_logs_one_json_line_with_its_request_id(client, log_lines):
    response = client.get("/healthz?token=abc", HTTP_X_REQUEST_ID="req-12345678")
    assert response["X-Request-ID"] == "req-12345678"
    lines = [line for line in log_lines() if line["logger"] == "sas.request"]
    assert len(lines) == 1
    assert lines[0]["request_id"] == "req-12345678"
    assert lines[0]["route"] == "healthz"
    assert lines[0]["status"] == 200
    assert "token" not in json.dumps(lines[0])


def test_a_malformed_request_id_is_replaced(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert response["X-Request-ID"] != "bad id\nwith newline"
    assert len(response["X-Request-ID"]) == 32


def test_personal_data_and_secrets_are_scrubbed(log_lines):
    logging.getLogger("sas.test").warning(
        "could not reach %s at %s with Bearer abc.def and ?client_secret=s3cr3t",
        "jane.doe@example.org",
        "(312) 555-0142",
        extra={"contact": "+13125550142"},
    )
    (line,) = [line for line in log_lines() if line["logger"] == "sas.test"]
    text = json.dumps(line)
    for secret in ("jane.doe@example.org", "555-0142", "13125550142", "abc.def", "s3cr3t"):
        assert secret not in text
    assert "[email]" in line["message"] and "[phone]" in line["message"]


def test_dates_and_ids_survive_redaction():
    text = "run 12 on 2026-11-26T04:00:00 took 1234 ms"
    assert redact(text) == text


def test_postgresql_detail_lines_quoting_row_values_are_scrubbed():
    text = (
        'duplicate key value violates unique constraint "student_unique_local_id"\n'
        "DETAIL:  Key (district_id, local_id)=(3, S0042) already exists."
    )
    assert redact(text) == (
        'duplicate key value violates unique constraint "student_unique_local_id"\n'
        "DETAIL: [redacted]"
    )


def _every_substitution(text: str) -> str:
    text = core_logging._PG_DETAIL.sub("DETAIL: [redacted]", text)
    text = core_logging._BEARER.sub(r"\1 [redacted]", text)
    text = core_logging._SECRET_QUERY.sub(r"\1=[redacted]", text)
    text = core_logging._EMAIL.sub("[email]", text)
    return core_logging._PHONE.sub(core_logging._phone_or_keep, text)


@pytest.mark.parametrize(
    "text",
    [
        "gateway call",
        "bench:capped-1a2b3c4d",
        "/ws/v1/student/{id}",
        "Bearer abc.def",
        "BASIC\tdXNlcjpwYXNz",
        "token=abc&x=1",
        "mail jane.doe@example.org now",
        "call +1 (555) 010-9999",
        "555.010.9999",
        "2026-11-26T07:00:00",
        "order 1234567890123",
        "DETAIL:  Failing row contains (Jane, Doe).",
    ],
)
def test_the_quick_check_skips_only_text_no_pattern_would_change(text):
    assert redact(text) == _every_substitution(text)
