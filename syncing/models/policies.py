"""Field policies (who wins a conflict) and safety policies and blackouts (when a run is
held)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from attendance.models import District, School
from attendance.models.base import TimeStampedModel


class Policy(models.TextChoices):
    SIS_WINS = "sis_wins", "SIS wins"
    LOCAL_WINS = "local_wins", "Local wins"
    REVIEW = "review", "Hold for review"


class FieldPolicy(TimeStampedModel):
    """Who wins when the SIS and a local edit both changed one field. A policy on a connection
    overrides the district's; without any, the field is held for review."""

    district = models.ForeignKey(
        District,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,  # fieldpolicy_unique leads with it
    )
    connection = models.ForeignKey(
        "sis.SISConnection",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="field_policies",
    )
    entity = models.CharField(max_length=32)
    field = models.CharField(max_length=64)
    policy = models.CharField(max_length=12, choices=Policy.choices)

    class Meta:
        verbose_name_plural = "field policies"
        constraints = [
            models.UniqueConstraint(
                fields=["district", "connection", "entity", "field"],
                name="fieldpolicy_unique",
                nulls_distinct=False,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.entity}.{self.field}: {self.get_policy_display()}"


class SafetyPolicy(TimeStampedModel):
    """Thresholds that hold a run for review, per entity and optionally per school.

    A run is held when, for an entity (and school), the staged deactivations exceed
    ``max_deactivation_percent`` of the active population, or updates exceed
    ``max_update_percent`` — once the population is at least ``min_population`` and the number of
    changes at least ``min_changes`` (three withdrawals from a ten-student school are not an
    outage). A source that returns nothing where a roster exists is always held.
    """

    district = models.ForeignKey(
        District,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,  # safetypolicy_unique leads with it
    )
    connection = models.ForeignKey(
        "sis.SISConnection",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="safety_policies",
    )
    entity = models.CharField(max_length=32)
    school = models.ForeignKey(
        School, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    max_deactivation_percent = models.DecimalField(max_digits=5, decimal_places=2, default=10)
    max_update_percent = models.DecimalField(max_digits=5, decimal_places=2, default=75)
    min_population = models.PositiveIntegerField(default=20)
    min_changes = models.PositiveIntegerField(default=5)

    class Meta:
        verbose_name_plural = "safety policies"
        constraints = [
            models.UniqueConstraint(
                fields=["district", "connection", "entity", "school"],
                name="safetypolicy_unique",
                nulls_distinct=False,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.entity} ≤{self.max_deactivation_percent}% deactivations"


class SafetyBlackout(TimeStampedModel):
    """Dates on which deactivations are held automatically (e.g. the summer rollover)."""

    district = models.ForeignKey(District, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(
        "sis.SISConnection",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="blackouts",
    )
    start_date = models.DateField()
    end_date = models.DateField()
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["start_date"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end_date__gte=models.F("start_date")), name="blackout_dates_ordered"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.start_date} – {self.end_date} {self.reason}".strip()
