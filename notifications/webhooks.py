"""Provider webhooks under /hooks/. Views only check authenticity, parse, call a service.

Twilio: ``X-Twilio-Signature`` is checked against the URL rebuilt from ``PUBLIC_BASE_URL``
(a TLS proxy changes what Django sees), with the current Auth Token and, during a rotation,
the previous one. Anymail: basic auth from ``ANYMAIL["WEBHOOK_SECRET"]``. A forged or unsigned
request gets 403 and a log line without personal data.
"""

from __future__ import annotations

import logging
from typing import Any
from xml.sax.saxutils import escape

from anymail.exceptions import AnymailWebhookValidationFailure
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.request_validator import RequestValidator

from core.links import public_url
from notifications.services import inbound

logger = logging.getLogger(__name__)
TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def twilio_signature_valid(request: HttpRequest) -> bool:
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        return False
    url = public_url(request.get_full_path())
    tokens = [t for t in (settings.TWILIO_AUTH_TOKEN, settings.TWILIO_AUTH_TOKEN_PREVIOUS) if t]
    return any(RequestValidator(token).validate(url, request.POST, signature) for token in tokens)


def _forbidden(request: HttpRequest, provider: str, reason: str) -> HttpResponse:
    logger.warning(
        "webhook rejected",
        extra={"provider": provider, "reason": reason, "path": request.path},
    )
    return HttpResponseForbidden()


@csrf_exempt
@require_POST
def twilio_status(request: HttpRequest, delivery_uuid: str) -> HttpResponse:
    if not twilio_signature_valid(request):
        return _forbidden(request, "twilio", "bad_signature")
    inbound.twilio_status_callback(
        delivery_uuid=str(delivery_uuid),
        params=request.POST.dict(),
        idempotency_token=request.headers.get("I-Twilio-Idempotency-Token", ""),
    )
    # 200 for unknown and duplicate callbacks too: Twilio would otherwise keep retrying.
    return HttpResponse(status=204)


@csrf_exempt
@require_POST
def twilio_inbound(request: HttpRequest) -> HttpResponse:
    if not twilio_signature_valid(request):
        return _forbidden(request, "twilio", "bad_signature")
    reply = inbound.sms_inbound_handle(
        from_number=request.POST.get("From", ""),
        body=request.POST.get("Body", ""),
        provider="twilio",
    )
    twiml = TWIML_EMPTY
    if reply:
        twiml = (
            '<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
            f"{escape(reply)}</Message></Response>"
        )
    return HttpResponse(twiml, content_type="text/xml")


def anymail_tracking_view(view_class: Any) -> Any:
    """Wrap an anymail tracking view so that failed authentication answers 403 (anymail's
    own answer is 400) and is logged like our other webhooks."""

    class Guarded(view_class):
        def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                return super().post(request, *args, **kwargs)
            except AnymailWebhookValidationFailure:
                return _forbidden(request, self.esp_name, "bad_basic_auth")

    Guarded.__name__ = f"Guarded{view_class.__name__}"
    return csrf_exempt(Guarded.as_view())
