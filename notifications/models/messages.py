"""A Notification is one event for one guardian; a Delivery is one attempt on one channel;
DeliveryEvents are what providers told us about it, appended and never changed."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from attendance.models import District, Guardian, School, Student
from notifications.models.contacts import Channel, ContactPoint
from notifications.models.preferences import Category


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending (waiting to be sent)"
    DISPATCHED = "dispatched", "Handed to delivery"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed on every channel"
    CANCELLED = "cancelled", "Cancelled"
    SUPPRESSED = "suppressed", "Not sent (see explanation)"
    MERGED = "merged", "Merged into a digest"


class DeferReason(models.TextChoices):
    NONE = "", "Not deferred"
    HOLD = "hold", "Held for corrections"
    QUIET_HOURS = "quiet_hours", "Quiet hours"
    DIGEST = "digest", "Daily digest"


class Notification(models.Model):
    """One event for one guardian (unique per event key and guardian).

    ``plan`` lists the channels and contact points resolution chose; ``explanation`` records
    every resolution step, so an administrator can see why this guardian was — or was not —
    notified. ``content`` holds the rendered message per channel.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event_key = models.CharField(max_length=200)
    district = models.ForeignKey(
        District,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,  # notification_district_idx leads with it
    )
    school = models.ForeignKey(
        School, on_delete=models.SET_NULL, related_name="+", null=True, blank=True
    )
    guardian = models.ForeignKey(Guardian, on_delete=models.CASCADE, related_name="notifications")
    student = models.ForeignKey(
        Student,
        on_delete=models.CASCADE,
        related_name="notifications",
        null=True,
        blank=True,
        db_index=False,  # notification_student_idx leads with it
    )
    bulk_notice = models.ForeignKey(
        "notifications.BulkNotice",
        on_delete=models.CASCADE,
        related_name="notifications",
        null=True,
        blank=True,
    )
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="+")
    language = models.CharField(max_length=8, blank=True)
    context = models.JSONField(default=dict, blank=True)
    content = models.JSONField(default=dict, blank=True)  # {channel: {"subject", "body"}}
    plan = models.JSONField(default=list, blank=True)  # [{"channel", "contact_point"}]
    status = models.CharField(
        max_length=12, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    digest = models.BooleanField(default=False)
    deferred_until = models.DateTimeField(null=True, blank=True)
    defer_reason = models.CharField(max_length=12, choices=DeferReason.choices, blank=True)
    merged_into = models.ForeignKey(
        "self", on_delete=models.SET_NULL, related_name="merged", null=True, blank=True
    )
    explanation = models.JSONField(default=list, blank=True)
    summary = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["event_key", "guardian"], name="notification_one_per_event_guardian"
            ),
        ]
        indexes = [
            models.Index(
                fields=["status", "deferred_until"],
                condition=Q(status="pending"),
                name="notification_due_idx",
            ),
            models.Index(fields=["student", "created_at"], name="notification_student_idx"),
            models.Index(fields=["district", "created_at"], name="notification_district_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_key} → guardian {self.guardian_id}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    RETRYING = "retrying", "Waiting to retry"
    ACCEPTED = "accepted", "Accepted by the provider"
    QUEUED = "queued", "Queued at the provider"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    UNDELIVERED = "undelivered", "Undelivered"
    FAILED = "failed", "Failed"
    BOUNCED = "bounced", "Bounced"
    CANCELLED = "cancelled", "Cancelled"
    UNKNOWN = "unknown", "Unknown (needs reconciliation)"


# Statuses only move forward: a late "sent" callback never overwrites "delivered". Terminal
# statuses share the top rank, so one terminal status never replaces another.
STATUS_RANK: dict[str, int] = {
    DeliveryStatus.PENDING: 0,
    DeliveryStatus.RETRYING: 1,
    DeliveryStatus.SENDING: 2,
    DeliveryStatus.UNKNOWN: 3,
    DeliveryStatus.ACCEPTED: 4,
    DeliveryStatus.QUEUED: 5,
    DeliveryStatus.SENT: 6,
    DeliveryStatus.DELIVERED: 9,
    DeliveryStatus.UNDELIVERED: 9,
    DeliveryStatus.FAILED: 9,
    DeliveryStatus.BOUNCED: 9,
    DeliveryStatus.CANCELLED: 9,
}
TERMINAL_STATUSES = frozenset(s for s, rank in STATUS_RANK.items() if rank == 9)
# Statuses meaning "the provider has it": counted as sent in progress figures.
HANDED_OVER_STATUSES_LIST = [
    DeliveryStatus.ACCEPTED,
    DeliveryStatus.QUEUED,
    DeliveryStatus.SENT,
    DeliveryStatus.DELIVERED,
    DeliveryStatus.UNDELIVERED,
]
HANDED_OVER_STATUSES = frozenset(
    {
        DeliveryStatus.ACCEPTED,
        DeliveryStatus.QUEUED,
        DeliveryStatus.SENT,
        DeliveryStatus.DELIVERED,
        DeliveryStatus.UNDELIVERED,
    }
)


class Delivery(models.Model):
    """One attempt to reach a guardian on one channel. ``idempotency_key`` is unique per
    (event, guardian, channel): however often a task runs, one row exists and one provider call
    is made (the row is locked while its status moves from pending to sending)."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="deliveries"
    )
    channel = models.CharField(max_length=8, choices=Channel.choices)
    contact_point = models.ForeignKey(
        ContactPoint, on_delete=models.SET_NULL, related_name="deliveries", null=True
    )
    to = models.CharField(max_length=254)
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField()
    segments = models.PositiveSmallIntegerField(default=0)
    provider = models.CharField(max_length=32)
    provider_message_id = models.CharField(max_length=128, blank=True)
    status = models.CharField(
        max_length=12, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    error_code = models.CharField(max_length=32, blank=True)
    error_message = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    is_fallback = models.BooleanField(default=False)
    idempotency_key = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(
                fields=["provider", "provider_message_id"],
                condition=~Q(provider_message_id=""),
                name="delivery_provider_msg_idx",
            ),
            models.Index(fields=["status", "updated_at"], name="delivery_status_idx"),
            models.Index(fields=["created_at", "channel"], name="delivery_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} delivery #{self.pk} ({self.status})"


class DeliveryEvent(models.Model):
    """A provider event (status callback, tracking webhook, send result), kept with its raw
    payload. ``dedup_key`` makes a redelivered webhook a no-op."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="events")
    status = models.CharField(max_length=16)  # ours (DeliveryStatus) or an engagement event
    provider_status = models.CharField(max_length=32, blank=True)
    error_code = models.CharField(max_length=32, blank=True)
    source = models.CharField(max_length=16)  # "send", "callback", "webhook", "reconcile"
    dedup_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    raw = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["received_at", "id"]

    def __str__(self) -> str:
        return f"{self.status} for delivery {self.delivery_id}"
