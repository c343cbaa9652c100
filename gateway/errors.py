"""What the gateway raises. Every one is transient: the caller (usually a Celery task) retries
later, with ``retry_after`` as the earliest sensible moment when it is known."""

from __future__ import annotations

from core.errors import TransientError

# When the provider gave no hint, a task retries after about this long.
DEFAULT_RETRY_SECONDS = 30.0


class GatewayError(TransientError):
    """Base class of the gateway's errors."""

    def countdown(self, default: float = DEFAULT_RETRY_SECONDS) -> int:
        """Seconds a Celery task should wait before retrying: ``retry_after`` (or
        ``default``), clamped below the broker's visibility timeout so the retried message is
        never delivered twice."""
        from core.tasks import countdown_within_visibility

        wanted = self.retry_after if self.retry_after is not None else default
        return max(1, countdown_within_visibility(wanted + 0.999))


class RateLimited(GatewayError):
    """The route's limiter (or the provider's 429 / throttle answer) says wait longer than the
    caller is willing to sleep."""


class CircuitOpen(GatewayError):
    """The route's circuit breaker is open: the provider is failing, so no call was made."""


class UpstreamUnavailable(GatewayError):
    """Connection errors, timeouts or 5xx answers outlasted the route's retries."""
