from celery import shared_task

from attendance.services_access_log import access_log_purge
from core.tasks import BaseTask


@shared_task(base=BaseTask, name="attendance.tasks.access_log_purge")
def access_log_purge_task() -> int:
    """Delete API access-log rows past the retention period (idempotent)."""
    return access_log_purge()
