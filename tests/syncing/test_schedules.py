"""Scheduled runs: the firing a beat message belongs to (so a repeat starts nothing), and a
scheduled full sync that fires while another run is active waits for it instead of being lost."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from syncing import schedules
from syncing.events import sync_run_followup, sync_waiting_start_all
from syncing.models import Mode, RunStatus, ScheduleKind, SyncRun, SyncSchedule, Trigger
from syncing.schedules import schedule_save, scheduled_full_owed_start, scheduled_sync_start
from syncing.services import sync_start
from syncing.tasks import sync_scheduled

CHICAGO = ZoneInfo("America/Chicago")


@pytest.fixture
def daily(connection):
    """A daily full sync at 05:30, district time (America/Chicago)."""
    return schedule_save(
        schedule=SyncSchedule(
            connection=connection, kind=ScheduleKind.DAILY, daily_at=dt.time(5, 30)
        )
    )


@pytest.fixture
def realtime(connection):
    return schedule_save(
        schedule=SyncSchedule(
            connection=connection, kind=ScheduleKind.REALTIME, delta_every_minutes=5
        )
    )


def _at(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=CHICAGO)


def test_a_crontab_message_belongs_to_its_firing(connection, daily):
    slot = schedules._slot
    fired = slot(connection.pk, "full", _at(2026, 12, 7, 5, 30) + dt.timedelta(milliseconds=300))
    assert fired == "20261207T1130"  # 05:30 in Chicago is 11:30 UTC in December
    # The same message delivered again minutes or hours later (a worker lost mid-task).
    assert slot(connection.pk, "full", _at(2026, 12, 7, 5, 31, 5)) == fired
    assert slot(connection.pk, "full", _at(2026, 12, 7, 9, 0)) == fired
    # A worker whose clock is a little behind beat's still names today's firing, not
    # yesterday's (whose run is over: the key would start nothing).
    assert slot(connection.pk, "full", _at(2026, 12, 7, 5, 29, 58)) == fired
    assert slot(connection.pk, "full", _at(2026, 12, 7, 5, 20)) == "20261206T1130"
    assert slot(connection.pk, "full", _at(2026, 12, 8, 5, 30, 1)) == "20261208T1130"
    # In summer (CDT) the same local time is an hour earlier in UTC.
    assert slot(connection.pk, "full", _at(2026, 7, 1, 5, 30, 2)) == "20260701T1030"


def test_an_every_minute_crontab_keeps_its_minutes_apart(connection):
    schedule_save(
        schedule=SyncSchedule(connection=connection, kind=ScheduleKind.CRON, cron="* * * * *")
    )
    slot = schedules._slot
    assert slot(connection.pk, "full", _at(2026, 12, 7, 5, 30, 1)) == "20261207T1130"
    assert slot(connection.pk, "full", _at(2026, 12, 7, 5, 30, 40)) == "20261207T1130"
    assert slot(connection.pk, "full", _at(2026, 12, 7, 5, 30, 58)) == "20261207T1131"


@pytest.mark.parametrize("expression", ["0 2 * * 7", "0 25 * * *", "0 2 * *", "x * * * *"])
def test_a_cron_expression_beat_could_not_read_is_refused(connection, expression):
    from core.errors import ApplicationError

    with pytest.raises(ApplicationError) as refused:
        schedule_save(
            schedule=SyncSchedule(connection=connection, kind=ScheduleKind.CRON, cron=expression)
        )
    assert refused.value.code == "invalid_cron"
    assert not SyncSchedule.objects.exists()


def test_an_interval_message_belongs_to_the_minute_it_runs(connection, realtime):
    start = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
    slot = schedules._slot
    assert slot(connection.pk, "delta", start + dt.timedelta(seconds=10)) == "20261207T1200"
    assert slot(connection.pk, "delta", start + dt.timedelta(seconds=70)) == "20261207T1201"


def test_a_message_delivered_again_a_minute_later_starts_no_second_run(
    connection, daily, monkeypatch
):
    now = _at(2026, 12, 7, 5, 30, 1)
    monkeypatch.setattr(schedules.timezone, "now", lambda: now)
    first = sync_scheduled.apply(kwargs={"connection_id": connection.pk, "mode": "full"}).get()
    assert first["created"]
    SyncRun.objects.filter(pk=first["run"]).update(status=RunStatus.COMPLETED)  # a quick run
    now = _at(2026, 12, 7, 5, 31, 30)
    again = sync_scheduled.apply(kwargs={"connection_id": connection.pk, "mode": "full"}).get()
    assert again == {"run": first["run"], "created": False}
    assert SyncRun.objects.count() == 1


def test_a_full_sync_that_fires_during_a_delta_runs_after_it(connection, realtime):
    delta, _ = sync_start(
        connection=connection, mode=Mode.DELTA, trigger=Trigger.SCHEDULE, enqueue=False
    )
    run, created = scheduled_sync_start(connection_id=connection.pk, mode=Mode.FULL, slot="w1")
    assert run.pk == delta.pk and not created
    schedule = SyncSchedule.objects.get(connection=connection)
    assert schedule.full_owed_key == f"beat:{connection.pk}:full:w1" and schedule.full_owed_since
    # The same beat again while the delta still runs: still one owed full sync, nothing started.
    scheduled_sync_start(connection_id=connection.pk, mode=Mode.FULL, slot="w1")
    assert scheduled_full_owed_start(connection_id=connection.pk) is None
    assert SyncRun.objects.count() == 1

    delta.status = RunStatus.COMPLETED
    delta.save(update_fields=["status"])
    full = sync_run_followup(run=delta)
    assert full is not None and (full.mode, full.trigger) == (Mode.FULL, Trigger.SCHEDULE)
    assert full.idempotency_key == f"beat:{connection.pk}:full:w1"
    schedule.refresh_from_db()
    assert schedule.full_owed_key == "" and schedule.full_owed_since is None
    # Owed once, run once: the beat's message again, or the drain, starts nothing more.
    full.status = RunStatus.COMPLETED
    full.save(update_fields=["status"])
    assert scheduled_sync_start(connection_id=connection.pk, mode=Mode.FULL, slot="w1")[1] is False
    assert sync_waiting_start_all() == 0
    assert SyncRun.objects.count() == 2


def test_the_minute_drain_starts_an_owed_full_sync_after_a_cancelled_run(connection, realtime):
    delta, _ = sync_start(connection=connection, mode=Mode.DELTA, enqueue=False)
    scheduled_sync_start(connection_id=connection.pk, mode=Mode.FULL, slot="w2")
    assert sync_waiting_start_all() == 0  # the delta is still active
    SyncRun.objects.filter(pk=delta.pk).update(status=RunStatus.CANCELLED)
    assert sync_waiting_start_all() == 1
    assert SyncRun.objects.filter(mode=Mode.FULL, trigger=Trigger.SCHEDULE).count() == 1


def test_an_admin_save_keeps_a_full_sync_owed_meanwhile(connection, realtime):
    opened = SyncSchedule.objects.get(pk=realtime.pk)  # the admin's form, loaded before
    sync_start(connection=connection, mode=Mode.DELTA, enqueue=False)
    scheduled_sync_start(connection_id=connection.pk, mode=Mode.FULL, slot="w4")
    opened.delta_every_minutes = 10
    schedule_save(schedule=opened)
    saved = SyncSchedule.objects.get(pk=realtime.pk)
    assert saved.delta_every_minutes == 10
    assert saved.full_owed_key == f"beat:{connection.pk}:full:w4"


def test_a_delta_that_fires_during_another_run_is_simply_skipped(connection, realtime):
    full, _ = sync_start(connection=connection, mode=Mode.FULL, enqueue=False)
    run, created = scheduled_sync_start(connection_id=connection.pk, mode=Mode.DELTA, slot="d1")
    assert run.pk == full.pk and not created  # the next delta is minutes away
    assert SyncSchedule.objects.get(connection=connection).full_owed_key == ""


def test_an_owed_full_sync_waits_while_the_schedule_is_paused(connection, realtime):
    delta, _ = sync_start(connection=connection, mode=Mode.DELTA, enqueue=False)
    scheduled_sync_start(connection_id=connection.pk, mode=Mode.FULL, slot="w3")
    SyncRun.objects.filter(pk=delta.pk).update(status=RunStatus.COMPLETED)
    realtime.refresh_from_db()
    realtime.paused = True
    schedule_save(schedule=realtime)
    assert scheduled_full_owed_start(connection_id=connection.pk) is None
    realtime.paused = False
    schedule_save(schedule=realtime)
    assert scheduled_full_owed_start(connection_id=connection.pk) is not None


def test_the_schedule_admin_shows_a_waiting_full_sync_and_edits_the_beat_rows(
    client, connection, daily
):
    from django.urls import reverse
    from django_celery_beat.models import PeriodicTask

    from tests.factories import UserFactory

    SyncSchedule.objects.filter(pk=daily.pk).update(
        full_owed_key="beat:x", full_owed_since=_at(2026, 12, 6, 2, 0)
    )
    client.force_login(UserFactory(username="root", is_superuser=True))
    listing = client.get(reverse("admin:syncing_syncschedule_changelist"))
    assert listing.status_code == 200 and b"Full sync waiting since" in listing.content
    url = reverse("admin:syncing_syncschedule_change", args=[daily.pk])
    form = client.get(url)
    assert b"full sync waiting since" in form.content.lower()
    assert b'name="full_owed_key"' not in form.content  # the scheduler's, not the admin's
    assert b'name="full_owed_since"' not in form.content
    saved = client.post(
        url,
        {
            "district": daily.district_id,
            "connection": connection.pk,
            "kind": ScheduleKind.DAILY,
            "delta_every_minutes": 5,
            "daily_at": "06:45",
            "cron": "",
            "weekly_full_weekday": 6,
        },
    )
    assert saved.status_code == 302, saved.content[:2000]
    task = PeriodicTask.objects.get(name=f"sync:{connection.pk}:daily")
    assert (task.crontab.hour, task.crontab.minute) == ("6", "45")
    assert SyncSchedule.objects.get(pk=daily.pk).full_owed_key == "beat:x"  # kept
