"""What the gateway raises. Every one is transient: the caller (usually a Celery task) retries
later, with ``retry_after`` as the earliest sensible moment when it is known."""

from __future__ import annotations

from core.errors import TransientError


class GatewayError(TransientError):
    """Base class of the gateway's errors."""


class RateLimited(GatewayError):
    """The route's limiter (or the provider's 429 / throttle answer) says wait longer than the
    caller is willing to sleep."""


class CircuitOpen(GatewayError):
    """The route's circuit breaker is open: the provider is failing, so no call was made."""


class UpstreamUnavailable(GatewayError):
    """Connection errors, timeouts or 5xx answers outlasted the route's retries."""
