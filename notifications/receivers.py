"""Signal receivers: thin, they hand ids to tasks or call one service."""

from __future__ import annotations

from typing import Any

from attendance.signals import AttendanceChange
from core.tasks import enqueue_on_commit

# Records per task: a bulk post of 1,000 absences becomes a few batch tasks, each reading the
# day's records, links and preferences once (events.attendance_changes_handle).
ATTENDANCE_BATCH = 250


def on_attendance_changed(sender: Any, *, changes: list[AttendanceChange], **kwargs: Any) -> None:
    from notifications import tasks

    record_ids = [change.record_id for change in changes]
    for start in range(0, len(record_ids), ATTENDANCE_BATCH):
        # attendance_changed is sent after commit already; enqueue_on_commit runs at once then.
        enqueue_on_commit(
            tasks.attendance_changed_handle, record_ids[start : start + ATTENDANCE_BATCH]
        )


def on_anymail_tracking(sender: Any, *, event: Any, esp_name: str, **kwargs: Any) -> None:
    from notifications.services.inbound import email_tracking_record

    email_tracking_record(event=event, esp_name=esp_name)


def on_guardians_written(sender: Any, *, ids: list[int], **kwargs: Any) -> None:
    """A set-based writer (the roster sync) wrote these guardians: their SIS contact points
    follow in the same transaction."""
    from notifications.services.contacts import contact_points_sync_from_guardians

    contact_points_sync_from_guardians(guardian_ids=ids)


def on_guardian_saved(sender: Any, *, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    """One guardian saved (an administrator's edit, the attendance services): the same."""
    if raw:  # loaddata: the fixture brings its own contact points
        return
    from notifications.services.contacts import contact_points_sync_from_guardians

    contact_points_sync_from_guardians(guardian_ids=[instance.pk])
