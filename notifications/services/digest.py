"""Daily digests: a guardian's due digest notifications become one message per channel."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from notifications.links import without_link_lines
from notifications.models import Category, Notification, NotificationStatus
from notifications.services.templates import message_render


def digest_build(*, first: Notification, now: dt.datetime) -> Notification:
    """Merge the guardian's due digest notifications into one digest notification."""
    parts = list(
        Notification.objects.select_for_update()
        .filter(
            guardian_id=first.guardian_id,
            status=NotificationStatus.PENDING,
            digest=True,
            deferred_until__lte=now,
        )
        .order_by("created_at", "id")
    )
    local_day = timezone.localtime(now, timezone=dt.UTC).date()
    digest_key = f"digest:{first.guardian_id}:{local_day.isoformat()}:{first.pk}"
    content: dict[str, Any] = {}
    plan: dict[str, dict[str, Any]] = {}
    for part in parts:
        for item in part.plan:
            plan.setdefault(item["channel"], item)
        for channel, entry in part.content.items():
            merged = content.setdefault(channel, {"subject": "", "bodies": []})
            # The digest ends with the one portal link; its parts' own link lines go.
            merged["bodies"].append(without_link_lines(entry["body"]))
    general = Category.objects.get(code=Category.GENERAL)
    rendered: dict[str, Any] = {}
    for channel, merged in content.items():
        separator = "\n" if channel == "sms" else "\n\n---\n\n"
        result = message_render(
            district=first.district,
            code="digest",
            channel=channel,
            language=first.language,
            context={
                "body": separator.join(merged["bodies"]),
                "district_name": first.district.name,
            },
        )
        if result is None:
            continue
        rendered[channel] = {
            "subject": result.subject,
            "body": result.body,
            "language": result.language,
        }
        if result.length is not None:
            rendered[channel]["segments"] = result.length.segments
    digest = Notification.objects.create(
        event_key=digest_key,
        district=first.district,
        guardian_id=first.guardian_id,
        category=general,
        language=first.language,
        content=rendered,
        plan=list(plan.values()),
        status=NotificationStatus.PENDING,
        explanation=[
            {
                "step": "digest",
                "ok": True,
                "detail": f"Daily digest of {len(parts)} message(s): "
                + ", ".join(p.event_key for p in parts),
            }
        ],
        summary=f"Digest of {len(parts)} message(s)",
    )
    Notification.objects.filter(pk__in=[p.pk for p in parts]).update(
        status=NotificationStatus.MERGED, merged_into=digest, updated_at=now
    )
    return digest
