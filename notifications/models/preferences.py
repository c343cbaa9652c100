"""Notification categories and what each guardian asked for."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from attendance.models import Guardian, Student
from attendance.models.base import TimeStampedModel
from attendance.models.organization import validate_timezone


class Category(TimeStampedModel):
    """What a message is about. A *critical* category cannot be switched off by a guardian (the
    switch is ignored), and it bypasses quiet hours and digests; it still never overrides a
    carrier opt-out (STOP) or custody/contact-rights rules."""

    ATTENDANCE = "attendance"
    CHRONIC_ABSENCE = "chronic_absence"
    GENERAL = "general"
    EMERGENCY = "emergency"
    OPERATIONAL = "operational"

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    critical = models.BooleanField(default=False)
    # Channels used when a guardian has not chosen any for this category.
    default_channels = models.JSONField(default=list, blank=True)  # Channel values
    description = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["code"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class DeliveryMode(models.TextChoices):
    INSTANT = "instant", "Instantly"
    DIGEST = "digest", "In one daily digest"


class Preference(TimeStampedModel):
    """A guardian's choices, optionally for one student and/or one category.

    Rows are layered like Novu's preferences: for every setting, the most specific row that sets
    it wins — (student, category) → (category) → (student) → (guardian-wide) → the category's
    defaults. ``None`` / empty means "not set here, ask the next layer".
    """

    guardian = models.ForeignKey(
        Guardian,
        on_delete=models.CASCADE,
        related_name="preferences",
        db_index=False,  # preference_unique_scope leads with it
    )
    student = models.ForeignKey(
        Student, on_delete=models.CASCADE, related_name="+", null=True, blank=True
    )
    category = models.ForeignKey(
        Category, on_delete=models.CASCADE, related_name="preferences", null=True, blank=True
    )
    enabled = models.BooleanField(null=True, blank=True)
    # Channel values; None: not set at this layer. JSON, not an array: SQLite runs the demo.
    channels = models.JSONField(null=True, blank=True)
    delivery_mode = models.CharField(max_length=8, choices=DeliveryMode.choices, blank=True)
    quiet_start = models.TimeField(null=True, blank=True)
    quiet_end = models.TimeField(null=True, blank=True)
    timezone = models.CharField(max_length=64, blank=True, validators=[validate_timezone])
    language = models.CharField(max_length=8, blank=True)

    class Meta:
        ordering = ["guardian_id", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["guardian", "student", "category"],
                nulls_distinct=False,
                name="preference_unique_scope",
            ),
            models.CheckConstraint(
                condition=Q(quiet_start__isnull=True, quiet_end__isnull=True)
                | Q(quiet_start__isnull=False, quiet_end__isnull=False),
                name="preference_quiet_hours_both_or_none",
            ),
        ]

    def __str__(self) -> str:
        return f"Preference #{self.pk} of guardian {self.guardian_id}"
