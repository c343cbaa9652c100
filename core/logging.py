"""Structured JSON logs with the request id, scrubbed of personal data.

The redacting filter is a safety net, not the policy: code must not log names, phone numbers,
e-mails or secrets in the first place. The filter catches what slips through (an exception
message that quotes a value, a third-party library's log line).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from core.request_context import request_id_var

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# Phone-like runs: optional +, then 10-15 digits possibly split by spaces, dots, dashes, parens.
_PHONE = re.compile(r"(?<![\w/])\+?\(?\d[\d\s().-]{8,18}\d(?![\w/])")
_SECRET_QUERY = re.compile(
    r"(?i)\b(token|secret|password|key|signature|code|client_secret|access_token)=[^&\s]+"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
# PostgreSQL's detail line quotes the row's values ("Key (district_id, local_id)=(3, S0042)").
_PG_DETAIL = re.compile(r"(?m)^DETAIL:.*$")

# LogRecord attributes that are not ours to serialise as extras.
_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


# Each pattern above needs one of these; most logged values (route names, statuses, templated
# paths) have none, and one search is cheaper than four substitutions on every log line.
_MAYBE_SENSITIVE = re.compile(r"[@=]|\d[\d\s().-]{8,}|(?i:bearer|basic)\s|DETAIL:")


def redact(text: str) -> str:
    if _MAYBE_SENSITIVE.search(text) is None:
        return text
    text = _PG_DETAIL.sub("DETAIL: [redacted]", text)
    text = _BEARER.sub(r"\1 [redacted]", text)
    text = _SECRET_QUERY.sub(r"\1=[redacted]", text)
    text = _EMAIL.sub("[email]", text)
    return _PHONE.sub(_phone_or_keep, text)


def _phone_or_keep(match: re.Match[str]) -> str:
    digits = sum(ch.isdigit() for ch in match.group(0))
    # Dates (2026-11-26) and durations have fewer digits or a different shape; keep them.
    if digits < 10 or re.fullmatch(r"\d{4}-\d{2}-\d{2}.*", match.group(0)):
        return match.group(0)
    return "[phone]"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        for key, value in list(vars(record).items()):
            if key not in _RESERVED and isinstance(value, str):
                setattr(record, key, redact(value))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(payload, default=str)
