"""DRF authentication for integrators: API keys and OAuth 2.0 access tokens.

Both put an :class:`~gateway.inbound.principal.ApiPrincipal` in ``request.auth`` and an
anonymous user in ``request.user`` (an integrator is not a staff login; history rows written
on its behalf carry no user, and the record's ``source`` says ``api``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from attendance.models import District
from gateway.inbound.api_keys import (
    api_key_principal,
    api_key_touch,
    api_key_verify,
    key_hash,
    looks_like_api_key,
)
from gateway.inbound.principal import ApiPrincipal
from gateway.models import ApiKey, OAuthClient

logger = logging.getLogger("sas.gateway.api_keys")

API_KEY_HEADER = "X-API-Key"


def _bearer(request: Request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


# Verified keys are cached per process for at most this long. Every change to a key or a
# district saved through the ORM (revoke, rotate, scope edits, deactivating a district) clears
# this process's cache at once and, on commit, bumps a generation number in the shared cache
# that every process reads in the same round trip as the rate limit, so it takes effect on
# the next request everywhere. Only a change made behind the ORM's back (a raw UPDATE) or
# during a cache outage waits for this TTL. Expiry is checked on every request.
API_KEY_CACHE_SECONDS = 10.0
_GENERATION_KEY = "api-keys:generation"
_MAX_CACHED_KEYS = 10_000


@dataclass(frozen=True)
class _CachedKey:
    api_key: ApiKey
    principal: ApiPrincipal
    generation: str | None
    fresh_until: float


# Keyed by the keyed hash of the presented key (never the key itself).
_verified: dict[str, _CachedKey] = {}


def _generation_read() -> str | None:
    try:
        value = cache.get(_GENERATION_KEY)
    except Exception:  # the cache is down: no stamp, so the next request re-reads the key
        return None
    return None if value is None else str(value)


def api_key_cache_clear() -> None:
    """Forget this process's verified keys (a key or district changed)."""
    _verified.clear()


def _generation_bump() -> None:
    try:
        cache.incr(_GENERATION_KEY)
    except ValueError:  # no generation yet
        cache.add(_GENERATION_KEY, 1, timeout=None)
    except Exception:  # the cache is down: other processes notice within the TTL
        logger.warning("api key cache generation not bumped")


@receiver([post_save, post_delete], sender=ApiKey)
@receiver([post_save, post_delete], sender=District)
def _key_or_district_changed(**kwargs: Any) -> None:
    api_key_cache_clear()
    transaction.on_commit(_generation_bump)
    # The generation bump waits for the commit (earlier, another process could re-read the
    # old row); this process must not serve the old row meanwhile either.
    transaction.on_commit(api_key_cache_clear)


def _verify(plaintext: str, digest: str, generation: str | None) -> _CachedKey | None:
    api_key = api_key_verify(plaintext=plaintext)
    if api_key is None:
        return None
    if len(_verified) >= _MAX_CACHED_KEYS:
        _verified.clear()
    entry = _CachedKey(
        api_key=api_key,
        principal=api_key_principal(api_key),
        generation=generation,
        fresh_until=time.monotonic() + API_KEY_CACHE_SECONDS,
    )
    _verified[digest] = entry
    return entry


def _api_key_principal(request: Request, plaintext: str) -> ApiPrincipal | None:
    """Verify a presented key, from this process's cache when it is fresh.

    A cached key's request is counted against the rate limit in the same Redis round trip
    that reads the key generation, so a request with a cached key costs one round trip and no
    query (plus the ``last_used_at`` write once a minute).
    """
    # Imported here: throttling imports DRF's views, which import this module.
    from gateway.inbound.throttling import principal_rate_count, principal_rate_counted

    digest = key_hash(plaintext)
    entry = _verified.get(digest)
    if entry is not None and time.monotonic() < entry.fresh_until:
        counted = principal_rate_count(
            request._request, entry.principal.owner, also_read=_GENERATION_KEY
        )
        principal_rate_counted(request._request, counted)
        if counted.extra != entry.generation:
            entry = _verify(plaintext, digest, counted.extra)
    else:
        # Read the generation before the row: a change committed in between bumps it past
        # this stamp, so the next request re-reads the row.
        entry = _verify(plaintext, digest, _generation_read())
    if entry is None:
        return None
    now = timezone.now()
    if not entry.api_key.is_usable(now):
        return None
    api_key_touch(api_key=entry.api_key, now=now)
    return entry.principal


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
        principal = _api_key_principal(request, presented)
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
