"""A connection's runs per day of its district's calendar: the selector's buckets, and the
chart and table on the connection's sync page, whose day links list exactly that day's runs."""

from __future__ import annotations

import datetime as dt
import re
from html import unescape
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone

from attendance.models import MembershipRole
from sis.models import SISConnection
from syncing.models import RunStatus, SyncRun
from syncing.selectors import HISTORY_OUTCOMES, connection_run_history
from tests.admin_pages import changelist_count
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

CHICAGO = ZoneInfo("America/Chicago")
NOW = dt.datetime(2026, 12, 9, 10, 0, tzinfo=CHICAGO)


def _run(connection, when, status=RunStatus.COMPLETED, seconds=None, **kw):
    run = SyncRun.objects.create(
        district=connection.district, connection=connection, mode="delta", trigger="schedule",
        status=status, **kw,
    )  # fmt: skip
    times = {"created_at": when}
    if seconds is not None:
        times |= {"started_at": when, "finished_at": when + dt.timedelta(seconds=seconds)}
    SyncRun.objects.filter(pk=run.pk).update(**times)
    return run


def test_runs_are_counted_per_day_of_the_districts_calendar(connection):
    applied = {
        "student": {"create": 3, "update": 2, "unchanged": 900},
        "guardian": {"deactivate": 1},
    }
    _run(connection, NOW - dt.timedelta(hours=1), counts=applied, seconds=12.5)
    _run(connection, NOW - dt.timedelta(hours=2), RunStatus.FAILED, seconds=40)
    _run(connection, NOW - dt.timedelta(minutes=5), RunStatus.CANCELLED)
    # 21:00 in Chicago on the 8th is the 9th in UTC: it belongs to the district's 8th.
    _run(connection, dt.datetime(2026, 12, 9, 3, 0, tzinfo=dt.UTC), RunStatus.HELD,
         counts={"student": {"deactivate": 40}})  # fmt: skip
    _run(connection, NOW - dt.timedelta(days=2), RunStatus.COMPLETED_WITH_QUARANTINE,
         counts={"student": {"update": 7}})  # fmt: skip
    _run(connection, NOW, dry_run=True, counts=applied)  # applies nothing: not counted
    _run(connection, NOW - dt.timedelta(days=30), counts=applied)  # before the window
    other = SISConnection.objects.create(
        district=connection.district, name="Other SIS", provider="powerschool",
        base_url="http://127.0.0.1:9",
    )  # fmt: skip
    _run(other, NOW - dt.timedelta(hours=1), counts=applied)

    days = connection_run_history(connection, days=30, now=NOW)

    assert [d["day"] for d in days[:1] + days[-1:]] == [dt.date(2026, 11, 10), dt.date(2026, 12, 9)]
    assert len(days) == 30
    today, yesterday, before = days[-1], days[-2], days[-3]
    assert (today["runs"], today["completed"], today["failed"], today["cancelled"]) == (3, 1, 1, 1)
    assert today["changes"] == 6  # created, updated and deactivated, not unchanged
    assert today["longest"] == 40.0
    assert (yesterday["runs"], yesterday["held"], yesterday["changes"]) == (1, 1, 0)
    assert (before["quarantined"], before["changes"], before["longest"]) == (1, 7, None)
    assert sum(d["runs"] for d in days) == 5


def test_every_run_status_has_an_outcome_in_the_history():
    statuses = [status for group in HISTORY_OUTCOMES.values() for status in group]
    assert sorted(statuses) == sorted(RunStatus.values)


def test_the_connection_page_charts_the_days_and_links_each_to_its_runs(client, connection):
    now = timezone.now()
    today = timezone.localtime(now, CHICAGO).date()
    _run(connection, now, counts={"student": {"create": 5}}, seconds=3)
    _run(connection, now, RunStatus.FAILED)
    _run(connection, now - dt.timedelta(days=3), RunStatus.HELD)
    _run(connection, now - dt.timedelta(days=40))  # outside the chart; still in the run list
    user = UserFactory()
    MembershipFactory(user=user, district=connection.district, role=MembershipRole.DISTRICT_ADMIN)
    client.force_login(user)

    page = client.get(reverse("admin:syncing_syncconnection_change", args=[connection.pk]))

    assert page.status_code == 200
    text = page.text
    svg = text.split('<svg role="img" aria-label="Sync runs per day', 1)[1].split("</svg>")[0]
    assert "<script" not in svg
    label = f"{today:%b} {today.day}"
    assert f"<title>{label}: 1 completed, 1 failed</title>" in svg
    assert svg.count("<title>") == 30
    links = {
        unescape(day): unescape(href)
        for href, day in re.findall(r'<tr><td><a href="([^"]+)">([^<]+)</a></td>', text)
        if "created_at__gte" in href
    }
    assert len(links) == 2  # the days with runs: today and three days ago
    todays = links[f"{today:%a %b} {today.day}"]
    assert changelist_count(client, todays) == 2
    three_days_ago = [href for day, href in links.items() if href != todays][0]
    assert changelist_count(client, three_days_ago) == 1


def test_a_connection_without_runs_says_so(client, connection):
    _run(connection, timezone.now(), dry_run=True)
    user = UserFactory()
    MembershipFactory(user=user, district=connection.district, role=MembershipRole.DISTRICT_ADMIN)
    client.force_login(user)
    page = client.get(reverse("admin:syncing_syncconnection_change", args=[connection.pk]))
    assert "No runs in the last 30 days (dry runs are not counted)." in page.text
    assert 'aria-label="Sync runs per day' not in page.text
