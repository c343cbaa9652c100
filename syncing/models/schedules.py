"""How often a connection syncs, the change events waiting for its active run, and the
connection as the sync admin shows it."""

from __future__ import annotations

from django.db import models

from attendance.models import District
from attendance.models.base import TimeStampedModel
from sis.models import SISConnection


class PendingEvent(models.Model):
    """A SIS change event that arrived while a run of its connection was active: kept here
    (one row per record, so repeats coalesce) and run as one targeted sync once the active
    run is over."""

    district = models.ForeignKey(District, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(
        "sis.SISConnection",
        on_delete=models.CASCADE,
        related_name="pending_events",
        db_index=False,  # pendingevent_unique leads with it
    )
    entity = models.CharField(max_length=32)
    source_id = models.CharField(max_length=255)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "entity", "source_id"], name="pendingevent_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.entity} {self.source_id}"


class ScheduleKind(models.TextChoices):
    OFF = "off", "Manual only"
    REALTIME = "realtime", "Real time (events + frequent delta)"
    HOURLY = "hourly", "Hourly"
    DAILY = "daily", "Daily at a time"
    CRON = "cron", "Cron expression"


# Python's weekday numbers (0 = Monday), as the weekly full sync's day is stored.
WEEKDAYS = [
    (0, "Monday"), (1, "Tuesday"), (2, "Wednesday"), (3, "Thursday"), (4, "Friday"),
    (5, "Saturday"), (6, "Sunday"),
]  # fmt: skip


class SyncSchedule(TimeStampedModel):
    """How often one connection syncs. The service turns it into django-celery-beat periodic
    tasks that it owns; admins edit this, never the beat rows."""

    district = models.ForeignKey(District, on_delete=models.CASCADE, related_name="+")
    connection = models.OneToOneField(
        "sis.SISConnection", on_delete=models.CASCADE, related_name="sync_schedule"
    )
    kind = models.CharField(max_length=10, choices=ScheduleKind.choices, default=ScheduleKind.OFF)
    delta_every_minutes = models.PositiveIntegerField(default=5)
    daily_at = models.TimeField(
        null=True, blank=True, help_text="In the district's time zone. Daily schedules only."
    )
    cron = models.CharField(
        max_length=120,
        blank=True,
        help_text="Minute hour day-of-month month day-of-week, in the district's time zone "
        "(e.g. 30 5 * * 1-5: weekdays at 05:30). Cron schedules only.",
    )
    # Deltas miss deletions; one full sync a week (this day, at weekly_full_at, else 02:00 in
    # the district's time zone) reconciles them.
    weekly_full_weekday = models.PositiveSmallIntegerField(
        "weekly full sync on", choices=WEEKDAYS, default=6
    )
    weekly_full_at = models.TimeField(
        "weekly full sync at",
        null=True,
        blank=True,
        help_text="In the district's time zone; 02:00 when empty. Real-time and hourly only.",
    )
    paused = models.BooleanField(default=False)
    # HMAC key for the SIS event webhook of this connection.
    webhook_secret_encrypted = models.TextField(blank=True)
    # A scheduled full sync that fired while another run of the connection was active: it
    # starts as soon as that run is over, under its beat slot's idempotency key (so once).
    full_owed_key = models.CharField(max_length=120, blank=True)
    full_owed_since = models.DateTimeField(
        "full sync waiting since",
        null=True,
        blank=True,
        help_text="A scheduled full sync fired while another run was active; it starts after it.",
    )

    def __str__(self) -> str:
        return f"{self.connection_id}: {self.get_kind_display()}"


class SyncConnection(SISConnection):
    """The SIS connections as the sync admin shows them ("Sync now"); edited in the SIS app."""

    class Meta:
        proxy = True
        verbose_name = "connection to sync"
        verbose_name_plural = "connections to sync"
