"""Per-connection schedules as django-celery-beat periodic tasks owned by this module.

Admins edit :class:`~syncing.models.SyncSchedule`; :func:`schedule_save` rewrites the beat rows
it owns (named ``sync:<connection>:<role>``; one row per mode at most). The run's idempotency
key is built from the *slot* of the connection's row of the message's mode — the crontab firing
the message belongs to — so a beat that fires twice (two beat processes) or a message delivered
again later (a worker lost mid-task) starts one run.

A scheduled full sync that fires while another run of the connection is active (a real-time
delta, an event's targeted run) is owed, not dropped: it starts when that run is over
(:func:`scheduled_full_owed_start`, called after every run and by the minute drain).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
from typing import Any, cast
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from core import encryption
from core.errors import ApplicationError
from core.periodic import SystemSchedule
from syncing.models import (
    ACTIVE_STATUSES,
    WEEKDAYS,
    Mode,
    ScheduleKind,
    SyncRun,
    SyncSchedule,
    Trigger,
)

logger = logging.getLogger(__name__)

TASK = "syncing.tasks.sync_scheduled"

#: System schedules of the sync engine (installed by ``install_schedules``).
SCHEDULES = [
    SystemSchedule(
        name="writeback-send",
        task="syncing.tasks.writeback_send_due",
        every_seconds=60,
        description="Send and verify due write-back items (retries back off per item).",
    ),
    SystemSchedule(
        name="sync-events-drain",
        task="syncing.tasks.sync_events_drain",
        every_seconds=60,
        description="Sync the SIS events that arrived while a run was active.",
    ),
    SystemSchedule(
        name="sync-run-details-purge",
        task="syncing.tasks.sync_run_details_purge",
        crontab="20 3 * * *",
        description=(
            "Delete the staged changes and page records of sync runs finished more than "
            "SYNC_RUN_DETAIL_RETENTION_DAYS ago (their counts stay), and quarantined records "
            "closed as long ago."
        ),
    ),
]


def _name(connection_id: int, role: str) -> str:
    return f"sync:{connection_id}:{role}"


def schedule_describe(schedule: SyncSchedule) -> str:
    """The schedule in words, as an administrator reads it ("Daily at 05:30 (full sync)"),
    times in the district's time zone."""
    weekly = (
        f"a full sync {WEEKDAYS[schedule.weekly_full_weekday][1]}s at "
        f"{(schedule.weekly_full_at or dt.time(2, 0)):%H:%M}"
    )
    kind = schedule.kind
    if kind == ScheduleKind.REALTIME:
        text = f"Real time: SIS events, a delta every {schedule.delta_every_minutes} min, {weekly}"
    elif kind == ScheduleKind.HOURLY:
        text = f"Hourly delta, {weekly}"
    elif kind == ScheduleKind.DAILY and schedule.daily_at is not None:
        text = f"Daily at {schedule.daily_at:%H:%M} (full sync)"
    elif kind == ScheduleKind.CRON:
        text = f"Cron {schedule.cron} (full sync)"
    else:
        text = "Manual only"
    return f"{text}; paused" if schedule.paused and kind != ScheduleKind.OFF else text


def schedule_firing_before_last(schedule: SyncSchedule, now: dt.datetime) -> dt.datetime | None:
    """When the schedule fired before its latest firing (``None`` when it is off): a run started
    then has had a whole period to finish, so a connection with no successful sync since is
    overdue (``syncing.selectors.connections_sync_overdue``). Real time: two delta intervals
    ago; otherwise the crontab's second firing back, in the district's time zone."""
    if schedule.kind == ScheduleKind.REALTIME:
        return now - 2 * dt.timedelta(minutes=max(1, schedule.delta_every_minutes))
    expression = _own_expression(schedule)
    if expression is None:
        return None
    from croniter import croniter

    # A second on, as in _slot: croniter excludes its start, and a firing at ``now`` is the latest.
    local = now.astimezone(schedule.district.zone) + dt.timedelta(seconds=1)
    firings = croniter(expression, local)
    firings.get_prev(dt.datetime)
    return cast(dt.datetime, firings.get_prev(dt.datetime))


def schedule_validate(*, kind: str, daily_at: dt.time | None, cron: str) -> None:
    """Refuse a schedule beat could not fire: a daily one without a time, or a cron expression
    that Celery's or croniter's parser refuses. ``details["field"]`` names the field to fix.
    :func:`schedule_save` calls it, and so does the admin's form, so a mistake shows on the
    field instead of after a save that did nothing."""
    if kind == ScheduleKind.DAILY and daily_at is None:
        raise ApplicationError(
            "A daily schedule needs a time.", code="invalid_schedule", details={"field": "daily_at"}
        )
    if kind == ScheduleKind.CRON:
        _cron_check(cron)


def _cron_check(expression: str) -> list[str]:
    """The expression's five fields, or an ApplicationError saying what is wrong with it."""
    parts = expression.split()
    if len(parts) != 5:
        raise ApplicationError(
            "A cron expression has five fields: minute hour day-of-month month day-of-week.",
            code="invalid_cron",
            details={"field": "cron"},
        )
    minute, hour, day_of_month, month, day_of_week = parts
    try:
        from celery.schedules import crontab
        from croniter import croniter

        # Both must read it: beat fires by Celery's parser, a run's slot comes from croniter's
        # (croniter alone accepts a day of week 7, which beat then refuses).
        croniter(expression)
        crontab(
            minute=minute,
            hour=hour,
            day_of_week=day_of_week,
            day_of_month=day_of_month,
            month_of_year=month,
        )
    except (ValueError, KeyError) as exc:
        raise ApplicationError(
            f"Invalid cron expression: {exc}", code="invalid_cron", details={"field": "cron"}
        ) from None
    return parts


def _crontab(expression: str, timezone_name: str) -> CrontabSchedule:
    minute, hour, day_of_month, month, day_of_week = _cron_check(expression)
    schedule, _ = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month,
        day_of_week=day_of_week,
        timezone=timezone_name,
    )
    return schedule


def _wanted(schedule: SyncSchedule) -> dict[str, dict[str, Any]]:
    """The beat rows this schedule needs: role → PeriodicTask fields."""
    tz = schedule.district.timezone
    full_at = schedule.weekly_full_at
    weekly = _crontab(
        f"{full_at.minute if full_at else 0} {full_at.hour if full_at else 2} * * "
        f"{(schedule.weekly_full_weekday + 1) % 7}",
        tz,
    )
    rows: dict[str, dict[str, Any]] = {}
    kind = schedule.kind
    if kind == ScheduleKind.REALTIME:
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=max(1, schedule.delta_every_minutes), period=IntervalSchedule.MINUTES
        )
        rows["delta"] = {"interval": interval, "mode": Mode.DELTA}
        rows["weekly-full"] = {"crontab": weekly, "mode": Mode.FULL}
        return rows
    # schedule_validate refused a daily schedule without a time and a cron one without a cron.
    expression = cast(str, _own_expression(schedule))
    if kind == ScheduleKind.HOURLY:
        rows["hourly"] = {"crontab": _crontab(expression, tz), "mode": Mode.DELTA}
        rows["weekly-full"] = {"crontab": weekly, "mode": Mode.FULL}
    elif kind == ScheduleKind.DAILY:
        rows["daily"] = {"crontab": _crontab(expression, tz), "mode": Mode.FULL}
    elif kind == ScheduleKind.CRON:
        rows["cron"] = {"crontab": _crontab(expression, tz), "mode": Mode.FULL}
    return rows


def _own_expression(schedule: SyncSchedule) -> str | None:
    """The crontab the schedule's kind fires by (hourly, daily at its time, its cron); ``None``
    for real time (an interval) and off. The weekly full sync is apart."""
    if schedule.kind == ScheduleKind.HOURLY:
        return "0 * * * *"
    if schedule.kind == ScheduleKind.DAILY and schedule.daily_at is not None:
        return f"{schedule.daily_at.minute} {schedule.daily_at.hour} * * *"
    if schedule.kind == ScheduleKind.CRON and schedule.cron:
        return schedule.cron
    return None


_EDITABLE_FIELDS = [
    field.name
    for field in SyncSchedule._meta.concrete_fields
    if not field.primary_key
    and field.name not in ("full_owed_key", "full_owed_since", "created_at")
]


def schedule_save(*, schedule: SyncSchedule) -> SyncSchedule:
    """Save a schedule and make the beat rows match it (creating, updating, removing)."""
    schedule_validate(kind=schedule.kind, daily_at=schedule.daily_at, cron=schedule.cron)
    with transaction.atomic():
        schedule.district_id = schedule.connection.district_id
        if not schedule.webhook_secret_encrypted:
            schedule.webhook_secret_encrypted = encryption.encrypt(secrets.token_urlsafe(32))
        wanted = {} if schedule.kind == ScheduleKind.OFF else _wanted(schedule)
        if schedule.pk is None:
            schedule.save()
        else:
            # The scheduler's own fields are not the editor's: an owed full sync recorded while
            # an admin had the form open must survive the save.
            schedule.save(update_fields=_EDITABLE_FIELDS)
        prefix = _name(schedule.connection_id, "")
        existing = {
            task.name: task for task in PeriodicTask.objects.filter(name__startswith=prefix)
        }
        for role, spec in wanted.items():
            name = _name(schedule.connection_id, role)
            task = existing.pop(name, None) or PeriodicTask(name=name, task=TASK)
            task.interval = spec.get("interval")
            task.crontab = spec.get("crontab")
            task.kwargs = json.dumps(
                {"connection_id": schedule.connection_id, "mode": spec["mode"]}
            )
            task.enabled = not schedule.paused
            task.queue = "sync"
            task.save()
        for task in existing.values():
            task.delete()
        _digest_install()
    return schedule


def _digest_install() -> None:
    """The daily digest of open conflicts (one beat row for every district)."""
    PeriodicTask.objects.get_or_create(
        name="sync:conflicts-digest",
        defaults={
            "task": "syncing.tasks.conflicts_digest",
            "crontab": _crontab("0 7 * * *", "UTC"),
            "queue": "sync",
        },
    )


def schedule_webhook_secret(*, connection_id: int) -> str | None:
    schedule = SyncSchedule.objects.filter(connection_id=connection_id).first()
    if schedule is None or not schedule.webhook_secret_encrypted:
        return None
    return encryption.decrypt(schedule.webhook_secret_encrypted)


#: how early a worker's clock may read a firing time (clocks of beat and worker differ a little)
SLOT_GRACE = dt.timedelta(seconds=30)


def _beat_row(connection_id: int, mode: str) -> PeriodicTask | None:
    """The connection's beat row of ``mode`` (a schedule has at most one row per mode)."""
    rows = PeriodicTask.objects.select_related("crontab", "interval").filter(
        name__startswith=_name(connection_id, "")
    )
    return next((row for row in rows if json.loads(row.kwargs or "{}").get("mode") == mode), None)


def _slot(connection_id: int, mode: str, now: dt.datetime) -> str:
    """The firing a beat message of ``mode`` belongs to, as a UTC minute: for a crontab row the
    firing nearest before ``now`` (or just after it, within :data:`SLOT_GRACE`, for a worker
    whose clock is a little behind beat's); otherwise (an interval: the real-time delta) the
    minute ``now`` is in — a delta delivered again later is one more harmless delta."""
    row = _beat_row(connection_id, mode)
    if row is None or row.crontab is None:
        return now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M")
    from croniter import croniter

    cron = row.crontab
    expression = " ".join(
        [cron.minute, cron.hour, cron.day_of_month, cron.month_of_year, cron.day_of_week]
    )
    local = now.astimezone(ZoneInfo(str(cron.timezone)))
    # croniter counts whole seconds and excludes its start: a second on, the firing at ``now``
    # itself is the previous one.
    fired = croniter(expression, local + dt.timedelta(seconds=1)).get_prev(dt.datetime)
    upcoming = croniter(expression, local).get_next(dt.datetime)
    if upcoming - local <= min(SLOT_GRACE, (upcoming - fired) / 4):
        fired = upcoming
    return fired.astimezone(dt.UTC).strftime("%Y%m%dT%H%M")


def scheduled_sync_start(
    *, connection_id: int, mode: str, slot: str = ""
) -> tuple[SyncRun | None, bool]:
    """Start the run of one beat firing (idempotent per connection, mode and slot). A full
    sync that finds another run active is owed and starts after it."""
    from sis.models import SISConnection
    from syncing.services import sync_start

    connection = SISConnection.objects.filter(pk=connection_id, enabled=True).first()
    if connection is None:
        return None, False
    slot = slot or _slot(connection_id, mode, timezone.now())
    key = f"beat:{connection_id}:{mode}:{slot}"
    run, created = sync_start(
        connection=connection, mode=mode, trigger=Trigger.SCHEDULE, idempotency_key=key
    )
    if not created and run.idempotency_key != key and mode == Mode.FULL:
        SyncSchedule.objects.filter(connection_id=connection_id).update(
            full_owed_key=key,
            full_owed_since=Coalesce("full_owed_since", Value(timezone.now())),
        )
        logger.info("scheduled full sync waits for the active run", extra={"run_id": run.pk})
    return run, created


def scheduled_full_owed_start(*, connection_id: int) -> SyncRun | None:
    """Start the full sync a connection owes, if it owes one and no run is active (nothing
    while the schedule is paused or the connection disabled). Returns the run started."""
    from syncing.services import sync_start

    with transaction.atomic():
        schedule = (
            SyncSchedule.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("connection")
            .filter(connection_id=connection_id)
            .exclude(full_owed_key="")
            .first()
        )
        if schedule is None or schedule.paused or not schedule.connection.enabled:
            return None
        if SyncRun.objects.filter(connection_id=connection_id, status__in=ACTIVE_STATUSES).exists():
            return None
        run, created = sync_start(
            connection=schedule.connection,
            mode=Mode.FULL,
            trigger=Trigger.SCHEDULE,
            idempotency_key=schedule.full_owed_key,
        )
        if created or run.idempotency_key == schedule.full_owed_key:
            schedule.full_owed_key, schedule.full_owed_since = "", None
            schedule.save(update_fields=["full_owed_key", "full_owed_since", "updated_at"])
    if created:
        logger.info("owed scheduled full sync started", extra={"run_id": run.pk})
        return run
    return None
