"""Inbound credentials of integrators (API keys, OAuth client links) and the idempotency ledger
of the integrator API. Outbound state (limiters, breakers) lives in Redis, not here."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.utils import timezone
from oauth2_provider.settings import oauth2_settings
from simple_history.models import HistoricalRecords

from attendance.models import District


class KeyEnvironment(models.TextChoices):
    LIVE = "live", "Live"
    TEST = "test", "Test"


class ApiKey(models.Model):
    """An integrator's API key. The secret is shown once when created; only its visible
    ``prefix`` (``sas_live_AbCd2345``) and a keyed hash (HMAC-SHA256 with a pepper kept outside
    the database) are stored, so a database leak does not leak working keys."""

    district = models.ForeignKey(
        District,
        on_delete=models.CASCADE,
        related_name="api_keys",
        db_index=False,  # apikey_district_idx leads with it
    )
    name = models.CharField(max_length=120)
    environment = models.CharField(
        max_length=4, choices=KeyEnvironment.choices, default=KeyEnvironment.LIVE
    )
    prefix = models.CharField(max_length=32, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Written at most once a minute per key (see gateway.inbound.api_keys.api_key_touch).
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    rotated_from = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="rotated_to",
        editable=False,
    )
    # The hash never goes to history; last_used_at is written with update() and never would.
    history = HistoricalRecords(excluded_fields=["key_hash", "last_used_at"])

    class Meta:
        ordering = ["district_id", "name", "-created_at"]
        verbose_name = "API key"
        indexes = [models.Index(fields=["district", "created_at"], name="apikey_district_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_usable(self, now: dt.datetime | None = None) -> bool:
        moment = now or timezone.now()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > moment


class OAuthClient(models.Model):
    """Links a django-oauth-toolkit application (client credentials) to one district and the
    scopes it may ask for. An application without this link gets no token at all."""

    application = models.OneToOneField(
        oauth2_settings.APPLICATION_MODEL,
        on_delete=models.CASCADE,
        related_name="district_link",
    )
    district = models.ForeignKey(District, on_delete=models.CASCADE, related_name="oauth_clients")
    allowed_scopes = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    history = HistoricalRecords()

    class Meta:
        ordering = ["district_id", "application_id"]
        verbose_name = "OAuth client"

    def __str__(self) -> str:
        return str(self.application)


class IdempotencyState(models.TextChoices):
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"


class IdempotencyRecord(models.Model):
    """The first response to a ``POST`` with an ``Idempotency-Key``, replayed for the same key
    and body for 24 hours. The row is inserted before the request runs, so a concurrent
    duplicate finds it (unique constraint) and is answered 409 instead of running twice."""

    owner = models.CharField(max_length=80)  # the client: "api_key:<prefix>" / "oauth:<id>"
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    state = models.CharField(
        max_length=12, choices=IdempotencyState.choices, default=IdempotencyState.IN_PROGRESS
    )
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "key"], name="idempotency_owner_key_unique")
        ]
        indexes = [models.Index(fields=["expires_at"], name="idempotency_expiry_idx")]

    def __str__(self) -> str:
        return f"{self.owner} {self.key}"


__all__ = [
    "ApiKey",
    "IdempotencyRecord",
    "IdempotencyState",
    "KeyEnvironment",
    "OAuthClient",
]
