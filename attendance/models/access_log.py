"""The FERPA read audit: one row per read of student data through the integrator API.

django-simple-history records writes only; FERPA (34 CFR 99.32) wants a record of who was shown
which student records, so every API read of student data writes one of these (see
``attendance.api.base``). Rows are purged after ``API_ACCESS_LOG_RETENTION_DAYS``.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from attendance.models.organization import District


class ApiAccessLog(models.Model):
    district = models.ForeignKey(
        District,
        on_delete=models.CASCADE,
        related_name="access_logs",
        db_index=False,  # access_log_district_idx leads with it
    )
    # Who: the kind of credential and its public label (key prefix or OAuth client id).
    client_kind = models.CharField(max_length=16)
    client_id = models.CharField(max_length=100)
    client_label = models.CharField(max_length=200, blank=True)
    # What: the route pattern (never the raw path with ids or query values in it), the method,
    # and the students shown; the filter parameters are kept to say why.
    endpoint = models.CharField(max_length=200)
    method = models.CharField(max_length=8, default="GET")
    student_count = models.PositiveIntegerField()
    student_ids = models.JSONField(default=list, blank=True)
    query = models.JSONField(default=dict, blank=True)
    # When.
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API access log entry"
        verbose_name_plural = "API access log"
        indexes = [
            models.Index(fields=["district", "-created_at"], name="access_log_district_idx"),
            models.Index(fields=["client_id", "-created_at"], name="access_log_client_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.client_id} {self.endpoint} ({self.student_count})"
