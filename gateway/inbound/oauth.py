"""OAuth 2.0 client credentials for integrators, on django-oauth-toolkit.

DOT has no per-application scope list and grants every scope by default; this validator ties
each application to a district (:class:`gateway.models.OAuthClient`) and its allowed scopes:
no requested scope → a token with no scope; a scope the application may not have → refused.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from oauth2_provider.models import Application, get_application_model
from oauth2_provider.oauth2_validators import OAuth2Validator

from attendance.models import District
from gateway.inbound.api_keys import validate_scopes
from gateway.models import OAuthClient


def _link(client: Any) -> OAuthClient | None:
    if client is None:
        return None
    return (
        OAuthClient.objects.filter(application_id=client.pk, district__active=True)
        .only("allowed_scopes", "district_id")
        .first()
    )


class DistrictOAuth2Validator(OAuth2Validator):
    def validate_scopes(
        self,
        client_id: str,
        scopes: list[str],
        client: Any,
        request: Any,
        *args: Any,
        **kwargs: Any,
    ) -> bool:
        """Grant only scopes the application's district link allows; an unlinked application
        (or one whose district is inactive) is allowed nothing."""
        link = _link(client)
        if link is None:
            return False
        return set(scopes).issubset(set(link.allowed_scopes))

    def get_default_scopes(
        self, client_id: str, request: Any, *args: Any, **kwargs: Any
    ) -> list[str]:
        """No default all-scope: a token request without ``scope`` gets a token with none."""
        return []


def oauth_client_create(
    *, district: District, name: str, scopes: list[str]
) -> tuple[OAuthClient, str]:
    """Create a confidential client-credentials application for a district. Returns the link
    and the client secret, which is stored hashed by DOT and shown only now."""
    app_model = get_application_model()
    secret = app_model._meta.get_field("client_secret").get_default()
    with transaction.atomic():
        application: Application = app_model.objects.create(
            name=name,
            client_type=app_model.CLIENT_CONFIDENTIAL,
            authorization_grant_type=app_model.GRANT_CLIENT_CREDENTIALS,
            client_secret=secret,
            hash_client_secret=True,
        )
        link = OAuthClient.objects.create(
            application=application, district=district, allowed_scopes=validate_scopes(scopes)
        )
    return link, secret
