from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection as db
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from attendance.models import MembershipRole
from config.celery import app as celery_app
from core.periodic import SystemSchedule, discover, schedules_install, system_tasks_overdue
from tests.admin_pages import attention_panel, changelist_count
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent.parent

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


@pytest.mark.django_db(transaction=True)
def test_a_running_beat_writes_back_what_it_sent_at_once(tmp_path):
    """A real beat on the test database: minute tasks it has not sent for twenty minutes are
    sent on its first tick, and their last runs are in the database while beat still runs, so
    the home page's line clears then. (By default beat writes back only the first message of a
    tick at once and the rest three minutes later, or at its exit.)"""
    minutes = [
        SystemSchedule(name=f"minute-{n}", task="core.ping", every_seconds=60) for n in range(3)
    ]
    schedules_install(schedules=minutes)
    started = timezone.now()
    rows = PeriodicTask.objects.filter(name__startswith="system:minute-")
    rows.update(last_run_at=started - dt.timedelta(minutes=20))
    assert len(system_tasks_overdue()) == 3
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "TEST_DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db.settings_dict['NAME']}",
    }
    log_path = tmp_path / "beat.log"
    with log_path.open("wb") as log:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "beat", "--max-interval", "1",
             "--loglevel", "INFO", "--schedule", str(tmp_path / "beat-schedule")],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and beat.poll() is None:
                if not rows.filter(last_run_at__lt=started).exists():
                    break
                time.sleep(0.5)
            else:
                pytest.fail("beat did not write the tasks' last runs back: " + log_path.read_text())
            assert beat.poll() is None  # written back by a running beat, not at its exit
            assert system_tasks_overdue() == []
        finally:
            beat.terminate()
            beat.wait(timeout=30)
            celery_app.control.purge()  # the ping beat sent, which no worker here consumes
