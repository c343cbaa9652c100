"""A connection whose schedule runs but whose syncs stopped succeeding (beat down, every run
failing or held) is overdue: no successful full or delta sync since the firing before last."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from attendance.models import MembershipRole
from sis.models import SISConnection
from syncing.models import RunStatus, ScheduleKind, SyncRun, SyncSchedule
from syncing.schedules import schedule_firing_before_last, schedule_save
from syncing.selectors import connections_sync_overdue
from tests.admin_pages import attention_panel, changelist_count
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

CHICAGO = ZoneInfo("America/Chicago")
# Wednesday 10:00 in Chicago: today's 05:00 firing has passed, yesterday's is the one before.
NOW = dt.datetime(2026, 12, 9, 10, 0, tzinfo=CHICAGO)


def _schedule(connection, *, kind=ScheduleKind.DAILY, changed=NOW - dt.timedelta(days=30), **kw):
    schedule = schedule_save(
        schedule=SyncSchedule(connection=connection, kind=kind, daily_at=dt.time(5, 0), **kw)
    )
    SyncSchedule.objects.filter(pk=schedule.pk).update(updated_at=changed)
    return schedule


def _run(connection, when, status=RunStatus.COMPLETED, mode="delta", **kw):
    run = SyncRun.objects.create(
        district=connection.district, connection=connection, mode=mode, trigger="schedule",
        status=status, **kw,
    )  # fmt: skip
    SyncRun.objects.filter(pk=run.pk).update(created_at=when)
    return run


def _overdue(connection, now=NOW) -> bool:
    connections = SISConnection.objects.filter(pk=connection.pk)
    return connections_sync_overdue(connections, now=now).exists()


def test_the_firing_before_last_of_each_kind(connection):
    schedule = _schedule(connection)
    yesterday_five = dt.datetime(2026, 12, 8, 5, 0, tzinfo=CHICAGO)
    assert schedule_firing_before_last(schedule, NOW) == yesterday_five
    schedule.kind, schedule.cron = ScheduleKind.CRON, "30 6 * * 1-5"  # weekdays 06:30
    monday = dt.datetime(2026, 12, 7, 9, 0, tzinfo=CHICAGO)
    assert schedule_firing_before_last(schedule, monday) == dt.datetime(
        2026,
        12,
        4,
        6,
        30,
        tzinfo=CHICAGO,  # Friday's: Monday's is the latest
    )
    schedule.kind = ScheduleKind.HOURLY
    assert schedule_firing_before_last(schedule, NOW) == NOW - dt.timedelta(hours=1)
    schedule.kind, schedule.delta_every_minutes = ScheduleKind.REALTIME, 5
    assert schedule_firing_before_last(schedule, NOW) == NOW - dt.timedelta(minutes=10)
    schedule.kind = ScheduleKind.OFF
    assert schedule_firing_before_last(schedule, NOW) is None


def test_a_daily_connection_is_overdue_once_yesterdays_sync_did_not_succeed(connection):
    _schedule(connection)
    assert _overdue(connection)  # never synced
    _run(connection, NOW - dt.timedelta(days=3), mode="full")
    assert _overdue(connection)
    yesterday = dt.datetime(2026, 12, 8, 5, 0, 20, tzinfo=CHICAGO)
    _run(connection, yesterday, status=RunStatus.FAILED, mode="full")
    _run(connection, yesterday, mode="full", dry_run=True)  # not a sync
    _run(connection, yesterday, mode="targeted")  # an event's few records: not a sync
    assert _overdue(connection)
    _run(connection, yesterday - dt.timedelta(minutes=2), RunStatus.COMPLETED_WITH_QUARANTINE)
    assert not _overdue(connection)  # within the grace of a worker clock behind beat's
    assert _overdue(connection, now=NOW + dt.timedelta(days=1))  # today's then failed too


def test_a_schedule_that_is_off_paused_new_or_on_a_disabled_connection_is_never_overdue(
    connection,
):
    schedule = _schedule(connection)
    assert _overdue(connection)
    SyncSchedule.objects.filter(pk=schedule.pk).update(updated_at=NOW - dt.timedelta(hours=20))
    assert not _overdue(connection)  # changed since the firing before last: give it time
    SyncSchedule.objects.filter(pk=schedule.pk).update(updated_at=NOW - dt.timedelta(days=30))
    switches = (({"paused": True}, {"paused": False}), ({"kind": "off"}, {"kind": "daily"}))
    for change, back in switches:
        SyncSchedule.objects.filter(pk=schedule.pk).update(**change)
        assert not _overdue(connection)
        SyncSchedule.objects.filter(pk=schedule.pk).update(**back)
    SISConnection.objects.filter(pk=connection.pk).update(enabled=False)
    assert not _overdue(connection)


def test_a_real_time_connection_is_overdue_after_two_missed_deltas(connection):
    _schedule(connection, kind=ScheduleKind.REALTIME, delta_every_minutes=5)
    _run(connection, NOW - dt.timedelta(minutes=9))
    assert not _overdue(connection)
    assert _overdue(connection, now=NOW + dt.timedelta(minutes=7))


def test_the_home_page_says_when_scheduled_syncs_stopped(client, connection):
    _schedule(connection, changed=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    _run(connection, dt.datetime(2026, 1, 2, tzinfo=dt.UTC), mode="full")  # long ago
    user = UserFactory()
    MembershipFactory(user=user, district=connection.district, role=MembershipRole.DISTRICT_ADMIN)
    client.force_login(user)
    lines = attention_panel(client)
    link = lines["1 connection whose scheduled syncs stopped succeeding"]
    assert changelist_count(client, link) == 1
    _run(connection, dt.datetime.now(dt.UTC), mode="delta")
    assert "1 connection whose scheduled syncs stopped succeeding" not in attention_panel(client)
    assert changelist_count(client, reverse("admin:syncing_syncconnection_changelist")) == 1
