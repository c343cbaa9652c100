"""Inbound endpoints outside ``/api/``: the OAuth 2.0 token endpoints (``/o/``), the
throttled admin login and the staff's password reset (requests throttled per e-mail address
and per client address: each sends an e-mail). Included by ``config.urls`` *before* the admin,
so these ``/admin/…`` paths resolve here first."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider import views as oauth_views

from core import staff_passwords
from gateway.inbound.throttling import (
    ADMIN_LOGIN_LIMITS,
    PASSWORD_RESET_LIMITS,
    TOKEN_LIMITS,
    throttle,
)

token_view = throttle(*TOKEN_LIMITS)(csrf_exempt(oauth_views.TokenView.as_view()))
admin_login = throttle(*ADMIN_LOGIN_LIMITS)(admin.site.login)
password_reset = throttle(*PASSWORD_RESET_LIMITS)(staff_passwords.StaffPasswordResetView.as_view())

urlpatterns = [
    path("o/token/", token_view, name="oauth-token"),
    path("o/revoke_token/", oauth_views.RevokeTokenView.as_view(), name="oauth-revoke-token"),
    path("admin/login/", admin_login, name="admin-login-throttled"),
    # The names Django's admin and auth views look for: the login page then offers
    # "Forgotten your login credentials?".
    path("admin/password_reset/", password_reset, name="admin_password_reset"),
    path(
        "admin/password_reset/done/",
        staff_passwords.StaffPasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "admin/reset/<uidb64>/<token>/",
        staff_passwords.StaffPasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "admin/reset/done/",
        staff_passwords.StaffPasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
]
