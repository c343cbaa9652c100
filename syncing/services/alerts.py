"""E-mails to a district's administrators: a run failed or is held; the daily digest of
open conflicts."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse

from attendance.models import Membership, MembershipRole
from core.links import public_url
from syncing.engine.stage import content_hash
from syncing.models import Conflict, ConflictStatus, RunStatus, SyncRun


def _district_admin_emails(district_id: int) -> list[str]:
    return sorted(
        {
            email
            for email in Membership.objects.filter(
                district_id=district_id, role=MembershipRole.DISTRICT_ADMIN, user__is_active=True
            ).values_list("user__email", flat=True)
            if email
        }
    )


def admins_notify(*, district_id: int, subject: str, body: str) -> int:
    """The one place the sync engine tells administrators something (re-routed to the
    notifications app later). Returns the number of recipients."""
    recipients = _district_admin_emails(district_id)
    if not recipients:
        return 0
    send_mail(
        subject,
        body,
        getattr(settings, "DEFAULT_FROM_EMAIL", "noreply@example.org"),
        recipients,
        fail_silently=True,
    )
    return len(recipients)


def run_notify(*, run: SyncRun) -> int:
    """E-mail the district's administrators about a failed or held run (no student data)."""
    link = public_url(reverse("admin:syncing_syncrun_change", args=[run.pk]))
    if run.status == RunStatus.HELD:
        subject = f"Roster sync held for review: {run.connection}"
        body = (
            f"Sync run #{run.pk} was held before applying anything.\n\n{run.held_reason}\n\n"
            "Review its staged changes and decide (approve, approve all but deactivations, or "
            f"reject): {link}"
        )
    elif run.status == RunStatus.FAILED:
        subject = f"Roster sync failed: {run.connection}"
        body = f"Sync run #{run.pk} failed.\n\n{run.error_summary}\n\nThe run: {link}"
    else:
        return 0
    return admins_notify(district_id=run.district_id, subject=subject, body=body)


def conflicts_digest_send() -> int:
    """The daily digest: per district, how many conflicts wait for review."""
    from django.db.models import Count

    sent = 0
    for row in (
        Conflict.objects.filter(status=ConflictStatus.OPEN)
        .values("district_id")
        .annotate(n=Count("id"))
    ):
        sent += admins_notify(
            district_id=row["district_id"],
            subject=f"{row['n']} sync conflicts wait for review",
            body=(
                f"{row['n']} fields changed both in the SIS and here since the last sync. "
                "Resolve them in the admin (Roster sync → Conflicts): "
                + public_url(reverse("admin:syncing_conflict_changelist") + "?status__exact=open")
            ),
        )
    return sent


__all__ = ["content_hash"]
