"""The development provider shows each message in the developer's terminal."""

from __future__ import annotations

import io
import sys

from notifications.providers.base import OutboundMessage
from notifications.providers.console import ConsoleProvider


def test_the_message_reaches_the_terminal_when_stdout_is_a_logger(capfd, monkeypatch):
    # A Celery worker replaces sys.stdout with a proxy that writes log records, which the
    # log's redaction scrubs of numbers: make run's demo showed "--- sms to [phone] is your
    # school portal sign-in code", without the code.
    as_log = io.StringIO()
    monkeypatch.setattr(sys, "stdout", as_log)
    result = ConsoleProvider().deliver(
        OutboundMessage(
            delivery_uuid="d1",
            channel="sms",
            to="+13125550100",
            body="482913 is your school portal sign-in code.",
        )
    )
    printed = capfd.readouterr().out
    assert "--- sms to +13125550100\n482913 is your school portal sign-in code.\n---" in printed
    assert as_log.getvalue() == ""
    assert result.status == "sent"
