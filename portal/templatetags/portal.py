"""Template helpers: our own translated words for statuses, categories and channels (the
notifications app's choice labels are for administrators and are English only)."""

from __future__ import annotations

import phonenumbers
from django import template
from django.utils.translation import gettext as _

from notifications.models import Category, ContactPoint, Delivery, Notification
from portal.forms import category_label as _category_label

register = template.Library()


@register.filter
def category_label(category: Category) -> str:
    return _category_label(category)


@register.filter
def channel_label(channel: str) -> str:
    return {"sms": _("Text message"), "email": _("E-mail")}.get(channel, channel)


@register.filter
def delivery_status(delivery: Delivery) -> str:
    status = delivery.status
    if status == "delivered":
        return _("Delivered")
    if status in {"accepted", "queued", "sent"}:
        return _("Sent")
    if status in {"pending", "sending", "retrying", "unknown"}:
        return _("Sending")
    if status == "cancelled":
        return _("Cancelled")
    return _("Not delivered")


@register.filter
def delivery_ok(delivery: Delivery) -> str:
    """A CSS modifier for the status badge."""
    if delivery.status in {"delivered", "accepted", "queued", "sent"}:
        return "ok"
    if delivery.status in {"failed", "bounced", "undelivered"}:
        return "bad"
    return "wait"


@register.filter
def message_title(notification: Notification) -> str:
    purpose = notification.event_key.split(":", 1)[0]
    if purpose == "signin":
        return _("Sign-in code")
    if purpose == "verify":
        return _("Confirmation code")
    return _category_label(notification.category)


@register.filter
def message_text(notification: Notification) -> str:
    """The message as sent (codes are not shown again)."""
    if notification.event_key.split(":", 1)[0] in {"signin", "verify"}:
        return ""
    content = notification.content or {}
    for channel in ("sms", "email"):
        body = (content.get(channel) or {}).get("body")
        if body:
            return str(body)
    return ""


@register.filter
def contact_display(point: ContactPoint) -> str:
    """Phone numbers as people write them in the district's country; e-mail as stored."""
    if point.kind != "sms":
        return point.value
    try:
        number = phonenumbers.parse(point.value, None)
    except phonenumbers.NumberParseException:
        return point.value
    region = point.guardian.district.phone_region if point.guardian_id else "US"
    if phonenumbers.region_code_for_number(number) == region:
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


@register.filter
def point_state(point: ContactPoint) -> str:
    if point.opted_out:
        return "opted_out"
    if point.undeliverable:
        return "undeliverable"
    if not point.verified:
        return "unverified"
    return "ok"
