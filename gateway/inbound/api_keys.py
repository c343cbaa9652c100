"""API key services: create, verify, rotate, revoke, list.

A key looks like ``sas_live_Ab12Cd34_<32 random characters>``. The first three parts are the
public ``prefix`` (stored, shown in lists, logged); the whole key is hashed with HMAC-SHA256 under
``settings.API_KEY_PEPPER``. The key is high-entropy, so a fast keyed hash is as safe as a slow
password hash and costs microseconds instead of ~100 ms a request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
import string
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from attendance.models import District
from core.errors import ApplicationError, NotFoundError
from gateway.inbound.principal import ApiPrincipal
from gateway.models import ApiKey, KeyEnvironment

logger = logging.getLogger("sas.gateway.api_keys")

KEY_NAMESPACE = "sas"
_ALPHABET = string.ascii_letters + string.digits
_ID_LENGTH = 8
_SECRET_LENGTH = 32
# last_used_at is a hint for operators, not an audit trail: one write a minute is enough.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedKey:
    """A freshly created key: ``plaintext`` exists only here and is shown once."""

    api_key: ApiKey
    plaintext: str


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def key_hash(plaintext: str) -> str:
    pepper = settings.API_KEY_PEPPER.encode()
    return hmac.new(pepper, plaintext.encode(), hashlib.sha256).hexdigest()


def looks_like_api_key(value: str) -> bool:
    """Keys and OAuth tokens both travel as ``Bearer``; our keys announce themselves."""
    return value.startswith(f"{KEY_NAMESPACE}_")


def _split(plaintext: str) -> str | None:
    """The prefix of a well-formed key, or None."""
    parts = plaintext.split("_")
    if len(parts) != 4 or parts[0] != KEY_NAMESPACE or parts[1] not in KeyEnvironment.values:
        return None
    if len(parts[2]) != _ID_LENGTH or len(parts[3]) != _SECRET_LENGTH:
        return None
    return "_".join(parts[:3])


def validate_scopes(scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(settings.API_SCOPES))
    if unknown:
        raise ApplicationError(
            f"Unknown scope(s): {', '.join(unknown)}.",
            code="unknown_scope",
            details={"allowed": sorted(settings.API_SCOPES)},
        )
    return sorted(set(scopes))


def api_key_create(
    *,
    district: District,
    name: str,
    scopes: list[str],
    expires_at: dt.datetime | None = None,
    environment: str = KeyEnvironment.LIVE,
    created_by: User | None = None,
    rotated_from: ApiKey | None = None,
) -> IssuedKey:
    if not name.strip():
        raise ApplicationError("A key needs a name.", code="name_required")
    if environment not in KeyEnvironment.values:
        raise ApplicationError("Unknown key environment.", code="unknown_environment")
    prefix = f"{KEY_NAMESPACE}_{environment}_{_random(_ID_LENGTH)}"
    plaintext = f"{prefix}_{_random(_SECRET_LENGTH)}"
    api_key = ApiKey.objects.create(
        district=district,
        name=name.strip(),
        environment=environment,
        prefix=prefix,
        key_hash=key_hash(plaintext),
        scopes=validate_scopes(scopes),
        expires_at=expires_at,
        created_by=created_by,
        rotated_from=rotated_from,
    )
    logger.info("api_key_created", extra={"prefix": prefix, "district_id": district.pk})
    return IssuedKey(api_key=api_key, plaintext=plaintext)


def api_key_rotate(
    *, api_key: ApiKey, grace: dt.timedelta, created_by: User | None = None
) -> IssuedKey:
    """Issue a successor with the same district, name, scopes and expiry, and let the old key
    work for ``grace`` more (zero: it stops now). Both keys work during the grace period so an
    integrator can deploy the new one without downtime."""
    if grace < dt.timedelta(0):
        raise ApplicationError("The grace period cannot be negative.", code="invalid_grace")
    with transaction.atomic():
        old = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if not old.is_usable():
            raise ApplicationError(
                "Only a working key can be rotated.", code="key_not_usable", status=409
            )
        issued = api_key_create(
            district=old.district,
            name=old.name,
            scopes=list(old.scopes),
            expires_at=old.expires_at,
            environment=old.environment,
            created_by=created_by,
            rotated_from=old,
        )
        ends = timezone.now() + grace
        if old.expires_at is None or old.expires_at > ends:
            old.expires_at = ends
            old._change_reason = "rotated"  # type: ignore[attr-defined]
            old.save(update_fields=["expires_at"])
    logger.info(
        "api_key_rotated",
        extra={"prefix": old.prefix, "successor": issued.api_key.prefix, "grace_s": grace.seconds},
    )
    return issued


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key._change_reason = "revoked"  # type: ignore[attr-defined]
        api_key.save(update_fields=["revoked_at"])
        logger.info("api_key_revoked", extra={"prefix": api_key.prefix})
    return api_key


def api_key_get(*, prefix: str) -> ApiKey:
    found = ApiKey.objects.select_related("district").filter(prefix=prefix).first()
    if found is None:
        raise NotFoundError("No API key with that prefix.", code="unknown_key")
    return found


def api_key_list(*, district: District | None = None) -> QuerySet[ApiKey]:
    keys = ApiKey.objects.select_related("district").order_by("district__name", "name", "id")
    return keys.filter(district=district) if district is not None else keys


def api_key_touch(*, api_key: ApiKey, now: dt.datetime) -> bool:
    """Record use at most once per minute per key, across every process: the conditional
    UPDATE lets only one writer through a given minute. Returns whether it wrote."""
    cutoff = now - LAST_USED_RESOLUTION
    if api_key.last_used_at is not None and api_key.last_used_at > cutoff:
        return False
    written = (
        ApiKey.objects.filter(pk=api_key.pk)
        .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=cutoff))
        .update(last_used_at=now)
    )
    # Whoever wrote it, the row is fresh now: a cached instance must not retry every request.
    api_key.last_used_at = now
    return bool(written)


def api_key_verify(*, plaintext: str) -> ApiKey | None:
    """The key row a presented key matches (hash compared in constant time), or None when it
    is malformed or unknown or its district is inactive. Says nothing about revocation or
    expiry: the caller checks ``is_usable()`` at the moment of use."""
    prefix = _split(plaintext)
    if prefix is None:
        return None
    api_key = (
        ApiKey.objects.filter(prefix=prefix, district__active=True)
        .only(
            "id",
            "prefix",
            "key_hash",
            "district_id",
            "scopes",
            "name",
            "expires_at",
            "revoked_at",
            "last_used_at",
        )
        .first()
    )
    if api_key is None:
        # Spend the same time as a real comparison so lookups cannot be timed.
        hmac.compare_digest(key_hash(plaintext), "0" * 64)
        return None
    if not hmac.compare_digest(key_hash(plaintext), api_key.key_hash):
        return None
    return api_key


def api_key_principal(api_key: ApiKey) -> ApiPrincipal:
    return ApiPrincipal(
        kind="api_key",
        district_id=api_key.district_id,
        scopes=frozenset(api_key.scopes),
        client_id=api_key.prefix,
        label=api_key.name,
    )


def api_key_authenticate(*, plaintext: str) -> ApiPrincipal | None:
    """The principal for a presented key, or None when it is malformed, unknown, revoked,
    expired or its district is inactive."""
    api_key = api_key_verify(plaintext=plaintext)
    if api_key is None:
        return None
    now = timezone.now()
    if not api_key.is_usable(now):
        return None
    api_key_touch(api_key=api_key, now=now)
    return api_key_principal(api_key)
