"""Sending deliveries, each once: claimed, handed to the provider in groups, recorded."""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.urls import reverse
from django.utils import timezone

from core.links import public_url
from notifications.links import links_for, with_link
from notifications.models import (
    STATUS_RANK,
    BulkNotice,
    ContactPoint,
    Delivery,
    DeliveryEvent,
    DeliveryStatus,
    Notification,
    NotificationStatus,
)
from notifications.providers import get_provider
from notifications.providers.base import (
    OutboundMessage,
    PermanentSendError,
    SendResult,
    TransientSendError,
)
from notifications.services.fallback import contact_problem_record
from notifications.services.receipts import notification_rollup, notifications_rollup

logger = logging.getLogger(__name__)
_SENDABLE = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)


@dataclass
class SendOutcome:
    status: str
    retry_in: float | None = None
    follow_up: list[int] = field(default_factory=list)
    delivery_id: int | None = None


# Deliveries sent under one transaction (one contact-point lock statement, one status update,
# one event insert, one commit). A group also ends after GROUP_SECONDS, so an opt-out waiting
# for the contact point locks (a STOP reply) never waits long, even behind a paced sender.
SEND_GROUP = 50
GROUP_SECONDS = 2.0
# How late a retry, or how old a pending delivery, must be before the sweep takes it over.
SWEEP_GRACE = dt.timedelta(minutes=5)


def status_callback_url(delivery: Delivery) -> str:
    return public_url(
        reverse("notifications:twilio_status", kwargs={"delivery_uuid": delivery.uuid})
    )


def _backoff(attempt: int, retry_after: float | None) -> float:
    base = min(1800.0, 15.0 * 2 ** max(0, attempt - 1))
    wait = random.uniform(base / 2, base)  # noqa: S311 - jitter, not security
    return max(wait, retry_after or 0.0)


def delivery_send(*, delivery_id: int) -> SendOutcome:
    """Send one delivery at most once.

    1. Claim: only a pending or retrying delivery moves to "sending", in one committed
       statement before any outside call (record first, then send). Concurrent or duplicated
       workers find "sending" and stop. Deliveries of a cancelled notification or bulk notice
       are cancelled instead.
    2. Send while holding a lock on the contact point (``FOR NO KEY UPDATE``): an opt-out
       waits for in-flight sends and every later send sees it, so after a STOP is recorded no
       worker starts another message to that number.
    3. Record the outcome; transient errors come back as ``retry_in`` for the task to retry;
       permanent ones stop, update the contact point and may fall back to the other channel.
    """
    outcomes = deliveries_send_many(delivery_ids=[delivery_id])
    if outcomes:
        return outcomes[0]
    status = Delivery.objects.filter(pk=delivery_id).values_list("status", flat=True).first()
    return SendOutcome(status or "missing", delivery_id=delivery_id)


def deliveries_send_many(*, delivery_ids: list[int]) -> list[SendOutcome]:
    """:func:`delivery_send` for a batch, with the same guarantees and a few statements per
    batch instead of several per delivery: one statement cancels what may no longer be sent,
    one claims the rest (``UPDATE … RETURNING``: concurrent batches never claim the same row),
    then groups of :data:`SEND_GROUP` are sent under their contact-point locks and recorded in
    bulk, and the notifications are rolled up once. Deliveries another worker claimed are
    left out of the returned outcomes."""
    if not delivery_ids:
        return []
    outcomes = _cancel_unsendable(delivery_ids)
    claimed = _claim(delivery_ids)
    # The notification (large JSON columns) is loaded only by the rare fallback path.
    deliveries = list(Delivery.objects.filter(pk__in=claimed).order_by("pk"))
    unsent = {d.pk for d in deliveries}  # claimed and not yet handed to a provider
    try:
        while deliveries:
            done, group_outcomes = _send_group(deliveries[:SEND_GROUP], unsent)
            outcomes += group_outcomes
            deliveries = deliveries[done:]
    except BaseException:
        # A bug or a lost connection mid-batch: what no provider has seen goes back to
        # "retrying" for the sweep (deliveries_due); the delivery in flight stays "sending",
        # since the provider may have it, and is reconciled.
        _release(unsent)
        raise
    notifications_rollup(notification_ids={o.notification_id for o in outcomes})
    return [o.outcome for o in outcomes]


def _release(delivery_ids: set[int]) -> None:
    if not delivery_ids:
        return
    now = timezone.now()
    try:
        Delivery.objects.filter(pk__in=delivery_ids, status=DeliveryStatus.SENDING).update(
            status=DeliveryStatus.RETRYING, next_attempt_at=now, updated_at=now
        )
    except Exception:
        # The original error matters more; these stay "sending" and are reconciled.
        logger.warning("claimed deliveries not released", extra={"deliveries": len(delivery_ids)})


def deliveries_due(*, now: dt.datetime, limit: int = 1000) -> list[int]:
    """Deliveries a lost task left behind (for the periodic sweep): retrying ones well past
    their next attempt (their Celery retry should have run) and pending ones older than a few
    minutes (their dispatch task stopped). A retry running at the same time is harmless: the
    claim lets one of them send."""
    return list(
        Delivery.objects.filter(
            Q(status=DeliveryStatus.RETRYING, next_attempt_at__lte=now - SWEEP_GRACE)
            | Q(status=DeliveryStatus.PENDING, updated_at__lte=now - SWEEP_GRACE)
        )
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )


@dataclass
class _Outcome:
    outcome: SendOutcome
    notification_id: int


_DELIVERY = Delivery._meta.db_table
_NOTIFICATION = Notification._meta.db_table
# Neither the notification nor its bulk notice was cancelled (checked in the claim itself, so
# a cancel that commits before the claim always wins). Table names come from model metadata
# and values are always parameters, hence the S608 exemptions in this module.
_NOT_CANCELLED = (
    "n.status <> 'cancelled' AND (n.bulk_notice_id IS NULL OR NOT EXISTS "  # noqa: S608
    f"(SELECT 1 FROM {BulkNotice._meta.db_table} b WHERE b.id = n.bulk_notice_id "
    "AND b.state = 'cancelled'))"
)
_CANCEL_DETAIL = "Cancelled before sending."


def _cancelled_q() -> Q:
    """:data:`_NOT_CANCELLED` negated, for the ORM twins off PostgreSQL."""
    return Q(notification__status=NotificationStatus.CANCELLED) | Q(
        notification__bulk_notice__state="cancelled"
    )


def _cancel_unsendable(delivery_ids: list[int]) -> list[_Outcome]:
    """Cancel the sendable deliveries whose notification or bulk notice was cancelled."""
    if connection.vendor != "postgresql":
        return _cancel_unsendable_portable(delivery_ids)
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_DELIVERY} d SET status = %s, error_code = 'cancelled', "  # noqa: S608 - as above
            "error_message = %s, next_attempt_at = NULL, updated_at = %s "
            f"FROM {_NOTIFICATION} n "
            f"WHERE n.id = d.notification_id AND d.id = ANY(%s) AND d.status = ANY(%s) "
            f"AND NOT ({_NOT_CANCELLED}) RETURNING d.id, d.notification_id",
            [DeliveryStatus.CANCELLED, _CANCEL_DETAIL, now, delivery_ids, list(_SENDABLE)],
        )
        rows = cursor.fetchall()
        _cancel_events(rows)
    return [_Outcome(SendOutcome(DeliveryStatus.CANCELLED, delivery_id=pk), n) for pk, n in rows]


def _cancel_events(rows: list[tuple[int, int]]) -> None:
    DeliveryEvent.objects.bulk_create(
        DeliveryEvent(
            delivery_id=pk,
            status=DeliveryStatus.CANCELLED,
            error_code="cancelled",
            source="send",
            raw={"detail": _CANCEL_DETAIL},
        )
        for pk, _ in rows
    )


# The ORM twins below (SQLite in ``make run``) read, then write the rows read, in one
# transaction. That is as safe as PostgreSQL's single ``UPDATE … RETURNING``: SQLite runs one
# write transaction at a time and its transactions are serializable (``make run`` begins them
# IMMEDIATE, so a second claimer waits at BEGIN and then sees the first one's "sending").


def _cancel_unsendable_portable(delivery_ids: list[int]) -> list[_Outcome]:
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            Delivery.objects.filter(_cancelled_q(), pk__in=delivery_ids, status__in=_SENDABLE)
            .order_by("pk")
            .values_list("pk", "notification_id")
        )
        Delivery.objects.filter(pk__in=[pk for pk, _ in rows]).update(
            status=DeliveryStatus.CANCELLED,
            error_code="cancelled",
            error_message=_CANCEL_DETAIL,
            next_attempt_at=None,
            updated_at=now,
        )
        _cancel_events(rows)
    return [_Outcome(SendOutcome(DeliveryStatus.CANCELLED, delivery_id=pk), n) for pk, n in rows]


def _claim(delivery_ids: list[int]) -> list[int]:
    if connection.vendor != "postgresql":
        return _claim_portable(delivery_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_DELIVERY} d SET status = %s, attempts = d.attempts + 1, "  # noqa: S608 - as above
            f"updated_at = %s FROM {_NOTIFICATION} n "
            f"WHERE n.id = d.notification_id AND d.id = ANY(%s) AND d.status = ANY(%s) "
            f"AND {_NOT_CANCELLED} RETURNING d.id",
            [DeliveryStatus.SENDING, timezone.now(), delivery_ids, list(_SENDABLE)],
        )
        return [row[0] for row in cursor.fetchall()]


def _claim_portable(delivery_ids: list[int]) -> list[int]:
    with transaction.atomic():
        claimed = list(
            Delivery.objects.filter(pk__in=delivery_ids, status__in=_SENDABLE)
            .exclude(_cancelled_q())
            .values_list("pk", flat=True)
        )
        Delivery.objects.filter(pk__in=claimed).update(
            status=DeliveryStatus.SENDING, attempts=F("attempts") + 1, updated_at=timezone.now()
        )
    return claimed


def _message(delivery: Delivery, link: str | None = None) -> OutboundMessage:
    """What the provider gets: the stored message, with its portal link (if it has the
    mark) minted for this send (notifications.links)."""
    provider = get_provider(delivery.provider)
    return OutboundMessage(
        delivery_uuid=str(delivery.uuid),
        channel=delivery.channel,
        to=delivery.to,
        body=with_link(delivery.body, link),
        subject=with_link(delivery.subject, link),
        segments=max(1, delivery.segments),
        status_callback_url=status_callback_url(delivery) if provider.has_status_callbacks else "",
    )


def _send_group(group: list[Delivery], unsent: set[int]) -> tuple[int, list[_Outcome]]:
    """Send claimed deliveries under their contact-point locks and record the results in
    bulk; returns how many of ``group`` were handled (the group stops early after
    :data:`GROUP_SECONDS`) and their outcomes. Provider errors are recorded after the commit,
    one by one (they are rare and may update contact points, which takes other locks). An
    unexpected exception from a provider stops the group: what was sent is recorded, then it
    is raised. ``unsent`` loses each delivery as it is handed to its provider."""
    deadline = time.monotonic() + GROUP_SECONDS
    sent: list[tuple[Delivery, SendResult]] = []
    refused: list[tuple[Delivery, str]] = []
    failed: list[tuple[Delivery, TransientSendError | PermanentSendError]] = []
    crash: Exception | None = None
    done = 0
    # Committed before anything is sent: a message never carries a link that does not exist.
    links = links_for(group)
    with transaction.atomic():
        point_ids = sorted({d.contact_point_id for d in group if d.contact_point_id is not None})
        # One statement, in id order: batches locking overlapping points cannot deadlock.
        points = {
            cp.pk: cp
            for cp in ContactPoint.objects.select_for_update(no_key=True)
            .filter(pk__in=point_ids)
            .order_by("pk")
        }
        for delivery in group:
            if done and time.monotonic() > deadline:
                break
            done += 1
            if delivery.contact_point_id is not None:
                refusal = _refusal(points.get(delivery.contact_point_id))
                if refusal:
                    refused.append((delivery, refusal))
                    continue
            unsent.discard(delivery.pk)
            try:
                message = _message(delivery, links.get(delivery.pk))
                sent.append((delivery, get_provider(delivery.provider).send(message)))
            except (TransientSendError, PermanentSendError) as exc:
                failed.append((delivery, exc))
            except Exception as exc:
                crash = exc
                break
        _record_sent(sent)
        for delivery, refusal in refused:  # rare: opted out or removed since planning
            _finish(delivery, DeliveryStatus.CANCELLED, "not_sent", refusal)
    outcomes = [
        _Outcome(SendOutcome(result.status, delivery_id=d.pk), d.notification_id)
        for d, result in sent
    ]
    outcomes += [
        _Outcome(SendOutcome(DeliveryStatus.CANCELLED, delivery_id=d.pk), d.notification_id)
        for d, _ in refused
    ]
    for delivery, error in failed:
        if isinstance(error, TransientSendError):
            outcome = _transient(delivery, error)
        else:
            outcome = _permanent(delivery, error)
        outcomes.append(_Outcome(outcome, delivery.notification_id))
    if crash is not None:
        raise crash
    return done, outcomes


def _rank_sql(column: str) -> str:
    whens = " ".join(f"WHEN '{status}' THEN {rank}" for status, rank in STATUS_RANK.items())
    return f"(CASE {column} {whens} ELSE 0 END)"


def _record_sent(sent: list[tuple[Delivery, SendResult]]) -> None:
    """One UPDATE for the group's accepted messages and one INSERT of their ``send`` events.
    Forward-only: a status callback that arrived while the group was still sending has
    already moved the row further (and filled in the provider id)."""
    if not sent:
        return
    now = timezone.now()
    if connection.vendor != "postgresql":
        _record_sent_portable(sent, now)
    else:
        _record_sent_pgsql(sent, now)
    DeliveryEvent.objects.bulk_create(
        DeliveryEvent(
            delivery_id=delivery.pk,
            status=result.status,
            provider_status=result.provider_status,
            source="send",
            raw=_scrub(result.raw),
            occurred_at=now,
        )
        for delivery, result in sent
    )


def _record_sent_pgsql(sent: list[tuple[Delivery, SendResult]], now: dt.datetime) -> None:
    values = ", ".join(["(%s::bigint, %s, %s)"] * len(sent))
    params: list[Any] = []
    for delivery, result in sent:
        params += [delivery.pk, result.provider_message_id, result.status]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_DELIVERY} d SET "  # noqa: S608 - as above
            "provider_message_id = CASE WHEN d.provider_message_id = '' "
            "THEN v.message_id ELSE d.provider_message_id END, "
            f"status = CASE WHEN {_rank_sql('v.status')} > {_rank_sql('d.status')} "
            "THEN v.status ELSE d.status END, "
            "sent_at = %s, error_code = '', error_message = '', next_attempt_at = NULL, "
            f"updated_at = %s FROM (VALUES {values}) AS v(id, message_id, status) "
            "WHERE d.id = v.id",
            [now, now, *params],
        )


def _record_sent_portable(sent: list[tuple[Delivery, SendResult]], now: dt.datetime) -> None:
    """One ORM UPDATE per delivery with the same forward-only CASEs: the row's current status
    is compared in the statement itself, so a callback that got there first still wins."""
    for delivery, result in sent:
        # The statuses ranked below the new one (every DeliveryStatus is in STATUS_RANK).
        rank = STATUS_RANK.get(result.status, 0)
        behind = Q(status__in=[s for s, r in STATUS_RANK.items() if r < rank])
        Delivery.objects.filter(pk=delivery.pk).update(
            provider_message_id=Case(
                When(provider_message_id="", then=Value(result.provider_message_id)),
                default=F("provider_message_id"),
            ),
            status=Case(When(behind, then=Value(result.status)), default=F("status")),
            sent_at=now,
            error_code="",
            error_message="",
            next_attempt_at=None,
            updated_at=now,
        )


def _refusal(point: ContactPoint | None) -> str:
    if point is None:
        return "The contact point was removed."
    if point.opted_out:
        return f"The contact point opted out ({point.get_opt_out_source_display()}) before sending."
    if point.undeliverable:
        return "The contact point is undeliverable."
    if not point.active:
        return "The contact point is inactive."
    return ""


def _scrub(raw: dict[str, Any]) -> dict[str, Any]:
    """Keep provider answers without the message body or recipient (they are on the row)."""
    return {k: v for k, v in raw.items() if k.lower() not in {"body", "to", "from"}}


def _finish(delivery: Delivery, status: str, code: str, message: str) -> None:
    delivery.status = status
    delivery.error_code = code[:32]
    delivery.error_message = message[:300]
    delivery.next_attempt_at = None
    delivery.save(
        update_fields=["status", "error_code", "error_message", "next_attempt_at", "updated_at"]
    )
    DeliveryEvent.objects.create(
        delivery=delivery,
        status=status,
        error_code=code[:32],
        source="send",
        raw={"detail": message[:300]},
    )


def _transient(delivery: Delivery, exc: TransientSendError) -> SendOutcome:
    with transaction.atomic():
        if delivery.attempts >= settings.NOTIFY_MAX_ATTEMPTS:
            _finish(
                delivery, DeliveryStatus.FAILED, exc.code or "transient", f"Gave up: {exc.message}"
            )
            outcome = SendOutcome(DeliveryStatus.FAILED, delivery_id=delivery.pk)
        else:
            wait = _backoff(delivery.attempts, exc.retry_after)
            delivery.status = DeliveryStatus.RETRYING
            delivery.error_code = (exc.code or "transient")[:32]
            delivery.error_message = exc.message[:300]
            delivery.next_attempt_at = timezone.now() + dt.timedelta(seconds=wait)
            delivery.save(
                update_fields=[
                    "status",
                    "error_code",
                    "error_message",
                    "next_attempt_at",
                    "updated_at",
                ]
            )
            DeliveryEvent.objects.create(
                delivery=delivery,
                status=DeliveryStatus.RETRYING,
                error_code=delivery.error_code,
                source="send",
                raw={"retry_in": round(wait, 1)},
            )
            outcome = SendOutcome(DeliveryStatus.RETRYING, retry_in=wait, delivery_id=delivery.pk)
    if outcome.status == DeliveryStatus.FAILED:
        notification_rollup(delivery.notification_id)
    return outcome


def _permanent(delivery: Delivery, exc: PermanentSendError) -> SendOutcome:
    with transaction.atomic():
        _finish(delivery, DeliveryStatus.FAILED, exc.code or "permanent", exc.message)
        follow_up = contact_problem_record(delivery, exc.contact_problem, exc.code, exc.message)
    notification_rollup(delivery.notification_id)
    return SendOutcome(DeliveryStatus.FAILED, follow_up=follow_up, delivery_id=delivery.pk)
