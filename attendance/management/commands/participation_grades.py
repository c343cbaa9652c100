"""``python manage.py participation_grades compute [--district NAME] [--term ID] [--dry-run]
[--json]``

Computes participation grades (rule ``attendance-share-v1``, docs/participation.md) in the
foreground with a progress bar (or JSON lines: ``progress`` events, one ``period`` line per
grading period, then a ``summary``). Without ``--term`` it computes the grading periods the
nightly task would (in progress, or ended within ``PARTICIPATION_GRACE_DAYS``).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from attendance.models import District, Term
from attendance.services_participation import (
    participation_grades_compute_all,
    participation_results_total,
)
from core.progress import progress_bar


class Command(BaseCommand):
    help = "Compute participation grades from attendance and queue changed ones for write-back."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        compute = sub.add_parser("compute", help="compute grades now")
        compute.add_argument("--district", help="district name (default: every district)")
        compute.add_argument("--term", type=int, help="grading period (term) id")
        compute.add_argument("--dry-run", action="store_true", help="count, write nothing")
        compute.add_argument("--json", action="store_true", help="JSON lines instead of a bar")

    def handle(self, *args: Any, **options: Any) -> None:
        district = None
        if options["district"]:
            district = District.objects.filter(name=options["district"]).first()
            if district is None:
                raise CommandError(f"No district named {options['district']!r}.")
        terms = None
        if options["term"] is not None:
            found = Term.objects.filter(pk=options["term"])
            if district is not None:
                found = found.filter(district=district)
            terms = list(found)
            if not terms:
                raise CommandError(f"No term {options['term']} in that district.")
        as_json = options["json"]
        with progress_bar(
            enabled=not as_json, total=0, unit="section", desc="participation grades"
        ) as bar:

            def progress(done: int, total: int) -> None:
                if as_json:
                    self._emit(
                        {"event": "progress", "sections_done": done, "sections_total": total}
                    )
                    return
                bar.total, bar.n = total, done
                bar.refresh()

            results = participation_grades_compute_all(
                district=district, terms=terms, dry_run=options["dry_run"], progress=progress
            )
        summary = {**participation_results_total(results), "dry_run": options["dry_run"]}
        if as_json:
            for result in results:
                self._emit({"event": "period", **result.as_dict()})
            self._emit({"event": "summary", **summary})
            return
        for result in results:
            self.stdout.write(
                f"  term {result.grading_period_id}: {result.sections} sections, "
                f"{result.computed} grades ({result.created} new, {result.updated} changed, "
                f"{result.unchanged} unchanged), {result.queued} queued for write-back"
            )
        verb = "Would write" if options["dry_run"] else "Wrote"
        self.stdout.write(
            f"{verb} {summary['created'] + summary['updated']} of {summary['computed']} grades "
            f"in {summary['grading_periods']} grading periods; {summary['queued']} queued."
        )

    def _emit(self, payload: dict[str, Any]) -> None:
        self.stdout.write(json.dumps(payload, default=str))
