"""Install the notifications app's periodic tasks into django-celery-beat (idempotent)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from notifications.schedules import schedules_install


class Command(BaseCommand):
    help = "Install the notifications periodic tasks (the due-notification sweep)."

    def handle(self, *args: Any, **options: Any) -> None:
        for name in schedules_install():
            self.stdout.write(f"installed: {name}")
