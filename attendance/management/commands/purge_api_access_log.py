"""Delete FERPA API access log rows older than API_ACCESS_LOG_RETENTION_DAYS."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from attendance.services_access_log import access_log_purge


class Command(BaseCommand):
    help = "Delete API access log rows older than the retention period."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", type=int, default=None, help="Override API_ACCESS_LOG_RETENTION_DAYS."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = access_log_purge(retention_days=options["days"])
        self.stdout.write(f"Deleted {deleted} access log row(s).")
