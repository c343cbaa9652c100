"""The current request id, carried through logs (and into Celery tasks enqueued by a request)."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
