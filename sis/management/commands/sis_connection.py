"""Operator commands for SIS connections: add, update, test, list (all with --json)."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core.errors import ApplicationError
from sis import selectors, services
from sis.connectors.registry import connector_keys
from sis.models import SISConnection, Vendor


class Command(BaseCommand):
    help = "Add, update, test or list SIS connections."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        for action in ("add", "update"):
            p = sub.add_parser(action)
            p.add_argument("--district", required=(action == "add"))
            p.add_argument("--name", required=True)
            p.add_argument("--provider", required=(action == "add"), choices=connector_keys())
            p.add_argument("--vendor", choices=[v.value for v in Vendor])
            p.add_argument("--base-url", help="API base URL (not for oneroster-csv)")
            p.add_argument("--token-url")
            p.add_argument("--client-id")
            p.add_argument("--client-secret")
            p.add_argument("--rate", type=float, help="requests per second")
            p.add_argument("--concurrency", type=int, help="requests in flight at most")
            p.add_argument("--options", help="provider options as a JSON object")
            p.add_argument("--disable", action="store_true")
            p.add_argument("--json", action="store_true")
        p = sub.add_parser("test")
        p.add_argument("name")
        p.add_argument("--district")
        p.add_argument("--json", action="store_true")
        p = sub.add_parser("list")
        p.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        action = opts["action"]
        try:
            if action == "add":
                self._out(opts, self._describe(self._add(opts)))
            elif action == "update":
                self._out(opts, self._describe(self._update(opts)))
            elif action == "test":
                self._test(opts)
            else:
                rows = [self._describe(c) for c in selectors.sis_connection_list()]
                self._out(opts, {"connections": rows})
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        except (SISConnection.DoesNotExist, SISConnection.MultipleObjectsReturned) as exc:
            raise CommandError(str(exc)) from None

    def _fields(self, opts: dict[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for option, name in (
            ("provider", "provider"),
            ("vendor", "vendor"),
            ("base_url", "base_url"),
            ("token_url", "token_url"),
            ("rate", "rate_per_second"),
            ("concurrency", "max_concurrency"),
        ):
            if opts.get(option) is not None:
                fields[name] = opts[option]
        if opts.get("options"):
            try:
                options = json.loads(opts["options"])
            except ValueError:
                raise CommandError("--options must be a JSON object") from None
            if not isinstance(options, dict):
                raise CommandError("--options must be a JSON object")
            fields["options"] = options
        if opts.get("disable"):
            fields["enabled"] = False
        return fields

    def _add(self, opts: dict[str, Any]) -> SISConnection:
        district = services.district_get_or_create(name=opts["district"])
        fields = self._fields(opts)
        return services.sis_connection_create(
            district=district,
            name=opts["name"],
            provider=fields.pop("provider"),
            client_id=opts.get("client_id") or "",
            client_secret=opts.get("client_secret") or "",
            **fields,
        )

    def _update(self, opts: dict[str, Any]) -> SISConnection:
        connection = selectors.sis_connection_get(
            name=opts["name"], district_name=opts.get("district")
        )
        return services.sis_connection_update(
            connection=connection,
            client_id=opts.get("client_id"),
            client_secret=opts.get("client_secret"),
            **self._fields(opts),
        )

    def _test(self, opts: dict[str, Any]) -> None:
        connection = selectors.sis_connection_get(
            name=opts["name"], district_name=opts.get("district")
        )
        result = services.sis_connection_test(connection=connection)
        if opts["json"]:
            self.stdout.write(json.dumps({"connection": connection.name, **result.as_dict()}))
        elif result.ok:
            self.stdout.write(f"{connection.name}: authenticated")
            for entity, count in result.counts.items():
                self.stdout.write(f"  {entity:<20} {'unknown' if count is None else count}")
        if not result.ok:
            if not opts["json"]:
                self.stderr.write(f"{connection.name}: {result.error_kind}: {result.error}")
            raise SystemExit(2 if result.error_kind == "unreachable" else 1)

    def _describe(self, connection: SISConnection) -> dict[str, Any]:
        # Never the secrets: only whether they are set.
        return {
            "id": connection.pk,
            "district": connection.district.name,
            "name": connection.name,
            "provider": connection.provider,
            "vendor": connection.vendor,
            "base_url": connection.base_url,
            "token_url": connection.token_url,
            "options": connection.options,
            "rate_per_second": connection.rate_per_second,
            "max_concurrency": connection.max_concurrency,
            "enabled": connection.enabled,
            "credentials_set": hasattr(connection, "credential"),
        }

    def _out(self, opts: dict[str, Any], data: dict[str, Any]) -> None:
        if opts.get("json"):
            self.stdout.write(json.dumps(data))
        else:
            for key, value in data.items():
                self.stdout.write(f"{key}: {value}")
