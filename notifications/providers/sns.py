"""AWS SNS SMS: ``Publish`` straight to a phone number, as a Transactional message.

SNS sends no per-message callbacks (delivery status lives in CloudWatch Logs), so a publish
that succeeds ends at "accepted". Before publishing we ask ``CheckIfPhoneNumberIsOptedOut``:
SNS does not refuse a publish to an opted-out number in every setup, and we must not send.

boto3 makes its own HTTP calls, so they do not pass through ``gateway.client.request``. The
gateway's shared limiter (``gateway.limiter``) paces them per segment and its circuit breaker
(``gateway.breaker``) guards them; the gateway's call log and metrics do not see them
(documented gap, docs/notifications.md).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

from django.conf import settings

from gateway.client import Route, RoutePolicy
from gateway.limiter import route_block
from notifications.providers.base import (
    ContactProblem,
    OutboundMessage,
    PermanentSendError,
    Provider,
    SendResult,
    TransientSendError,
)

THROTTLE_CODES = frozenset({"Throttling", "ThrottlingException", "ThrottledException"})
THROTTLE_PAUSE_SECONDS = 1.0
INVALID_CODES = frozenset({"InvalidParameter", "InvalidParameterValue"})
OPTED_OUT_CODES = frozenset({"OptedOut", "OptedOutException"})


class SnsProvider(Provider):
    name = "sns"
    channels: ClassVar[frozenset[str]] = frozenset({"sms"})

    def __init__(self, *, endpoint_url: str | None, region: str, rate: float | None) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.route = Route("sns", region, RoutePolicy(rate_per_second=rate, burst=1))
        self._local = threading.local()

    @classmethod
    def from_settings(cls) -> SnsProvider:
        return cls(
            endpoint_url=settings.AWS_SNS_ENDPOINT_URL or None,
            region=settings.AWS_SNS_REGION,
            rate=settings.SNS_SEGMENTS_PER_SECOND,
        )

    def client(self) -> Any:
        # boto3 clients are thread-safe once built, but building them is not: one per thread.
        client = getattr(self._local, "client", None)
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.session.Session().client(
                "sns",
                region_name=self.region,
                endpoint_url=self.endpoint_url,
                config=Config(connect_timeout=5, read_timeout=15, retries={"max_attempts": 1}),
            )
            self._local.client = client
        return client

    @contextlib.contextmanager
    def _paced(self, segments: int) -> Iterator[None]:
        """Take one slot of the shared limiter per segment (boto3 bypasses ``request()``)."""
        try:
            from gateway import limiter
        except ImportError:  # pragma: no cover - a gateway without a shared limiter
            yield
            return
        acquire = getattr(limiter, "lease_acquire", None)
        release = getattr(limiter, "lease_release", None)
        leases = [acquire(self.route) for _ in range(max(1, segments))] if acquire else []
        try:
            yield
        finally:
            for lease in leases:
                if release is not None:
                    release(lease)

    def _breaker(self) -> Any:
        """The gateway's breaker for our route, when the gateway exposes one."""
        try:
            from gateway.breaker import breaker_for
        except ImportError:  # pragma: no cover
            return None
        return breaker_for(self.route)

    def deliver(self, message: OutboundMessage) -> SendResult:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client()
        breaker = self._breaker()
        # Raises CircuitOpen (transient, see Provider.send) without calling SNS.
        admission = breaker.admit() if breaker is not None else None
        failure: str | None = None
        # 4xx answers and throttles say nothing about SNS's health: they must neither trip nor
        # reset the breaker (a run of them would otherwise hide an outage).
        counted = True
        try:
            opted = client.check_if_phone_number_is_opted_out(phoneNumber=message.to)
            if opted.get("isOptedOut"):
                raise PermanentSendError(
                    "recipient opted out at SNS",
                    code="OptedOut",
                    contact_problem=ContactProblem.OPTED_OUT,
                )
            with self._paced(message.segments):
                answer = client.publish(
                    PhoneNumber=message.to,
                    Message=message.body,
                    MessageAttributes={
                        "AWS.SNS.SMS.SMSType": {
                            "DataType": "String",
                            "StringValue": "Transactional",
                        }
                    },
                )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "ClientError"))
            text = str(error.get("Message", ""))[:300] or code
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
            counted = status >= 500
            if code in OPTED_OUT_CODES:
                raise PermanentSendError(
                    text, code=code, contact_problem=ContactProblem.OPTED_OUT
                ) from exc
            if code in INVALID_CODES:
                raise PermanentSendError(
                    text, code=code, contact_problem=ContactProblem.INVALID
                ) from exc
            if code in THROTTLE_CODES or status == 429:
                # SNS sends no Retry-After: pause the sender everywhere for a moment.
                route_block(self.route, THROTTLE_PAUSE_SECONDS)
                raise TransientSendError(text, code=code) from exc
            if status >= 500:
                failure = f"HTTP {status}"
                raise TransientSendError(text, code=code) from exc
            raise PermanentSendError(text, code=code) from exc
        except BotoCoreError as exc:  # connection errors, timeouts
            failure = type(exc).__name__
            raise TransientSendError(type(exc).__name__, code="connection") from exc
        finally:
            if breaker is not None and admission is not None:
                # Only outages count (5xx, connection errors); 4xx answers never trip it.
                breaker.record(admission, failure=failure, counted=counted)
        message_id = str(answer.get("MessageId", ""))
        return SendResult(message_id, "accepted", "accepted", {"MessageId": message_id})
