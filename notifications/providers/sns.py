"""AWS SNS SMS: ``Publish`` straight to a phone number, as a Transactional message.

SNS sends no per-message callbacks (delivery status lives in CloudWatch Logs), so a publish
that succeeds ends at "accepted". Before publishing we ask ``CheckIfPhoneNumberIsOptedOut``:
SNS does not refuse a publish to an opted-out number in every setup, and we must not send.

boto3 signs the requests; the gateway sends them. botocore's ``before-send`` event hands us
each signed request, and a response returned from that hook is used instead of botocore's own
HTTP call — so SNS traffic passes ``gateway.client.request`` like every other outbound call:
the shared limiter (publishes on the ``sns`` route, paced per segment; the opt-out lookups on
``sns-api`` so they do not spend the sender's budget), the circuit breaker, timeouts, the call
log and the metrics.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar
from urllib.parse import parse_qs

from django.conf import settings

from gateway import client as gateway
from gateway.client import Route, RoutePolicy
from gateway.limiter import route_block
from notifications.providers.base import (
    ContactProblem,
    OutboundMessage,
    PermanentSendError,
    Provider,
    SendResult,
    TransientSendError,
    extra_segment_leases,
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
        self.api_route = Route("sns-api", region, RoutePolicy())
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
                # Retries, timeouts and pacing are the gateway's; botocore only signs.
                config=Config(retries={"max_attempts": 1}),
            )
            client.meta.events.register("before-send.sns", self._send_through_gateway)
            self._local.client = client
        return client

    def _send_through_gateway(self, request: Any, **_: Any) -> Any:
        """botocore's ``before-send`` hook: send the signed request through the gateway and
        hand botocore the answer (it parses errors into ``ClientError`` as usual)."""
        from botocore.awsrequest import AWSResponse

        body = request.body or b""
        form = parse_qs(body.decode() if isinstance(body, bytes) else str(body))
        action = (form.get("Action") or ["unknown"])[0]
        answer = gateway.request(
            self.route if action == "Publish" else self.api_route,
            request.method,
            request.url,
            data=body,
            # botocore keeps some header values as bytes (Content-Type among them).
            headers={
                str(k): v.decode() if isinstance(v, bytes) else str(v)
                for k, v in request.headers.items()
            },
            path_template=f"/{action}",
        )
        return AWSResponse(request.url, answer.status_code, answer.headers, _Body(answer.content))

    def deliver(self, message: OutboundMessage) -> SendResult:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client()
        # The gateway's breaker and limiter guard each call (CircuitOpen / RateLimited surface
        # as transient errors in Provider.send); 4xx answers neither trip nor reset the breaker.
        try:
            opted = client.check_if_phone_number_is_opted_out(phoneNumber=message.to)
            if opted.get("isOptedOut"):
                raise PermanentSendError(
                    "recipient opted out at SNS",
                    code="OptedOut",
                    contact_problem=ContactProblem.OPTED_OUT,
                )
            with extra_segment_leases(self.route, message.segments - 1):
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
                raise TransientSendError(text, code=code) from exc
            raise PermanentSendError(text, code=code) from exc
        except BotoCoreError as exc:  # a request botocore could not build or read
            raise TransientSendError(type(exc).__name__, code="connection") from exc
        message_id = str(answer.get("MessageId", ""))
        return SendResult(message_id, "accepted", "accepted", {"MessageId": message_id})


class _Body:
    """The raw body botocore's ``AWSResponse`` reads (it only calls ``stream()``)."""

    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, **_: Any) -> Any:
        yield self._content
