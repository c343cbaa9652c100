"""The SIS event webhook: a PowerSchool event subscription (or any SIS) tells us a record
changed; we re-fetch that record in a targeted run.

Authenticated with an HMAC-SHA256 of the raw body under the connection's own secret
(``X-Sync-Signature: sha256=<hex>``); a bad or missing signature is a 403 and is logged without
the body. If a run of the connection is already active the records are kept and synced in one
targeted run after it (``syncing.events``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from core.errors import ApplicationError
from syncing.entities import SPECS
from syncing.schedules import schedule_webhook_secret

logger = logging.getLogger(__name__)

# Vendor table/resource names → our entities (PowerSchool tables, OneRoster collections).
ENTITY_ALIASES = {
    "students": "student",
    "student": "student",
    "guardians": "guardian",
    "guardian": "guardian",
    "person": "guardian",
    "studentcontactassoc": "student_guardian",
    "teachers": "staff",
    "users": "student",
    "schools": "school",
    "sections": "section",
    "cc": "section_enrollment",
    "section_enrollment": "section_enrollment",
    "reenrollments": "enrollment",
}


def signature_for(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _targets(payload: Any) -> list[list[str]]:
    events = payload.get("events", [payload]) if isinstance(payload, dict) else payload
    # Every record named, once, in the order first named (a run takes 500; the rest wait as
    # pending events for the next one). The body's size limit bounds how many there can be.
    targets: dict[tuple[str, str], None] = {}
    for event in events if isinstance(events, list) else []:
        if not isinstance(event, dict):
            continue
        raw = str(event.get("entity") or event.get("resource") or event.get("table") or "")
        entity = ENTITY_ALIASES.get(raw.lower(), raw.lower())
        source_id = event.get("source_id") or event.get("id") or event.get("dcid")
        if entity in SPECS and source_id not in (None, ""):
            targets[(entity, str(source_id))] = None
    return [list(pair) for pair in targets]


@csrf_exempt
@require_POST
def sis_events(request: HttpRequest, connection_id: int) -> JsonResponse:
    from sis.models import SISConnection
    from syncing.events import sync_events_receive

    secret = schedule_webhook_secret(connection_id=connection_id)
    given = request.headers.get("X-Sync-Signature", "")
    # As bytes: compare_digest refuses a str with non-ASCII characters (a TypeError, a 500).
    expected = signature_for(secret, request.body).encode() if secret is not None else b""
    if secret is None or not hmac.compare_digest(given.encode(), expected):
        logger.warning("sync webhook refused", extra={"connection_id": connection_id})
        return JsonResponse({"error": {"code": "bad_signature"}}, status=403)
    try:
        payload = json.loads(request.body or b"{}")
    except ValueError:
        return JsonResponse({"error": {"code": "invalid_json"}}, status=400)
    targets = _targets(payload)
    if not targets:
        return JsonResponse({"error": {"code": "no_events"}}, status=400)
    connection = SISConnection.objects.filter(pk=connection_id).first()
    if connection is None:
        return JsonResponse({"error": {"code": "not_found"}}, status=404)
    try:
        run, created, kept = sync_events_receive(connection=connection, targets=targets)
    except ApplicationError as exc:
        return JsonResponse({"error": {"code": exc.code, "message": exc.message}}, status=409)
    return JsonResponse(
        {"run": run.pk, "queued": created, "kept": kept, "targets": len(targets)}, status=202
    )
