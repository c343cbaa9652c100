"""SIS connections, their encrypted credentials and cached OAuth tokens.

Secrets live in their own tables (:class:`SISCredential`, :class:`SISToken`) that have no
history: a history copy of a secret would be one more place to leak from and to rotate. The
connection itself is audited with simple-history and holds nothing secret.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from simple_history.models import HistoricalRecords

from attendance.models import District
from attendance.models.base import TimeStampedModel
from core import encryption


class Provider(models.TextChoices):
    POWERSCHOOL = "powerschool", "PowerSchool"
    ONEROSTER_11 = "oneroster-1.1", "OneRoster 1.1 REST"
    ONEROSTER_12 = "oneroster-1.2", "OneRoster 1.2 REST"
    ONEROSTER_CSV = "oneroster-csv", "OneRoster CSV bundle"


class Vendor(models.TextChoices):
    GENERIC = "generic", "Generic"
    INFINITE_CAMPUS = "infinite-campus", "Infinite Campus"
    SKYWARD = "skyward", "Skyward (SMS 2.0 / Qmlativ)"


class SISConnection(TimeStampedModel):
    """One SIS instance a district reads rosters from (a district may have several)."""

    district = models.ForeignKey(
        District,
        on_delete=models.PROTECT,
        related_name="sis_connections",
        db_index=False,  # sisconnection_unique_name_per_district leads with it
    )
    name = models.CharField(max_length=120)
    # Not limited to Provider choices: outside connector packages add their own keys.
    provider = models.CharField(max_length=64)
    vendor = models.CharField(max_length=32, choices=Vendor.choices, default=Vendor.GENERIC)
    base_url = models.URLField(max_length=500, blank=True)
    # Stored as copied from the SIS (Infinite Campus puts ?appName=... in it): never derived.
    token_url = models.URLField(max_length=500, blank=True)
    # Validated by the connector's typed options (sis.connectors.options).
    options = models.JSONField(default=dict, blank=True)
    rate_per_second = models.FloatField(null=True, blank=True)
    max_concurrency = models.PositiveIntegerField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    # Empty: every capability the connector declares. Otherwise the subset in use.
    capabilities = models.JSONField(default=list, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["district_id", "name"]
        verbose_name = "SIS connection"
        constraints = [
            models.UniqueConstraint(
                fields=["district", "name"], name="sisconnection_unique_name_per_district"
            )
        ]

    def __str__(self) -> str:
        return self.name


class SISCredential(models.Model):
    """The secrets of one connection, encrypted with ``core.encryption`` (no history)."""

    connection = models.OneToOneField(
        SISConnection, on_delete=models.CASCADE, related_name="credential"
    )
    client_id_encrypted = models.TextField(blank=True, default="")
    client_secret_encrypted = models.TextField(blank=True, default="")
    # Further secrets some vendors need (e.g. Infinite Campus's gradebook vendor key).
    extra_encrypted = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"credentials of {self.connection_id}"

    def __repr__(self) -> str:
        # Never the ciphertext either: it is still a secret to anyone holding the key.
        return f"<SISCredential connection={self.connection_id}>"

    @property
    def client_id(self) -> str:
        return encryption.decrypt(self.client_id_encrypted)

    @property
    def client_secret(self) -> str:
        return encryption.decrypt(self.client_secret_encrypted)

    @property
    def extra(self) -> dict[str, Any]:
        import json

        raw = encryption.decrypt(self.extra_encrypted)
        return json.loads(raw) if raw else {}

    ENCRYPTED_FIELDS = ("client_id_encrypted", "client_secret_encrypted", "extra_encrypted")


class CSVBundle(models.Model):
    """A OneRoster CSV zip uploaded in the admin for a CSV connection."""

    connection = models.ForeignKey(
        SISConnection, on_delete=models.CASCADE, related_name="csv_bundles"
    )
    file = models.FileField(upload_to="sis/csv-bundles/")
    uploaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-uploaded_at"]
        verbose_name = "CSV bundle"

    def __str__(self) -> str:
        return self.file.name or ""


class GradebookColumn(models.Model):
    """A gradebook column (PowerTeacher Pro assignment) we created in the SIS: our key
    (``sas-<section>-<term>``) → the SIS's id, so the column is created once and every later
    score goes to it. Not student data; kept while the connection exists."""

    connection = models.ForeignKey(
        SISConnection,
        on_delete=models.CASCADE,
        related_name="gradebook_columns",
        db_index=False,  # gradebook_column_unique leads with it
    )
    key = models.CharField(max_length=255)
    sis_id = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "key"], name="gradebook_column_unique")
        ]

    def __str__(self) -> str:
        return f"{self.key} → {self.sis_id}"
