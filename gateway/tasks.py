from celery import shared_task

from core.tasks import BaseTask
from gateway.inbound.idempotency import idempotency_purge


@shared_task(base=BaseTask, name="gateway.tasks.idempotency_purge")
def idempotency_purge_task() -> int:
    """Delete idempotency records past their 24-hour life (idempotent)."""
    return idempotency_purge()
