"""Delete expired sign-in challenges, links and contact verifications (run daily)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from portal.services import portal_records_purge


class Command(BaseCommand):
    help = "Delete expired portal sign-in challenges, links and verifications."

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = portal_records_purge()
        self.stdout.write(f"Deleted {deleted} expired portal records.")
