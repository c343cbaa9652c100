"""Bulk notices written by administrators to a district, schools, grades or sections."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from attendance.models import District, School, Section
from attendance.models.base import TimeStampedModel
from notifications.models.preferences import Category


class BulkNoticeState(models.TextChoices):
    DRAFT = "draft", "Draft"
    PLANNING = "planning", "Planning recipients"
    SENDING = "sending", "Sending"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


class BulkNotice(TimeStampedModel):
    """A message to many guardians. Planned in the database (one Notification per guardian),
    then sent by many workers under the provider rate limits. Empty ``schools`` means the whole
    district; ``grade_levels`` and ``sections`` narrow it further."""

    district = models.ForeignKey(District, on_delete=models.CASCADE, related_name="+")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    title = models.CharField(max_length=200)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="+")
    schools = models.ManyToManyField(School, blank=True, related_name="+")
    grade_levels = models.JSONField(default=list, blank=True)
    sections = models.ManyToManyField(Section, blank=True, related_name="+")
    # {"en": {"subject": "...", "body": "..."}, "es": {...}}; the district language is required.
    texts = models.JSONField(default=dict)
    state = models.CharField(
        max_length=10, choices=BulkNoticeState.choices, default=BulkNoticeState.DRAFT
    )
    recipients_planned = models.PositiveIntegerField(default=0)
    recipients_suppressed = models.PositiveIntegerField(default=0)
    deliveries_planned = models.PositiveIntegerField(default=0)
    deliveries_sent = models.PositiveIntegerField(default=0)
    deliveries_failed = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title
