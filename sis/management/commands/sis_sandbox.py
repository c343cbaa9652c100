"""Run the sandbox SIS (no database needed): see docs/sandbox.md.

python manage.py sis_sandbox --provider oneroster-1.2 --students 2000 --port 8765 &
"""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sis.sandbox.server import PROVIDERS, make_server, serve_until_terminated


class Command(BaseCommand):
    help = "Serve a generated (or the Grand Bend) district over PowerSchool or OneRoster."
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--provider", choices=PROVIDERS, required=True)
        parser.add_argument("--students", type=int, default=200)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument("--dataset", choices=["grand-bend"])
        parser.add_argument("--dataset-path", default=None)
        parser.add_argument("--faults", default="", help='e.g. "500:0.05,429:0.05,throttle:0.02"')
        parser.add_argument("--client-id", default="sandbox-client")
        parser.add_argument("--client-secret", default="sandbox-secret")
        parser.add_argument("--token-ttl", type=float, default=3600.0)
        parser.add_argument("--page-cap", type=int, default=1000)
        parser.add_argument("--oauth1", action="store_true", help="OneRoster 1.1 OAuth 1.0a")
        parser.add_argument("--app-name", default="", help="require ?appName= on the token URL")
        parser.add_argument("--json", action="store_true", help="print the URLs as JSON")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            server = make_server(
                provider=opts["provider"],
                students=opts["students"],
                seed=opts["seed"],
                host=opts["host"],
                port=opts["port"],
                dataset=opts["dataset"],
                dataset_path=opts["dataset_path"] or settings.SIS_SANDBOX_GRAND_BEND_PATH,
                faults=opts["faults"],
                client_id=opts["client_id"],
                client_secret=opts["client_secret"],
                token_ttl=opts["token_ttl"],
                page_cap=opts["page_cap"],
                oauth1=opts["oauth1"],
                app_name=opts["app_name"],
            )
        except (ValueError, OSError) as exc:
            raise CommandError(str(exc)) from None
        from sis.sandbox.testing import RunningSandbox

        info = RunningSandbox(server, None)  # type: ignore[arg-type]
        summary = {
            "provider": opts["provider"],
            "base_url": info.base_url,
            "api_base_url": info.api_base_url,
            "token_url": info.token_url,
            "counts": server.dialect.expected_counts(),
        }
        self.stdout.write(
            json.dumps(summary)
            if opts["json"]
            else "\n".join(f"{k}: {v}" for k, v in summary.items())
        )
        self.stdout.flush()
        serve_until_terminated(server)
