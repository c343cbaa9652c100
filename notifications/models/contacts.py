"""Where a guardian can be reached, and whether they agreed to be."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from attendance.models import Guardian
from attendance.models.base import TimeStampedModel


class Channel(models.TextChoices):
    SMS = "sms", "SMS"
    EMAIL = "email", "E-mail"


class ContactSource(models.TextChoices):
    SIS = "sis", "SIS (verified by the district)"
    PORTAL = "portal", "Parent portal"
    ADMIN = "admin", "Administrator"


class OptOutSource(models.TextChoices):
    STOP = "stop", "STOP reply"
    BOUNCE = "bounce", "Bounce"
    COMPLAINT = "complaint", "Spam complaint"
    ADMIN = "admin", "Administrator"
    PORTAL = "portal", "Parent portal"


class ContactPoint(TimeStampedModel):
    """A phone number or e-mail address of a guardian.

    ``value`` is what we send to: E.164 for phones, lower-cased for e-mail; ``raw_value`` is what
    we were given. Only verified points that are not opted out and not undeliverable are used.
    An opt-out is a fact about the number or address (a carrier STOP blocks it for every sender),
    so it is applied to every contact point with the same value.
    """

    guardian = models.ForeignKey(
        Guardian,
        on_delete=models.CASCADE,
        related_name="contact_points",
        db_index=False,  # contact_point_unique_value leads with it
    )
    kind = models.CharField(max_length=8, choices=Channel.choices)
    value = models.CharField(max_length=254)
    raw_value = models.CharField(max_length=254, blank=True)
    label = models.CharField(max_length=32, blank=True)  # "mobile", "home", "work", "email"
    source = models.CharField(max_length=8, choices=ContactSource.choices)
    verified = models.BooleanField(default=False)
    verified_at = models.DateTimeField(null=True, blank=True)
    opted_out = models.BooleanField(default=False)
    opted_out_at = models.DateTimeField(null=True, blank=True)
    opt_out_source = models.CharField(max_length=10, choices=OptOutSource.choices, blank=True)
    # Set by a permanent provider failure (invalid number, not a mobile, hard bounce).
    undeliverable = models.BooleanField(default=False)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_failure_code = models.CharField(max_length=32, blank=True)
    last_failure_message = models.CharField(max_length=300, blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["guardian_id", "kind", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["guardian", "kind", "value"], name="contact_point_unique_value"
            ),
            models.CheckConstraint(
                condition=~Q(kind="sms") | Q(value__regex=r"^\+[1-9][0-9]{6,14}$"),
                name="contact_point_sms_e164",
            ),
            models.CheckConstraint(
                condition=Q(opted_out=False) | ~Q(opt_out_source=""),
                name="contact_point_opt_out_has_source",
            ),
        ]
        indexes = [models.Index(fields=["kind", "value"], name="contact_point_value_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} of guardian {self.guardian_id}"

    @property
    def usable(self) -> bool:
        return self.active and self.verified and not self.opted_out and not self.undeliverable


class ConsentEventKind(models.TextChoices):
    OPT_OUT = "opt_out", "Opted out"
    OPT_IN = "opt_in", "Opted back in"
    HELP = "help", "Asked for help"
    VERIFIED = "verified", "Verified"


class ConsentEvent(models.Model):
    """Append-only audit of consent changes: who or what changed it, when, and why."""

    contact_point = models.ForeignKey(
        ContactPoint, on_delete=models.CASCADE, related_name="consent_events", null=True
    )
    kind = models.CharField(max_length=10, choices=ConsentEventKind.choices)
    source = models.CharField(max_length=10)  # an OptOutSource value, "start", "help", ...
    keyword = models.CharField(max_length=32, blank=True)
    provider = models.CharField(max_length=32, blank=True)
    detail = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} ({self.source})"
