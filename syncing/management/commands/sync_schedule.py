"""``python manage.py sync_schedule CONNECTION [--off|--realtime|--hourly|--daily HH:MM|--cron
EXPR] [--delta-every MINUTES] [--pause|--resume] [--json]``

Shows or sets a connection's sync schedule from the command line, through the same service as
the admin's form (``syncing.schedules.schedule_save``, which owns the beat rows). Without a
schedule option it only shows the current one.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import ApplicationError
from syncing.models import ScheduleKind, SyncSchedule
from syncing.schedules import schedule_describe, schedule_save
from syncing.selectors import connection_find


def _time(value: str) -> dt.time:
    try:
        return dt.time.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--daily needs a time such as 06:30, not {value!r}.") from None


class Command(BaseCommand):
    help = "Show or set a connection's sync schedule (as the admin's Sync schedules page does)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("connection", help="connection id or name")
        parser.add_argument("--district", help="district name, when connection names repeat")
        kind = parser.add_mutually_exclusive_group()
        kind.add_argument("--off", action="store_const", dest="kind", const=ScheduleKind.OFF)
        kind.add_argument(
            "--realtime",
            action="store_const",
            dest="kind",
            const=ScheduleKind.REALTIME,
            help="SIS events plus a delta every --delta-every minutes, and a weekly full sync",
        )
        kind.add_argument(
            "--hourly",
            action="store_const",
            dest="kind",
            const=ScheduleKind.HOURLY,
            help="a delta every hour and a weekly full sync",
        )
        kind.add_argument(
            "--daily", metavar="HH:MM", help="a full sync every day at this time (district's)"
        )
        kind.add_argument("--cron", metavar="EXPR", help='a full sync by cron, e.g. "30 5 * * 1-5"')
        parser.add_argument("--delta-every", type=int, metavar="MINUTES", help="real time only")
        paused = parser.add_mutually_exclusive_group()
        paused.add_argument("--pause", action="store_const", dest="paused", const=True)
        paused.add_argument("--resume", action="store_const", dest="paused", const=False)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            connection = connection_find(options["connection"], district=options["district"])
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        # schedule_save sets a new schedule's district (the connection's).
        schedule = SyncSchedule.objects.filter(connection=connection).first() or SyncSchedule(
            connection=connection
        )
        changes = self._changes(options)
        if changes:
            for name, value in changes.items():
                setattr(schedule, name, value)
            try:
                schedule = schedule_save(schedule=schedule)
            except ApplicationError as exc:
                raise CommandError(exc.message) from None
        described = {
            "connection": connection.name,
            "district": connection.district.name,
            "kind": schedule.kind,
            "schedule": schedule_describe(schedule),
            "paused": schedule.paused,
            "changed": bool(changes),
        }
        if options["json"]:
            self.stdout.write(json.dumps(described))
        else:
            self.stdout.write(f"{connection.name}: {described['schedule']}")

    @staticmethod
    def _changes(options: dict[str, Any]) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if options["daily"] is not None:
            changes.update(kind=ScheduleKind.DAILY, daily_at=_time(options["daily"]))
        elif options["cron"] is not None:
            changes.update(kind=ScheduleKind.CRON, cron=options["cron"].strip())
        elif options["kind"] is not None:
            changes["kind"] = options["kind"]
        if options["delta_every"] is not None:
            if options["delta_every"] < 1:
                raise CommandError("--delta-every must be at least 1 minute.")
            changes["delta_every_minutes"] = options["delta_every"]
        if options["paused"] is not None:
            changes["paused"] = options["paused"]
        return changes
