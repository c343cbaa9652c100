"""Which districts and schools an administrator may see, and what they may do there."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from attendance.models.base import TimeStampedModel
from attendance.models.organization import District, School


class MembershipRole(models.TextChoices):
    DISTRICT_ADMIN = "district_admin", "District administrator"
    SCHOOL_ADMIN = "school_admin", "School administrator"
    READ_ONLY = "read_only", "Read-only"


class Membership(TimeStampedModel):
    """A staff login's access to one district, or to one school of it.

    A membership without a school covers the whole district; with a school it covers only that
    school. A user may hold several memberships; what they may see is the union.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    district = models.ForeignKey(District, on_delete=models.CASCADE, related_name="memberships")
    school = models.ForeignKey(
        School, on_delete=models.CASCADE, related_name="memberships", null=True, blank=True
    )
    role = models.CharField(max_length=16, choices=MembershipRole.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "school"],
                condition=Q(school__isnull=False),
                name="membership_unique_school",
            ),
            models.UniqueConstraint(
                fields=["user", "district"],
                condition=Q(school__isnull=True),
                name="membership_unique_district",
            ),
            models.CheckConstraint(
                condition=~Q(role="school_admin") | Q(school__isnull=False),
                name="membership_school_admin_has_school",
            ),
            models.CheckConstraint(
                condition=~Q(role="district_admin") | Q(school__isnull=True),
                name="membership_district_admin_has_no_school",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()}"
