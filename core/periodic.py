"""System periodic tasks, defined in code and installed as django-celery-beat rows.

Each app may list them as ``SCHEDULES: list[SystemSchedule]`` in its ``schedules.py`` module
(a ``schedules.py`` without ``SCHEDULES`` is ignored: the sync engine's module of that name
manages per-connection schedules).
``python manage.py install_schedules`` (run by ``make run`` and on every deploy) creates or
updates one ``PeriodicTask`` per entry, named ``system:<name>``, and deletes ``system:`` rows
whose entry is gone. Admins see them in the admin and may pause one; a re-install keeps a pause.
Per-connection sync schedules are owned by the sync engine, not by this module.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from importlib import import_module

from django.apps import apps
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import module_has_submodule
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from core.attention import AttentionLine, attention_register_source

PREFIX = "system:"


@dataclass(frozen=True)
class SystemSchedule:
    """``every_seconds`` for an interval, or ``crontab`` as five fields ("m h dom mon dow")."""

    name: str
    task: str
    every_seconds: int | None = None
    crontab: str | None = None
    kwargs: dict[str, object] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if (self.every_seconds is None) == (self.crontab is None):
            raise ValueError(f"{self.name}: give exactly one of every_seconds or crontab")
        if self.crontab is not None and len(self.crontab.split()) != 5:
            raise ValueError(f"{self.name}: a crontab has five fields")


def discover() -> list[SystemSchedule]:
    schedules: list[SystemSchedule] = []
    for config in apps.get_app_configs():
        if module_has_submodule(config.module, "schedules"):
            module = import_module(f"{config.name}.schedules")
            schedules.extend(getattr(module, "SCHEDULES", []))
    names = [schedule.name for schedule in schedules]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"Duplicate schedule names: {', '.join(duplicates)}")
    return schedules


def schedules_install(*, schedules: list[SystemSchedule] | None = None) -> dict[str, int]:
    """Create or update every system schedule and delete the stale ones. Idempotent."""
    schedules = discover() if schedules is None else schedules
    created = updated = 0
    with transaction.atomic():
        for schedule in schedules:
            defaults: dict[str, object] = {
                "task": schedule.task,
                "kwargs": json.dumps(schedule.kwargs, sort_keys=True),
                "description": schedule.description,
                "interval": None,
                "crontab": None,
            }
            if schedule.every_seconds is not None:
                defaults["interval"], _ = IntervalSchedule.objects.get_or_create(
                    every=schedule.every_seconds, period=IntervalSchedule.SECONDS
                )
            else:
                minute, hour, day_of_month, month, day_of_week = str(schedule.crontab).split()
                defaults["crontab"], _ = CrontabSchedule.objects.get_or_create(
                    minute=minute,
                    hour=hour,
                    day_of_month=day_of_month,
                    month_of_year=month,
                    day_of_week=day_of_week,
                )
            row, was_created = PeriodicTask.objects.get_or_create(
                name=f"{PREFIX}{schedule.name}", defaults=defaults
            )
            if was_created:
                created += 1
                continue
            changed = [key for key, value in defaults.items() if getattr(row, key) != value]
            if changed:
                for key in changed:
                    setattr(row, key, defaults[key])
                row.save()
                updated += 1
        wanted = {f"{PREFIX}{schedule.name}" for schedule in schedules}
        deleted, _ = (
            PeriodicTask.objects.filter(name__startswith=PREFIX).exclude(name__in=wanted).delete()
        )
    return {"created": created, "updated": updated, "deleted": deleted}


#: How late beat may be before the home page says so: a beat restarting after a deploy, or a
#: database write it retries, should not raise an alarm (``CELERY_BEAT_SYNC_EVERY`` has beat
#: write ``last_run_at`` back as it sends).
BEAT_SILENT_AFTER = dt.timedelta(minutes=15)


def system_tasks_overdue(*, now: dt.datetime | None = None) -> list[PeriodicTask]:
    """The enabled system interval tasks that beat has not sent for three intervals and at
    least :data:`BEAT_SILENT_AFTER` (never sent: since they were installed or changed). When
    the minute tasks are here, no beat process is running (or it lost its database)."""
    now = now or timezone.now()
    overdue = []
    for task in PeriodicTask.objects.filter(
        name__startswith=PREFIX, enabled=True, interval__isnull=False
    ).select_related("interval"):
        interval = task.interval
        if interval is None:  # filtered out above; for the type checker
            continue
        every = dt.timedelta(**{interval.period: interval.every})
        last = task.last_run_at or task.date_changed
        if last < now - max(BEAT_SILENT_AFTER, 3 * every):
            overdue.append(task)
    return overdue


@attention_register_source
def _beat_silent(request: HttpRequest) -> list[AttentionLine]:
    """The home page's line for superusers (who run the processes) when beat has gone quiet."""
    if not request.user.is_superuser:
        return []
    overdue = len(system_tasks_overdue())
    if not overdue:
        return []
    label = "periodic task{} celery beat has not sent on time (is exactly one beat running?)"
    url = reverse("admin:django_celery_beat_periodictask_changelist") + "?enabled__exact=1"
    return [
        AttentionLine.counted(overdue, label.format(""), label.format("s"), level="error", url=url)
    ]
