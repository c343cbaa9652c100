"""Operational alerts to district administrators (sync failed or held, conflicts waiting, a
circuit breaker open). Other apps call :func:`operational_alert_send`.

They go by e-mail to users with a district-administrator membership. Alerts are not guardian
notifications (no Notification row, no preferences); the same alert key is sent at most once
per ``dedup_seconds`` so a flapping breaker does not flood inboxes.
"""

from __future__ import annotations

import logging

from django.core.cache import cache

from attendance.models import District, Membership, MembershipRole
from notifications.providers import provider_for_channel
from notifications.providers.base import OutboundMessage, PermanentSendError, TransientSendError
from notifications.services.templates import message_render

logger = logging.getLogger(__name__)

ALERT_KINDS = frozenset({"sync_failed", "sync_held", "conflicts_waiting", "breaker_open", "other"})


def district_admin_emails(*, district: District) -> list[str]:
    return sorted(
        {
            email.strip().lower()
            for email in Membership.objects.filter(
                district=district, role=MembershipRole.DISTRICT_ADMIN, user__is_active=True
            )
            .exclude(user__email="")
            .values_list("user__email", flat=True)
        }
    )


def operational_alert_send(
    *,
    district: District,
    kind: str,
    subject: str,
    body: str,
    key: str = "",
    dedup_seconds: int = 3600,
) -> int:
    """E-mail the district's administrators; returns how many messages were handed over.
    ``subject`` and ``body`` must not hold student or guardian data."""
    if kind not in ALERT_KINDS:
        raise ValueError(f"unknown alert kind {kind!r}")
    if not cache.add(f"notify-alert:{district.pk}:{kind}:{key}", 1, timeout=dedup_seconds):
        return 0
    rendered = message_render(
        district=district,
        code="operational",
        channel="email",
        language=district.default_language,
        context={"subject": subject, "body": body, "kind": kind, "district_name": district.name},
    )
    if rendered is None:
        return 0
    provider = provider_for_channel("email")
    sent = 0
    for number, address in enumerate(district_admin_emails(district=district)):
        message = OutboundMessage(
            delivery_uuid=f"alert-{district.pk}-{kind}-{number}",
            channel="email",
            to=address,
            subject=rendered.subject,
            body=rendered.body,
        )
        try:
            provider.send(message)
            sent += 1
        except (PermanentSendError, TransientSendError) as exc:
            logger.warning(
                "operational alert not sent", extra={"kind": kind, "error": type(exc).__name__}
            )
    logger.info("operational alert", extra={"kind": kind, "district_id": district.pk, "sent": sent})
    return sent
