"""The one path for every outbound HTTP call (SIS connectors, SMS and e-mail providers).

Nothing else in the code base calls ``requests`` directly. A caller names a :class:`Route`
(provider kind + credential or SIS connection, with its :class:`RoutePolicy`) and gets a
``requests.Response`` back for any answer the provider gave (2xx, 3xx, 4xx other than 429), or
one of the transient errors in :mod:`gateway.errors` when it could not get one.

Each attempt goes through, in order: the route's limiter (blocked-until, concurrency lease,
GCRA rate; :mod:`gateway.limiter`), its circuit breaker (:mod:`gateway.breaker`), the HTTP
call on the route's pooled session with both timeouts set, then one log line and the metrics.
Transient failures (connection errors, timeouts, 5xx, 429 after its wait) are retried with
capped exponential backoff and jitter, for idempotent methods only unless the caller says a
write is safe to repeat.

Stable interface (other apps code against it): ``Route``, ``RoutePolicy``, ``request()``; also
``route_block()``, ``throttle_detector_register()`` and ``policy_for()``.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies

from gateway import metrics
from gateway.breaker import breaker_for
from gateway.errors import CircuitOpen, RateLimited, UpstreamUnavailable
from gateway.limiter import lease_acquire, lease_release, route_block
from gateway.registry import route_register
from gateway.routes import ConcurrencyWindow, Route, RoutePolicy, policy_for

logger = logging.getLogger("sas.gateway")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Failures of the provider or the network: retried and counted by the breaker. A body cut off
# mid-transfer (ChunkedEncodingError) is a broken connection too.
_TRANSIENT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)

__all__ = [
    "CallStats",
    "ConcurrencyWindow",
    "Route",
    "RoutePolicy",
    "policy_for",
    "request",
    "request_observed",
    "route_block",
    "throttle_detector_register",
]

_sessions: dict[str, requests.Session] = {}
_sessions_lock = threading.Lock()


def _session(route: Route) -> requests.Session:
    """One pooled session per route, so connections are reused per provider credential."""
    session = _sessions.get(route.name)
    if session is not None:
        return session
    with _sessions_lock:
        session = _sessions.get(route.name)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            # requests re-reads the proxy variables (and ~/.netrc) from the environment on
            # every call, about a third of a millisecond; the gateway reads them once per
            # host (_environment_proxies) and the CA bundle once per session. No provider
            # authenticates through .netrc: each passes its own credentials.
            session.trust_env = False
            session.verify = (
                os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            )
            _sessions[route.name] = session
        return session


_proxies_by_origin: dict[str, dict[str, str]] = {}


def _environment_proxies(url: str) -> dict[str, str]:
    """``HTTP(S)_PROXY``/``NO_PROXY`` for the URL's scheme and host, as requests would apply
    them, read once per origin."""
    try:
        parts = urlsplit(url)
    except ValueError:  # requests will say what is wrong with it
        return {}
    origin = f"{parts.scheme}://{parts.netloc}"
    found = _proxies_by_origin.get(origin)
    if found is None:
        found = dict(get_environ_proxies(origin))
        _proxies_by_origin[origin] = found
    return found


# -- provider throttle answers ------------------------------------------------------------------
ThrottleDetector = Callable[[requests.Response], float | None]
_throttle_detectors: dict[str, ThrottleDetector] = {}


def throttle_detector_register(provider: str, detector: ThrottleDetector) -> None:
    """Teach the gateway a provider's throttle answer that is not a plain 429.

    ``detector(response)`` returns None when the response is not a throttle, or the seconds
    to block the route for (0 when the provider gives no hint: the route's backoff applies).
    It runs on every response of that provider, so it must be cheap (check the status first).
    """
    _throttle_detectors[provider] = detector


def retry_after_seconds(response: requests.Response) -> float | None:
    """``Retry-After`` in seconds, from either form (delta-seconds or an HTTP date)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError, IndexError):
            return None


def _throttle_seconds(route: Route, response: requests.Response) -> float | None:
    if response.status_code == 429:
        return retry_after_seconds(response) or 0.0
    detector = _throttle_detectors.get(route.provider)
    return detector(response) if detector is not None else None


def _backoff(policy: RoutePolicy, attempt: int) -> float:
    ceiling = min(policy.backoff_cap, policy.backoff_base * 2 ** (attempt - 1))
    return random.uniform(0, ceiling) if policy.jitter else ceiling  # noqa: S311


# -- log hygiene --------------------------------------------------------------------------------
_ID_SEGMENT = re.compile(
    r"^(?:\d+|[0-9a-fA-F-]{16,}|[A-Za-z0-9_-]*\d[A-Za-z0-9_-]{5,}|[^/]*[@+%][^/]*)$"
)


def templated_path(url: str) -> str:
    """The URL's path with id-like segments replaced by ``{id}``; never the query string.

    Callers should pass ``path_template`` (they know which segments are ids); this is the
    safety net so a forgotten template still logs no student ids, phone numbers or tokens.
    """
    try:
        path = urlsplit(url).path or "/"
    except ValueError:  # unparseable: requests will say so; the log must not crash first
        return "{invalid}"
    return "/".join(
        "{id}" if segment and _ID_SEGMENT.match(segment) else segment for segment in path.split("/")
    )


@dataclass
class CallStats:
    """What happened during one ``request()`` (the probe command and tests read it)."""

    attempts: int = 0
    retries: int = 0
    waits: int = 0
    waited: float = 0.0
    status: int | None = None
    outcome: str = ""  # ok, 4xx, 429, 5xx, error, breaker_rejected, rate_limited


def _log(
    route: Route,
    method: str,
    path: str,
    *,
    status: int | None,
    outcome: str,
    duration: float,
    attempt: int,
    breaker_state: str,
    error: str | None = None,
) -> None:
    level = logging.INFO if outcome in {"ok", "4xx"} else logging.WARNING
    if not logger.isEnabledFor(level):
        return
    extra: dict[str, Any] = {
        "provider": route.provider,
        "route": route.name,
        "method": method,
        "path": path,
        "status": status,
        "outcome": outcome,
        "duration_ms": round(duration * 1000, 2),
        "attempt": attempt,
        "breaker_state": breaker_state,
    }
    if error:
        extra["error"] = error  # an exception class name, never its message (it holds URLs)
    logger.log(level, "gateway call", extra=extra)


def request(
    route: Route,
    method: str,
    url: str,
    *,
    path_template: str | None = None,
    retry_writes: bool = False,
    **kwargs: Any,
) -> requests.Response:
    """Send one request on ``route``.

    ``path_template`` is the URL path with ids replaced (``/ws/v1/student/{id}``) for logs and
    metrics. Non-idempotent methods are retried only when ``retry_writes`` says the write is
    safe to repeat. Timeouts are always set (the route's unless the caller passes its own).

    Raises :class:`RateLimited` (429 or limiter wait longer than ``policy.max_wait``),
    :class:`CircuitOpen` (breaker open: no request sent) or :class:`UpstreamUnavailable`
    (connection errors, timeouts or 5xx outlasted the retries). All carry ``retry_after``
    when known; use ``exc.countdown()`` for a Celery retry.
    """
    return request_observed(
        route,
        method,
        url,
        stats=CallStats(),
        path_template=path_template,
        retry_writes=retry_writes,
        **kwargs,
    )


def request_observed(
    route: Route,
    method: str,
    url: str,
    *,
    stats: CallStats,
    path_template: str | None = None,
    retry_writes: bool = False,
    **kwargs: Any,
) -> requests.Response:
    """:func:`request`, filling ``stats`` with attempts, retries, waits and the outcome."""
    method = method.upper()
    policy = route.policy
    if kwargs.get("timeout") is None:
        kwargs["timeout"] = (policy.connect_timeout, policy.read_timeout)
    if kwargs.get("proxies") is None:
        kwargs["proxies"] = _environment_proxies(url)
    route_register(route)
    path = path_template or templated_path(url)
    may_retry = method in IDEMPOTENT_METHODS or retry_writes
    attempts = policy.attempts if may_retry else 1
    breaker = breaker_for(route)
    session = _session(route)
    last_error = ""
    last_retry_after: float | None = None
    for attempt in range(1, attempts + 1):
        stats.attempts = attempt
        try:
            lease = lease_acquire(route, breaker_keys=breaker.storage.snapshot_keys)
        except RateLimited:
            stats.outcome = "rate_limited"
            raise
        stats.waits += lease.waits
        stats.waited += lease.waited
        retry_reason = ""
        try:
            try:
                if lease.breaker_raw is not None:
                    snap = breaker.storage.snapshot_from(lease.breaker_raw)
                else:  # Redis unreachable: the breaker's local mirror decides
                    snap = breaker.storage.local_snapshot()
                admission = breaker.admit(snap)
                if not lease.admitted:  # the script saw it open; clocks may differ slightly
                    if admission.probe_token is not None:
                        breaker.storage.probe_release(admission.probe_token)
                    raise CircuitOpen(f"{route.name} breaker open", retry_after=1.0)
            except CircuitOpen:
                stats.outcome = "breaker_rejected"
                _log(
                    route,
                    method,
                    path,
                    status=None,
                    outcome="breaker_rejected",
                    duration=0.0,
                    attempt=attempt,
                    breaker_state="open",
                )
                raise
            started = time.perf_counter()
            try:
                response = session.request(method, url, **kwargs)
            except _TRANSIENT_ERRORS as exc:
                duration = time.perf_counter() - started
                last_error = type(exc).__name__
                state = breaker.record(admission, failure=last_error)
                _finish(
                    route,
                    method,
                    path,
                    stats,
                    None,
                    "error",
                    duration,
                    attempt,
                    state,
                    error=last_error,
                )
                retry_reason = "timeout" if isinstance(exc, requests.Timeout) else "connection"
            except BaseException:
                # A bug or a bad request (invalid URL, too many redirects): says nothing about
                # the provider's health, but a probe must give its reservation back.
                breaker.record(admission, failure=None, counted=False)
                raise
            else:
                duration = time.perf_counter() - started
                status = response.status_code
                throttle = _throttle_seconds(route, response)
                if throttle is not None:
                    state = breaker.record(admission, failure=None, counted=False)
                    _finish(route, method, path, stats, status, "429", duration, attempt, state)
                    wait = throttle or _backoff(policy, attempt)
                    route_block(route, wait)
                    response.close()
                    if attempt == attempts or wait > policy.max_wait:
                        raise RateLimited(f"{route.name} throttled", retry_after=wait)
                    retry_reason = "throttled"  # the blocked-until makes the next attempt wait
                elif status >= 500:
                    last_error = f"HTTP {status}"
                    last_retry_after = retry_after_seconds(response)
                    state = breaker.record(admission, failure=last_error)
                    _finish(route, method, path, stats, status, "5xx", duration, attempt, state)
                    response.close()
                    if last_retry_after:
                        route_block(route, last_retry_after)
                    retry_reason = "5xx"
                else:
                    outcome = "ok" if status < 400 else "4xx"
                    state = breaker.record(admission, failure=None, counted=status < 400)
                    _finish(route, method, path, stats, status, outcome, duration, attempt, state)
                    return response
        finally:
            lease_release(lease)
        if attempt < attempts:
            stats.retries += 1
            metrics.retried(route, retry_reason)
            if retry_reason != "throttled":
                time.sleep(min(_backoff(policy, attempt), policy.max_wait))
    raise UpstreamUnavailable(
        f"{route.name} unavailable ({last_error})", retry_after=last_retry_after
    )


def _finish(
    route: Route,
    method: str,
    path: str,
    stats: CallStats,
    status: int | None,
    outcome: str,
    duration: float,
    attempt: int,
    breaker_state: str,
    *,
    error: str | None = None,
) -> None:
    stats.status, stats.outcome = status, outcome
    metrics.call_observed(route, status, duration)
    _log(
        route,
        method,
        path,
        status=status,
        outcome=outcome,
        duration=duration,
        attempt=attempt,
        breaker_state=breaker_state,
        error=error,
    )
