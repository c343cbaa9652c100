"""The ``Idempotency-Key`` ledger for ``POST`` requests of the integrator API.

Semantics (after Stripe and Telnyx): the first request with a key runs and its response is
kept for ``API_IDEMPOTENCY_TTL_HOURS``; the same key with the same body gets that response again
(header ``Idempotent-Replayed: true``); the same key with a different body is a 422; a duplicate
arriving while the first still runs is a 409 (the ledger row is inserted, and committed, before
the request runs, so two concurrent duplicates can never both run). A 5xx is not kept: our
writes roll back on a server error, so the client may retry the same key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import ApplicationError, ConflictError
from gateway.models import IdempotencyRecord, IdempotencyState

MAX_KEY_LENGTH = 255
# A request still "in progress" after this long died with its worker: let a retry take over.
ABANDONED_AFTER = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: Any


def request_fingerprint(*, method: str, path: str, body: bytes) -> str:
    """Hash of what the request asks for. JSON bodies are canonicalised (key order and spacing
    do not matter); anything else is hashed as sent."""
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS) if body else b""
    except orjson.JSONDecodeError:
        canonical = body
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), canonical):
        digest.update(part)
        digest.update(b"\x00")
    return digest.hexdigest()


def idempotency_begin(
    *, owner: str, key: str, method: str, path: str, fingerprint: str
) -> IdempotencyRecord | StoredResponse:
    """Claim ``key`` for this request (returns the new in-progress row) or return the stored
    response of the earlier identical request. Raises 422 for a different body with the same
    key and 409 while the first request with the key is still running."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ApplicationError(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters.",
            code="invalid_idempotency_key",
        )
    now = timezone.now()
    for _attempt in range(3):
        try:
            with transaction.atomic():
                return IdempotencyRecord.objects.create(
                    owner=owner,
                    key=key,
                    method=method,
                    path=path,
                    request_hash=fingerprint,
                    created_at=now,
                    expires_at=now + dt.timedelta(hours=settings.API_IDEMPOTENCY_TTL_HOURS),
                )
        except IntegrityError:
            pass
        existing = IdempotencyRecord.objects.filter(owner=owner, key=key).first()
        if existing is None:
            continue  # purged meanwhile: claim it again
        stale = existing.expires_at <= now or (
            existing.state == IdempotencyState.IN_PROGRESS
            and existing.created_at <= now - ABANDONED_AFTER
        )
        if stale:
            IdempotencyRecord.objects.filter(
                pk=existing.pk, created_at=existing.created_at
            ).delete()
            continue
        if existing.request_hash != fingerprint:
            raise ApplicationError(
                "This Idempotency-Key was used with a different request.",
                code="idempotency_key_reused",
                status=422,
            )
        if existing.state == IdempotencyState.IN_PROGRESS:
            raise ConflictError(
                "A request with this Idempotency-Key is still in progress; retry shortly.",
                code="idempotency_in_progress",
            )
        return StoredResponse(status=existing.response_status or 200, body=existing.response_body)
    raise ConflictError(
        "A request with this Idempotency-Key is still in progress; retry shortly.",
        code="idempotency_in_progress",
    )


def idempotency_complete(*, record: IdempotencyRecord, status: int, body: Any) -> None:
    """Keep the response of a finished request, or free the key after a server error."""
    if status >= 500:
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
        return
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        state=IdempotencyState.COMPLETED,
        response_status=status,
        # Through orjson so dates, decimals and lazy strings are stored as the client saw them.
        response_body=_storable(body),
    )


def _storable(body: Any) -> Any:
    """The body as JSON types (dates, decimals, lazy strings as the client saw them). PostgreSQL
    jsonb cannot hold U+0000, which an error message may echo from the request."""
    encoded = orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS)
    return orjson.loads(encoded.replace(b"\\u0000", b"\\ufffd"))


def idempotency_purge(*, now: dt.datetime | None = None) -> int:
    deleted, _ = IdempotencyRecord.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted
