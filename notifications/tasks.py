"""Celery tasks (queue ``notify``): thin callers of the services. They take ids and are
idempotent; the services do the locking."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.utils import timezone

from core.tasks import BaseTask, countdown_within_visibility
from notifications.services import bulk, events, planning, sending


@shared_task(base=BaseTask, name="notifications.tasks.attendance_changed_handle")
def attendance_changed_handle(record_ids: list[int]) -> int:
    return len(events.attendance_changes_handle(record_ids=record_ids))


@shared_task(base=BaseTask, name="notifications.tasks.notification_dispatch")
def notification_dispatch(notification_id: int) -> int:
    ids = planning.notification_dispatch(notification_id=notification_id)
    for delivery_id in ids:
        delivery_send.delay(delivery_id)
    return len(ids)


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
    the attendance hold) and stuck deliveries."""
    ids = planning.notifications_due(now=timezone.now())
    for notification_id in ids:
        notification_dispatch.delay(notification_id)
    sending.deliveries_reconcile_stuck()
    return len(ids)


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
    gateway's shared rate limits. Transient failures continue as their own retrying tasks."""
    sent = 0
    for notification_id in notification_ids:
        for delivery_id in planning.notification_dispatch(notification_id=notification_id):
            outcome = sending.delivery_send(delivery_id=delivery_id)
            for follow_up in outcome.follow_up:
                delivery_send.delay(follow_up)
            if outcome.retry_in is not None:
                delivery_send.apply_async(
                    (delivery_id,), countdown=countdown_within_visibility(outcome.retry_in)
                )
            sent += 1
    return sent


@shared_task(base=BaseTask, name="notifications.tasks.bulk_notice_progress")
def bulk_notice_progress(notice_id: int) -> dict[str, Any]:
    progress = bulk.bulk_notice_progress_refresh(notice_id=notice_id)
    if progress["waiting"]:
        bulk_notice_progress.apply_async((notice_id,), countdown=10)
    return progress
