"""What providers tell us: Twilio status callbacks and inbound replies, e-mail tracking."""

from __future__ import annotations

import logging
from typing import Any

from notifications.models import Channel, Delivery, DeliveryStatus, OptOutSource
from notifications.providers.twilio import twilio_status
from notifications.services import contacts
from notifications.services.receipts import delivery_event_record

logger = logging.getLogger(__name__)

# Twilio's default opt-out keywords plus the FCC 24-24 list; matched on the whole trimmed reply.
STOP_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT"}
)
START_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})
# Error codes in failed/undelivered callbacks that say the number itself cannot take SMS.
UNREACHABLE_CODES = frozenset({"30005", "30006", "21614"})
OPTED_OUT_CODES = frozenset({"21610", "30004"})


def twilio_status_callback(
    *, delivery_uuid: str, params: dict[str, str], idempotency_token: str = ""
) -> bool:
    """Record a Twilio status callback. Returns False when the delivery is unknown or the
    callback is a duplicate (both still answered 200, so Twilio stops retrying)."""
    delivery = Delivery.objects.filter(uuid=delivery_uuid).first()
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    if delivery is None and sid:
        delivery = Delivery.objects.filter(provider="twilio", provider_message_id=sid).first()
    if delivery is None:
        logger.info("status callback for an unknown delivery", extra={"provider": "twilio"})
        return False
    provider_status = params.get("MessageStatus") or params.get("SmsStatus") or ""
    error_code = params.get("ErrorCode") or ""
    dedup = (
        f"twilio:{idempotency_token}"
        if idempotency_token
        else f"twilio:{sid}:{provider_status}:{error_code}"
    )
    raw = {k: v for k, v in params.items() if k not in {"Body", "To", "From"}}
    recorded = delivery_event_record(
        delivery=delivery,
        status=twilio_status(provider_status),
        provider_status=provider_status,
        error_code=error_code,
        source="callback",
        raw=raw,
        dedup_key=dedup[:200],
        provider_message_id=sid,
    )
    if recorded and delivery.contact_point_id and error_code:
        if error_code in OPTED_OUT_CODES:
            contacts.contacts_opt_out(
                kind=Channel.SMS,
                value=delivery.to,
                source=OptOutSource.STOP,
                provider="twilio",
                keyword=error_code,
            )
        elif error_code in UNREACHABLE_CODES:
            contacts.contact_point_mark_failed(
                contact_point_id=delivery.contact_point_id,
                code=error_code,
                message=f"Twilio {provider_status}",
                undeliverable=error_code == "30006",
            )
    return recorded


def sms_inbound_handle(*, from_number: str, body: str, provider: str) -> str | None:
    """Handle a reply: STOP family → opted out, START → back in, HELP → help text (returned
    for the reply). Every keyword is audited as a ConsentEvent. Other replies are ignored."""
    from django.conf import settings

    keyword = " ".join(body.strip().upper().split())
    value = contacts.contact_value_normalise(kind=Channel.SMS, raw=from_number)
    if not value:
        return None
    if keyword in STOP_KEYWORDS:
        contacts.contacts_opt_out(
            kind=Channel.SMS,
            value=value,
            source=OptOutSource.STOP,
            keyword=keyword,
            provider=provider,
        )
        return None  # the carrier / Twilio sends the one allowed confirmation
    if keyword in START_KEYWORDS:
        contacts.contacts_opt_in(
            kind=Channel.SMS, value=value, source="start", keyword=keyword, provider=provider
        )
        return None
    if keyword in HELP_KEYWORDS:
        from notifications.models import ConsentEvent, ConsentEventKind, ContactPoint

        point = ContactPoint.objects.filter(kind=Channel.SMS, value=value).first()
        ConsentEvent.objects.create(
            contact_point=point,
            kind=ConsentEventKind.HELP,
            source="help",
            keyword=keyword,
            provider=provider,
        )
        return str(settings.NOTIFY_HELP_TEXT)
    return None


# anymail's normalised event types → our delivery statuses (None: an event only).
ANYMAIL_STATUS: dict[str, str | None] = {
    "queued": DeliveryStatus.QUEUED,
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "bounced": DeliveryStatus.BOUNCED,
    "rejected": DeliveryStatus.FAILED,
    "failed": DeliveryStatus.FAILED,
    "deferred": None,
    "complained": None,
    "unsubscribed": None,
    "opened": None,
    "clicked": None,
    "autoresponded": None,
}


def email_tracking_record(*, event: Any, esp_name: str) -> bool:
    """Record an anymail tracking event; bounces and complaints opt the address out."""
    metadata = getattr(event, "metadata", None) or {}
    delivery = None
    delivery_uuid = metadata.get("delivery_id") if isinstance(metadata, dict) else None
    if delivery_uuid:
        delivery = Delivery.objects.filter(uuid=delivery_uuid).first()
    if delivery is None and getattr(event, "message_id", None):
        delivery = Delivery.objects.filter(
            channel=Channel.EMAIL, provider_message_id=str(event.message_id)
        ).first()
    if delivery is None:
        logger.info("tracking event for an unknown delivery", extra={"provider": esp_name})
        return False
    event_type = str(getattr(event, "event_type", "unknown") or "unknown")
    status = ANYMAIL_STATUS.get(event_type)
    event_id = getattr(event, "event_id", None)
    dedup = f"{esp_name}:{event_id}" if event_id else None
    raw = event.esp_event if isinstance(getattr(event, "esp_event", None), dict) else {}
    recorded = delivery_event_record(
        delivery=delivery,
        status=status or event_type,
        provider_status=event_type,
        error_code=str(getattr(event, "reject_reason", "") or ""),
        source="webhook",
        raw=raw,
        dedup_key=dedup,
        occurred_at=getattr(event, "timestamp", None),
    )
    # A soft bounce (e.g. mailbox full, reject reason "timed_out") is not an opt-out.
    hard = event_type != "bounced" or getattr(event, "reject_reason", None) in (
        None,
        "bounced",
        "invalid",
    )
    if recorded and hard and event_type in ("bounced", "complained", "unsubscribed"):
        source = {
            "bounced": OptOutSource.BOUNCE,
            "complained": OptOutSource.COMPLAINT,
            "unsubscribed": OptOutSource.STOP,
        }[event_type]
        contacts.contacts_opt_out(
            kind=Channel.EMAIL, value=delivery.to, source=source, provider=esp_name
        )
    return recorded
