"""Encryption of secrets at rest (SIS credentials, cached OAuth tokens).

Keys come from ``FIELD_ENCRYPTION_KEYS`` (comma-separated Fernet keys, newest first), never from
``SECRET_KEY``: rotating the Django signing key must not make stored credentials unreadable, and
a leaked signing key must not reveal them. Outside production, when the variable is unset, one
development key is derived deterministically so a first run works; production settings refuse
to start without real keys (see :func:`encryption_keys`).

Ciphertexts carry a version prefix (``enc1:``) so a value that is not ours is recognised. A wrong
or missing key raises :class:`DecryptionError`; it never hands back the ciphertext as if it were
the secret (the failure mode of several field libraries).
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

PREFIX = "enc1:"
_DEV_KEY_SEED = b"student-attendance-system/dev-only-field-encryption-key"


class DecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key. The message never
    includes the ciphertext or any key material."""


def _is_production() -> bool:
    module = getattr(settings, "SETTINGS_MODULE", "") or ""
    return module.endswith(".production")


def dev_key() -> str:
    """The deterministic key used only when no keys are configured outside production."""
    return base64.urlsafe_b64encode(hashlib.sha256(_DEV_KEY_SEED).digest()).decode()


def encryption_keys() -> list[str]:
    """The configured keys, newest first."""
    keys = [k.strip() for k in getattr(settings, "FIELD_ENCRYPTION_KEYS", []) if k.strip()]
    if keys:
        return keys
    if _is_production():
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS must be set in production (comma-separated Fernet keys, "
            "newest first). Generate one with: python -c 'from cryptography.fernet import "
            "Fernet; print(Fernet.generate_key().decode())'"
        )
    return [dev_key()]


@lru_cache(maxsize=8)
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError) as exc:
        # Say which position is bad, never the key itself.
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS holds a value that is not a Fernet key "
            "(32 url-safe base64-encoded bytes)."
        ) from exc


def _fernet() -> MultiFernet:
    return _fernet_for(tuple(encryption_keys()))


def encrypt(plaintext: str) -> str:
    """Encrypt under the newest key. The empty string stays empty (no secret stored)."""
    if plaintext == "":
        return ""
    return PREFIX + _fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    """Decrypt with any configured key; raise :class:`DecryptionError` if none fits."""
    if ciphertext == "":
        return ""
    if not ciphertext.startswith(PREFIX):
        raise DecryptionError("Stored value is not an encrypted secret of this application.")
    try:
        return _fernet().decrypt(ciphertext[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "Stored secret cannot be decrypted with the configured FIELD_ENCRYPTION_KEYS "
            "(wrong key, or the key it was written with was removed before rotation)."
        ) from None


def rotate(ciphertext: str) -> str:
    """Re-encrypt under the newest key (raises :class:`DecryptionError` like :func:`decrypt`)."""
    if ciphertext == "":
        return ""
    if not ciphertext.startswith(PREFIX):
        raise DecryptionError("Stored value is not an encrypted secret of this application.")
    try:
        token = _fernet().rotate(ciphertext[len(PREFIX) :].encode())
    except InvalidToken:
        raise DecryptionError(
            "Stored secret cannot be decrypted with the configured FIELD_ENCRYPTION_KEYS."
        ) from None
    return PREFIX + token.decode()


def is_current(ciphertext: str) -> bool:
    """Whether the value is already encrypted under the newest key (rotation can skip it)."""
    if not ciphertext.startswith(PREFIX):
        return False
    newest = Fernet(encryption_keys()[0].encode())
    try:
        newest.decrypt(ciphertext[len(PREFIX) :].encode())
    except InvalidToken:
        return False
    return True
