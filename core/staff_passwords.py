"""Staff set their own admin passwords: the link an invitation carries, and "Forgotten your
login credentials?" on the admin's sign-in page (Django's password reset views, with the
admin's own templates).

Links are built on ``PUBLIC_BASE_URL`` (``core.links``), never on the request's host: a reset
requested with a forged ``Host`` header must not mail a link to someone else's server.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordResetForm
from django.contrib.auth.tokens import default_token_generator
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from core.links import public_url


def password_set_link(user: Any) -> str:
    """A one-time link where ``user`` chooses a password (valid ``PASSWORD_RESET_TIMEOUT``
    seconds, and only until the password or the last login changes)."""
    return public_url(
        reverse(
            "password_reset_confirm",
            kwargs={
                "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
                "token": default_token_generator.make_token(user),
            },
        )
    )


class StaffPasswordResetForm(PasswordResetForm):
    def save(self, *args: Any, **kwargs: Any) -> None:
        base = urlsplit(str(settings.PUBLIC_BASE_URL or ""))
        kwargs.update(domain_override=base.netloc, use_https=base.scheme == "https")
        super().save(*args, **kwargs)


class _AdminPages:
    """The admin's header and title on these pages (its templates expect them)."""

    request: Any

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)  # type: ignore[misc]
        return {**admin.site.each_context(self.request), **context}


class StaffPasswordResetView(_AdminPages, auth_views.PasswordResetView):
    form_class = StaffPasswordResetForm


class StaffPasswordResetDoneView(_AdminPages, auth_views.PasswordResetDoneView):
    pass


class StaffPasswordResetConfirmView(_AdminPages, auth_views.PasswordResetConfirmView):
    pass


class StaffPasswordResetCompleteView(_AdminPages, auth_views.PasswordResetCompleteView):
    pass
