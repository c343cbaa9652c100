"""Inbound endpoints outside ``/api/``: the OAuth 2.0 token endpoints (``/o/``) and the
throttled admin login. Included by ``config.urls`` *before* the admin, so ``/admin/login/``
resolves here first."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider import views as oauth_views

from gateway.inbound.throttling import ADMIN_LOGIN_LIMITS, TOKEN_LIMITS, throttle

token_view = throttle(*TOKEN_LIMITS)(csrf_exempt(oauth_views.TokenView.as_view()))
admin_login = throttle(*ADMIN_LOGIN_LIMITS)(admin.site.login)

urlpatterns = [
    path("o/token/", token_view, name="oauth-token"),
    path("o/revoke_token/", oauth_views.RevokeTokenView.as_view(), name="oauth-revoke-token"),
    path("admin/login/", admin_login, name="admin-login-throttled"),
]
