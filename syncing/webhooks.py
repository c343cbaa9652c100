"""The SIS event webhook: a PowerSchool event subscription (or any SIS) tells us a record
changed; we re-fetch that record in a targeted run.

Authenticated with an HMAC-SHA256 under the connection's own secret of ``<timestamp>.<raw
body>`` (headers ``X-Sync-Timestamp: <Unix seconds>`` and ``X-Sync-Signature: sha256=<hex>``).
A bad or missing signature, or a timestamp more than ``SYNC_WEBHOOK_TOLERANCE_SECONDS`` away
from our clock, is a 403 and is logged without the body; the same signed request seen again
within that window (a replay, or a sender's retry) is answered 200 ``duplicate`` and does
nothing. If a run of the connection is already active the records are kept and synced in one
targeted run after it (``syncing.events``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from core.api import error_response
from core.errors import ApplicationError
from syncing.entities import SPECS
from syncing.schedules import schedule_webhook_secret

logger = logging.getLogger(__name__)

# Vendor table/resource names → the entities one event on that record re-fetches (PowerSchool
# tables, OneRoster collections). A student's record also carries its school enrollment; a
# OneRoster user may be a student, staff or a guardian (read as each; what it is not finds
# nothing).
ENTITY_ALIASES: dict[str, tuple[str, ...]] = {
    "students": ("student", "enrollment"),
    "student": ("student", "enrollment"),
    "users": ("student", "enrollment", "staff", "guardian"),
    "guardians": ("guardian",),
    "person": ("guardian",),
    "contacts": ("guardian",),
    "studentcontactassoc": ("student_guardian",),
    "teachers": ("staff",),
    "schools": ("school",),
    "sections": ("section",),
    "cc": ("section_enrollment",),
    "reenrollments": ("enrollment",),
}


def signature_for(secret: str, body: bytes, timestamp: int | str) -> str:
    """``sha256=<hex>``: the HMAC-SHA256 of ``<timestamp>.<body>`` under ``secret``."""
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The two headers a sender puts on ``body`` (now, unless ``timestamp`` is given)."""
    at = int(time.time()) if timestamp is None else timestamp
    return {"X-Sync-Timestamp": str(at), "X-Sync-Signature": signature_for(secret, body, at)}


def _refused(connection_id: int, code: str, message: str) -> JsonResponse:
    logger.warning("sync webhook refused", extra={"connection_id": connection_id, "code": code})
    return error_response(code, message, status_code=403)


def _targets(payload: Any) -> list[list[str]]:
    events = payload.get("events", [payload]) if isinstance(payload, dict) else payload
    # Every record named, once, in the order first named (a run takes 500; the rest wait as
    # pending events for the next one). The body's size limit bounds how many there can be.
    targets: dict[tuple[str, str], None] = {}
    for event in events if isinstance(events, list) else []:
        if not isinstance(event, dict):
            continue
        raw = str(event.get("entity") or event.get("resource") or event.get("table") or "")
        # Our source ids are PowerSchool's DCIDs: an event naming both DCID and ID means the DCID.
        source_id = event.get("source_id") or event.get("dcid") or event.get("id")
        for entity in ENTITY_ALIASES.get(raw.lower(), (raw.lower(),)):
            if entity in SPECS and source_id not in (None, ""):
                targets[(entity, str(source_id))] = None
    return [list(pair) for pair in targets]


@csrf_exempt
@require_POST
def sis_events(request: HttpRequest, connection_id: int) -> JsonResponse:
    secret = schedule_webhook_secret(connection_id=connection_id)
    given = request.headers.get("X-Sync-Signature", "")
    stamp = request.headers.get("X-Sync-Timestamp", "")
    # As bytes: compare_digest refuses a str with non-ASCII characters (a TypeError, a 500).
    expected = b""
    if secret is not None and stamp.isascii() and stamp.isdigit() and len(stamp) <= 12:
        expected = signature_for(secret, request.body, stamp).encode()
    if not expected or not hmac.compare_digest(given.encode(), expected):
        return _refused(connection_id, "bad_signature", "The request signature is not valid.")
    tolerance = settings.SYNC_WEBHOOK_TOLERANCE_SECONDS
    if abs(time.time() - int(stamp)) > tolerance:
        # A captured request replayed later, or a sender whose clock is wrong.
        return _refused(
            connection_id, "stale_signature", "The request timestamp is too far from our clock."
        )
    # Within the window, the signature identifies the request: seen once, it is done.
    seen = f"sync-webhook:{connection_id}:{hashlib.sha256(expected).hexdigest()}"
    if not cache.add(seen, 1, timeout=2 * tolerance):
        logger.info("sync webhook duplicate ignored", extra={"connection_id": connection_id})
        return JsonResponse({"duplicate": True, "queued": False}, status=200)
    try:
        response = _receive(request, connection_id)
    except BaseException:
        cache.delete(seen)  # not done: the sender's retry must be able to do it
        raise
    if response.status_code >= 300:
        cache.delete(seen)  # refused (a disabled connection, say): a retry may succeed later
    return response


def _receive(request: HttpRequest, connection_id: int) -> JsonResponse:
    from sis.models import SISConnection
    from syncing.events import sync_events_receive

    try:
        payload = json.loads(request.body or b"{}")
    except ValueError:
        return error_response("invalid_json", "The body is not JSON.", status_code=400)
    targets = _targets(payload)
    if not targets:
        return error_response(
            "no_events", "The body names no record of a known entity.", status_code=400
        )
    connection = SISConnection.objects.filter(pk=connection_id).first()
    if connection is None:
        return error_response("not_found", "No such connection.", status_code=404)
    try:
        run, created, kept = sync_events_receive(connection=connection, targets=targets)
    except ApplicationError as exc:
        return error_response(exc.code, exc.message, status_code=409)
    return JsonResponse(
        {"run": run.pk, "queued": created, "kept": kept, "targets": len(targets)}, status=202
    )
