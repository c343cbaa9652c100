"""Writes for SIS connections, and building a connector for one.

Secrets are encrypted here and decrypted only when a connector is built; they never go into an
error message, a log line or a history row.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from attendance.models import District
from core import encryption
from core.errors import ApplicationError, ConflictError, TransientError
from sis.connectors.base import Connector, ConnectorConfig
from sis.connectors.errors import ConfigurationError, ConnectorError
from sis.connectors.registry import connector_class
from sis.connectors.tokens import CacheTokenStore
from sis.gradebook import DatabaseColumnStore
from sis.models import SISConnection, SISCredential

_CONNECTION_FIELDS = {
    "name",
    "provider",
    "vendor",
    "base_url",
    "token_url",
    "options",
    "rate_per_second",
    "max_concurrency",
    "enabled",
    "capabilities",
}


def district_get_or_create(*, name: str) -> District:
    """The district called ``name``, created (with a slug from the name) if it is new."""
    district = District.objects.filter(name=name).first()
    if district is not None:
        return district
    base = slugify(name)[:70] or "district"
    slug, n = base, 1
    while District.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return District.objects.create(name=name, slug=slug)


def _config(
    connection: SISConnection, *, client_id: str, client_secret: str, extra: dict[str, str]
) -> ConnectorConfig:
    return ConnectorConfig(
        key=f"conn-{connection.pk or 'new'}",
        base_url=connection.base_url,
        token_url=connection.token_url,
        client_id=client_id,
        client_secret=client_secret,
        vendor=connection.vendor,
        options=_options(connection),
        extra_secrets=extra,
        rate_per_second=connection.rate_per_second,
        max_concurrency=connection.max_concurrency,
        capabilities=frozenset(connection.capabilities) if connection.capabilities else None,
        token_store=CacheTokenStore(f"conn-{connection.pk}") if connection.pk else None,
        column_store=DatabaseColumnStore(connection.pk) if connection.pk else None,
    )


def _options(connection: SISConnection) -> dict[str, Any]:
    options = dict(connection.options or {})
    if connection.provider == "oneroster-csv" and not options.get("path") and connection.pk:
        # The latest bundle uploaded in the admin.
        bundle = connection.csv_bundles.order_by("-uploaded_at").first()
        if bundle is not None:
            options["path"] = bundle.file.path
    return options


def _validate(
    connection: SISConnection, *, client_id: str, client_secret: str, extra: dict[str, str]
) -> None:
    """Build the connector once: its options schema and config checks run in __init__."""
    try:
        cls = connector_class(connection.provider)
        cls(_config(connection, client_id=client_id, client_secret=client_secret, extra=extra))
    except ConfigurationError as exc:
        raise ApplicationError(exc.message, code="invalid_sis_connection") from None


def sis_connection_validate(
    *,
    connection: SISConnection,
    client_id: str | None = None,
    client_secret: str | None = None,
) -> None:
    """Check an unsaved or changed connection (options schema, URLs, vendor rules) before it
    is saved; empty secrets mean "keep the stored ones". Raises ApplicationError."""
    credential = (
        SISCredential.objects.filter(connection_id=connection.pk).first() if connection.pk else None
    )
    stored_id = encryption.decrypt(credential.client_id_encrypted) if credential else ""
    stored_secret = encryption.decrypt(credential.client_secret_encrypted) if credential else ""
    _validate(
        connection,
        client_id=client_id or stored_id,
        client_secret=client_secret or stored_secret,
        extra=credential.extra if credential else {},
    )


def sis_connection_create(
    *,
    district: District,
    name: str,
    provider: str,
    client_id: str = "",
    client_secret: str = "",
    extra_secrets: dict[str, str] | None = None,
    **fields: Any,
) -> SISConnection:
    unknown = set(fields) - _CONNECTION_FIELDS
    if unknown:
        raise ApplicationError(f"Unknown connection field(s): {', '.join(sorted(unknown))}.")
    connection = SISConnection(district=district, name=name, provider=provider, **fields)
    extra = dict(extra_secrets or {})
    _validate(connection, client_id=client_id, client_secret=client_secret, extra=extra)
    try:
        with transaction.atomic():
            connection.full_clean()
            connection.save()
            SISCredential.objects.create(
                connection=connection,
                client_id_encrypted=encryption.encrypt(client_id),
                client_secret_encrypted=encryption.encrypt(client_secret),
                extra_encrypted=encryption.encrypt(json.dumps(extra)) if extra else "",
            )
    except ValidationError as exc:
        raise _invalid(exc) from None
    except IntegrityError:
        raise ConflictError(
            f"District {district.name} already has a SIS connection named {name!r}.",
            code="sis_connection_exists",
        ) from None
    return connection


def sis_connection_update(
    *,
    connection: SISConnection,
    client_id: str | None = None,
    client_secret: str | None = None,
    extra_secrets: dict[str, str] | None = None,
    **fields: Any,
) -> SISConnection:
    """Change fields; a secret is replaced only when a new non-empty value is given."""
    unknown = set(fields) - _CONNECTION_FIELDS
    if unknown:
        raise ApplicationError(f"Unknown connection field(s): {', '.join(sorted(unknown))}.")
    for name, value in fields.items():
        setattr(connection, name, value)
    credential = SISCredential.objects.filter(connection=connection).first() or SISCredential(
        connection=connection
    )
    current_id = encryption.decrypt(credential.client_id_encrypted)
    current_secret = encryption.decrypt(credential.client_secret_encrypted)
    current_extra = json.loads(encryption.decrypt(credential.extra_encrypted) or "{}")
    new_id = client_id or current_id
    new_secret = client_secret or current_secret
    new_extra = {**current_extra, **(extra_secrets or {})}
    _validate(connection, client_id=new_id, client_secret=new_secret, extra=new_extra)
    try:
        connection.full_clean()
    except ValidationError as exc:
        raise _invalid(exc) from None
    with transaction.atomic():
        connection.save()
        credential.client_id_encrypted = encryption.encrypt(new_id)
        credential.client_secret_encrypted = encryption.encrypt(new_secret)
        credential.extra_encrypted = encryption.encrypt(json.dumps(new_extra)) if new_extra else ""
        credential.save()
    if client_id or client_secret:
        # A cached token belongs to the old credentials.
        from django.core.cache import cache

        cache.delete(CacheTokenStore(f"conn-{connection.pk}").key)
    return connection


def _invalid(exc: ValidationError) -> ApplicationError:
    messages = [f"{name}: {' '.join(errors)}" for name, errors in exc.message_dict.items()]
    if any("already exists" in m for m in messages):
        return ConflictError("; ".join(messages), code="sis_connection_exists")
    return ApplicationError("; ".join(messages), code="invalid_sis_connection")


def sis_connection_capabilities(connection: SISConnection) -> frozenset[str]:
    """What a connector built for ``connection`` may do: its provider's declared capabilities,
    narrowed by the connection's own list (empty: all of them), as the connector decides in
    ``__init__`` — without building it, so no credentials are needed (none: unknown provider)."""
    try:
        declared = frozenset(str(c) for c in connector_class(connection.provider).capabilities)
    except ConfigurationError:
        return frozenset()
    return declared & frozenset(connection.capabilities or declared)


def sis_connection_connector(connection: SISConnection) -> Connector:
    """The connector for ``connection``, with its credentials decrypted and its token shared
    through the cache. Raises ApplicationError for a bad configuration."""
    credential = SISCredential.objects.filter(connection=connection).first()
    client_id = encryption.decrypt(credential.client_id_encrypted) if credential else ""
    client_secret = encryption.decrypt(credential.client_secret_encrypted) if credential else ""
    extra = credential.extra if credential else {}
    try:
        cls = connector_class(connection.provider)
        return cls(
            _config(connection, client_id=client_id, client_secret=client_secret, extra=extra)
        )
    except ConfigurationError as exc:
        raise ApplicationError(exc.message, code="invalid_sis_connection") from None


@dataclass
class ConnectionTestResult:
    ok: bool
    counts: dict[str, int | None] = field(default_factory=dict)
    error: str = ""
    error_kind: str = ""  # authentication | permission | configuration | unreachable | other

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "counts": self.counts,
            "error": self.error,
            "error_kind": self.error_kind,
        }


def sis_connection_test(*, connection: SISConnection) -> ConnectionTestResult:
    """Authenticate and ask the SIS how many records of each entity it has."""
    from sis.connectors import errors

    try:
        connector = sis_connection_connector(connection)
        counts = connector.test()
    except ApplicationError as exc:
        return ConnectionTestResult(False, error=exc.message, error_kind="configuration")
    except errors.AuthenticationFailed as exc:
        return ConnectionTestResult(False, error=exc.message, error_kind="authentication")
    except errors.PermissionDenied as exc:
        return ConnectionTestResult(False, error=exc.message, error_kind="permission")
    except ConnectorError as exc:
        return ConnectionTestResult(False, error=exc.message, error_kind="other")
    except TransientError as exc:
        return ConnectionTestResult(
            False,
            error=f"{connection.base_url or 'The SIS'} is unreachable or failing: {exc}",
            error_kind="unreachable",
        )
    except encryption.DecryptionError as exc:
        return ConnectionTestResult(False, error=str(exc), error_kind="configuration")
    return ConnectionTestResult(True, counts=counts)


def encryption_keys_rotate(
    *, batch_size: int = 500, progress: Callable[[int], None] | None = None
) -> int:
    """Re-encrypt every stored secret under the newest key, in batches; returns how many rows
    changed. Rows already under the newest key are skipped, so a re-run is cheap."""
    changed = 0
    last_pk = 0
    while True:
        with transaction.atomic():
            batch = list(
                SISCredential.objects.select_for_update()
                .filter(pk__gt=last_pk)
                .order_by("pk")[:batch_size]
            )
            if not batch:
                break
            dirty = []
            for credential in batch:
                updated = False
                for name in SISCredential.ENCRYPTED_FIELDS:
                    value = getattr(credential, name)
                    if value and not encryption.is_current(value):
                        setattr(credential, name, encryption.rotate(value))
                        updated = True
                if updated:
                    dirty.append(credential)
            if dirty:
                SISCredential.objects.bulk_update(dirty, list(SISCredential.ENCRYPTED_FIELDS))
            changed += len(dirty)
            last_pk = batch[-1].pk
        if progress is not None:
            progress(len(batch))
    return changed


def encrypted_rows_count() -> int:
    return SISCredential.objects.count()
