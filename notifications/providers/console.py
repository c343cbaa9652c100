"""Development provider: prints the message instead of sending it."""

from __future__ import annotations

import sys
from typing import ClassVar

from notifications.providers.base import OutboundMessage, Provider, SendResult


class ConsoleProvider(Provider):
    name = "console"
    channels: ClassVar[frozenset[str]] = frozenset({"sms", "email"})

    def deliver(self, message: OutboundMessage) -> SendResult:
        # Development only: the console is the developer's own terminal.
        subject = f" [{message.subject}]" if message.subject else ""
        sys.stdout.write(f"--- {message.channel} to {message.to}{subject}\n{message.body}\n---\n")
        sys.stdout.flush()
        return SendResult(f"console-{message.delivery_uuid}", "sent", "sent")
