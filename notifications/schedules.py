"""Periodic tasks of the notifications app (installed by ``manage.py install_schedules``)."""

from __future__ import annotations

from core.periodic import SystemSchedule

SCHEDULES: list[SystemSchedule] = [
    SystemSchedule(
        name="notifications-dispatch-due",
        task="notifications.tasks.dispatch_due",
        every_seconds=60,
        description="Send notifications whose deferral ended (hold, quiet hours, digest) and "
        "mark deliveries stuck in 'sending' for review.",
    ),
]
