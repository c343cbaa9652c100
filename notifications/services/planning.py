"""Planning: record a Notification per event and guardian (with its explanation), and turn due
notifications into Deliveries. Record first, then send."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from attendance.models import District, Guardian, School, Student, StudentGuardian
from core.tasks import countdown_within_visibility, enqueue_on_commit
from notifications import selectors
from notifications.models import (
    BulkNotice,
    Category,
    ContactPoint,
    DeferReason,
    Delivery,
    Notification,
    NotificationStatus,
)
from notifications.providers import provider_for_channel
from notifications.resolution import Decision, Step, guardian_decide
from notifications.services.digest import digest_build
from notifications.services.templates import message_render


@dataclass
class EventSpec:
    """One event that may notify guardians. ``context`` feeds the templates; ``texts`` (bulk
    notices) gives subject/body per language instead of a stored template's text."""

    event_key: str
    category: Category
    district: District
    school: School | None = None
    student: Student | None = None
    context: dict[str, Any] = field(default_factory=dict)
    template_code: str = ""
    not_before: dt.datetime | None = None
    bulk_notice: BulkNotice | None = None
    texts: dict[str, dict[str, str]] | None = None
    allow_digest: bool = True
    # Per-language values that override ``context`` (status words, dates written the way
    # that language writes them).
    localized: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def code(self) -> str:
        return self.template_code or self.category.code


@dataclass
class Recipient:
    guardian: Guardian
    link: StudentGuardian | None


def idempotency_key(event_key: str, guardian_id: int, channel: str) -> str:
    return hashlib.sha256(f"{event_key}|{guardian_id}|{channel}".encode()).hexdigest()


def _render_content(
    spec: EventSpec, decision: Decision, guardian: Guardian
) -> tuple[dict[str, Any], str | None]:
    context = {
        **spec.context,
        "guardian_name": f"{guardian.first_name} {guardian.last_name}".strip(),
        "district_name": spec.district.name,
    }
    content: dict[str, Any] = {}
    for channel, _cp in decision.channels:
        language = decision.language
        context = {**context, **spec.localized.get(language, {})}
        if spec.texts is not None:
            text = spec.texts.get(language) or spec.texts.get(spec.district.default_language)
            if text is None:
                language, text = next(iter(spec.texts.items()))
            else:
                language = language if language in spec.texts else spec.district.default_language
            context = {**context, "subject": text.get("subject", ""), "body": text.get("body", "")}
        rendered = message_render(
            district=spec.district,
            code=spec.code,
            channel=channel,
            language=language,
            context=context,
        )
        if rendered is None:
            return {}, f"No {channel} template for '{spec.code}'."
        entry: dict[str, Any] = {
            "subject": rendered.subject,
            "body": rendered.body,
            "language": rendered.language,
            "template": rendered.source,
        }
        if rendered.length is not None:
            entry["segments"] = rendered.length.segments
            entry["encoding"] = rendered.length.encoding
        content[channel] = entry
    return content, None


def _decide_all(
    spec: EventSpec,
    recipients: list[Recipient],
    now: dt.datetime,
    points: dict[int, list[ContactPoint]],
    prefs: dict[int, list[Any]],
) -> list[tuple[Recipient, Decision, dict[str, Any]]]:
    out = []
    for recipient in recipients:
        decision = guardian_decide(
            guardian=recipient.guardian,
            link=recipient.link,
            category=spec.category,
            district=spec.district,
            student_id=spec.student.pk if spec.student else None,
            contact_points=points.get(recipient.guardian.pk, []),
            preferences=prefs.get(recipient.guardian.pk, []),
            now=now,
            not_before=spec.not_before,
            digest_hour=settings.NOTIFY_DIGEST_HOUR,
            allow_digest=spec.allow_digest,
        )
        content: dict[str, Any] = {}
        if decision.send:
            content, problem = _render_content(spec, decision, recipient.guardian)
            if problem:
                decision.send = False
                decision.steps.append(Step("template", False, problem))
            else:
                used = {c["template"] for c in content.values()}
                langs = {c["language"] for c in content.values()}
                decision.steps.append(
                    Step(
                        "template",
                        True,
                        f"Rendered from the {', '.join(sorted(used))} template "
                        f"({', '.join(sorted(langs))}).",
                    )
                )
        out.append((recipient, decision, content))
    return out


def _notification_values(
    spec: EventSpec, decision: Decision, content: dict[str, Any]
) -> dict[str, Any]:
    return {
        "category": spec.category,
        "district": spec.district,
        "school": spec.school,
        "student": spec.student,
        "bulk_notice": spec.bulk_notice,
        "context": spec.context,
        "content": content,
        "language": decision.language,
        "plan": decision.plan(),
        "status": NotificationStatus.PENDING if decision.send else NotificationStatus.SUPPRESSED,
        "digest": decision.digest,
        "deferred_until": decision.deliver_at if decision.send else None,
        "defer_reason": decision.defer_reason if decision.send else DeferReason.NONE,
        "explanation": decision.explanation(),
        "summary": decision.summary[:300],
    }


def notifications_plan(
    *,
    spec: EventSpec,
    recipients: list[Recipient],
    now: dt.datetime | None = None,
    update_pending: bool = False,
    enqueue: bool = True,
) -> list[Notification]:
    """Record one Notification per guardian for the event (idempotent per event and guardian).

    An existing notification is left alone, except that with ``update_pending`` a still
    pending one gets the new content (more periods absent the same day). Due notifications are
    handed to the dispatch task after commit.
    """
    return notifications_plan_many(
        events=[(spec, recipients)], now=now, update_pending=update_pending, enqueue=enqueue
    )


def notifications_plan_many(
    *,
    events: list[tuple[EventSpec, list[Recipient]]],
    now: dt.datetime | None = None,
    update_pending: bool = False,
    enqueue: bool = True,
) -> list[Notification]:
    """:func:`notifications_plan` for many events at once: contact points, preferences and
    existing rows are read once for every guardian, new rows are inserted in one statement."""
    now = now or timezone.now()
    guardian_ids = {r.guardian.pk for _, recipients in events for r in recipients}
    points = selectors.guardians_contact_points(guardian_ids=guardian_ids)
    prefs = selectors.guardians_preferences(guardian_ids=guardian_ids)
    decided = [
        (spec, item)
        for spec, recipients in events
        for item in _decide_all(spec, recipients, now, points, prefs)
    ]
    result: list[Notification] = []
    with transaction.atomic():
        existing = {
            (n.event_key, n.guardian_id): n
            for n in Notification.objects.select_for_update().filter(
                event_key__in={spec.event_key for spec, _ in events},
                guardian_id__in=guardian_ids,
            )
        }
        new: list[Notification] = []
        for spec, (recipient, decision, content) in decided:
            current = existing.get((spec.event_key, recipient.guardian.pk))
            if current is None:
                values = _notification_values(spec, decision, content)
                new.append(
                    Notification(event_key=spec.event_key, guardian=recipient.guardian, **values)
                )
            elif update_pending and current.status == NotificationStatus.PENDING:
                # Keep the original schedule: a later period must not postpone the message.
                if decision.send:
                    current.content = content
                    current.context = spec.context
                    current.explanation = [*decision.explanation()]
                    current.save(update_fields=["content", "context", "explanation", "updated_at"])
                result.append(current)
            else:
                result.append(current)
        if new:
            result += _insert_new(new)
        if enqueue:
            notifications_enqueue_due(notifications=result, now=now)
    return result


def _insert_new(new: list[Notification]) -> list[Notification]:
    """Insert and return the rows with their ids; a concurrent planner that inserted some of
    them first wins (its rows are returned instead)."""
    try:
        with transaction.atomic():
            return Notification.objects.bulk_create(new, batch_size=500)
    except IntegrityError:
        Notification.objects.bulk_create(new, ignore_conflicts=True, batch_size=500)
        keys = {(n.event_key, n.guardian_id) for n in new}
        return [
            n
            for n in Notification.objects.filter(
                event_key__in={k for k, _ in keys}, guardian_id__in={g for _, g in keys}
            )
            if (n.event_key, n.guardian_id) in keys
        ]


# Notifications per dispatch task: one task plans, claims and sends a batch in a few
# statements (services.sending.deliveries_send_many).
DISPATCH_BATCH = 100


def notifications_enqueue_due(*, notifications: list[Notification], now: dt.datetime) -> None:
    """Hand pending notifications to the batch dispatch task: at once when due, with a
    countdown when due within half the broker's visibility timeout (grouped by the second they
    fall due); later ones wait for the periodic sweep."""
    from notifications import tasks

    horizon = countdown_within_visibility(10**9)
    by_countdown: dict[int, list[int]] = {}
    for notification in notifications:
        if notification.status != NotificationStatus.PENDING:
            continue
        due = notification.deferred_until or now
        wait = max(0.0, (due - now).total_seconds())
        if wait > horizon:
            continue
        by_countdown.setdefault(int(wait) + 1 if wait > 0 else 0, []).append(notification.pk)
    for countdown, ids in sorted(by_countdown.items()):
        for start in range(0, len(ids), DISPATCH_BATCH):
            batch = ids[start : start + DISPATCH_BATCH]
            if countdown == 0:
                enqueue_on_commit(tasks.notifications_dispatch_batch, batch)
            else:
                transaction.on_commit(
                    functools.partial(
                        tasks.notifications_dispatch_batch.apply_async,
                        (batch,),
                        countdown=countdown,
                    )
                )


def notifications_cancel(*, event_key: str, reason: str) -> int:
    """Cancel the event's notifications that were not sent yet (a correction arrived)."""
    cancelled = 0
    with transaction.atomic():
        for notification in Notification.objects.select_for_update().filter(
            event_key=event_key, status=NotificationStatus.PENDING
        ):
            notification.status = NotificationStatus.CANCELLED
            notification.explanation = [
                *notification.explanation,
                {"step": "cancelled", "ok": False, "detail": reason},
            ]
            notification.summary = f"Cancelled: {reason}"[:300]
            notification.save(update_fields=["status", "explanation", "summary", "updated_at"])
            cancelled += 1
    return cancelled


def _deliveries_create(notification: Notification, plan: list[dict[str, Any]]) -> list[int]:
    points = {
        cp.pk: cp for cp in ContactPoint.objects.filter(pk__in=[p["contact_point"] for p in plan])
    }
    rows = []
    for item in plan:
        cp = points.get(item["contact_point"])
        channel = item["channel"]
        content = notification.content.get(channel)
        if cp is None or content is None:
            continue
        rows.append(
            Delivery(
                notification=notification,
                channel=channel,
                contact_point=cp,
                to=cp.value,
                subject=content.get("subject", ""),
                body=content["body"],
                segments=content.get("segments", 0),
                provider=provider_for_channel(channel).name,
                is_fallback=bool(item.get("fallback")),
                idempotency_key=idempotency_key(
                    notification.event_key, notification.guardian_id, channel
                ),
            )
        )
    Delivery.objects.bulk_create(rows, ignore_conflicts=True)
    return list(
        Delivery.objects.filter(
            idempotency_key__in=[r.idempotency_key for r in rows], status="pending"
        ).values_list("pk", flat=True)
    )


def notification_dispatch(*, notification_id: int, now: dt.datetime | None = None) -> list[int]:
    """Create the deliveries of a due notification; returns the ids of deliveries to send.

    Idempotent: the notification row is locked and only a pending one is dispatched; delivery
    rows are unique per (event, guardian, channel). A digest notification pulls in every other
    due digest notification of the guardian and becomes one message.
    """
    now = now or timezone.now()
    with transaction.atomic():
        notification = (
            Notification.objects.select_for_update(of=("self",))
            .select_related("district", "category")
            .filter(pk=notification_id)
            .first()
        )
        if notification is None or notification.status != NotificationStatus.PENDING:
            return []
        if notification.deferred_until and notification.deferred_until > now:
            return []
        if notification.bulk_notice_id is not None:
            state = BulkNotice.objects.values_list("state", flat=True).get(
                pk=notification.bulk_notice_id
            )
            if state == "cancelled":
                notification.status = NotificationStatus.CANCELLED
                notification.save(update_fields=["status", "updated_at"])
                return []
        if notification.digest:
            notification = digest_build(first=notification, now=now)
        ids = _deliveries_create(notification, notification.plan)
        notification.status = NotificationStatus.DISPATCHED
        notification.save(update_fields=["status", "updated_at"])
    return ids


def notifications_dispatch_many(
    *, notification_ids: list[int], now: dt.datetime | None = None
) -> list[int]:
    """:func:`notification_dispatch` for a batch: rows other workers hold are skipped (they are
    dispatching them; anything left pending is picked up by the periodic sweep), notifications
    of a cancelled bulk notice are cancelled, digests go the single way (they merge other
    rows), the rest get their deliveries in one insert. Returns the ids of deliveries to
    send."""
    now = now or timezone.now()
    delivery_ids: list[int] = []
    single: list[int] = []
    with transaction.atomic():
        batch = list(
            Notification.objects.select_for_update(of=("self",), skip_locked=True).filter(
                pk__in=notification_ids,
                status=NotificationStatus.PENDING,
                deferred_until__lte=now,
            )
        )
        cancelled_notices = set(
            BulkNotice.objects.filter(
                pk__in={n.bulk_notice_id for n in batch if n.bulk_notice_id is not None},
                state="cancelled",
            ).values_list("pk", flat=True)
        )
        cancelled = [n.pk for n in batch if n.bulk_notice_id in cancelled_notices]
        single = [n.pk for n in batch if n.digest and n.pk not in cancelled]
        plain = [n for n in batch if not n.digest and n.pk not in cancelled]
        delivery_ids = _deliveries_create_many(plain)
        stamp = timezone.now()
        Notification.objects.filter(pk__in=[n.pk for n in plain]).update(
            status=NotificationStatus.DISPATCHED, updated_at=stamp
        )
        Notification.objects.filter(pk__in=cancelled).update(
            status=NotificationStatus.CANCELLED, updated_at=stamp
        )
    for pk in single:
        delivery_ids += notification_dispatch(notification_id=pk, now=now)
    return delivery_ids


def _deliveries_create_many(notifications: list[Notification]) -> list[int]:
    """One ``INSERT … SELECT`` builds every delivery of the batch from the notifications'
    plan and content in the database (no row passes through Python); the idempotency key is
    :func:`idempotency_key` computed by PostgreSQL, so a concurrent or repeated dispatch adds
    nothing. Returns the batch's pending deliveries. Off PostgreSQL (SQLite in ``make run``)
    :func:`_deliveries_create_many_portable` builds the same rows in Python."""
    if not notifications:
        return []
    if connection.vendor != "postgresql":
        return _deliveries_create_many_portable(notifications)
    ids = [n.pk for n in notifications]
    channels = sorted({item["channel"] for n in notifications for item in n.plan})
    names = [provider_for_channel(channel).name for channel in channels]
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Delivery._meta.db_table} (uuid, notification_id, channel, "  # noqa: S608 - table names from model metadata; values are parameters
            'contact_point_id, "to", subject, body, segments, provider, provider_message_id, '
            "status, error_code, error_message, attempts, is_fallback, idempotency_key, "
            "created_at, updated_at) "
            "SELECT gen_random_uuid(), n.id, p.channel, cp.id, cp.value, "
            "COALESCE(n.content -> p.channel ->> 'subject', ''), "
            "n.content -> p.channel ->> 'body', "
            "COALESCE((n.content -> p.channel ->> 'segments')::int, 0), prov.name, '', "
            "'pending', '', '', 0, false, "
            "encode(sha256(convert_to(n.event_key || '|' || n.guardian_id::text || '|' "
            "|| p.channel, 'UTF8')), 'hex'), %s, %s "
            f"FROM {Notification._meta.db_table} n "
            "CROSS JOIN LATERAL jsonb_to_recordset(n.plan) "
            "AS p(channel text, contact_point bigint) "
            f"JOIN {ContactPoint._meta.db_table} cp ON cp.id = p.contact_point "
            "JOIN unnest(%s::text[], %s::text[]) AS prov(channel, name) "
            "ON prov.channel = p.channel "
            "WHERE n.id = ANY(%s) AND n.content -> p.channel ->> 'body' IS NOT NULL "
            "ON CONFLICT (idempotency_key) DO NOTHING",
            [now, now, channels, names, ids],
        )
    return list(
        Delivery.objects.filter(notification_id__in=ids, status="pending").values_list(
            "pk", flat=True
        )
    )


def _deliveries_create_many_portable(notifications: list[Notification]) -> list[int]:
    """The rows of :func:`_deliveries_create_many`'s ``INSERT … SELECT``, built with the ORM:
    a plan entry whose contact point is gone or whose channel has no body makes none, and an
    existing idempotency key is skipped (``ignore_conflicts``)."""
    points = ContactPoint.objects.in_bulk(
        {item["contact_point"] for n in notifications for item in n.plan}
    )
    providers: dict[str, str] = {}
    rows = []
    for notification in notifications:
        for item in notification.plan:
            channel = item["channel"]
            point = points.get(item["contact_point"])
            content = notification.content.get(channel) or {}
            if point is None or content.get("body") is None:
                continue
            if channel not in providers:
                providers[channel] = provider_for_channel(channel).name
            rows.append(
                Delivery(
                    notification=notification,
                    channel=channel,
                    contact_point=point,
                    to=point.value,
                    subject=content.get("subject") or "",
                    body=content["body"],
                    segments=int(content.get("segments") or 0),
                    provider=providers[channel],
                    idempotency_key=idempotency_key(
                        notification.event_key, notification.guardian_id, channel
                    ),
                )
            )
    Delivery.objects.bulk_create(rows, ignore_conflicts=True)
    return list(
        Delivery.objects.filter(
            notification_id__in=[n.pk for n in notifications], status="pending"
        ).values_list("pk", flat=True)
    )


def notifications_due(*, now: dt.datetime, limit: int = 1000) -> list[int]:
    return list(
        Notification.objects.filter(status=NotificationStatus.PENDING, deferred_until__lte=now)
        .order_by("deferred_until")
        .values_list("pk", flat=True)[:limit]
    )


def recipients_for_student(*, student: Student) -> list[Recipient]:
    return [Recipient(link.guardian, link) for link in selectors.student_links(student=student)]
