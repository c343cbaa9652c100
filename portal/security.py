"""Security pieces of the portal: a stricter Content-Security-Policy than the admin's, and the
sign-in throttles.

The site-wide policy allows inline styles because the Django admin needs them; portal pages use
one stylesheet file and no inline styles, so their policy drops ``'unsafe-inline'``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.csp import CSP

from gateway.inbound.throttling import Limit, check_limit

PORTAL_CSP = {
    "default-src": [CSP.NONE],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "object-src": [CSP.NONE],
}


def portal_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Apply the portal's CSP (and no caching: pages show personal data)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response._csp_config = PORTAL_CSP  # type: ignore[attr-defined]
        response.setdefault("Cache-Control", "no-store")
        return response

    return wrapper


def _address(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def _session(request: HttpRequest) -> str | None:
    if not request.session.session_key:
        request.session.save()
    return request.session.session_key


SIGNIN_BY_SESSION = Limit("portal-signin-session", "PORTAL_SIGNIN_SESSION_RATE", _session)
SIGNIN_BY_ADDRESS = Limit("portal-signin-address", "PORTAL_SIGNIN_ADDRESS_RATE", _address)
CODE_BY_SESSION = Limit("portal-code-session", "PORTAL_CODE_CHECK_RATE", _session)
CODE_BY_ADDRESS = Limit("portal-code-address", "PORTAL_SIGNIN_ADDRESS_RATE", _address)


def contact_limit(value: str) -> Limit:
    return Limit("portal-signin-contact", "PORTAL_SIGNIN_CONTACT_RATE", lambda _request: value)


def limits_check(request: HttpRequest, limits: list[Limit]) -> int | None:
    """Count the request against every limit; the longest wait when any is exceeded."""
    waits = [wait for limit in limits if (wait := check_limit(request, limit)) is not None]
    return max(waits) if waits else None


def throttled_page(request: HttpRequest, retry_after: int) -> HttpResponse:
    minutes = max(1, (retry_after + 59) // 60)
    response = render(
        request,
        "portal/throttled.html",
        {"retry_after": retry_after, "minutes": minutes},
        status=429,
    )
    response["Retry-After"] = str(retry_after)
    return response
