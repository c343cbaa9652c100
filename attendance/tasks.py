from celery import shared_task

from attendance.services_access_log import access_log_purge
from core.tasks import BaseTask


@shared_task(base=BaseTask, name="attendance.tasks.access_log_purge")
def access_log_purge_task() -> int:
    """Delete API access-log rows past the retention period (idempotent)."""
    return access_log_purge()


@shared_task(base=BaseTask, name="attendance.tasks.participation_grades_nightly")
def participation_grades_nightly() -> dict[str, int]:
    """Recompute the participation grades of every grading period in progress (or just
    ended) and queue the changed ones for write-back. Idempotent: unchanged grades are not
    touched."""
    from attendance.services_participation import (
        participation_grades_compute_all,
        participation_results_total,
    )

    return participation_results_total(participation_grades_compute_all())
