"""``python manage.py bench``: run every registered benchmark and print one table."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.bench import BenchResult, discover, host_profile


class Command(BaseCommand):
    help = "Run the benchmarks (full size by default; --quick for the small scenarios)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--only", action="append", default=[], help="benchmark name")
        parser.add_argument("--quick", action="store_true", help="small scenarios only")
        parser.add_argument("--json", action="store_true", help="print JSON lines")

    def handle(self, *args: Any, **options: Any) -> None:
        registry = discover()
        selected = options["only"] or list(registry)
        unknown = sorted(set(selected) - set(registry))
        if unknown:
            raise CommandError(f"Unknown benchmark(s): {', '.join(unknown)}")
        results: list[BenchResult] = host_profile("before")
        for name in selected:
            self.stderr.write(f"running {name} ...")
            results.extend(registry[name](not options["quick"]))
        results.extend(host_profile("after"))
        if options["json"]:
            for row in results:
                self.stdout.write(json.dumps(row.__dict__))
            return
        header = f"{'benchmark':<48} {'value':>12} {'unit':<10} {'baseline':>12}  target"
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for row in results:
            baseline = f"{row.baseline:>12.2f}" if row.baseline is not None else f"{'':>12}"
            verdict = {True: "ok", False: "MISSED", None: ""}[row.passed]
            self.stdout.write(
                f"{row.name:<48} {row.value:>12.2f} {row.unit:<10} {baseline}  "
                f"{row.target} {verdict}".rstrip()
            )
        if any(row.passed is False for row in results):
            raise CommandError("Some benchmarks missed their targets.")
