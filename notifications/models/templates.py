"""Message templates per district, category, channel and language."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from attendance.models import District
from attendance.models.base import TimeStampedModel
from notifications.models.contacts import Channel
from notifications.models.preferences import Category


class Template(TimeStampedModel):
    """Subject and body in Django template syntax (``{{ student_first_name }}``).

    A district's template wins over the shared one (``district`` empty); built-in defaults in
    :mod:`notifications.default_templates` apply when neither exists.
    """

    district = models.ForeignKey(
        District, on_delete=models.CASCADE, related_name="+", null=True, blank=True
    )
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="templates")
    channel = models.CharField(max_length=8, choices=Channel.choices)
    language = models.CharField(max_length=8, default="en")
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField()
    active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["category__code", "channel", "language"]
        constraints = [
            models.UniqueConstraint(
                fields=["district", "category", "channel", "language"],
                nulls_distinct=False,
                condition=Q(active=True),
                name="template_one_active_per_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.category.code}/{self.channel}/{self.language}"
