"""Absolute links to this site, for messages read outside it (e-mails, SMS, provider
callbacks)."""

from __future__ import annotations

from django.conf import settings


def public_url(path: str) -> str:
    """``path`` (from ``reverse``) on ``PUBLIC_BASE_URL``, where providers and readers of our
    messages reach us; a request's own host is not trusted for that."""
    return str(settings.PUBLIC_BASE_URL or "").rstrip("/") + path
