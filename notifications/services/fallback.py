"""After a permanent failure: what the provider said about the contact point (an opt-out,
a bounce, a number that cannot take texts) is recorded, and the guardian's other channel is
tried."""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction

from notifications.models import ContactPoint, Delivery, Notification, OptOutSource
from notifications.providers.base import ContactProblem
from notifications.services import contacts
from notifications.services.planning import idempotency_key


def contact_problem_record(
    delivery: Delivery, problem: str | None, code: str, message: str
) -> list[int]:
    """Record what a permanent failure says about the delivery's contact point (an opt-out, a
    complaint, a bounce, an invalid address) and plan the fallback; returns new delivery ids."""
    if problem is None or delivery.contact_point_id is None:
        return []
    if problem in (ContactProblem.OPTED_OUT, ContactProblem.COMPLAINED, ContactProblem.BOUNCED):
        source = {
            ContactProblem.OPTED_OUT: OptOutSource.STOP,
            ContactProblem.COMPLAINED: OptOutSource.COMPLAINT,
            ContactProblem.BOUNCED: OptOutSource.BOUNCE,
        }[problem]
        contacts.contacts_opt_out(
            kind=delivery.channel,
            value=delivery.to,
            source=source,
            provider=delivery.provider,
            keyword=code,
        )
    contacts.contact_point_mark_failed(
        contact_point_id=delivery.contact_point_id,
        code=code,
        message=message,
        undeliverable=problem == ContactProblem.INVALID,
    )
    return delivery_fallback(delivery=delivery)


def delivery_fallback(*, delivery: Delivery) -> list[int]:
    """After a permanent failure on one channel, plan the guardian's other channel (when
    enabled, usable and not already used for this notification). Returns new delivery ids."""
    if not settings.NOTIFY_FALLBACK_CHANNEL or delivery.is_fallback:
        return []
    notification = delivery.notification
    other = "email" if delivery.channel == "sms" else "sms"
    if any(item["channel"] == other for item in notification.plan):
        return []
    point = (
        ContactPoint.objects.filter(
            guardian_id=notification.guardian_id,
            kind=other,
            active=True,
            verified=True,
            opted_out=False,
            undeliverable=False,
        )
        .order_by("pk")
        .first()
    )
    if point is None:
        return []
    from notifications.services.templates import message_render

    rendered = message_render(
        district=notification.district,
        code=notification.category.code if notification.category.code else "general",
        channel=other,
        language=notification.language,
        context={**notification.context, "district_name": notification.district.name},
    )
    if rendered is None:
        return []
    fallback = Delivery(
        notification=notification,
        channel=other,
        contact_point=point,
        to=point.value,
        subject=rendered.subject,
        body=rendered.body,
        segments=rendered.length.segments if rendered.length else 0,
        provider=_provider_name(other),
        is_fallback=True,
        idempotency_key=idempotency_key(notification.event_key, notification.guardian_id, other),
    )
    try:
        with transaction.atomic():
            fallback.save()
    except IntegrityError:
        return []
    Notification.objects.filter(pk=notification.pk).update(
        summary=f"{notification.summary[:200]}; fell back to {other}"
    )
    return [fallback.pk]


def _provider_name(channel: str) -> str:
    from notifications.providers import provider_for_channel

    return provider_for_channel(channel).name
