"""Signal receivers: thin, they hand ids to tasks or call one service."""

from __future__ import annotations

from typing import Any

from core.tasks import enqueue_on_commit


def on_attendance_changed(sender: Any, *, record_id: int, **kwargs: Any) -> None:
    from notifications import tasks

    # attendance_changed is sent after commit already; enqueue_on_commit runs at once then.
    enqueue_on_commit(tasks.attendance_changed_handle, record_id)


def on_anymail_tracking(sender: Any, *, event: Any, esp_name: str, **kwargs: Any) -> None:
    from notifications.services.inbound import email_tracking_record

    email_tracking_record(event=event, esp_name=esp_name)
