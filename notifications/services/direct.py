"""Messages to one contact point outside the event flow: one-time verification codes for the
parent portal and the ``notify_test`` command. They still obey opt-outs (a STOP holds), are
recorded as Notification + Delivery like everything else, and are sent synchronously."""

from __future__ import annotations

import uuid

from django.db import transaction

from notifications.models import Category, ContactPoint, Delivery, Notification, NotificationStatus
from notifications.providers import provider_for_channel
from notifications.segments import sms_clean, sms_length
from notifications.services.planning import idempotency_key
from notifications.services.sending import SendOutcome, delivery_send


def contact_point_message_send(
    *, contact_point: ContactPoint, body: str, subject: str = "", purpose: str = "direct"
) -> tuple[Delivery, SendOutcome]:
    """Send ``body`` to one contact point now (verified or not: verifying needs this)."""
    guardian = contact_point.guardian
    if contact_point.kind == "sms":
        body = sms_clean(body)
    event_key = f"{purpose}:{contact_point.pk}:{uuid.uuid4().hex}"
    with transaction.atomic():
        notification = Notification.objects.create(
            event_key=event_key,
            district=guardian.district,
            guardian=guardian,
            category=Category.objects.get(code=Category.GENERAL),
            content={contact_point.kind: {"subject": subject, "body": body}},
            plan=[{"channel": contact_point.kind, "contact_point": contact_point.pk}],
            status=NotificationStatus.DISPATCHED,
            explanation=[
                {
                    "step": "direct",
                    "ok": True,
                    "detail": f"Direct message ({purpose}) to one contact point.",
                }
            ],
            summary=f"Direct message ({purpose})",
        )
        delivery = Delivery.objects.create(
            notification=notification,
            channel=contact_point.kind,
            contact_point=contact_point,
            to=contact_point.value,
            subject=subject,
            body=body,
            segments=sms_length(body).segments if contact_point.kind == "sms" else 0,
            provider=provider_for_channel(contact_point.kind).name,
            idempotency_key=idempotency_key(event_key, guardian.pk, contact_point.kind),
        )
    outcome = delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return delivery, outcome
