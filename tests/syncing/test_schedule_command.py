"""``manage.py sync_schedule``: an operator sets a connection's schedule from the command line
through the admin's service, and the beat rows follow."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from django_celery_beat.models import PeriodicTask

from syncing.models import ScheduleKind, SyncSchedule

pytestmark = pytest.mark.django_db


def _run(connection, *args: str) -> dict:
    from io import StringIO

    out = StringIO()
    call_command("sync_schedule", str(connection.pk), *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def _beat_rows(connection) -> dict[str, dict]:
    return {
        task.name: json.loads(task.kwargs) | {"enabled": task.enabled}
        for task in PeriodicTask.objects.filter(name__startswith=f"sync:{connection.pk}:")
    }


def test_showing_a_connection_without_a_schedule_changes_nothing(connection):
    shown = _run(connection)
    assert (shown["kind"], shown["schedule"], shown["changed"]) == ("off", "Manual only", False)
    assert not SyncSchedule.objects.filter(connection=connection).exists()


def test_hourly_then_daily_then_off_rewrites_the_beat_rows(connection):
    shown = _run(connection, "--hourly")
    assert shown["schedule"].startswith("Hourly delta, a full sync Sundays at 02:00")
    rows = _beat_rows(connection)
    assert {name.split(":")[-1]: row["mode"] for name, row in rows.items()} == {
        "hourly": "delta",
        "weekly-full": "full",
    }
    shown = _run(connection, "--daily", "05:30")
    assert shown["schedule"] == "Daily at 05:30 (full sync)"
    assert [name.split(":")[-1] for name in _beat_rows(connection)] == ["daily"]
    _run(connection, "--pause")
    assert [row["enabled"] for row in _beat_rows(connection).values()] == [False]
    assert _run(connection)["schedule"] == "Daily at 05:30 (full sync); paused"
    _run(connection, "--off")
    assert _beat_rows(connection) == {}
    assert SyncSchedule.objects.get(connection=connection).kind == ScheduleKind.OFF


def test_real_time_takes_its_delta_interval(connection):
    shown = _run(connection, "--realtime", "--delta-every", "15")
    assert "a delta every 15 min" in shown["schedule"]
    delta = PeriodicTask.objects.get(name=f"sync:{connection.pk}:delta")
    assert delta.interval.every == 15


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "0 2 * * 7"], "Invalid cron expression"),
        (["--cron", "0 2 * *"], "five fields"),
        (["--daily", "25:00"], "--daily needs a time"),
        (["--realtime", "--delta-every", "0"], "at least 1 minute"),
    ],
)
def test_a_schedule_beat_could_not_fire_is_refused_and_nothing_is_saved(connection, args, message):
    with pytest.raises(CommandError, match=message):
        _run(connection, *args)
    assert not SyncSchedule.objects.filter(connection=connection).exists()
    assert _beat_rows(connection) == {}
