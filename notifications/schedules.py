"""Periodic tasks of the notifications app, defined in code and installed into
django-celery-beat by ``manage.py notify_install_schedules`` (idempotent)."""

from __future__ import annotations

from django_celery_beat.models import IntervalSchedule, PeriodicTask

# name → (task, every N seconds)
PERIODIC: dict[str, tuple[str, int]] = {
    "notifications: dispatch due notifications": ("notifications.tasks.dispatch_due", 60),
}


def schedules_install() -> list[str]:
    installed = []
    for name, (task, seconds) in PERIODIC.items():
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=seconds, period=IntervalSchedule.SECONDS
        )
        PeriodicTask.objects.update_or_create(
            name=name, defaults={"task": task, "interval": interval, "enabled": True}
        )
        installed.append(name)
    return installed
