"""The one path for every outbound HTTP call (SIS connectors, SMS and e-mail providers).

Nothing else in the code base calls ``requests`` directly. A caller names a :class:`Route`
(provider kind + credential or SIS connection, with its :class:`RoutePolicy`) and gets a
``requests.Response`` back for any answer the provider gave (2xx, 3xx, 4xx), or one of the
transient errors in :mod:`gateway.errors` when it could not get one.

Stable interface (other apps code against it): ``Route``, ``RoutePolicy``, ``request()``.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from gateway.errors import RateLimited, UpstreamUnavailable

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(frozen=True)
class RoutePolicy:
    """How calls on one route are paced, retried and guarded. Defaults suit a SIS API."""

    rate_per_second: float | None = None  # None: no rate limit
    burst: int = 1
    max_in_flight: int | None = None  # None: no concurrency cap
    attempts: int = 3
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    breaker_threshold: int = 5
    breaker_window: float = 60.0
    breaker_reset: float = 30.0
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    # A wait longer than this is raised as RateLimited so a task can retry with a countdown.
    max_wait: float = 5.0


@dataclass(frozen=True)
class Route:
    provider: str  # "powerschool", "oneroster", "twilio", "sns", "email", ...
    key: str  # the credential or SIS connection this route belongs to
    policy: RoutePolicy = field(default_factory=RoutePolicy)

    @property
    def name(self) -> str:
        return f"{self.provider}:{self.key}"


_sessions: dict[str, requests.Session] = {}
_sessions_lock = threading.Lock()


def _session(route: Route) -> requests.Session:
    """One pooled session per route, so connections are reused per provider credential."""
    with _sessions_lock:
        session = _sessions.get(route.name)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            _sessions[route.name] = session
        return session


def _retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _backoff(policy: RoutePolicy, attempt: int) -> float:
    # Full jitter: spreads retries of many workers instead of synchronising them.
    return random.uniform(0, min(policy.backoff_cap, policy.backoff_base * 2**attempt))  # noqa: S311


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
    """
    method = method.upper()
    policy = route.policy
    kwargs.setdefault("timeout", (policy.connect_timeout, policy.read_timeout))
    may_retry = method in IDEMPOTENT_METHODS or retry_writes
    attempts = policy.attempts if may_retry else 1
    last_error: str = ""
    for attempt in range(attempts):
        try:
            response = _session(route).request(method, url, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            last_error = type(exc).__name__
        else:
            if response.status_code == 429:
                wait = _retry_after_seconds(response) or _backoff(policy, attempt)
                if wait > policy.max_wait or attempt == attempts - 1:
                    raise RateLimited(f"{route.name} throttled", retry_after=wait)
                time.sleep(wait)
                continue
            if response.status_code < 500:
                return response
            last_error = f"HTTP {response.status_code}"
        if attempt < attempts - 1:
            time.sleep(_backoff(policy, attempt))
    raise UpstreamUnavailable(f"{route.name} unavailable ({last_error})")
