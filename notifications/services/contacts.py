"""Contact points: created from SIS guardian fields, verified, opted out and back in."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from attendance.models import Guardian
from attendance.phones import phone_to_e164
from core.errors import ApplicationError
from notifications.models import (
    Channel,
    ConsentEvent,
    ConsentEventKind,
    ContactPoint,
    ContactSource,
    OptOutSource,
)

_PHONE_FIELDS = (("mobile_phone", "mobile"),)
# Home and work lines are usually landlines: they are kept for the record but only the
# mobile number is texted unless an administrator or the portal adds another.


def contact_value_normalise(*, kind: str, raw: str, region: str = "US") -> str:
    """E.164 for phones (``""`` when not a valid number), lower-cased for e-mail."""
    if kind == Channel.SMS:
        return phone_to_e164(raw, region=region)
    value = raw.strip().lower()
    return value if "@" in value else ""


def contact_points_sync_from_guardian(*, guardian: Guardian) -> list[ContactPoint]:
    """Create or refresh the guardian's SIS contact points from the Guardian fields.

    SIS-provided contacts count as verified by the district. A value that disappears from the
    SIS deactivates its contact point (its history and opt-out stay); consent is never reset.
    """
    now = timezone.now()
    wanted: dict[tuple[str, str], tuple[str, str]] = {}
    for field, label in _PHONE_FIELDS:
        value = getattr(guardian, field)
        if value:
            wanted[(Channel.SMS, value)] = (getattr(guardian, f"{field}_raw"), label)
    if guardian.email:
        wanted[(Channel.EMAIL, guardian.email.strip().lower())] = (guardian.email, "email")
    result: list[ContactPoint] = []
    with transaction.atomic():
        existing = {
            (cp.kind, cp.value): cp
            for cp in ContactPoint.objects.select_for_update().filter(guardian=guardian)
        }
        for (kind, value), (raw, label) in wanted.items():
            cp = existing.get((kind, value))
            if cp is None:
                cp = ContactPoint.objects.create(
                    guardian=guardian,
                    kind=kind,
                    value=value,
                    raw_value=raw,
                    label=label,
                    source=ContactSource.SIS,
                    verified=True,
                    verified_at=now,
                )
                # A number opted out anywhere stays opted out for this guardian too.
                _inherit_opt_out(cp)
            else:
                changed: list[str] = []
                if not cp.active:
                    cp.active, changed = True, [*changed, "active"]
                if cp.source == ContactSource.SIS and not cp.verified:
                    cp.verified, cp.verified_at = True, now
                    changed += ["verified", "verified_at"]
                if cp.raw_value != raw:
                    cp.raw_value, changed = raw, [*changed, "raw_value"]
                if changed:
                    cp.save(update_fields=[*changed, "updated_at"])
            result.append(cp)
        for key, cp in existing.items():
            if key not in wanted and cp.source == ContactSource.SIS and cp.active:
                cp.active = False
                cp.save(update_fields=["active", "updated_at"])
    return result


def _inherit_opt_out(cp: ContactPoint) -> None:
    other = (
        ContactPoint.objects.filter(kind=cp.kind, value=cp.value, opted_out=True)
        .exclude(pk=cp.pk)
        .first()
    )
    if other is not None:
        cp.opted_out, cp.opted_out_at, cp.opt_out_source = (
            True,
            other.opted_out_at,
            other.opt_out_source,
        )
        cp.save(update_fields=["opted_out", "opted_out_at", "opt_out_source", "updated_at"])


def contact_point_add(
    *, guardian: Guardian, kind: str, raw: str, source: str, verified: bool = False, label: str = ""
) -> ContactPoint:
    """Add a contact point (portal or admin). Unverified until :func:`contact_point_verify`."""
    value = contact_value_normalise(kind=kind, raw=raw, region=guardian.district.phone_region)
    if not value:
        raise ApplicationError(
            "That is not a valid phone number or e-mail address.", code="invalid_contact"
        )
    cp, created = ContactPoint.objects.get_or_create(
        guardian=guardian,
        kind=kind,
        value=value,
        defaults={
            "raw_value": raw,
            "source": source,
            "label": label,
            "verified": verified,
            "verified_at": timezone.now() if verified else None,
        },
    )
    if created:
        _inherit_opt_out(cp)
    return cp


def contact_point_verify(*, contact_point: ContactPoint, source: str = "portal") -> ContactPoint:
    with transaction.atomic():
        cp = ContactPoint.objects.select_for_update().get(pk=contact_point.pk)
        if not cp.verified:
            cp.verified, cp.verified_at = True, timezone.now()
            cp.save(update_fields=["verified", "verified_at", "updated_at"])
            ConsentEvent.objects.create(
                contact_point=cp, kind=ConsentEventKind.VERIFIED, source=source
            )
    return cp


def contacts_opt_out(
    *,
    kind: str,
    value: str,
    source: str,
    keyword: str = "",
    provider: str = "",
    at: dt.datetime | None = None,
) -> int:
    """Opt every contact point with this number/address out; audited. Returns how many changed.

    The rows are locked (``FOR UPDATE``): a send holds a share of the same lock while it talks
    to the provider, so once this commits no worker can start another message to the value.
    """
    at = at or timezone.now()
    changed = 0
    with transaction.atomic():
        points = list(
            ContactPoint.objects.select_for_update().filter(kind=kind, value=value).order_by("pk")
        )
        for cp in points:
            if not cp.opted_out:
                cp.opted_out, cp.opted_out_at, cp.opt_out_source = True, at, source
                cp.save(update_fields=["opted_out", "opted_out_at", "opt_out_source", "updated_at"])
                changed += 1
            ConsentEvent.objects.create(
                contact_point=cp,
                kind=ConsentEventKind.OPT_OUT,
                source=source,
                keyword=keyword[:32],
                provider=provider,
            )
        if not points:
            ConsentEvent.objects.create(
                kind=ConsentEventKind.OPT_OUT,
                source=source,
                keyword=keyword[:32],
                provider=provider,
                detail="no contact point has this value",
            )
    return changed


def contacts_opt_in(
    *, kind: str, value: str, source: str, keyword: str = "", provider: str = ""
) -> int:
    """Undo an opt-out (a START reply, or the guardian in the portal). Bounces and complaints
    are cleared only by an administrator or the guardian themselves, not by a keyword."""
    changed = 0
    with transaction.atomic():
        for cp in (
            ContactPoint.objects.select_for_update().filter(kind=kind, value=value).order_by("pk")
        ):
            if cp.opted_out:
                cp.opted_out, cp.opted_out_at, cp.opt_out_source = False, None, ""
                cp.save(update_fields=["opted_out", "opted_out_at", "opt_out_source", "updated_at"])
                changed += 1
            ConsentEvent.objects.create(
                contact_point=cp,
                kind=ConsentEventKind.OPT_IN,
                source=source,
                keyword=keyword[:32],
                provider=provider,
            )
    return changed


def contact_point_mark_failed(
    *, contact_point_id: int, code: str, message: str, undeliverable: bool
) -> None:
    update: dict[str, object] = {
        "last_failure_at": timezone.now(),
        "last_failure_code": code[:32],
        "last_failure_message": message[:300],
        "updated_at": timezone.now(),
    }
    if undeliverable:
        update["undeliverable"] = True
    ContactPoint.objects.filter(pk=contact_point_id).update(**update)


__all__ = [
    "OptOutSource",
    "contact_point_add",
    "contact_point_mark_failed",
    "contact_point_verify",
    "contact_points_sync_from_guardian",
    "contact_value_normalise",
    "contacts_opt_in",
    "contacts_opt_out",
]
