"""Development provider: prints the message instead of sending it."""

from __future__ import annotations

import sys
from typing import ClassVar

from notifications.providers.base import OutboundMessage, Provider, SendResult


class ConsoleProvider(Provider):
    name = "console"
    channels: ClassVar[frozenset[str]] = frozenset({"sms", "email"})

    def deliver(self, message: OutboundMessage) -> SendResult:
        # Development only (production settings refuse this provider): the console is the
        # developer's own terminal. The process's real stdout, not sys.stdout: a Celery worker
        # turns sys.stdout into log records, and the log's redaction would hide the very
        # number and sign-in code the developer is looking for.
        out = sys.__stdout__ or sys.stdout
        subject = f" [{message.subject}]" if message.subject else ""
        out.write(f"--- {message.channel} to {message.to}{subject}\n{message.body}\n---\n")
        out.flush()
        return SendResult(f"console-{message.delivery_uuid}", "sent", "sent")
