"""Re-encrypt every stored secret under the newest FIELD_ENCRYPTION_KEYS key.

Procedure: put the new key first in FIELD_ENCRYPTION_KEYS (keep the old ones after it), run
this command, then remove the old keys. Cached OAuth tokens are not rotated: they expire soon
and one under a dropped key is simply fetched again.
"""

from __future__ import annotations

import json
import sys
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core.encryption import DecryptionError
from core.progress import progress_bar
from sis import services


class Command(BaseCommand):
    help = "Re-encrypt all stored SIS secrets under the newest encryption key."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        total = services.encrypted_rows_count()
        try:
            with progress_bar(
                enabled=not opts["json"] and sys.stderr.isatty(),
                total=total,
                unit="row",
                desc="rotating",
            ) as bar:
                changed = services.encryption_keys_rotate(
                    batch_size=opts["batch_size"], progress=bar.update
                )
        except DecryptionError as exc:
            raise CommandError(str(exc)) from None
        if opts["json"]:
            self.stdout.write(json.dumps({"rows": total, "re_encrypted": changed}))
        else:
            self.stdout.write(f"{changed} of {total} rows re-encrypted under the newest key.")
