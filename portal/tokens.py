"""Secrets the portal hands out: one-time codes and signed single-use link tokens.

Codes and link nonces are stored as keyed hashes (HMAC-SHA256 with ``SECRET_KEY``, salted with
the row id), never in clear. A link token is ``<row id>.<nonce>.<signature>``: the signature
(HMAC with ``SECRET_KEY``, rotated through ``SECRET_KEY_FALLBACKS``) lets a forged or mangled
link be refused without touching the database; the stored nonce hash makes it single use.
Tokens are short on purpose: they travel in SMS messages.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac

CODE_DIGITS = 6
_SIGNATURE_CHARS = 22  # 132 bits of the base64url HMAC


def code_generate() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def secret_hash(*, purpose: str, row_id: int, secret: str) -> str:
    return salted_hmac(f"portal.{purpose}", f"{row_id}:{secret}", algorithm="sha256").hexdigest()


def secret_matches(*, purpose: str, row_id: int, secret: str, stored: str) -> bool:
    if not stored:
        # Compare anyway so that a row without a secret costs the same time.
        constant_time_compare(secret_hash(purpose=purpose, row_id=row_id, secret=secret), "0" * 64)
        return False
    return constant_time_compare(secret_hash(purpose=purpose, row_id=row_id, secret=secret), stored)


def _signature(purpose: str, payload: str, key: str | bytes) -> str:
    import base64

    digest = salted_hmac(f"portal.link.{purpose}", payload, secret=key, algorithm="sha256").digest()
    return base64.urlsafe_b64encode(digest).decode()[:_SIGNATURE_CHARS]


def link_token_make(*, purpose: str, row_id: int) -> tuple[str, str]:
    """Return ``(token, nonce)`` for a link row; store ``secret_hash`` of the nonce."""
    nonce = secrets.token_urlsafe(12)
    payload = f"{row_id}.{nonce}"
    return f"{payload}.{_signature(purpose, payload, settings.SECRET_KEY)}", nonce


def link_token_parse(*, purpose: str, token: str) -> tuple[int, str] | None:
    """``(row id, nonce)`` when the signature is valid (current or fallback key), else None."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or len(parts[0]) > 18:
        return None
    row_id, nonce, signature = parts
    payload = f"{row_id}.{nonce}"
    for key in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]:
        if constant_time_compare(_signature(purpose, payload, key), signature):
            return int(row_id), nonce
    return None
