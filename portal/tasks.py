"""Celery tasks of the portal (queue ``notify``): thin callers of the services."""

from __future__ import annotations

from celery import shared_task

from core.tasks import BaseTask
from portal import services


@shared_task(base=BaseTask, name="portal.tasks.signin_challenge_send")
def signin_challenge_send(challenge_id: int) -> bool:
    return services.signin_challenge_send(challenge_id=challenge_id)


@shared_task(base=BaseTask, name="portal.tasks.portal_records_purge")
def portal_records_purge() -> int:
    return services.portal_records_purge()
