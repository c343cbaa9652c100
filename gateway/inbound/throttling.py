"""Inbound throttling with django-ratelimit on the shared cache.

django-ratelimit answers a limited request with ``Ratelimited``, a ``PermissionDenied`` (403),
and gives no ``Retry-After``. Everything here answers **429** in the API's error shape with a
``Retry-After`` taken from the window's remaining time. Limits are keyed by credential or
account (API key, OAuth client id, username), never by address alone: a whole school shares one
NAT address. The address is read from ``REMOTE_ADDR`` only, so a forged ``X-Forwarded-For``
cannot reset a count.

Reusable pieces: :func:`throttle` (a decorator for plain Django views, e.g. a future parent
sign-in keyed by e-mail), :class:`PrincipalRateThrottle` (DRF), and
:class:`RatelimitedMiddleware` (turns a stray ``Ratelimited`` into a 429).
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django_ratelimit.core import get_usage
from django_ratelimit.exceptions import Ratelimited
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from core.api import error_response
from gateway.inbound.principal import ApiPrincipal

KeyFunction = Callable[[HttpRequest], str | None]


@dataclass(frozen=True)
class Limit:
    """One limit: a ``group`` name, the name of the setting holding its rate (so tests and
    deployments can change it), and how to key a request (None: this limit does not apply)."""

    group: str
    rate_setting: str
    key: KeyFunction


def _retry_after(time_left: int | None) -> int:
    # time_left is -1 when the cache failed (fail closed): ask for a short pause.
    return max(1, math.ceil(time_left or 0)) if time_left and time_left > 0 else 1


def check_limit(request: HttpRequest, limit: Limit, *, increment: bool = True) -> int | None:
    """Count this request against ``limit``; return the seconds to wait when over it."""
    value = limit.key(request)
    if value is None:
        return None
    rate = getattr(settings, limit.rate_setting)
    usage = get_usage(
        request,
        group=limit.group,
        key=lambda _group, _request: value,
        rate=rate,
        increment=increment,
    )
    if usage is None or not usage["should_limit"]:
        return None
    return _retry_after(usage["time_left"])


def throttled_response(retry_after: int) -> HttpResponse:
    response = error_response(
        "throttled",
        f"Too many requests. Retry in {retry_after} seconds.",
        status_code=429,
        details={"retry_after": retry_after},
    )
    response["Retry-After"] = str(retry_after)
    return response


def throttle(*limits: Limit, methods: tuple[str, ...] = ("POST",)) -> Callable[[Any], Any]:
    """Decorate a Django view: requests with one of ``methods`` count against every limit, and
    one over any limit gets a 429 without running the view."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method in methods:
                waits = [check_limit(request, limit) for limit in limits]
                over = [wait for wait in waits if wait is not None]
                if over:
                    return throttled_response(max(over))
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


# --- Key functions -------------------------------------------------------------------------------


def remote_address(request: HttpRequest) -> str | None:
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def post_field(name: str) -> KeyFunction:
    """Key on a normalised form field (a username, an e-mail address)."""

    def key(request: HttpRequest) -> str | None:
        value = str(request.POST.get(name, "")).strip().lower()
        return f"{name}:{value}" if value else None

    return key


def oauth_client_id(request: HttpRequest) -> str | None:
    """The client id of a token request: HTTP Basic credentials or the ``client_id`` field.
    Requests naming no client are keyed by address so they cannot go unlimited."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() == "basic" and encoded:
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        client_id = unquote(decoded.partition(":")[0])
        if client_id:
            return f"client:{client_id}"
    client_id = str(request.POST.get("client_id", "")).strip()
    if client_id:
        return f"client:{client_id}"
    return f"address:{remote_address(request)}"


ADMIN_LOGIN_LIMITS = (
    Limit("admin-login-user", "ADMIN_LOGIN_RATE_LIMIT", post_field("username")),
    Limit("admin-login-address", "ADMIN_LOGIN_ADDRESS_RATE_LIMIT", remote_address),
)
TOKEN_LIMITS = (Limit("oauth-token", "OAUTH_TOKEN_RATE_LIMIT", oauth_client_id),)
PASSWORD_RESET_LIMITS = (
    Limit("password-reset-email", "PASSWORD_RESET_RATE_LIMIT", post_field("email")),
    Limit("password-reset-address", "ADMIN_LOGIN_ADDRESS_RATE_LIMIT", remote_address),
)


# --- DRF and middleware ------------------------------------------------------------------------


@dataclass(frozen=True)
class RateCount:
    """One request counted against a credential's API limit."""

    wait: int | None  # seconds to wait when over the limit, else None
    extra: str | None = None  # the value of cache key ``also_read``, read in the same trip


_RATE = re.compile(r"^(\d+)/(\d*)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE_ATTRIBUTE = "_sas_api_rate_count"


def _split_rate(rate: str) -> tuple[int, int]:
    match = _RATE.match(rate)
    if match is None:
        raise ValueError(f"Invalid rate {rate!r}: expected e.g. 1200/m or 5/5m.")
    count, multiple, unit = match.groups()
    return int(count), int(multiple or 1) * _UNIT_SECONDS[unit]


def _redis() -> Any:
    """The client behind the default cache when it is Redis (django-redis), else None."""
    if settings.CACHES["default"]["BACKEND"] != "django_redis.cache.RedisCache":
        return None
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def principal_rate_count(
    request: HttpRequest, owner: str, *, also_read: str | None = None
) -> RateCount:
    """Count one request of ``owner`` against ``API_RATE_LIMIT`` in one Redis round trip
    (optionally reading one more cache key in the same trip: the API key authentication uses
    it to learn whether any key changed).

    The same fixed windows as django-ratelimit (aligned to the epoch, offset per key by a
    CRC so that not every client's window resets at once), counted with SET NX + INCR in one
    pipeline instead of django-ratelimit's two or three round trips; this sits on every API
    request. Without a Redis cache (development) django-ratelimit counts. Like it, a cache
    failure fails closed: the request is refused for a second.
    """
    client = _redis()
    if client is None:
        limit = Limit("api", "API_RATE_LIMIT", lambda _request: owner)
        extra = cache.get(also_read) if also_read is not None else None
        return RateCount(check_limit(request, limit), None if extra is None else str(extra))
    allowed, period = _split_rate(settings.API_RATE_LIMIT)
    now = int(time.time())
    window_end = now - now % period + zlib.crc32(owner.encode()) % period
    if window_end <= now:
        window_end += period
    key = cache.make_key(f"api-rate:{owner}:{window_end}")
    pipe = client.pipeline(transaction=False)
    pipe.set(key, 0, ex=period + 5, nx=True)
    pipe.incr(key)
    if also_read is not None:
        pipe.get(cache.make_key(also_read))
    try:
        replies = pipe.execute()
    except (RedisError, OSError):
        return RateCount(wait=1)
    raw = replies[2] if also_read is not None else None
    extra = raw.decode() if isinstance(raw, bytes) else raw
    if int(replies[1]) <= allowed:
        return RateCount(None, extra)
    return RateCount(max(1, window_end - now), extra)


def principal_rate_counted(request: HttpRequest, count: RateCount) -> None:
    """Say that authentication already counted this request (see PrincipalRateThrottle)."""
    setattr(request, _RATE_ATTRIBUTE, count)


class PrincipalRateThrottle(BaseThrottle):
    """Per-credential API limit (``API_RATE_LIMIT``) for DRF views; DRF answers 429 and our
    exception handler keeps the error shape and the ``Retry-After`` DRF sets from
    :meth:`wait`. A request the authentication already counted (API keys count while they
    check their cache) is not counted twice."""

    def __init__(self) -> None:
        self._wait: int | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        principal = request.auth
        if not isinstance(principal, ApiPrincipal):
            return True
        counted = getattr(request._request, _RATE_ATTRIBUTE, None)
        if not isinstance(counted, RateCount):
            counted = principal_rate_count(request._request, principal.owner)
        self._wait = counted.wait
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait


class RatelimitedMiddleware:
    """Turn django-ratelimit's ``Ratelimited`` (a 403 by default) into a 429 with
    ``Retry-After``, for any view decorated with ``django_ratelimit.decorators.ratelimit``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, Ratelimited):
            # The decorator does not say how long is left; a minute is the common window.
            retry_after = int(getattr(exception, "retry_after", 60))
            return throttled_response(retry_after)
        return None
