"""A run's expected pages while it stages (syncing/engine/progress.py)."""

from __future__ import annotations

import re
from types import SimpleNamespace

from django.urls import reverse

from syncing.engine.progress import PageEstimate
from syncing.models import SyncRun
from tests.factories import UserFactory


def _page(number: int, records: int, total: int | None = None) -> SimpleNamespace:
    return SimpleNamespace(number=number, records=[None] * records, quarantined=[], total=total)


def test_a_first_run_knows_its_size_only_once_its_last_entity_reports_it():
    estimate = PageEstimate(["school", "student", "guardian"], 0, previous=None)
    assert estimate.total() is None
    estimate.page("school", _page(0, 3, total=3))
    estimate.entity_done("school")
    estimate.page("student", _page(0, 100, total=250))
    assert estimate.total() is None  # guardians to come, of unknown size
    estimate.page("student", _page(1, 100))
    estimate.page("student", _page(2, 50))
    estimate.entity_done("student")
    estimate.page("guardian", _page(0, 100, total=450))
    assert estimate.total() == 1 + 3 + 5
    for number in range(1, 5):
        estimate.page("guardian", _page(number, 100 if number < 4 else 50))
    estimate.entity_done("guardian")
    assert estimate.total() == 9


def test_a_later_run_starts_from_the_last_runs_pages_and_corrects_as_it_goes():
    previous = {"school": 1, "student": 3, "guardian": 5}
    estimate = PageEstimate(["school", "student", "guardian"], 0, previous=previous)
    assert estimate.total() == 9
    estimate.page("school", _page(0, 3, total=3))
    assert estimate.total() == 9
    estimate.entity_done("school")
    # More students than last time, as the SIS says on the first page.
    estimate.page("student", _page(0, 100, total=380))
    assert estimate.total() == 1 + 4 + 5
    for number in range(1, 4):
        estimate.page("student", _page(number, 100 if number < 3 else 80))
    estimate.entity_done("student")
    # A listing that reports no total: the last run's count until it has staged more.
    for number in range(6):
        estimate.page("guardian", _page(number, 100))
        assert estimate.total() == 1 + 4 + max(5, number + 1)
    estimate.entity_done("guardian")
    assert estimate.total() == 11


def test_an_entity_missing_from_the_last_run_or_listing_nothing_counts_no_pages():
    estimate = PageEstimate(["school", "staff", "student"], 0, previous={"school": 1, "student": 2})
    assert estimate.total() == 3
    estimate.page("school", _page(0, 3, total=3))
    estimate.entity_done("school")
    estimate.entity_done("staff")  # an empty listing: no page at all
    assert estimate.total() == 3


def test_a_restarted_run_counts_the_pages_staged_before_it():
    # The school and student pages were staged before the worker died (7 of them); staging
    # goes on at the guardians.
    estimate = PageEstimate(["guardian"], 7, previous={"school": 1, "student": 6, "guardian": 4})
    assert estimate.total() == 11
    estimate.page("guardian", _page(0, 100, total=300))
    assert estimate.total() == 11


def test_the_run_list_says_where_a_running_run_is(client, connection):
    client.force_login(UserFactory(username="root", is_superuser=True))
    url = reverse("admin:syncing_syncrun_changelist")
    run = SyncRun.objects.create(
        district=connection.district,
        connection=connection,
        mode="full",
        trigger="admin",
        status="running",
        phase="fetch",
        pages_done=7,
    )
    detail = reverse("admin:syncing_syncrun_change", args=[run.pk])
    refresh = '<meta http-equiv="refresh" content="5">'
    assert refresh in client.get(detail).content.decode()  # the run's page follows it
    page = client.get(url).content.decode()
    # A first run's size is unknown: an indeterminate bar (no value) and the pages so far.
    assert '<progress style="width:8em"></progress> staging: 7 pages' in page
    SyncRun.objects.filter(pk=run.pk).update(pages_expected=20)
    page = client.get(url).content.decode()
    assert 'value="17"' in page and "17%, staging: 7 of about 20 pages" in page
    SyncRun.objects.filter(pk=run.pk).update(
        phase="apply", pages_done=20, changes_total=400, changes_applied=100
    )
    assert "62%, applying: 100 of 400 changes" in client.get(url).content.decode()
    SyncRun.objects.filter(pk=run.pk).update(status="failed")
    page = client.get(url).content.decode()
    assert "<progress" not in page and "stopped at 62%" in page  # the list: where it stopped
    assert '<progress max="100" value="62" style="width:8em"></progress> 62%<' in (
        client.get(detail).content.decode()  # its page keeps the bar
    )
    SyncRun.objects.filter(pk=run.pk).update(status="completed", phase="finish")
    page = client.get(url).content.decode()
    assert "<progress" not in page and "stopped at" not in page  # done: nothing to follow
    assert re.search(r'<td class="field-created[^"]*">\w{3} \d{1,2}, \d{2}:\d{2}</td>', page)
    detail_page = client.get(detail).content.decode()
    assert "Full sync #" in detail_page and refresh not in detail_page  # ended: stays put


def test_the_run_list_sums_a_runs_changes_and_keeps_each_entity_in_the_tooltip(client, connection):
    client.force_login(UserFactory(username="root", is_superuser=True))
    SyncRun.objects.create(
        district=connection.district, connection=connection, status="completed", mode="full",
        trigger="schedule",
        counts={
            "student": {"create": 1200, "update": 3, "unchanged": 9000, "quarantined": 2},
            "guardian": {"create": 800, "deactivate": 1},
            "school": {"unchanged": 4},
        },
    )  # fmt: skip
    page = client.get(reverse("admin:syncing_syncrun_changelist")).content.decode()
    assert (
        '<span title="guardian: create 800, deactivate 1; student: create 1200, update 3">'
        "2,000 created, 3 updated, 1 deactivated</span>"
    ) in page
    assert '<td class="field-kind">Full, schedule</td>' in page  # mode and trigger, one column
    SyncRun.objects.update(quarantined_count=2, conflicts_count=1)
    page = client.get(reverse("admin:syncing_syncrun_changelist")).content.decode()
    assert "1 deactivated</span>; <strong>2 quarantined, 1 conflict</strong>" in page
    assert 'id="nav-sidebar"' not in page  # the list keeps the laptop screen's width
