"""Send one test message through the configured provider and print the delivery's final status.

    python manage.py notify_test --to +13125550123 [--channel sms|email] [--wait 30]

When the address belongs to a contact point, the message is recorded like any other (a
Notification and a Delivery, status callbacks update it) and the command watches the delivery
row; otherwise it is sent straight through the provider and, where the provider can tell
(Twilio), its status is polled.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import PermanentError, TransientError
from notifications.models import TERMINAL_STATUSES, ContactPoint, Delivery
from notifications.providers import provider_for_channel
from notifications.providers.base import OutboundMessage
from notifications.segments import sms_length
from notifications.services.contacts import contact_value_normalise
from notifications.services.direct import contact_point_message_send

BODY = "Test message from the Student Attendance System. No action needed."


class Command(BaseCommand):
    help = "Send one test SMS or e-mail through the configured provider."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--to", required=True, help="E.164 phone number or e-mail address")
        parser.add_argument("--channel", choices=["sms", "email"], default=None)
        parser.add_argument(
            "--wait", type=float, default=20.0, help="seconds to wait for a final status"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        to: str = options["to"]
        channel = options["channel"] or ("email" if "@" in to else "sms")
        value = contact_value_normalise(kind=channel, raw=to)
        if not value:
            raise CommandError("That is not a valid phone number or e-mail address.")
        provider = provider_for_channel(channel)
        point = ContactPoint.objects.filter(kind=channel, value=value).order_by("pk").first()
        if point is not None:
            delivery, outcome = contact_point_message_send(
                contact_point=point, body=BODY, subject="Test message", purpose="test"
            )
            status = self._watch(delivery, options["wait"])
            self.stdout.write(
                f"delivery {delivery.uuid} via {provider.name}: {status}"
                + (f" ({delivery.error_code})" if delivery.error_code else "")
            )
            return
        message = OutboundMessage(
            delivery_uuid=f"test-{uuid.uuid4()}",
            channel=channel,
            to=value,
            body=BODY,
            subject="Test message",
            segments=sms_length(BODY).segments if channel == "sms" else 0,
        )
        try:
            result = provider.send(message)
        except (PermanentError, TransientError) as exc:
            raise CommandError(f"{provider.name}: {type(exc).__name__}: {exc}") from exc
        status = result.status
        deadline = time.monotonic() + options["wait"]
        while status not in TERMINAL_STATUSES and time.monotonic() < deadline:
            fetched = provider.fetch_status(result.provider_message_id)
            if fetched is None:
                break
            status = fetched
            if status not in TERMINAL_STATUSES:
                time.sleep(1)
        self.stdout.write(f"message {result.provider_message_id} via {provider.name}: {status}")

    def _watch(self, delivery: Delivery, wait: float) -> str:
        deadline = time.monotonic() + wait
        while delivery.status not in TERMINAL_STATUSES and time.monotonic() < deadline:
            if not provider_for_channel(delivery.channel).has_status_callbacks:
                break
            time.sleep(0.5)
            delivery.refresh_from_db()
        return delivery.status
