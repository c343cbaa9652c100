"""``/metrics`` for Prometheus: not public. Without ``METRICS_TOKEN`` it does not exist (404);
with it, a scraper must send ``Authorization: Bearer <METRICS_TOKEN>``."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from gateway.metrics import exposition


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    token = getattr(settings, "METRICS_TOKEN", None)
    if not token:
        raise Http404
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented:
        response = HttpResponse("authentication required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    # Constant-time comparison: the token must not leak through response timing.
    if not hmac.compare_digest(presented.strip().encode(), token.encode()):
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    body, content_type = exposition()
    return HttpResponse(body, content_type=content_type)
