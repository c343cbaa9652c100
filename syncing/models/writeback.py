"""The write-back outbox: one item per (object, target) with its value hash and state."""

from __future__ import annotations

from django.db import models

from attendance.models import District
from attendance.models.base import TimeStampedModel


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent, not verified yet"
    VERIFIED = "verified", "Verified"
    MISMATCH = "mismatch", "SIS holds another value"
    FAILED = "failed", "Failed"
    # Final for writes the SIS takes but gives no way to read back (PowerTeacher Pro scores):
    # it answered success; nothing more can be checked.
    ACCEPTED = "accepted", "Accepted, not verifiable"


class WriteBackItem(TimeStampedModel):
    """A local value to write back to the SIS: one row per (object, target), with a hash of the
    value so queuing the same value again is a no-op and a newer value replaces an unsent one.

    The sender (``syncing.writeback``) moves it pending → sending → sent → verified, or to
    failed (a permanent refusal, or too many transient failures) or mismatch (the SIS holds
    another value after the write). ``value_hash`` guards every transition, so a newer value
    queued while an older one is on the wire is never marked done by the older write.
    """

    district = models.ForeignKey(District, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(
        "sis.SISConnection",
        on_delete=models.CASCADE,
        related_name="writeback_items",
        db_index=False,  # writeback_unique leads with it
    )
    entity = models.CharField(max_length=32)
    object_id = models.BigIntegerField()
    source_id = models.CharField(max_length=255, blank=True)
    target = models.CharField(max_length=64)
    value = models.JSONField(null=True)
    value_hash = models.CharField(max_length=32)
    status = models.CharField(
        max_length=8, choices=OutboxStatus.choices, default=OutboxStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # When the sender may take it next (backoff after a transient failure); null: now.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When a sender took it; a "sending" row older than the lease was abandoned by a dead
    # worker and is checked against the SIS before anything is sent again.
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    # What the SIS answered when read back (kept for the mismatch review).
    sis_value = models.JSONField(null=True, blank=True)

    class Meta:
        verbose_name = "write-back item"
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "entity", "object_id", "target"], name="writeback_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="writeback_due"),
        ]

    def __str__(self) -> str:
        return f"{self.entity} {self.object_id} {self.target}"
