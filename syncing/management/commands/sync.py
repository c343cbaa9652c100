"""``python manage.py sync CONNECTION [--full|--delta] [--dry-run] [--json]``

Runs one sync in the foreground with a progress bar (or JSON lines), prints the summary and
exits non-zero when the run failed or was held for review.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import ConflictError
from core.progress import progress_bar
from syncing.engine.run import run_execute, staged_changes
from syncing.models import Mode, RunStatus, SyncRun, Trigger
from syncing.selectors import connection_find, run_summary
from syncing.services import run_cancel, sync_start


class Command(BaseCommand):
    help = "Sync one SIS connection now, in the foreground."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("connection", help="connection id or name")
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--full", action="store_const", dest="mode", const=Mode.FULL)
        group.add_argument("--delta", action="store_const", dest="mode", const=Mode.DELTA)
        parser.add_argument("--dry-run", action="store_true", help="stage and print, apply nothing")
        parser.add_argument("--json", action="store_true", help="JSON lines instead of a bar")
        parser.add_argument("--district", help="district name, when connection names repeat")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            connection = connection_find(options["connection"], district=options["district"])
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        as_json = options["json"]
        run, created = sync_start(
            connection=connection,
            mode=options["mode"] or Mode.FULL,
            trigger=Trigger.COMMAND,
            dry_run=options["dry_run"],
            enqueue=False,
        )
        if not created:
            raise CommandError(
                f"Run #{run.pk} of this connection is {run.get_status_display().lower()}; "
                "nothing started."
            )
        with progress_bar(enabled=not as_json, total=100, unit="%", desc=f"sync #{run.pk}") as bar:
            run = self._execute(run, bar, as_json)
        summary = run_summary(run)
        if as_json:
            if run.dry_run:
                for change in staged_changes(run):
                    self._emit({"event": "change", **change})
            self._emit({"event": "summary", **summary})
        else:
            if run.dry_run:
                self._print_changes(run)
            self._print_summary(summary)
        if run.status in (RunStatus.FAILED, RunStatus.HELD):
            sys.exit(2)

    def _execute(self, run: SyncRun, bar: Any, as_json: bool) -> SyncRun:
        """Run ``run`` here, reporting progress on ``bar`` (or as JSON lines); returns it as
        it ended. Ctrl-C cancels it and exits with 130."""

        def progress(current: SyncRun) -> None:
            if as_json:
                self._emit(
                    {
                        "event": "progress",
                        "run": current.pk,
                        "phase": current.phase,
                        "pages_done": current.pages_done,
                        "pages_expected": current.pages_expected,
                        "changes_applied": current.changes_applied,
                        "changes_total": current.changes_total,
                        "percent": current.progress_percent,
                    }
                )
                return
            bar.n = current.progress_percent
            bar.set_postfix_str(current.progress_note)  # and redraws

        try:
            run = run_execute(run.pk, progress=progress)
        except Exception:  # the run records the failure; report it below
            run.refresh_from_db()
        except KeyboardInterrupt:
            # The operator stopped it: cancelled here, not left "running" for the minute drain
            # to hand to a worker. What it had applied stays; the next sync takes up the rest.
            run.refresh_from_db()
            if run.status in (RunStatus.PENDING, RunStatus.RUNNING):  # not one just held
                # Interrupted while waiting for a lock another worker holds: that worker owns
                # the connection, and the run stays as it is for it.
                with contextlib.suppress(ConflictError):
                    run = run_cancel(run=run)
            bar.close()
            self.stderr.write(f"Interrupted: run #{run.pk} {run.get_status_display().lower()}.")
            sys.exit(130)
        if run.status != RunStatus.FAILED:
            bar.n = 100
        bar.set_postfix_str(run.get_status_display().lower(), refresh=False)
        return run

    def _emit(self, payload: dict[str, Any]) -> None:
        self.stdout.write(json.dumps(payload, default=str))

    def _print_changes(self, run: SyncRun, limit: int = 200) -> None:
        changes = staged_changes(run, limit=limit)
        self.stdout.write(f"Change set (first {len(changes)}):")
        for change in changes:
            diff = ", ".join(
                f"{name}: {old!r} → {new!r}" for name, (old, new) in (change["diff"] or {}).items()
            )
            self.stdout.write(
                f"  {change['action']:<10} {change['entity']:<18} {change['source_id']}"
                + (f"  {diff}" if diff else "")
            )

    def _print_summary(self, summary: dict[str, Any]) -> None:
        out = self.stdout
        out.write(
            f"Run #{summary['run']} {summary['mode']}: {summary['status_label']}"
            + (" (dry run)" if summary["dry_run"] else "")
        )
        for entity, counts in summary["counts"].items():
            parts = ", ".join(f"{action} {n}" for action, n in sorted(counts.items()))
            out.write(f"  {entity:<18} {parts}")
        out.write(f"  conflicts: {summary['conflicts']}  quarantined: {summary['quarantined']}")
        if summary["held_reason"]:
            out.write(f"  held: {summary['held_reason']}")
        if summary["error"]:
            out.write(f"  error: {summary['error']}")
        if summary["duration_seconds"] is not None:
            out.write(f"  duration: {summary['duration_seconds']:.1f} s")
