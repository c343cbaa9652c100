"""Delete Idempotency-Key records past their 24-hour life (schedule it hourly or daily)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from gateway.inbound.idempotency import idempotency_purge


class Command(BaseCommand):
    help = "Delete expired Idempotency-Key records of the integrator API."

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = idempotency_purge()
        self.stdout.write(f"Deleted {deleted} expired idempotency record(s).")
