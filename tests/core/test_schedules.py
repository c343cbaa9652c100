from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from attendance.models import MembershipRole
from core.periodic import SystemSchedule, discover, schedules_install
from tests.admin_pages import attention_panel, changelist_count
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

HOURLY = SystemSchedule(name="ping", task="core.ping", every_seconds=3600)
NIGHTLY = SystemSchedule(name="nightly", task="core.ping", crontab="15 2 * * *")


def test_it_installs_updates_and_removes_system_schedules():
    assert schedules_install(schedules=[HOURLY, NIGHTLY]) == {
        "created": 2,
        "updated": 0,
        "deleted": 0,
    }
    row = PeriodicTask.objects.get(name="system:nightly")
    assert (row.crontab.minute, row.crontab.hour) == ("15", "2")
    # Installing again changes nothing.
    assert schedules_install(schedules=[HOURLY, NIGHTLY]) == {
        "created": 0,
        "updated": 0,
        "deleted": 0,
    }
    faster = SystemSchedule(name="ping", task="core.ping", every_seconds=60)
    assert schedules_install(schedules=[faster]) == {"created": 0, "updated": 1, "deleted": 1}
    assert PeriodicTask.objects.get(name="system:ping").interval.every == 60
    assert not PeriodicTask.objects.filter(name="system:nightly").exists()


def test_a_pause_by_an_admin_survives_a_reinstall():
    schedules_install(schedules=[HOURLY])
    PeriodicTask.objects.filter(name="system:ping").update(enabled=False)
    schedules_install(schedules=[HOURLY])
    assert PeriodicTask.objects.get(name="system:ping").enabled is False


def test_rows_not_owned_by_the_system_are_left_alone():
    schedules_install(schedules=[HOURLY])
    other = PeriodicTask.objects.get(name="system:ping")
    other.pk, other.name = None, "sync:connection-1"
    other.save()
    schedules_install(schedules=[])
    assert PeriodicTask.objects.filter(name="sync:connection-1").exists()


def test_a_schedule_needs_exactly_one_timing():
    with pytest.raises(ValueError):
        SystemSchedule(name="x", task="core.ping")
    with pytest.raises(ValueError):
        SystemSchedule(name="x", task="core.ping", every_seconds=5, crontab="* * * * *")


def test_every_discovered_schedule_names_a_registered_task():
    from config.celery import app

    app.loader.import_default_modules()
    for schedule in discover():
        assert schedule.task in app.tasks, schedule.task


def test_the_home_page_tells_superusers_when_beat_stopped_sending_the_minute_tasks(client):
    minute = SystemSchedule(name="minute", task="core.ping", every_seconds=60)
    schedules_install(schedules=[minute, NIGHTLY])
    now = timezone.now()
    rows = PeriodicTask.objects.filter(name="system:minute")
    rows.update(last_run_at=now - dt.timedelta(minutes=20))
    PeriodicTask.objects.filter(name="system:nightly").update(
        last_run_at=now - dt.timedelta(hours=20)  # a crontab's rhythm is not judged
    )
    client.force_login(UserFactory(is_superuser=True))
    line = "1 periodic task celery beat has not sent on time (is exactly one beat running?)"
    lines = attention_panel(client)
    assert line in lines
    assert changelist_count(client, lines[line]) == 2  # the enabled rows, to look at
    rows.update(last_run_at=now - dt.timedelta(minutes=2))  # beat writes it back lazily
    assert line not in attention_panel(client)
    rows.update(last_run_at=None, date_changed=now - dt.timedelta(minutes=30))  # never sent
    assert line in attention_panel(client)
    rows.update(enabled=False)  # paused by an admin: not late
    assert line not in attention_panel(client)

    rows.update(enabled=True)
    admin_of_a_district = MembershipFactory(role=MembershipRole.DISTRICT_ADMIN).user
    client.force_login(admin_of_a_district)
    assert line not in attention_panel(client)  # only those who run the processes
