"""Contact points: created from SIS guardian fields, verified, opted out and back in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from attendance import bulk
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


def _roster_contacts(row: dict[str, Any]) -> dict[tuple[str, str], tuple[str, str]]:
    """(kind, value) → (raw value, label) of one guardian's roster fields."""
    wanted: dict[tuple[str, str], tuple[str, str]] = {}
    for field, label in _PHONE_FIELDS:
        if row[field]:
            wanted[(Channel.SMS, row[field])] = (row[f"{field}_raw"], label)
    email = contact_value_normalise(kind=Channel.EMAIL, raw=row["email"] or "")
    if email:
        wanted[(Channel.EMAIL, email)] = (row["email"], "email")
    return wanted


def contact_points_sync_from_guardians(*, guardian_ids: Iterable[int]) -> int:
    """Create or refresh the SIS contact points of these guardians from their roster fields
    (the mobile number, the e-mail address); returns how many contact points changed.

    Called for every guardian a roster sync or an edit writes (``notifications.receivers``), in
    the writing transaction, so a synced guardian can be notified as soon as the sync commits
    and a number the SIS replaced is no longer texted. SIS-provided contacts count as verified
    by the district. A value that disappears from the roster deactivates its contact point
    (its history and opt-out stay); consent is never reset, and a new point for a number or
    address opted out elsewhere starts opted out (a carrier STOP blocks it for every sender).
    Contact points a guardian or an administrator added are left alone. Set-based: a few
    statements for any number of guardians."""
    ids = sorted(set(guardian_ids))
    if not ids:
        return 0
    now = timezone.now()
    fields = ["id", "email", *(f for name, _ in _PHONE_FIELDS for f in (name, f"{name}_raw"))]
    wanted = {
        row["id"]: _roster_contacts(row)
        for row in Guardian.objects.filter(pk__in=ids).values(*fields)
    }
    existing: dict[tuple[int, str, str], Any] = {
        (row["guardian_id"], row["kind"], row["value"]): row
        for row in ContactPoint.objects.filter(guardian_id__in=ids).values(
            "id",
            "guardian_id",
            "kind",
            "value",
            "raw_value",
            "source",
            "active",
            "verified",
            "verified_at",
        )
    }
    created: list[dict[str, Any]] = []
    refreshed: list[dict[str, Any]] = []
    for guardian_id, contacts in wanted.items():
        for (kind, value), (raw, label) in contacts.items():
            point = existing.get((guardian_id, kind, value))
            if point is None:
                created.append(
                    {
                        "guardian_id": guardian_id,
                        "kind": kind,
                        "value": value,
                        "raw_value": raw,
                        "label": label,
                        "source": ContactSource.SIS,
                        "verified": True,
                        "verified_at": now,
                    }
                )
                continue
            sis = point["source"] == ContactSource.SIS
            if not point["active"] or (sis and not point["verified"]) or point["raw_value"] != raw:
                refreshed.append(
                    {
                        "id": point["id"],
                        "active": True,
                        "verified": point["verified"] or sis,
                        "verified_at": now
                        if sis and not point["verified"]
                        else point["verified_at"],
                        "raw_value": raw,
                    }
                )
    gone = [
        point["id"]
        for (guardian_id, kind, value), point in existing.items()
        if point["source"] == ContactSource.SIS
        and point["active"]
        and (kind, value) not in wanted.get(guardian_id, {})
    ]
    _inherit_opt_outs(created)
    with transaction.atomic():
        # A point added meanwhile (the portal, the same guardian) is left to its writer.
        changed = len(bulk.bulk_insert(ContactPoint, created, ignore_conflicts=True))
        changed += len(
            bulk.bulk_update(
                ContactPoint, refreshed, fields=["active", "verified", "verified_at", "raw_value"]
            )
        )
        if gone:
            changed += ContactPoint.objects.filter(pk__in=gone).update(active=False, updated_at=now)
    return changed


def _inherit_opt_outs(points: list[dict[str, Any]]) -> None:
    """A new contact point for a number or address opted out on another point starts opted
    out too (with that opt-out's time and source)."""
    if not points:
        return
    opted_out: dict[tuple[str, str], Any] = {}
    for kind in {p["kind"] for p in points}:
        # By kind: the (kind, value) index then finds each value (by value alone, PostgreSQL
        # walked the whole index once per value: seconds per thousand guardians).
        for row in (
            ContactPoint.objects.filter(
                kind=kind, value__in={p["value"] for p in points if p["kind"] == kind}
            )
            .filter(opted_out=True)
            .order_by("opted_out_at")  # the latest opt-out of a value wins
            .values("kind", "value", "opted_out_at", "opt_out_source")
        ):
            opted_out[(row["kind"], row["value"])] = row
    for point in points:
        other = opted_out.get((point["kind"], point["value"]))
        if other is not None:
            point["opted_out"] = True
            point["opted_out_at"] = other["opted_out_at"]
            point["opt_out_source"] = other["opt_out_source"]


def _inherit_opt_out(cp: ContactPoint) -> None:
    """:func:`_inherit_opt_outs` for one saved contact point."""
    point: dict[str, Any] = {"kind": cp.kind, "value": cp.value}
    _inherit_opt_outs([point])
    if point.get("opted_out"):
        cp.opted_out, cp.opted_out_at, cp.opt_out_source = (
            True,
            point["opted_out_at"],
            point["opt_out_source"],
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


def contact_point_verify(
    *, contact_point: ContactPoint, source: str = "portal", detail: str = ""
) -> ContactPoint:
    """Mark a contact point verified (its code was entered in the portal, or an administrator
    confirmed it with the guardian); audited once."""
    with transaction.atomic():
        cp = ContactPoint.objects.select_for_update().get(pk=contact_point.pk)
        if not cp.verified:
            cp.verified, cp.verified_at = True, timezone.now()
            cp.save(update_fields=["verified", "verified_at", "updated_at"])
            ConsentEvent.objects.create(
                contact_point=cp, kind=ConsentEventKind.VERIFIED, source=source, detail=detail
            )
    return cp


def contact_point_mark_deliverable(*, contact_point: ContactPoint) -> bool:
    """Use a point a permanent failure marked undeliverable again (the guardian says the
    mailbox or phone works now); its last failure stays on record. Whether it changed."""
    return bool(
        ContactPoint.objects.filter(pk=contact_point.pk, undeliverable=True).update(
            undeliverable=False, updated_at=timezone.now()
        )
    )


def contacts_opt_out(
    *,
    kind: str,
    value: str,
    source: str,
    keyword: str = "",
    provider: str = "",
    detail: str = "",
    district_id: int | None = None,
    at: dt.datetime | None = None,
) -> int:
    """Opt every contact point with this number/address out; audited (``detail``: who asked,
    when it was not the guardian's own reply). ``district_id`` limits it to that district's
    guardians: a request made to one district (a parent who phoned the school) is not a fact
    about the number, as a carrier STOP or a bounce is. Returns how many changed.

    The rows are locked (``FOR UPDATE``): a send holds a share of the same lock while it talks
    to the provider, so once this commits no worker can start another message to the value.
    """
    at = at or timezone.now()
    changed = 0
    with transaction.atomic():
        points = list(_points_locked(kind=kind, value=value, district_id=district_id))
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
                detail=detail[:300],
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


def _points_locked(*, kind: str, value: str, district_id: int | None) -> QuerySet[ContactPoint]:
    """The contact points with this value (of one district's guardians, when given), locked
    ``FOR UPDATE`` in id order."""
    # Only the contact points: the guardians a district filter joins are not locked.
    points = ContactPoint.objects.select_for_update(of=("self",)).filter(kind=kind, value=value)
    if district_id is not None:
        points = points.filter(guardian__district_id=district_id)
    return points.order_by("pk")


def contacts_opt_in(
    *,
    kind: str,
    value: str,
    source: str,
    keyword: str = "",
    provider: str = "",
    detail: str = "",
    district_id: int | None = None,
) -> int:
    """Undo an opt-out (a START reply; the guardian in the portal, or an administrator they
    asked; ``district_id`` as for :func:`contacts_opt_out`). Bounces and complaints are cleared
    only by an administrator or the guardian themselves, not by a keyword. A STOP reply is
    undone only by a START from the same phone: the carrier keeps blocking the number whatever
    we record, so an opt-in from the portal or the admin is refused (``ApplicationError``) and
    changes nothing."""
    changed = 0
    with transaction.atomic():
        points = list(_points_locked(kind=kind, value=value, district_id=district_id))
        stopped = ContactPoint.objects.filter(
            kind=kind, value=value, opted_out=True, opt_out_source=OptOutSource.STOP
        )
        if source in (OptOutSource.ADMIN, OptOutSource.PORTAL) and stopped.exists():
            raise ApplicationError(
                "This number replied STOP. Only the guardian can undo that, by texting START "
                "to the district's number; the carrier blocks our texts until then.",
                code="stop_needs_start",
            )
        for cp in points:
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
                detail=detail[:300],
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
    "contact_point_mark_deliverable",
    "contact_point_mark_failed",
    "contact_point_verify",
    "contact_points_sync_from_guardians",
    "contact_value_normalise",
    "contacts_opt_in",
    "contacts_opt_out",
]
