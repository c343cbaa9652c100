"""Twilio Programmable Messaging (SMS) through the gateway.

``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (form-encoded, HTTP basic auth with
the Account SID and Auth Token), with ``MessagingServiceSid`` when configured, else ``From``,
and a per-delivery ``StatusCallback`` URL built from ``PUBLIC_BASE_URL``.

Error codes (twilio.com/docs/api/errors): 21610 unsubscribed recipient, 21211 invalid ``To``,
21614 not a mobile number, 21612/21408 unreachable or not permitted destinations are permanent
and concern the recipient; 20003 (authentication), 21606/21659 (bad sender) and 21602 (empty
body) are permanent configuration problems; 20429 (too many requests), 429 and 5xx are
transient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from gateway.client import Route, RoutePolicy, request
from notifications.providers.base import (
    ContactProblem,
    OutboundMessage,
    PermanentSendError,
    Provider,
    SendResult,
    TransientSendError,
    extra_segment_leases,
)

OPTED_OUT_CODES = frozenset({21610})
INVALID_RECIPIENT_CODES = frozenset({21211, 21614, 21612, 21408, 21217, 21401, 21265})
TRANSIENT_CODES = frozenset({20429, 20500, 20503, 30001, 21611})

# Twilio's status vocabulary → ours.
STATUS_MAP: dict[str, str] = {
    "accepted": "accepted",
    "scheduled": "accepted",
    "queued": "queued",
    "sending": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "partially_delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "cancelled",
}


def twilio_status(value: str) -> str:
    return STATUS_MAP.get(value.lower(), "unknown")


@dataclass(frozen=True)
class TwilioConfig:
    account_sid: str
    auth_token: str
    previous_auth_token: str
    messaging_service_sid: str
    from_number: str
    api_base_url: str
    segments_per_second: float | None


def twilio_config() -> TwilioConfig:
    return TwilioConfig(
        account_sid=settings.TWILIO_ACCOUNT_SID,
        auth_token=settings.TWILIO_AUTH_TOKEN,
        previous_auth_token=settings.TWILIO_AUTH_TOKEN_PREVIOUS,
        messaging_service_sid=settings.TWILIO_MESSAGING_SERVICE_SID,
        from_number=settings.TWILIO_FROM_NUMBER,
        api_base_url=(settings.TWILIO_API_BASE_URL or "https://api.twilio.com").rstrip("/"),
        segments_per_second=settings.TWILIO_SEGMENTS_PER_SECOND,
    )


class TwilioProvider(Provider):
    name = "twilio"
    channels: ClassVar[frozenset[str]] = frozenset({"sms"})
    has_status_callbacks = True

    def __init__(self, config: TwilioConfig) -> None:
        self.config = config
        sender = config.messaging_service_sid or config.from_number
        # One route per sender: Twilio queues and paces per sender, and so do we.
        self.route = Route(
            "twilio",
            f"{config.account_sid}:{sender}",
            RoutePolicy(
                rate_per_second=config.segments_per_second,
                burst=1,  # Twilio drains a sender queue at a steady rate; no bursts
                attempts=1,  # a POST is not retried blindly: the task retries with backoff
                read_timeout=15.0,
                max_wait=5.0,
            ),
        )

    @classmethod
    def from_settings(cls) -> TwilioProvider:
        config = twilio_config()
        if not (config.account_sid and config.auth_token):
            raise ImproperlyConfigured("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are required.")
        if not (config.messaging_service_sid or config.from_number):
            raise ImproperlyConfigured(
                "Set TWILIO_MESSAGING_SERVICE_SID or TWILIO_FROM_NUMBER for Twilio SMS."
            )
        return cls(config)

    def messages_url(self) -> str:
        base, sid = self.config.api_base_url, self.config.account_sid
        return f"{base}/2010-04-01/Accounts/{sid}/Messages.json"

    def deliver(self, message: OutboundMessage) -> SendResult:
        data: dict[str, Any] = {"To": message.to, "Body": message.body}
        if self.config.messaging_service_sid:
            data["MessagingServiceSid"] = self.config.messaging_service_sid
        else:
            data["From"] = self.config.from_number
        if message.status_callback_url:
            data["StatusCallback"] = message.status_callback_url
        # Only a paced route spends segments; without a rate every message is one call.
        extra = message.segments - 1 if self.config.segments_per_second else 0
        with extra_segment_leases(self.route, extra):
            response = request(
                self.route,
                "POST",
                self.messages_url(),
                path_template="/2010-04-01/Accounts/{AccountSid}/Messages.json",
                data=data,
                auth=(self.config.account_sid, self.config.auth_token),
            )
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        if response.status_code in (200, 201):
            status = str(payload.get("status") or "queued")
            return SendResult(str(payload.get("sid", "")), twilio_status(status), status, payload)
        self._raise_for_error(response.status_code, payload)
        raise AssertionError("unreachable")  # pragma: no cover

    def fetch_status(self, provider_message_id: str) -> str | None:
        url = self.messages_url().removesuffix(".json") + f"/{provider_message_id}.json"
        response = request(
            self.route,
            "GET",
            url,
            path_template="/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json",
            auth=(self.config.account_sid, self.config.auth_token),
        )
        if response.status_code != 200:
            return None
        return twilio_status(str(response.json().get("status", "")))

    def _raise_for_error(self, status_code: int, payload: dict[str, Any]) -> None:
        raw_code = payload.get("code")
        try:
            code = int(raw_code) if raw_code is not None else None
        except (TypeError, ValueError):
            code = None
        text = str(payload.get("message") or f"HTTP {status_code}")[:300]
        code_text = str(code) if code is not None else f"http_{status_code}"
        if code in OPTED_OUT_CODES:
            raise PermanentSendError(text, code=code_text, contact_problem=ContactProblem.OPTED_OUT)
        if code in INVALID_RECIPIENT_CODES:
            raise PermanentSendError(text, code=code_text, contact_problem=ContactProblem.INVALID)
        if code in TRANSIENT_CODES or status_code == 429 or status_code >= 500:
            raise TransientSendError(text, code=code_text, retry_after=None)
        raise PermanentSendError(text, code=code_text)
