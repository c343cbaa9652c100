"""DRF authentication for integrators: API keys and OAuth 2.0 access tokens.

Both put an :class:`~gateway.inbound.principal.ApiPrincipal` in ``request.auth`` and an
anonymous user in ``request.user`` (an integrator is not a staff login; history rows written
on its behalf carry no user, and the record's ``source`` says ``api``).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from gateway.inbound.api_keys import api_key_authenticate, looks_like_api_key
from gateway.inbound.principal import ApiPrincipal
from gateway.models import OAuthClient

API_KEY_HEADER = "X-API-Key"


def _bearer(request: Request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


class ApiKeyAuthentication(BaseAuthentication):
    """``X-API-Key: <key>`` or ``Authorization: Bearer <key>`` (a ``sas_`` prefix tells a key
    from an OAuth token). A presented but invalid, revoked or expired key is a 401."""

    def authenticate(self, request: Request) -> tuple[AnonymousUser, ApiPrincipal] | None:
        presented = request.META.get("HTTP_X_API_KEY", "").strip()
        if not presented:
            bearer = _bearer(request)
            if bearer is None or not looks_like_api_key(bearer):
                return None
            presented = bearer
        principal = api_key_authenticate(plaintext=presented)
        if principal is None:
            raise AuthenticationFailed("The API key is invalid, expired or revoked.")
        return AnonymousUser(), principal

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class OAuthTokenAuthentication(OAuth2Authentication):
    """An OAuth 2.0 access token issued to a client-credentials application linked to a
    district. The principal's scopes are the token's scopes that the application is still
    allowed (narrowing an application takes effect on tokens already issued)."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        bearer = _bearer(request)
        if bearer is None or looks_like_api_key(bearer):
            return None
        result = super().authenticate(request)
        if result is None:
            raise AuthenticationFailed("The access token is invalid or expired.")
        _user, access_token = result
        link = (
            OAuthClient.objects.filter(
                application_id=access_token.application_id, district__active=True
            )
            .select_related("application")
            .first()
        )
        if link is None:
            raise AuthenticationFailed("The OAuth client is not linked to an active district.")
        scopes = frozenset(access_token.scope.split()) & frozenset(link.allowed_scopes)
        principal = ApiPrincipal(
            kind="oauth",
            district_id=link.district_id,
            scopes=scopes,
            client_id=link.application.client_id,
            label=link.application.name,
        )
        return AnonymousUser(), principal

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
