"""Celery tasks (queue ``notify``): thin callers of the services. They take ids and are
idempotent; the services do the locking."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.utils import timezone

from core.tasks import BaseTask, countdown_within_visibility
from notifications.services import bulk, events, planning, receipts, sending


@shared_task(base=BaseTask, name="notifications.tasks.attendance_changed_handle")
def attendance_changed_handle(record_ids: list[int]) -> int:
    return len(events.attendance_changes_handle(record_ids=record_ids))


@shared_task(base=BaseTask, name="notifications.tasks.notification_dispatch")
def notification_dispatch(notification_id: int) -> int:
    return notifications_dispatch_batch([notification_id])


@shared_task(base=BaseTask, name="notifications.tasks.notifications_dispatch_batch")
def notifications_dispatch_batch(notification_ids: list[int]) -> int:
    """Create the deliveries of due notifications and send them in one batch; retries and
    fallbacks continue as their own ``delivery_send`` tasks."""
    ids = planning.notifications_dispatch_many(notification_ids=notification_ids)
    _follow_up(sending.deliveries_send_many(delivery_ids=ids))
    return len(ids)


def _follow_up(outcomes: list[sending.SendOutcome]) -> None:
    for outcome in outcomes:
        for follow_up in outcome.follow_up:
            delivery_send.delay(follow_up)
        if outcome.retry_in is not None and outcome.delivery_id is not None:
            delivery_send.apply_async(
                (outcome.delivery_id,), countdown=countdown_within_visibility(outcome.retry_in)
            )


@shared_task(base=BaseTask, bind=True, name="notifications.tasks.delivery_send", max_retries=None)
def delivery_send(self: Any, delivery_id: int) -> str:
    outcome = sending.delivery_send(delivery_id=delivery_id)
    for follow_up in outcome.follow_up:
        delivery_send.delay(follow_up)
    if outcome.retry_in is not None:
        raise self.retry(countdown=countdown_within_visibility(outcome.retry_in))
    return outcome.status


@shared_task(base=BaseTask, name="notifications.tasks.dispatch_due")
def dispatch_due() -> int:
    """Periodic sweep (every minute): notifications whose deferral ended (quiet hours, digest,
    the attendance hold), deliveries a lost task left behind, and stuck deliveries."""
    now = timezone.now()
    ids = planning.notifications_due(now=now)
    for start in range(0, len(ids), planning.DISPATCH_BATCH):
        notifications_dispatch_batch.delay(ids[start : start + planning.DISPATCH_BATCH])
    left = sending.deliveries_due(now=now)
    for start in range(0, len(left), planning.DISPATCH_BATCH):
        deliveries_send_batch.delay(left[start : start + planning.DISPATCH_BATCH])
    receipts.deliveries_reconcile_stuck()
    return len(ids) + len(left)


@shared_task(base=BaseTask, name="notifications.tasks.deliveries_send_batch")
def deliveries_send_batch(delivery_ids: list[int]) -> int:
    outcomes = sending.deliveries_send_many(delivery_ids=delivery_ids)
    _follow_up(outcomes)
    return len(outcomes)


@shared_task(base=BaseTask, name="notifications.tasks.bulk_notice_plan")
def bulk_notice_plan(notice_id: int) -> int:
    batches = bulk.bulk_notice_plan(notice_id=notice_id)
    for batch in batches:
        bulk_notice_send_batch.delay(notice_id, batch)
    bulk_notice_progress.apply_async((notice_id,), countdown=5)
    return len(batches)


@shared_task(base=BaseTask, name="notifications.tasks.bulk_notice_send_batch")
def bulk_notice_send_batch(notice_id: int, notification_ids: list[int]) -> int:
    """Dispatch and send a batch; many of these run at once on many workers, paced by the
    gateway's shared rate limits. A cancelled notice sends nothing more (the claim re-checks
    its state). Transient failures continue as their own retrying tasks."""
    return notifications_dispatch_batch(notification_ids)


@shared_task(base=BaseTask, name="notifications.tasks.bulk_notice_progress")
def bulk_notice_progress(notice_id: int) -> dict[str, Any]:
    progress = bulk.bulk_notice_progress_refresh(notice_id=notice_id)
    if progress["waiting"]:
        bulk_notice_progress.apply_async((notice_id,), countdown=10)
    return progress
