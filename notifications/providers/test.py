"""In-process fake provider with an outbox, for tests and the portal's verification tests.

``outbox`` holds every accepted message. ``outcomes`` maps an address to what should happen
instead of success: ``"opted_out"``, ``"invalid"`` (permanent) or ``"transient"``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import ClassVar

from notifications.providers.base import (
    ContactProblem,
    OutboundMessage,
    PermanentSendError,
    Provider,
    SendResult,
    TransientSendError,
)


@dataclass(frozen=True)
class SentMessage:
    channel: str
    to: str
    subject: str
    body: str
    delivery_uuid: str
    sent_at: float


class TestProvider(Provider):
    __test__ = False  # not a pytest test class
    name = "test"
    channels: ClassVar[frozenset[str]] = frozenset({"sms", "email"})
    outbox: ClassVar[list[SentMessage]] = []
    outcomes: ClassVar[dict[str, str]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def reset(cls) -> None:
        with cls._lock:
            cls.outbox.clear()
            cls.outcomes.clear()

    @classmethod
    def messages_to(cls, to: str) -> list[SentMessage]:
        with cls._lock:
            return [m for m in cls.outbox if m.to == to]

    def deliver(self, message: OutboundMessage) -> SendResult:
        outcome = self.outcomes.get(message.to)
        if outcome == "opted_out":
            raise PermanentSendError(
                "recipient opted out", code="opted_out", contact_problem=ContactProblem.OPTED_OUT
            )
        if outcome == "invalid":
            raise PermanentSendError(
                "invalid address", code="invalid", contact_problem=ContactProblem.INVALID
            )
        if outcome == "transient":
            raise TransientSendError("temporarily unavailable", code="transient", retry_after=1)
        with self._lock:
            self.outbox.append(
                SentMessage(
                    message.channel,
                    message.to,
                    message.subject,
                    message.body,
                    message.delivery_uuid,
                    time.time(),
                )
            )
            number = len(self.outbox)
        return SendResult(f"test-{number}", "sent", "sent")
