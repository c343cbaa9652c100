"""Writes of the parent portal: sign-in challenges, signed links, preference changes, contact
points. Views and tasks call these; every change a guardian makes is written to PortalAudit.

Sending goes through the notifications app (``contact_point_message_send``), so codes are
recorded as Notification + Delivery like every other message and obey opt-outs.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from attendance.models import Guardian, Student
from attendance.phones import phone_to_e164
from core.errors import ApplicationError
from core.links import public_url
from notifications.models import (
    Category,
    Channel,
    ContactPoint,
    ContactSource,
    OptOutSource,
    Preference,
)
from notifications.services.contacts import (
    contact_point_add,
    contact_point_verify,
    contacts_opt_in,
    contacts_opt_out,
)
from notifications.services.direct import contact_point_message_send
from portal import selectors, tokens
from portal.models import (
    AuditAction,
    ContactVerification,
    LinkPurpose,
    PortalAudit,
    PortalLink,
    SignInChallenge,
)

logger = logging.getLogger(__name__)

SUPPORTED_LANGUAGES = tuple(code for code, _name in settings.LANGUAGES)


# --- Contacts as typed by a guardian --------------------------------------------------------------


@dataclass(frozen=True)
class Contact:
    kind: str  # Channel value
    value: str  # E.164 or lower-cased e-mail


def contact_parse(*, raw: str, region: str = "US") -> Contact | None:
    """A phone number or e-mail address as typed, normalised; None when it is neither."""
    raw = raw.strip()
    if "@" in raw:
        local, _sep, domain = raw.rpartition("@")
        if local and "." in domain and " " not in raw and len(raw) <= 254:
            return Contact(Channel.EMAIL, raw.lower())
        return None
    value = phone_to_e164(raw, region=region)
    return Contact(Channel.SMS, value) if value else None


def language_for(guardian: Guardian) -> str:
    """The language to write to a guardian in: their portal/notification choice, else the SIS
    language, else the district default; always one the portal speaks."""
    pref = selectors.guardian_wide_preference(guardian=guardian)
    for candidate in (
        pref.language if pref else "",
        guardian.preferred_language,
        guardian.district.default_language,
    ):
        code = (candidate or "").strip().lower()[:2]
        if code in SUPPORTED_LANGUAGES:
            return code
    return settings.LANGUAGE_CODE


# --- Sign-in --------------------------------------------------------------------------------------


def signin_start(*, contact: Contact) -> SignInChallenge:
    """Record a sign-in request and hand the lookup and sending to a task.

    The same work happens whether or not the contact is known (one insert, one enqueue), so
    neither the page nor its timing tells an attacker which contacts the roster holds.
    """
    from portal import tasks

    challenge = SignInChallenge.objects.create(
        kind=contact.kind,
        value=contact.value,
        expires_at=timezone.now() + dt.timedelta(seconds=settings.PORTAL_CODE_TTL_SECONDS),
    )
    # The notify queue: a code must not wait behind a roster sync.
    transaction.on_commit(lambda: tasks.signin_challenge_send.delay(challenge.pk))
    return challenge


def _usable_point(guardians: list[Guardian], contact: Contact) -> ContactPoint | None:
    # A roster phone or e-mail is a contact point already (notifications.receivers).
    for guardian in guardians:
        point = ContactPoint.objects.filter(
            guardian=guardian, kind=contact.kind, value=contact.value, active=True, verified=True
        ).first()
        if point is not None and point.usable:
            return point
    return None


def signin_challenge_send(*, challenge_id: int) -> bool:
    """Send the code (and, by e-mail, a sign-in link) when the contact belongs to an active
    guardian and can receive messages. Returns whether something was sent."""
    challenge = SignInChallenge.objects.filter(pk=challenge_id, used_at=None).first()
    if challenge is None or challenge.sent or challenge.expires_at <= timezone.now():
        return False
    contact = Contact(challenge.kind, challenge.value)
    guardians = selectors.guardians_for_contact(kind=contact.kind, value=contact.value)
    point = _usable_point(guardians, contact) if guardians else None
    if point is None:
        return False
    code = tokens.code_generate()
    challenge.code_hash = tokens.secret_hash(purpose="signin", row_id=challenge.pk, secret=code)
    link = ""
    if contact.kind == Channel.EMAIL:
        token, nonce = tokens.link_token_make(purpose="signin", row_id=challenge.pk)
        challenge.link_hash = tokens.secret_hash(
            purpose="signin-link", row_id=challenge.pk, secret=nonce
        )
        link = public_url(reverse("portal:signin_link", args=[token]))
    challenge.sent = True
    challenge.save(update_fields=["code_hash", "link_hash", "sent"])
    minutes = settings.PORTAL_CODE_TTL_SECONDS // 60
    with translation.override(language_for(point.guardian)):
        if contact.kind == Channel.SMS:
            body = _(
                "%(code)s is your school portal sign-in code. It expires in %(minutes)s minutes."
            ) % {
                "code": code,
                "minutes": minutes,
            }
            subject = ""
        else:
            subject = _("Your sign-in code for the family portal")
            body = _(
                "Your sign-in code is %(code)s. It expires in %(minutes)s minutes.\n\n"
                "Or open this link to sign in (it works once):\n%(link)s\n\n"
                "If you did not ask to sign in, you can ignore this message."
            ) % {"code": code, "minutes": minutes, "link": link}
    contact_point_message_send(contact_point=point, body=body, subject=subject, purpose="signin")
    return True


class CodeResult(enum.Enum):
    OK = "ok"
    WRONG = "wrong"
    EXPIRED = "expired"  # expired, used, or too many attempts: ask for a new code


def signin_code_check(*, challenge_public_id: str, code: str) -> tuple[CodeResult, list[int], str]:
    """Check a typed code; on success return the guardian ids the contact signs in as."""
    code = "".join(ch for ch in code if ch.isdigit())
    with transaction.atomic():
        challenge = (
            SignInChallenge.objects.select_for_update()
            .filter(public_id=challenge_public_id)
            .first()
        )
        if challenge is None:
            return CodeResult.EXPIRED, [], ""
        if (
            challenge.used_at is not None
            or challenge.expires_at <= timezone.now()
            or challenge.attempts >= settings.PORTAL_CODE_MAX_ATTEMPTS
        ):
            return CodeResult.EXPIRED, [], ""
        challenge.attempts += 1
        ok = tokens.secret_matches(
            purpose="signin", row_id=challenge.pk, secret=code, stored=challenge.code_hash
        )
        if ok:
            challenge.used_at = timezone.now()
        challenge.save(update_fields=["attempts", "used_at"])
    if not ok:
        if challenge.attempts >= settings.PORTAL_CODE_MAX_ATTEMPTS:
            return CodeResult.EXPIRED, [], ""
        return CodeResult.WRONG, [], ""
    guardians = selectors.guardians_for_contact(kind=challenge.kind, value=challenge.value)
    return CodeResult.OK, [g.pk for g in guardians], f"code:{challenge.kind}"


def signin_link_use(*, token: str) -> tuple[list[int], str] | None:
    """Use a sign-in link from an e-mail (once, before it expires)."""
    parsed = tokens.link_token_parse(purpose="signin", token=token)
    if parsed is None:
        return None
    row_id, nonce = parsed
    with transaction.atomic():
        challenge = SignInChallenge.objects.select_for_update().filter(pk=row_id).first()
        if (
            challenge is None
            or challenge.used_at is not None
            or challenge.expires_at <= timezone.now()
            or not tokens.secret_matches(
                purpose="signin-link", row_id=row_id, secret=nonce, stored=challenge.link_hash
            )
        ):
            return None
        challenge.used_at = timezone.now()
        challenge.save(update_fields=["used_at"])
    guardians = selectors.guardians_for_contact(kind=challenge.kind, value=challenge.value)
    return [g.pk for g in guardians], "link:email"


def portal_link_for(guardian: Guardian) -> str:
    """A link for a message to ``guardian`` that opens the portal signed in as them: single
    use, expiring after ``PORTAL_MESSAGE_LINK_TTL_HOURS``, built from ``PUBLIC_BASE_URL``."""
    return portal_links_for([guardian.pk])[0]


def portal_links_for(guardian_ids: Sequence[int]) -> list[str]:
    """:func:`portal_link_for` for many messages at once (one link each, in order): what the
    notifications app mints as a batch of messages is sent (notifications.links)."""
    if not guardian_ids:
        return []
    expires = timezone.now() + dt.timedelta(hours=settings.PORTAL_MESSAGE_LINK_TTL_HOURS)
    with transaction.atomic():
        links = PortalLink.objects.bulk_create(
            [
                PortalLink(
                    guardian_id=guardian_id,
                    purpose=LinkPurpose.MESSAGE,
                    nonce_hash="",
                    expires_at=expires,
                )
                for guardian_id in guardian_ids
            ]
        )
        urls = []
        for link in links:
            token, nonce = tokens.link_token_make(purpose="message", row_id=link.pk)
            link.nonce_hash = tokens.secret_hash(
                purpose="message-link", row_id=link.pk, secret=nonce
            )
            urls.append(public_url(reverse("portal:message_link", args=[token])))
        PortalLink.objects.bulk_update(links, ["nonce_hash"])
    return urls


def portal_link_length() -> int:
    """How long a message link is (its row id given ten digits)."""
    token, _ = tokens.link_token_make(purpose="message", row_id=10**9)
    return len(public_url(reverse("portal:message_link", args=[token])))


def portal_link_use(*, token: str) -> int | None:
    """Use a link from a message: the guardian id, or None when forged, used or expired."""
    parsed = tokens.link_token_parse(purpose="message", token=token)
    if parsed is None:
        return None
    row_id, nonce = parsed
    with transaction.atomic():
        link = PortalLink.objects.select_for_update().filter(pk=row_id).first()
        if (
            link is None
            or link.used_at is not None
            or link.expires_at <= timezone.now()
            or not tokens.secret_matches(
                purpose="message-link", row_id=row_id, secret=nonce, stored=link.nonce_hash
            )
            or not link.guardian.active
        ):
            return None
        link.used_at = timezone.now()
        link.save(update_fields=["used_at"])
    return link.guardian_id


def portal_records_purge(*, now: dt.datetime | None = None) -> int:
    """Delete expired challenges, links and verifications (they hold contact values)."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=1)
    deleted = SignInChallenge.objects.filter(expires_at__lt=cutoff).delete()[0]
    deleted += PortalLink.objects.filter(expires_at__lt=cutoff).delete()[0]
    deleted += ContactVerification.objects.filter(expires_at__lt=cutoff).delete()[0]
    return deleted


def audit_record(
    *,
    guardian: Guardian,
    action: str,
    via: str,
    student: Student | None = None,
    category: str = "",
    contact_point: ContactPoint | None = None,
    changes: dict[str, Any] | None = None,
) -> PortalAudit:
    return PortalAudit.objects.create(
        guardian=guardian,
        action=action,
        via=via,
        student=student,
        category=category,
        contact_point=contact_point,
        changes=changes or {},
    )


# --- Preferences ----------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.time):
        return value.strftime("%H:%M")
    return value


def _preference_update(
    *,
    guardian: Guardian,
    student: Student | None,
    category: Category | None,
    values: dict[str, Any],
) -> dict[str, list[Any]]:
    with transaction.atomic():
        pref, _created = Preference.objects.select_for_update().get_or_create(
            guardian=guardian, student=student, category=category
        )
        changes: dict[str, list[Any]] = {}
        for name, new in values.items():
            old = getattr(pref, name)
            if old != new:
                changes[name] = [_jsonable(old), _jsonable(new)]
                setattr(pref, name, new)
        if changes:
            pref.full_clean()
            pref.save()
    return changes


def child_channels_set(
    *, guardian: Guardian, student: Student, channels_by_category: dict[str, list[str]], via: str
) -> int:
    """Set the channels per category for one child; critical categories are left alone (they
    are always on). Returns how many categories changed; each change is audited."""
    if selectors.guardian_child(guardian=guardian, student_id=student.pk) is None:
        raise ApplicationError("You cannot change settings for this student.", code="not_allowed")
    changed = 0
    for category in selectors.portal_categories():
        if category.critical or category.code not in channels_by_category:
            continue
        channels = [c for c in selectors.CHANNELS if c in channels_by_category[category.code]]
        changes = _preference_update(
            guardian=guardian,
            student=student,
            category=category,
            values={"channels": channels, "enabled": bool(channels)},
        )
        if changes:
            changed += 1
            audit_record(
                guardian=guardian,
                action=AuditAction.PREFERENCE,
                via=via,
                student=student,
                category=category.code,
                changes=changes,
            )
    return changed


def guardian_settings_set(
    *,
    guardian: Guardian,
    delivery_mode: str,
    quiet_start: dt.time | None,
    quiet_end: dt.time | None,
    timezone_name: str,
    language: str,
    via: str,
) -> dict[str, list[Any]]:
    """Digest, quiet hours, time zone and message language for all the guardian's children."""
    if (quiet_start is None) != (quiet_end is None):
        raise ApplicationError("Give both ends of the quiet hours, or neither.", code="invalid")
    changes = _preference_update(
        guardian=guardian,
        student=None,
        category=None,
        values={
            "delivery_mode": delivery_mode,
            "quiet_start": quiet_start,
            "quiet_end": quiet_end,
            "timezone": timezone_name,
            "language": language,
        },
    )
    if changes:
        audit_record(guardian=guardian, action=AuditAction.PREFERENCE, via=via, changes=changes)
    return changes


# --- Contact points -------------------------------------------------------------------------------


def contact_verification_send(*, contact_point: ContactPoint) -> ContactVerification:
    """Send a fresh code to an unverified contact point (earlier codes stop working)."""
    now = timezone.now()
    ContactVerification.objects.filter(contact_point=contact_point, used_at=None).update(
        used_at=now
    )
    verification = ContactVerification.objects.create(
        contact_point=contact_point,
        code_hash="",
        expires_at=now + dt.timedelta(seconds=settings.PORTAL_CODE_TTL_SECONDS),
    )
    code = tokens.code_generate()
    verification.code_hash = tokens.secret_hash(
        purpose="verify", row_id=verification.pk, secret=code
    )
    verification.save(update_fields=["code_hash"])
    minutes = settings.PORTAL_CODE_TTL_SECONDS // 60
    with translation.override(language_for(contact_point.guardian)):
        body = _(
            "%(code)s is your code to confirm this contact for school messages. "
            "It expires in %(minutes)s minutes."
        ) % {
            "code": code,
            "minutes": minutes,
        }
        subject = _("Confirm your e-mail address") if contact_point.kind == Channel.EMAIL else ""
    contact_point_message_send(
        contact_point=contact_point, body=body, subject=subject, purpose="verify"
    )
    return verification


def portal_contact_add(*, guardian: Guardian, raw: str, via: str) -> ContactPoint:
    """Add a phone or e-mail (unverified) and send it a code."""
    contact = contact_parse(raw=raw, region=guardian.district.phone_region)
    if contact is None:
        raise ApplicationError(
            "Enter a mobile phone number or an e-mail address.", code="invalid_contact"
        )
    point = contact_point_add(
        guardian=guardian, kind=contact.kind, raw=raw.strip(), source=ContactSource.PORTAL
    )
    if not point.active:
        point.active = True
        point.save(update_fields=["active", "updated_at"])
    audit_record(
        guardian=guardian,
        action=AuditAction.CONTACT_ADD,
        via=via,
        contact_point=point,
        changes={"kind": [None, point.kind]},
    )
    if not point.verified and not point.opted_out:
        contact_verification_send(contact_point=point)
    return point


def portal_contact_stop(*, guardian: Guardian, contact_point: ContactPoint, via: str) -> None:
    """The guardian stops every message to one of their numbers or addresses: consent revoked
    in the portal, as by a STOP reply or a call to the school. Every contact point of the
    district with that value is opted out (audited as consent, source ``portal``), and the
    portal audit says who did it."""
    _portal_consent(guardian=guardian, contact_point=contact_point, via=via, stop=True)


# Opt-outs a guardian may undo in the portal: their own, and the ones the school office recorded
# for them. A STOP reply is the carrier's (START undoes it); bounces and complaints the office's.
PORTAL_RESUMABLE = frozenset({OptOutSource.PORTAL, OptOutSource.ADMIN})


def portal_contact_resume(*, guardian: Guardian, contact_point: ContactPoint, via: str) -> None:
    """Undo :func:`portal_contact_stop` (or an opt-out the school office recorded). Refused
    with ``ApplicationError``: a STOP reply (code ``stop_needs_start``: only a START undoes
    it), a bounce or a complaint (code ``office_only``)."""
    if contact_point.opt_out_source not in PORTAL_RESUMABLE | {OptOutSource.STOP}:
        raise ApplicationError(
            "Only the school office can turn messages back on here.", code="office_only"
        )
    _portal_consent(guardian=guardian, contact_point=contact_point, via=via, stop=False)


def _portal_consent(
    *, guardian: Guardian, contact_point: ContactPoint, via: str, stop: bool
) -> None:
    change = contacts_opt_out if stop else contacts_opt_in
    change(
        kind=contact_point.kind,
        value=contact_point.value,
        source=OptOutSource.PORTAL,
        district_id=guardian.district_id,
        detail="asked in the parent portal",
    )
    audit_record(
        guardian=guardian,
        action=AuditAction.CONTACT_STOP if stop else AuditAction.CONTACT_RESUME,
        via=via,
        contact_point=contact_point,
        changes={"opted_out": [contact_point.opted_out, stop]},
    )


def portal_contact_verify(
    *, guardian: Guardian, contact_point_id: int, code: str, via: str
) -> CodeResult:
    code = "".join(ch for ch in code if ch.isdigit())
    with transaction.atomic():
        verification = (
            ContactVerification.objects.select_for_update()
            .filter(
                contact_point_id=contact_point_id, contact_point__guardian=guardian, used_at=None
            )
            .order_by("-created_at")
            .first()
        )
        if (
            verification is None
            or verification.expires_at <= timezone.now()
            or verification.attempts >= settings.PORTAL_CODE_MAX_ATTEMPTS
        ):
            return CodeResult.EXPIRED
        verification.attempts += 1
        ok = tokens.secret_matches(
            purpose="verify", row_id=verification.pk, secret=code, stored=verification.code_hash
        )
        if ok:
            verification.used_at = timezone.now()
        verification.save(update_fields=["attempts", "used_at"])
    if not ok:
        if verification.attempts >= settings.PORTAL_CODE_MAX_ATTEMPTS:
            return CodeResult.EXPIRED
        return CodeResult.WRONG
    point = contact_point_verify(contact_point=verification.contact_point, source="portal")
    audit_record(
        guardian=guardian,
        action=AuditAction.CONTACT_VERIFY,
        via=via,
        contact_point=point,
        changes={"verified": [False, True]},
    )
    return CodeResult.OK
