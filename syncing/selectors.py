"""Reads of the sync engine (admin, API, command)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Count, Max, OuterRef, QuerySet, Subquery
from django.utils import timezone

from syncing.models import (
    Mode,
    RunStatus,
    ScheduleKind,
    SyncChange,
    SyncRun,
    SyncSchedule,
)
from syncing.schedules import schedule_firing_before_last

# A run is created when beat fires; a worker's clock may read a little earlier than beat's.
OVERDUE_GRACE = dt.timedelta(minutes=5)


def connection_find(value: str, *, district: str | None = None) -> Any:
    """A SIS connection by id or name (``LookupError`` with a clear message otherwise)."""
    from sis.models import SISConnection

    queryset = SISConnection.objects.select_related("district")
    if value.isdigit():
        found = queryset.filter(pk=int(value)).first()
        if found is not None:
            return found
    matches = queryset.filter(name=value)
    if district:
        matches = matches.filter(district__name=district)
    items = list(matches[:2])
    if not items:
        raise LookupError(f"No SIS connection {value!r}.")
    if len(items) > 1:
        raise LookupError(f"Several connections are named {value!r}; pass --district.")
    return items[0]


def run_summary(run: SyncRun) -> dict[str, Any]:
    return {
        "run": run.pk,
        "connection": run.connection_id,
        "mode": run.mode,
        "status": run.status,
        "status_label": run.get_status_display(),
        "dry_run": run.dry_run,
        "counts": run.counts,
        "conflicts": run.conflicts_count,
        "quarantined": run.quarantined_count,
        "held_reason": run.held_reason,
        "error": run.error_summary,
        "duration_seconds": run.duration,
        "changes_applied": run.changes_applied,
        "changes_total": run.changes_total,
    }


def run_change_totals(run: SyncRun) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = {}
    for entity, action, n in (
        SyncChange.objects.filter(run=run)
        .values_list("entity", "action")
        .order_by()
        .annotate(n=Count("id"))
    ):
        totals.setdefault(entity, {})[action] = n
    return totals


def connections_by_latest_status(connections: QuerySet[Any], status: str | None) -> QuerySet[Any]:
    """The connections whose newest run (dry runs included: they fetch from the SIS too) has
    ``status``; with ``None``, those never run."""
    latest = SyncRun.objects.filter(connection_id=OuterRef("pk")).order_by("-id")
    connections = connections.annotate(latest_status=Subquery(latest.values("status")[:1]))
    if status is None:
        return connections.filter(latest_status__isnull=True)
    return connections.filter(latest_status=status)


def connections_sync_overdue(
    connections: QuerySet[Any], *, now: dt.datetime | None = None
) -> QuerySet[Any]:
    """The enabled connections with a running schedule but no successful full or delta sync
    since the schedule's firing before last: beat not running, every run failing or held, or
    runs that never finish. A schedule changed since then is given its time (it may not have
    fired twice yet); targeted runs and dry runs do not count as syncs."""
    now = now or timezone.now()
    schedules = list(
        SyncSchedule.objects.filter(
            connection__in=connections, paused=False, connection__enabled=True
        )
        .exclude(kind=ScheduleKind.OFF)
        .select_related("district")
    )
    succeeded = dict(
        SyncRun.objects.filter(
            connection_id__in=[schedule.connection_id for schedule in schedules],
            status__in=[RunStatus.COMPLETED, RunStatus.COMPLETED_WITH_QUARANTINE],
            mode__in=[Mode.FULL, Mode.DELTA],
            dry_run=False,
        )
        .values("connection_id")
        .annotate(latest=Max("created_at"))
        .values_list("connection_id", "latest")
    )
    overdue = []
    for schedule in schedules:
        due = schedule_firing_before_last(schedule, now)
        if due is None or schedule.updated_at > due - OVERDUE_GRACE:
            continue
        latest = succeeded.get(schedule.connection_id)
        if latest is None or latest < due - OVERDUE_GRACE:
            overdue.append(schedule.connection_id)
    return connections.filter(pk__in=overdue)


# How a day's runs ended, in the order the history chart stacks them (bottom first).
HISTORY_OUTCOMES = {
    "completed": (RunStatus.COMPLETED,),
    "quarantined": (RunStatus.COMPLETED_WITH_QUARANTINE,),
    "held": (RunStatus.HELD,),
    "failed": (RunStatus.FAILED,),
    "cancelled": (RunStatus.CANCELLED,),
    "active": (RunStatus.PENDING, RunStatus.RUNNING),
}
_CHANGE_ACTIONS = ("create", "update", "deactivate")


def connection_run_history(
    connection: Any, *, days: int = 30, now: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """A connection's syncs per day of its district's calendar, oldest first, the last
    ``days`` days (today included, days without runs too): the day's ``start`` and ``end``
    (midnights in the district's time zone), how many runs ended each way
    (``HISTORY_OUTCOMES``), the changes the completed ones applied, and the longest run's
    seconds. Dry runs apply nothing and are left out."""
    zone = connection.district.zone
    today = connection.district.today(now)
    first = today - dt.timedelta(days=days - 1)
    history: dict[dt.date, dict[str, Any]] = {}
    for n in range(days):
        date = first + dt.timedelta(days=n)
        start = dt.datetime.combine(date, dt.time.min, tzinfo=zone)
        history[date] = {
            "day": date,
            "start": start,
            "end": start + dt.timedelta(days=1),  # wall-clock midnight, also across DST
            "runs": 0,
            **dict.fromkeys(HISTORY_OUTCOMES, 0),
            "changes": 0,
            "longest": None,
        }
    outcome_of: dict[str, str] = {
        status: key for key, statuses in HISTORY_OUTCOMES.items() for status in statuses
    }
    runs = SyncRun.objects.filter(
        connection_id=connection.pk, dry_run=False, created_at__gte=history[first]["start"]
    ).values_list("created_at", "status", "counts", "started_at", "finished_at")
    for created_at, status, counts, started_at, finished_at in runs.iterator():
        day = history.get(timezone.localtime(created_at, zone).date())
        if day is None:  # created after ``now`` (a clock ahead, or a test's fixed now)
            continue
        day["runs"] += 1
        day[outcome_of[status]] += 1
        if status in (RunStatus.COMPLETED, RunStatus.COMPLETED_WITH_QUARANTINE):
            day["changes"] += sum(
                row.get(action, 0) for row in (counts or {}).values() for action in _CHANGE_ACTIONS
            )
        if started_at is not None and finished_at is not None:
            seconds = (finished_at - started_at).total_seconds()
            day["longest"] = max(day["longest"] or 0.0, seconds)
    return list(history.values())
