"""What waits for an administrator: conflicts, quarantined records, identity-match
suggestions."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from attendance.models import District, School
from attendance.models.base import TimeStampedModel
from syncing.models.policies import Policy
from syncing.models.runs import SourceLink, SyncRun


class ConflictStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED_SIS = "resolved_sis", "Resolved: SIS value"
    RESOLVED_LOCAL = "resolved_local", "Resolved: local value"
    RESOLVED_EDIT = "resolved_edit", "Resolved: edited value"


class Conflict(TimeStampedModel):
    """A field the SIS and a local edit both moved away from the baseline, to different values.

    ``policy`` is the rule that applied; with SIS-wins or local-wins the conflict is recorded
    already resolved (so nothing is decided silently), with review it stays open.
    """

    district = models.ForeignKey(
        District,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,  # conflict_queue leads with it
    )
    school = models.ForeignKey(
        School, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    link = models.ForeignKey(SourceLink, on_delete=models.CASCADE, related_name="conflicts")
    run = models.ForeignKey(SyncRun, on_delete=models.SET_NULL, null=True, related_name="conflicts")
    entity = models.CharField(max_length=32)
    field = models.CharField(max_length=64)
    base_value = models.JSONField(null=True)
    sis_value = models.JSONField(null=True)
    local_value = models.JSONField(null=True)
    policy = models.CharField(max_length=12, choices=Policy.choices)
    status = models.CharField(
        max_length=16, choices=ConflictStatus.choices, default=ConflictStatus.OPEN
    )
    resolution_value = models.JSONField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["link", "field"],
                condition=Q(status="open"),
                name="conflict_one_open_per_field",
            ),
        ]
        indexes = [models.Index(fields=["district", "status"], name="conflict_queue")]

    def __str__(self) -> str:
        return f"{self.entity}.{self.field} ({self.get_status_display()})"


class QuarantineStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"
    DISCARDED = "discarded", "Discarded"


class QuarantinedRecord(TimeStampedModel):
    """A SIS record that failed validation, parked with its reason and payload. One row per
    (connection, entity, source id) while open; a later failure updates it."""

    district = models.ForeignKey(District, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(
        "sis.SISConnection", on_delete=models.CASCADE, related_name="quarantine"
    )
    run = models.ForeignKey(
        SyncRun, on_delete=models.SET_NULL, null=True, related_name="quarantine"
    )
    entity = models.CharField(max_length=32)
    source_id = models.CharField(max_length=255, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    reason_code = models.CharField(max_length=40)
    message = models.TextField(blank=True)
    status = models.CharField(
        max_length=10, choices=QuarantineStatus.choices, default=QuarantineStatus.OPEN
    )
    attempts = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "entity", "source_id"],
                condition=Q(status="open") & ~Q(source_id=""),
                name="quarantine_one_open_per_record",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.entity} {self.source_id}: {self.reason_code}"


class MatchStatus(models.TextChoices):
    SUGGESTED = "suggested", "Suggested"
    CONFIRMED = "confirmed", "Confirmed"
    REJECTED = "rejected", "Rejected"


class IdentityMatch(TimeStampedModel):
    """A new SIS id that looks like a record we already have (same local id, name and birth
    date): the record is not created until an admin confirms or rejects the match."""

    district = models.ForeignKey(District, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(
        "sis.SISConnection", on_delete=models.CASCADE, related_name="identity_matches"
    )
    run = models.ForeignKey(SyncRun, on_delete=models.SET_NULL, null=True, related_name="+")
    entity = models.CharField(max_length=32)
    new_source_id = models.CharField(max_length=255)
    object_id = models.BigIntegerField()
    old_link = models.ForeignKey(
        SourceLink, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    evidence = models.JSONField(default=dict, blank=True)
    values = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=10, choices=MatchStatus.choices, default=MatchStatus.SUGGESTED
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "identity matches"
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "entity", "new_source_id"],
                condition=Q(status="suggested"),
                name="identitymatch_one_open",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.entity} {self.new_source_id} → {self.object_id}?"
