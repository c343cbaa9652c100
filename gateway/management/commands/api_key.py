"""Manage integrator API keys from the shell. Secrets are printed once, by ``create`` and
``rotate``, and never again.

    manage.py api_key create --district NAME --name NAME --scopes a,b [--expires-days N] [--json]
    manage.py api_key rotate PREFIX --grace-hours H [--json]
    manage.py api_key revoke PREFIX
    manage.py api_key list [--district NAME] [--json]
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from attendance.models import District
from core.errors import ApplicationError
from gateway.inbound.api_keys import (
    IssuedKey,
    api_key_create,
    api_key_get,
    api_key_list,
    api_key_revoke,
    api_key_rotate,
)
from gateway.models import ApiKey, KeyEnvironment


def _district(name: str) -> District:
    found = District.objects.filter(name=name).first() or District.objects.filter(slug=name).first()
    if found is None:
        raise CommandError(f"No district named {name!r}.")
    return found


def _describe(key: ApiKey) -> dict[str, Any]:
    return {
        "prefix": key.prefix,
        "name": key.name,
        "district": key.district.name,
        "scopes": key.scopes,
        "created_at": key.created_at.isoformat(),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "usable": key.is_usable(),
    }


class Command(BaseCommand):
    help = "Create, rotate, revoke and list integrator API keys."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a key and print it once.")
        create.add_argument("--district", required=True)
        create.add_argument("--name", required=True)
        create.add_argument("--scopes", required=True, help="Comma-separated scopes.")
        create.add_argument("--expires-days", type=int, default=None)
        create.add_argument("--test", action="store_true", help="A sas_test_ key.")
        create.add_argument("--json", action="store_true")
        rotate = sub.add_parser("rotate", help="Issue a successor; the old key works H hours.")
        rotate.add_argument("prefix")
        rotate.add_argument("--grace-hours", type=float, required=True)
        rotate.add_argument("--json", action="store_true")
        revoke = sub.add_parser("revoke", help="Stop a key now.")
        revoke.add_argument("prefix")
        listing = sub.add_parser("list", help="List keys (never their secrets).")
        listing.add_argument("--district", default=None)
        listing.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc

    def _print_issued(self, issued: IssuedKey, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps({**_describe(issued.api_key), "key": issued.plaintext}))
            return
        self.stdout.write(f"Key (shown once, store it now): {issued.plaintext}")
        self.stdout.write(
            f"Prefix: {issued.api_key.prefix}  Scopes: {','.join(issued.api_key.scopes)}"
        )

    def _create(self, options: dict[str, Any]) -> None:
        days = options["expires_days"]
        if days is not None and days <= 0:
            raise CommandError("--expires-days must be positive.")
        issued = api_key_create(
            district=_district(options["district"]),
            name=options["name"],
            scopes=[s.strip() for s in options["scopes"].split(",") if s.strip()],
            expires_at=timezone.now() + dt.timedelta(days=days) if days else None,
            environment=KeyEnvironment.TEST if options["test"] else KeyEnvironment.LIVE,
        )
        self._print_issued(issued, options["json"])

    def _rotate(self, options: dict[str, Any]) -> None:
        if options["grace_hours"] < 0:
            raise CommandError("--grace-hours cannot be negative.")
        issued = api_key_rotate(
            api_key=api_key_get(prefix=options["prefix"]),
            grace=dt.timedelta(hours=options["grace_hours"]),
        )
        self._print_issued(issued, options["json"])

    def _revoke(self, options: dict[str, Any]) -> None:
        key = api_key_revoke(api_key=api_key_get(prefix=options["prefix"]))
        self.stdout.write(f"Revoked {key.prefix}.")

    def _list(self, options: dict[str, Any]) -> None:
        district = _district(options["district"]) if options["district"] else None
        rows = [_describe(key) for key in api_key_list(district=district)]
        if options["json"]:
            self.stdout.write(json.dumps(rows))
            return
        for row in rows:
            state = "usable" if row["usable"] else ("revoked" if row["revoked_at"] else "expired")
            self.stdout.write(
                f"{row['prefix']}  {row['district']}  {row['name']}  {','.join(row['scopes'])}  "
                f"{state}  expires={row['expires_at'] or '-'}  "
                f"last_used={row['last_used_at'] or '-'}"
            )
