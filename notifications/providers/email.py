"""E-mail through Django's configured ``EMAIL_BACKEND``: any django-anymail ESP, SMTP, or the
console/locmem backends in development and tests.

Our delivery id travels in anymail ``metadata`` (and an ``X-Delivery-Id`` header for SMTP), so
tracking webhooks can be matched to the delivery whatever the ESP's message id looks like.
Anymail's requests-based backends build their own ``requests.Session``; a
:class:`GatewayAdapter` mounted on it sends their calls through ``gateway.client.request`` on
the route ``email:<esp>`` (limits, breaker, call log, metrics). SMTP is a socket, not HTTP.
"""

from __future__ import annotations

import smtplib
import socket
from typing import Any, ClassVar

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.message import make_msgid
from requests import PreparedRequest, Response
from requests.adapters import BaseAdapter

from gateway.client import Route, policy_for, request
from notifications.providers.base import (
    ContactProblem,
    OutboundMessage,
    PermanentSendError,
    Provider,
    SendResult,
    TransientSendError,
)


class GatewayAdapter(BaseAdapter):
    """A requests transport that sends through the gateway on one route. The gateway makes the
    call on its own pooled session (with the route's timeouts unless the caller set one) and
    raises its transient errors (rate limited, breaker open, 5xx or no answer) instead of
    returning them."""

    def __init__(self, route: Route) -> None:
        super().__init__()
        self.route = route

    def send(
        self,
        request_: PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> Response:
        return request(
            self.route,
            request_.method or "POST",
            str(request_.url),
            data=request_.body,
            headers=dict(request_.headers),
            timeout=timeout,
        )

    def close(self) -> None:
        """Nothing to close: the connections belong to the gateway's pooled session."""


def _through_gateway(connection: Any) -> None:
    """Mount the gateway adapter on an anymail requests-based backend's session."""
    try:
        from anymail.backends.base_requests import AnymailRequestsBackend
    except ImportError:  # pragma: no cover - anymail is a dependency
        return
    if not isinstance(connection, AnymailRequestsBackend):
        return
    connection.open()
    adapter = GatewayAdapter(Route("email", connection.esp_name.lower(), policy_for("email")))
    for prefix in ("https://", "http://"):
        connection.session.mount(prefix, adapter)


class EmailProvider(Provider):
    name = "email"
    channels: ClassVar[frozenset[str]] = frozenset({"email"})
    has_status_callbacks = True

    def deliver(self, message: OutboundMessage) -> SendResult:
        message_id = make_msgid(domain=settings.NOTIFY_EMAIL_MESSAGE_ID_DOMAIN)
        # A backend per message: anymail backends are not shared between threads, and the
        # pooled connections live in the gateway anyway.
        connection = get_connection(fail_silently=False)
        email = EmailMessage(
            subject=message.subject,
            body=message.body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[message.to],
            headers={"X-Delivery-Id": message.delivery_uuid, "Message-ID": message_id},
            connection=connection,
        )
        # Read by anymail backends; other backends ignore unknown attributes.
        email.metadata = {"delivery_id": message.delivery_uuid}  # type: ignore[attr-defined]
        try:
            _through_gateway(connection)
            email.send(fail_silently=False)
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentSendError(
                "recipient refused", code="smtp_refused", contact_problem=ContactProblem.INVALID
            ) from exc
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError) as exc:
            raise TransientSendError(type(exc).__name__, code="smtp_connection") from exc
        except smtplib.SMTPResponseException as exc:
            code = f"smtp_{exc.smtp_code}"
            if 400 <= exc.smtp_code < 500:
                raise TransientSendError("temporary SMTP failure", code=code) from exc
            raise PermanentSendError("SMTP failure", code=code) from exc
        except Exception as exc:
            self._raise_for_anymail(exc)
            raise
        finally:
            connection.close()
        return self._result(email, message_id)

    def _result(self, email: EmailMessage, message_id: str) -> SendResult:
        status: Any = getattr(email, "anymail_status", None)
        if status is None or not status.message_id:
            return SendResult(message_id.strip("<>"), "sent", "sent")
        statuses = set(status.status or ())
        if statuses & {"rejected", "invalid"}:
            raise PermanentSendError(
                f"ESP refused the recipient ({', '.join(sorted(statuses))})",
                code="anymail_" + sorted(statuses)[0],
                contact_problem=ContactProblem.INVALID,
            )
        ours = "queued" if statuses == {"queued"} else "sent"
        return SendResult(str(status.message_id), ours, ",".join(sorted(statuses)))

    def _raise_for_anymail(self, exc: Exception) -> None:
        try:
            from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
        except ImportError:  # pragma: no cover
            return
        if isinstance(exc, AnymailRecipientsRefused):
            raise PermanentSendError(
                "ESP refused the recipient",
                code="anymail_refused",
                contact_problem=ContactProblem.INVALID,
            ) from exc
        if isinstance(exc, AnymailAPIError):
            status = getattr(exc, "status_code", None) or 0
            if status == 429 or status >= 500 or status == 0:
                raise TransientSendError("ESP unavailable", code=f"anymail_{status}") from exc
            raise PermanentSendError("ESP error", code=f"anymail_{status}") from exc
        if isinstance(exc, socket.timeout):
            raise TransientSendError("timeout", code="timeout") from exc
