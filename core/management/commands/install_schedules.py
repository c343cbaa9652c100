from typing import Any

from django.core.management.base import BaseCommand

from core.periodic import schedules_install


class Command(BaseCommand):
    help = "Install the system periodic tasks defined in each app's schedules.py."

    def handle(self, *args: Any, **options: Any) -> None:
        result = schedules_install()
        self.stdout.write(
            "System schedules: {created} created, {updated} updated, {deleted} removed".format(
                **result
            )
        )
