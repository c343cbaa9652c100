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

import json
from dataclasses import dataclass, field
from importlib import import_module

from django.apps import apps
from django.db import transaction
from django.utils.module_loading import module_has_submodule
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

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
