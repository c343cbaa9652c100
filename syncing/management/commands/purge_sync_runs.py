"""``python manage.py purge_sync_runs [--days N] [--json]``

Deletes the staged changes and page records of sync runs finished more than
SYNC_RUN_DETAIL_RETENTION_DAYS ago, and the quarantined records closed as long ago (see
``syncing/retention.py``); the runs and their counts stay. Safe to stop and to run again.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.progress import progress_bar
from syncing.retention import runs_due_for_purge, sync_run_details_purge


class Command(BaseCommand):
    help = "Delete old finished sync runs' staged changes and pages, and old closed quarantine."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", type=int, default=None, help="override SYNC_RUN_DETAIL_RETENTION_DAYS"
        )
        parser.add_argument("--json", action="store_true", help="print the totals as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"]
        if days is not None and days < 1:
            raise CommandError("--days must be at least 1.")
        with progress_bar(
            enabled=not options["json"] and sys.stderr.isatty(),
            total=runs_due_for_purge(retention_days=days).count(),
            unit="run",
            desc="purging sync runs",
        ) as bar:
            result = sync_run_details_purge(retention_days=days, progress=bar.update)
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict()))
        else:
            self.stdout.write(
                f"Purged {result.runs} run(s): {result.changes} staged change(s) and "
                f"{result.pages} page record(s) deleted; {result.quarantined} closed "
                "quarantined record(s) deleted."
            )
