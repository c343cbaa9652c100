"""Portal sessions. A guardian has no Django user: the session holds the guardian ids the
verified contact belongs to, which one is shown, how the session was opened, and when.

Sessions are short: they end after ``PORTAL_SESSION_IDLE_SECONDS`` without a request and
``PORTAL_SESSION_MAX_SECONDS`` after sign-in, whatever happens. The session key is rotated at
sign-in (no fixation) and the session is flushed at sign-out.
"""

from __future__ import annotations

import functools
import time
import zoneinfo
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone

from attendance.models import Guardian
from notifications.models import Preference

GUARDIAN_IDS = "portal_guardian_ids"
GUARDIAN_ID = "portal_guardian_id"
VIA = "portal_via"
SIGNED_IN_AT = "portal_signed_in_at"
CHALLENGE = "portal_challenge"


class PortalRequest(HttpRequest):
    guardian: Guardian
    portal_via: str


def session_sign_in(request: HttpRequest, *, guardian_ids: list[int], via: str) -> None:
    request.session.cycle_key()
    for key in (GUARDIAN_IDS, GUARDIAN_ID, VIA, SIGNED_IN_AT, CHALLENGE):
        request.session.pop(key, None)
    request.session[GUARDIAN_IDS] = guardian_ids
    request.session[GUARDIAN_ID] = guardian_ids[0]
    request.session[VIA] = via
    request.session[SIGNED_IN_AT] = int(time.time())
    request.session.set_expiry(settings.PORTAL_SESSION_IDLE_SECONDS)


def session_sign_out(request: HttpRequest) -> None:
    request.session.flush()


def session_guardian(request: HttpRequest) -> Guardian | None:
    """The signed-in guardian, or None (also when the session is too old or they left)."""
    guardian_id = request.session.get(GUARDIAN_ID)
    if guardian_id is None:
        return None
    signed_in_at = int(request.session.get(SIGNED_IN_AT, 0))
    if time.time() - signed_in_at > settings.PORTAL_SESSION_MAX_SECONDS:
        session_sign_out(request)
        return None
    guardian = (
        Guardian.objects.select_related("district").filter(pk=guardian_id, active=True).first()
    )
    if guardian is None:
        session_sign_out(request)
        return None
    # Touching the session renews its idle expiry on every portal request.
    request.session.set_expiry(settings.PORTAL_SESSION_IDLE_SECONDS)
    return guardian


def guardian_timezone(guardian: Guardian) -> str:
    pref = Preference.objects.filter(guardian=guardian, student=None, category=None).first()
    return (pref.timezone if pref else "") or guardian.district.timezone


def guardian_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        guardian = session_guardian(request)
        if guardian is None:
            return redirect("portal:signin")
        request.guardian = guardian  # type: ignore[attr-defined]
        request.portal_via = request.session.get(VIA, "")  # type: ignore[attr-defined]
        # Times on the pages are the guardian's local times.
        with timezone.override(zoneinfo.ZoneInfo(guardian_timezone(guardian))):
            return view(request, *args, **kwargs)

    return wrapper
