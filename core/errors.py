"""The one application error type. Services raise it; the API turns it into the one error
shape (see :mod:`core.api`), the admin shows its message."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A rule of the application was broken by the request, not by a bug.

    ``code`` is a stable machine-readable identifier (``student_not_enrolled``); ``message`` is
    for people and must never contain secrets or student data beyond what the caller sent.
    ``status`` is the HTTP status the API answers with.
    """

    status = 400

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid",
        details: dict[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details or {}
        if status is not None:
            self.status = status


class NotFoundError(ApplicationError):
    status = 404


class ConflictError(ApplicationError):
    status = 409


class PermanentError(Exception):
    """A failure that retrying cannot fix (bad credentials, invalid phone number). Stop and
    surface it."""


class TransientError(Exception):
    """A failure that may pass (timeout, 5xx, throttling). Retry with backoff.

    ``retry_after`` is the earliest sensible retry in seconds, when the other side told us.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
