"""Admin pages and actions, schedules as beat rows, and the HMAC-signed event webhook."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from attendance.models import MembershipRole, Student
from syncing.models import (
    Conflict,
    QuarantinedRecord,
    QuarantineStatus,
    RunStatus,
    ScheduleKind,
    SyncRun,
    SyncSchedule,
)
from syncing.schedules import schedule_save, scheduled_sync_start
from syncing.webhooks import signed_headers
from tests.factories import MembershipFactory, UserFactory
from tests.syncing.helpers import sync


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", is_superuser=True)


def test_admin_pages_show_runs_conflicts_and_quarantine(client, superuser, connection, source):
    run = sync(connection, source)
    client.force_login(superuser)
    for name in (
        "syncing_syncrun_changelist",
        "syncing_conflict_changelist",
        "syncing_quarantinedrecord_changelist",
        "syncing_identitymatch_changelist",
        "syncing_syncconnection_changelist",
        "syncing_syncchange_changelist",
    ):
        response = client.get(reverse(f"admin:{name}"))
        assert response.status_code == 200, name
    page = client.get(reverse("admin:syncing_syncrun_change", args=[run.pk]))
    assert page.status_code == 200
    assert b"<progress" in page.content and b"student" in page.content
    assert b"taken up 1 time" in page.content
    SyncRun.objects.filter(pk=run.pk).update(executions=3, lost_worker_handouts=1)
    page = client.get(reverse("admin:syncing_syncrun_change", args=[run.pk]))
    assert "taken up 3 times; handed to the workers again 1× after a worker died" in (
        page.content.decode()
    )


def test_sync_now_action_queues_one_run(client, superuser, connection, settings):
    client.force_login(superuser)
    url = reverse("admin:syncing_syncconnection_changelist")
    for _ in range(2):
        client.post(
            url,
            {"action": "sync_dry_run", "_selected_action": [connection.pk]},
            follow=True,
        )
    assert SyncRun.objects.filter(connection=connection).count() == 1
    assert SyncRun.objects.get().dry_run is True


def test_bulk_resolve_from_the_conflict_queue(client, superuser, connection, source):
    sync(connection, source)
    from attendance.services import student_update

    student = Student.objects.get(local_id="S00002")
    student_update(student=student, legal_first_name="Local")
    source.get("student", "stu-2").first_name = "Sis"
    sync(connection, source)
    conflict = Conflict.objects.get(status="open")
    client.force_login(superuser)
    client.post(
        reverse("admin:syncing_conflict_changelist"),
        {"action": "resolve_local", "_selected_action": [conflict.pk]},
        follow=True,
    )
    conflict.refresh_from_db()
    assert conflict.status == "resolved_local" and conflict.resolved_by == superuser


def test_discard_from_the_quarantine_stops_tracking_open_records_only(
    client, superuser, connection
):
    run = SyncRun.objects.create(
        district=connection.district, connection=connection, mode="full", trigger="admin",
        status=RunStatus.COMPLETED_WITH_QUARANTINE,
    )  # fmt: skip
    records = {
        status: QuarantinedRecord.objects.create(
            district=connection.district,
            connection=connection,
            run=run,
            entity="student",
            source_id=f"q-{status}",
            payload={},
            reason_code="bad_date",
            status=status,
        )  # fmt: skip
        for status in (QuarantineStatus.OPEN, QuarantineStatus.RESOLVED)
    }
    resolved_at = records[QuarantineStatus.RESOLVED].updated_at
    client.force_login(superuser)
    page = client.post(
        reverse("admin:syncing_quarantinedrecord_changelist"),
        {"action": "discard", "_selected_action": [r.pk for r in records.values()]},
        follow=True,
    )
    assert b"1 open record(s) discarded." in page.content
    statuses = dict(QuarantinedRecord.objects.values_list("source_id", "status"))
    assert statuses == {"q-open": "discarded", "q-resolved": "resolved"}
    records[QuarantineStatus.RESOLVED].refresh_from_db()
    assert records[QuarantineStatus.RESOLVED].updated_at == resolved_at


def test_a_schedule_becomes_beat_rows_and_a_double_beat_is_one_run(connection):
    schedule = schedule_save(
        schedule=SyncSchedule(connection=connection, kind=ScheduleKind.REALTIME)
    )
    names = set(
        PeriodicTask.objects.filter(name__startswith=f"sync:{connection.pk}:").values_list(
            "name", flat=True
        )
    )
    assert names == {f"sync:{connection.pk}:delta", f"sync:{connection.pk}:weekly-full"}
    schedule.kind = ScheduleKind.DAILY
    schedule.daily_at = dt.time(5, 30)
    schedule_save(schedule=schedule)
    task = PeriodicTask.objects.get(name=f"sync:{connection.pk}:daily")
    assert (task.crontab.hour, task.crontab.minute) == ("5", "30")
    assert not PeriodicTask.objects.filter(name=f"sync:{connection.pk}:delta").exists()
    assert json.loads(task.kwargs) == {"connection_id": connection.pk, "mode": "full"}
    first, created = scheduled_sync_start(connection_id=connection.pk, mode="full", slot="s1")
    again, created_again = scheduled_sync_start(connection_id=connection.pk, mode="full", slot="s1")
    assert created and not created_again and first.pk == again.pk
    assert SyncRun.objects.count() == 1


def test_the_event_webhook_needs_the_connection_signature(client, connection, source):
    schedule_save(schedule=SyncSchedule(connection=connection, kind=ScheduleKind.REALTIME))
    url = reverse("syncing:sis-events", args=[connection.pk])
    body = json.dumps({"events": [{"entity": "students", "id": "stu-3"}]}).encode()
    bad = client.post(url, body, content_type="application/json",
                      headers={"X-Sync-Signature": "sha256=00"})  # fmt: skip
    assert bad.status_code == 403
    assert not SyncRun.objects.exists()
    from syncing.schedules import schedule_webhook_secret

    secret = schedule_webhook_secret(connection_id=connection.pk)
    good = client.post(url, body, content_type="application/json",
                       headers=signed_headers(secret, body))  # fmt: skip
    assert good.status_code == 202
    run = SyncRun.objects.get()
    assert run.mode == "targeted" and run.targets == [["student", "stu-3"], ["enrollment", "stu-3"]]
    from syncing.engine.run import run_execute

    run = run_execute(run.pk, source=source)
    assert Student.objects.filter(local_id="S00003").exists()
    # Nothing synced before: the student's span names a school we do not know yet.
    assert run.status == RunStatus.COMPLETED_WITH_QUARANTINE
    parked = QuarantinedRecord.objects.get(run=run)
    assert (parked.entity, parked.source_id) == ("enrollment", "enr-3"), parked.message


def test_the_schedule_form_refuses_what_beat_could_not_fire_on_its_field(client, connection):
    user = UserFactory()
    MembershipFactory(user=user, district=connection.district, role=MembershipRole.DISTRICT_ADMIN)
    client.force_login(user)
    url = reverse("admin:syncing_syncschedule_add")
    form = {
        "connection": connection.pk, "kind": "cron", "delta_every_minutes": 5, "daily_at": "",
        "cron": "every night", "weekly_full_weekday": 6, "weekly_full_at": "",
    }  # fmt: skip

    def errors(**changes):
        page = client.post(url, {**form, **changes})
        assert page.status_code == 200  # the form again, nothing saved
        return {name: list(errs) for name, errs in page.context["adminform"].form.errors.items()}

    assert errors() == {
        "cron": ["A cron expression has five fields: minute hour day-of-month month day-of-week."]
    }
    assert list(errors(cron="0 25 * * *")) == ["cron"]  # no 25th hour
    assert errors(kind="daily") == {"daily_at": ["A daily schedule needs a time."]}
    assert list(errors(kind="hourly", weekly_full_weekday=9)) == ["weekly_full_weekday"]
    assert (
        not SyncSchedule.objects.exists()
        and not PeriodicTask.objects.filter(name__startswith=f"sync:{connection.pk}:").exists()
    )

    saved = client.post(url, {**form, "kind": "daily", "daily_at": "05:30"})
    assert saved.status_code == 302
    schedule = SyncSchedule.objects.get()
    assert schedule.district_id == connection.district_id  # from the connection
    task = PeriodicTask.objects.get(name=f"sync:{connection.pk}:daily")
    assert (task.crontab.hour, task.crontab.minute) == ("5", "30")


def test_a_connections_page_says_how_it_is_scheduled_and_lists_its_recent_runs(
    client, superuser, connection
):
    client.force_login(superuser)
    page_url = reverse("admin:syncing_syncconnection_change", args=[connection.pk])
    add_url = reverse("admin:syncing_syncschedule_add") + f"?connection={connection.pk}"
    page = client.get(page_url).text
    assert f'Manual only (<a href="{add_url}">add a schedule</a>)' in page
    assert "None yet." in page

    schedule = schedule_save(
        schedule=SyncSchedule(
            connection=connection, kind=ScheduleKind.REALTIME, delta_every_minutes=10,
            weekly_full_weekday=5, weekly_full_at=dt.time(3, 15),
        )
    )  # fmt: skip
    runs = [
        SyncRun.objects.create(
            district=connection.district,
            connection=connection,
            mode="full",
            trigger="schedule",
            status=status,
            counts={"student": {"create": 12}},
        )  # fmt: skip
        for status in (RunStatus.COMPLETED, RunStatus.FAILED)
    ]
    page = client.get(page_url).text
    schedule_url = reverse("admin:syncing_syncschedule_change", args=[schedule.pk])
    assert (
        f'<a href="{schedule_url}">Real time: SIS events, a delta every 10 min, a full sync '
        "Saturdays at 03:15</a>"
    ) in page
    recent = page.split("<th>changes</th>", 1)[1]
    # Newest first, each linking to its page, with its status and changes.
    first, second = (
        recent.index(reverse("admin:syncing_syncrun_change", args=[run.pk]))
        for run in reversed(runs)
    )
    assert first < second
    assert "Failed</strong>" in recent and "12 created" in recent
    listing = client.get(reverse("admin:syncing_syncconnection_changelist")).text
    assert "Real time: SIS events" in listing

    SyncSchedule.objects.filter(pk=schedule.pk).update(
        kind=ScheduleKind.DAILY, daily_at=dt.time(5, 30), paused=True
    )
    assert f'<a href="{schedule_url}">Daily at 05:30 (full sync); paused</a>' in (
        client.get(page_url).text
    )


def test_a_page_with_nothing_to_edit_offers_its_buttons_and_no_save(client, superuser, connection):
    client.force_login(superuser)
    page = client.get(reverse("admin:syncing_syncconnection_change", args=[connection.pk])).text
    assert ">Sync now (full)</button>" in page
    assert 'name="_save"' not in page and 'name="_continue"' not in page
    # A page with a field to change keeps its Save.
    schedule = schedule_save(schedule=SyncSchedule(connection=connection, kind=ScheduleKind.HOURLY))
    page = client.get(reverse("admin:syncing_syncschedule_change", args=[schedule.pk])).text
    assert 'name="_save"' in page
