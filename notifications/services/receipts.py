"""What happens to a delivery after it was sent: provider events (status callbacks,
webhooks, reconciliation) move it forward, never back, and its notification's status follows."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from notifications.models import (
    STATUS_RANK,
    TERMINAL_STATUSES,
    Delivery,
    DeliveryEvent,
    DeliveryStatus,
    Notification,
    NotificationStatus,
)


def _rollup_status(statuses: list[str]) -> str | None:
    given_up = (DeliveryStatus.FAILED, DeliveryStatus.BOUNCED, DeliveryStatus.CANCELLED)
    if any(
        STATUS_RANK[s] >= STATUS_RANK[DeliveryStatus.ACCEPTED] and s not in given_up
        for s in statuses
    ):
        return NotificationStatus.SENT
    if statuses and all(s in TERMINAL_STATUSES for s in statuses):
        return NotificationStatus.FAILED
    return None


def notification_rollup(notification_id: int) -> None:
    statuses = list(
        Delivery.objects.filter(notification_id=notification_id).values_list("status", flat=True)
    )
    new = _rollup_status(statuses)
    if new is None:
        return
    Notification.objects.filter(pk=notification_id).exclude(status=new).update(
        status=new, updated_at=timezone.now()
    )


def notifications_rollup(*, notification_ids: set[int]) -> None:
    """:func:`notification_rollup` for many notifications in two statements."""
    if not notification_ids:
        return
    by_notification: dict[int, list[str]] = {}
    for notification_id, status in Delivery.objects.filter(
        notification_id__in=notification_ids
    ).values_list("notification_id", "status"):
        by_notification.setdefault(notification_id, []).append(status)
    sent, failed = [], []
    for notification_id, statuses in by_notification.items():
        new = _rollup_status(statuses)
        if new == NotificationStatus.SENT:
            sent.append(notification_id)
        elif new == NotificationStatus.FAILED:
            failed.append(notification_id)
    now = timezone.now()
    for ids, status in ((sent, NotificationStatus.SENT), (failed, NotificationStatus.FAILED)):
        if ids:
            Notification.objects.filter(pk__in=ids).exclude(status=status).update(
                status=status, updated_at=now
            )


def delivery_event_record(
    *,
    delivery: Delivery,
    status: str,
    provider_status: str = "",
    error_code: str = "",
    source: str,
    raw: dict[str, Any],
    dedup_key: str | None = None,
    occurred_at: dt.datetime | None = None,
    provider_message_id: str = "",
) -> bool:
    """Append a provider event and move the delivery's status forward (never back).

    Returns False for a duplicate (same ``dedup_key``): a redelivered webhook changes nothing.
    Engagement events (opened, clicked) and statuses we do not track only add an event.
    """
    with transaction.atomic():
        locked = Delivery.objects.select_for_update().get(pk=delivery.pk)
        try:
            with transaction.atomic():
                DeliveryEvent.objects.create(
                    delivery=locked,
                    status=status,
                    provider_status=provider_status[:32],
                    error_code=error_code[:32],
                    source=source,
                    dedup_key=dedup_key,
                    raw=raw,
                    occurred_at=occurred_at,
                )
        except IntegrityError:
            return False
        changed: list[str] = []
        if provider_message_id and not locked.provider_message_id:
            # Reconciliation: the send crashed after the provider accepted the message.
            locked.provider_message_id = provider_message_id
            changed.append("provider_message_id")
        rank = STATUS_RANK.get(status)
        if rank is not None and rank > STATUS_RANK[locked.status]:
            locked.status = status
            changed.append("status")
            if error_code:
                locked.error_code = error_code[:32]
                changed.append("error_code")
        if changed:
            locked.save(update_fields=[*changed, "updated_at"])
    if "status" in changed:
        notification_rollup(locked.notification_id)
    return True


def deliveries_reconcile_stuck(*, older_than: dt.timedelta = dt.timedelta(minutes=15)) -> int:
    """Deliveries left in "sending" (a worker died mid-call) are never resent blindly: the
    provider may have accepted them. They become "unknown" for an administrator to review;
    a late status callback still moves them forward (callbacks find them by our delivery id)."""
    cutoff = timezone.now() - older_than
    stuck = list(
        Delivery.objects.filter(status=DeliveryStatus.SENDING, updated_at__lt=cutoff).values_list(
            "pk", flat=True
        )
    )
    for pk in stuck:
        delivery = Delivery.objects.get(pk=pk)
        delivery_event_record(
            delivery=delivery,
            status=DeliveryStatus.UNKNOWN,
            source="reconcile",
            raw={"detail": "worker stopped during the provider call; not resent"},
        )
    return len(stuck)
