"""Staff logins: a district administrator gives a colleague access (creating their login when
they have none) and takes it away. Memberships are the only way into a district's data
(``attendance.selectors.user_scope``), so these two functions are the whole life cycle."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse

from attendance.models import District, Membership, MembershipRole, School
from core.errors import ApplicationError, ConflictError
from core.links import public_url
from core.staff_passwords import password_set_link


def _normalised_email(raw: str) -> str:
    email = raw.strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise ApplicationError(
            "That is not a valid e-mail address.", code="invalid_email"
        ) from None
    return email


def staff_invite_check(
    *, district: District, email: str, role: str, school: School | None = None
) -> str:
    """What :func:`staff_invite` refuses, for a form to say so first; returns the normalised
    e-mail address. A school administrator needs a school, a district administrator none; the
    school must be the district's; the person must not have this access already."""
    email = _normalised_email(email)
    membership_role_check(district=district, role=role, school=school)
    if Membership.objects.filter(
        user__email__iexact=email, district=district, school=school
    ).exists():
        raise ConflictError(
            "This person already has access here; change their role on their membership.",
            code="already_member",
        )
    return email


def membership_role_check(*, district: District, role: str, school: School | None) -> None:
    """A role fits its place: a school administrator has a school, a district administrator
    none, and the school is the district's. Raises ``ApplicationError`` saying which."""
    if role not in MembershipRole.values:
        raise ApplicationError("Unknown role.", code="invalid_role")
    if role == MembershipRole.SCHOOL_ADMIN and school is None:
        raise ApplicationError("A school administrator needs a school.", code="school_needed")
    if role == MembershipRole.DISTRICT_ADMIN and school is not None:
        raise ApplicationError(
            "A district administrator covers the whole district: leave the school empty.",
            code="no_school",
        )
    if school is not None and school.district_id != district.pk:
        raise ApplicationError("That school is not in the district.", code="cross_district")


def staff_invite(
    *,
    district: District,
    email: str,
    role: str,
    school: School | None = None,
    invited_by: object | None = None,
) -> tuple[Membership, bool]:
    """Give the person with this e-mail address ``role`` in ``district`` (or one school of it),
    creating their staff login when they have none, and e-mail them: a new login gets a link to
    choose a password, an existing one is told what it can now see. Returns the membership and
    whether a login was created."""
    email = staff_invite_check(district=district, email=email, role=role, school=school)
    User = get_user_model()
    with transaction.atomic():
        user = User.objects.filter(email__iexact=email).order_by("pk").first()
        created = user is None
        if user is None:
            user = User(username=email, email=email, is_staff=True)
            # A password no one knows (not an unusable one: Django's reset form skips those,
            # and an expired invitation is renewed by "Forgotten your login credentials?").
            user.set_password(secrets.token_urlsafe(32))
            user.save()
        elif not user.is_staff or not user.is_active:
            user.is_staff = user.is_active = True
            user.save(update_fields=["is_staff", "is_active"])
        membership = Membership.objects.create(
            user=user, district=district, school=school, role=role
        )
        where = f"{school.name} ({district.name})" if school else district.name
        what = MembershipRole(role).label.lower()
        by = f" by {invited_by}" if invited_by else ""
        if created:
            subject = "Your access to the Student Attendance System"
            body = (
                f"You were given access to {where} as {what}{by}.\n\n"
                f"Choose your password here (the link works once, for "
                f"{settings.PASSWORD_RESET_TIMEOUT // 86400} days):\n{password_set_link(user)}\n\n"
                f"Then sign in at {public_url(reverse('admin:index'))} with this e-mail address "
                'as your username. If the link has expired, use "Forgotten your login '
                'credentials?" on the sign-in page.'
            )
        else:
            subject = "New access in the Student Attendance System"
            body = (
                f"You were given access to {where} as {what}{by}. Sign in as usual at "
                f"{public_url(reverse('admin:index'))}."
            )
        transaction.on_commit(
            lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [email])
        )
    return membership, created


def staff_access_remove(*, membership: Membership, removed_by: object | None = None) -> bool:
    """Take one membership away. A login left with no membership (and not a superuser's) is
    deactivated, so a colleague who left can no longer sign in. Returns whether it was. One's
    own access is not removed this way (another administrator does it): a slip would lock the
    district's last administrator out."""
    if removed_by is not None and membership.user_id == getattr(removed_by, "pk", None):
        raise ApplicationError(
            "You cannot remove your own access; ask another administrator.", code="own_access"
        )
    with transaction.atomic():
        user = membership.user
        membership.delete()
        if user.is_superuser or user.memberships.exists():
            return False
        user.is_active = False
        user.save(update_fields=["is_active"])
    return True
