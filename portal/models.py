"""Parent portal state: sign-in challenges, signed links, contact verifications and the audit.

Nothing secret is stored in clear: codes and link nonces are kept as keyed hashes
(HMAC-SHA256 with ``SECRET_KEY``), so a copy of the database cannot be used to sign in.
"""

from __future__ import annotations

import uuid

from django.db import models

from attendance.models import Guardian, Student
from notifications.models import ContactPoint


class SignInChallenge(models.Model):
    """One "send me a code" request. It is created for every request, whether or not the
    contact exists (so the answer and its timing do not tell which contacts we hold); the
    sending task fills in ``code_hash`` only when the contact belongs to an active guardian."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=8)  # notifications.Channel value
    # The normalised contact (E.164 or lower-cased e-mail); purged with the row.
    value = models.CharField(max_length=254)
    code_hash = models.CharField(max_length=64, blank=True)
    link_hash = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    sent = models.BooleanField(default=False)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["expires_at"], name="portal_challenge_expiry_idx")]

    def __str__(self) -> str:
        return f"Sign-in challenge #{self.pk} ({self.kind})"


class LinkPurpose(models.TextChoices):
    MESSAGE = "message", "Link in a notification"


class PortalLink(models.Model):
    """A single-use, expiring link that opens the portal signed in as ``guardian``."""

    guardian = models.ForeignKey(Guardian, on_delete=models.CASCADE, related_name="+")
    purpose = models.CharField(max_length=16, choices=LinkPurpose.choices)
    nonce_hash = models.CharField(max_length=64)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["expires_at"], name="portal_link_expiry_idx")]

    def __str__(self) -> str:
        return f"Portal link #{self.pk} for guardian {self.guardian_id}"


class ContactVerification(models.Model):
    """A code sent to a newly added contact point; verifying it makes the point usable."""

    contact_point = models.ForeignKey(
        ContactPoint, on_delete=models.CASCADE, related_name="portal_verifications"
    )
    code_hash = models.CharField(max_length=64)
    attempts = models.PositiveSmallIntegerField(default=0)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Verification #{self.pk} of contact point {self.contact_point_id}"


class AuditAction(models.TextChoices):
    SIGN_IN = "sign_in", "Signed in"
    SIGN_OUT = "sign_out", "Signed out"
    PREFERENCE = "preference", "Changed a preference"
    CONTACT_ADD = "contact_add", "Added a contact point"
    CONTACT_VERIFY = "contact_verify", "Verified a contact point"
    CONTACT_STOP = "contact_stop", "Stopped messages to a contact point"
    CONTACT_RESUME = "contact_resume", "Turned messages to a contact point back on"


class PortalAudit(models.Model):
    """Append-only record of what a guardian did in the portal: who, when, and for changes the
    values before and after (``changes``: ``{field: [old, new]}``). ``via`` says how the
    session was opened (``code:sms``, ``code:email``, ``link:email``, ``link:message``); no
    contact values are stored here."""

    guardian = models.ForeignKey(
        Guardian,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,  # portal_audit_guardian_idx leads with it
    )
    action = models.CharField(max_length=16, choices=AuditAction.choices)
    student = models.ForeignKey(
        Student, on_delete=models.SET_NULL, related_name="+", null=True, blank=True
    )
    category = models.CharField(max_length=32, blank=True)
    contact_point = models.ForeignKey(
        ContactPoint, on_delete=models.SET_NULL, related_name="+", null=True, blank=True
    )
    changes = models.JSONField(default=dict, blank=True)
    via = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["guardian", "created_at"], name="portal_audit_guardian_idx")
        ]

    def __str__(self) -> str:
        return f"{self.action} by guardian {self.guardian_id}"
