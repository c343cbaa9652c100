"""The provider base class. It owns the order of the sending steps; a provider fills in hooks.

A provider turns one :class:`OutboundMessage` into one call to the outside world and answers
with a :class:`SendResult`, or raises :class:`PermanentSendError` (retrying cannot help: invalid
number, opted out, bad configuration) or :class:`TransientSendError` (try again later).
Vendor vocabularies are translated into ours here, at the edge; the raw answer is kept.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from core.errors import PermanentError, TransientError
from gateway import limiter
from gateway.client import Route
from gateway.errors import GatewayError


@contextlib.contextmanager
def extra_segment_leases(route: Route, count: int) -> Iterator[None]:
    """Take ``count`` more slots of the route's shared limiter around a send. SMS rates are
    counted in segments while the gateway counts calls: a message of N segments takes N - 1
    slots here and its call takes the last one."""
    leases = [limiter.lease_acquire(route) for _ in range(max(0, count))]
    try:
        yield
    finally:
        for lease in leases:
            limiter.lease_release(lease)


class ContactProblem:
    """Why a permanent failure is the contact point's fault (it is then updated)."""

    OPTED_OUT = "opted_out"
    INVALID = "invalid"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


@dataclass(frozen=True)
class OutboundMessage:
    delivery_uuid: str
    channel: str
    to: str
    body: str
    subject: str = ""
    segments: int = 1
    status_callback_url: str = ""


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str
    status: str  # a DeliveryStatus value
    provider_status: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


class PermanentSendError(PermanentError):
    def __init__(self, message: str, *, code: str = "", contact_problem: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.contact_problem = contact_problem


class TransientSendError(TransientError):
    def __init__(self, message: str, *, code: str = "", retry_after: float | None = None):
        super().__init__(message, retry_after=retry_after)
        self.code = code
        self.message = message


class Provider:
    """Base class of every SMS and e-mail provider.

    Subclasses set ``name`` and ``channels`` and implement :meth:`deliver`. They are built from
    settings by :meth:`from_settings` once per process and must be thread-safe.
    """

    name: ClassVar[str] = ""
    channels: ClassVar[frozenset[str]] = frozenset()
    # False for providers that never call back (SNS, console): the send result is final.
    has_status_callbacks: ClassVar[bool] = False

    @classmethod
    def from_settings(cls) -> Provider:
        """Build the provider from Django settings. Raise ``ImproperlyConfigured`` naming the
        missing setting when the configuration is incomplete."""
        return cls()

    def send(self, message: OutboundMessage) -> SendResult:
        """Send one message. Not a hook: the order of the steps is fixed here."""
        if message.channel not in self.channels:
            raise PermanentSendError(
                f"Provider {self.name} cannot send {message.channel}.", code="unsupported_channel"
            )
        self.validate(message)
        try:
            return self.deliver(message)
        except GatewayError as exc:
            raise TransientSendError(
                f"{self.name}: {type(exc).__name__}", code="gateway", retry_after=exc.retry_after
            ) from exc

    def validate(self, message: OutboundMessage) -> None:
        """Check the message before any outside call; raise PermanentSendError to refuse it.
        The default accepts everything."""

    def fetch_status(self, provider_message_id: str) -> str | None:
        """Ask the provider for a message's current status (one of ours), or None when the
        provider cannot tell (the default). Used by ``notify_test``, never in the send path."""
        return None

    def deliver(self, message: OutboundMessage) -> SendResult:
        """Hand the message to the provider and translate its answer. Must not retry a
        non-idempotent call itself: the task layer retries with backoff."""
        raise NotImplementedError
