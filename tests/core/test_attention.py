"""The admin's home page says what needs the user now: each line a count of rows they may see
and a link to exactly those rows (core/attention.py)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from attendance.models import MembershipRole
from core.attention import Attention, attention_lines
from sis.models import SISConnection
from syncing.models import Conflict, ConflictStatus, RunStatus, SourceLink, SyncRun
from tests.admin_pages import attention_panel, changelist_count
from tests.factories import (
    DistrictFactory,
    MembershipFactory,
    SchoolFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def _login_district_admin(client, district):
    user = UserFactory()
    MembershipFactory(user=user, district=district, role=MembershipRole.DISTRICT_ADMIN)
    client.force_login(user)
    return user


def _conflict(district, *, school=None, field="grade_level", status=ConflictStatus.OPEN):
    connection = SISConnection.objects.get_or_create(
        district=district, name="SIS", defaults={"provider": "powerschool"}
    )[0]
    link = SourceLink.objects.get_or_create(
        district=district,
        connection=connection,
        entity="student",
        source_id=f"s-{school.pk if school else 0}",
        defaults={"object_id": 1, "content_hash": "x"},
    )[0]
    return Conflict.objects.create(
        district=district, school=school, link=link, entity="student", field=field,
        sis_value="9", local_value="10", policy="review", status=status,
    )  # fmt: skip


def _run(connection, status, **kwargs):
    return SyncRun.objects.create(
        district=connection.district, connection=connection, mode="full", trigger="schedule",
        status=status, **kwargs,
    )  # fmt: skip


def test_a_quiet_district_needs_nothing(client):
    district = DistrictFactory()
    _conflict(district, status=ConflictStatus.RESOLVED_SIS)  # decided: not a task
    _login_district_admin(client, district)
    assert attention_panel(client) == {}


def test_each_line_counts_what_waits_and_links_to_those_rows(client):
    district, elsewhere = DistrictFactory(), DistrictFactory()
    connection = SISConnection.objects.create(district=district, name="SIS", provider="powerschool")
    _run(connection, RunStatus.COMPLETED)
    _run(connection, RunStatus.HELD, held_reason="40 student deactivations")
    _conflict(district, field="grade_level")
    _conflict(district, field="legal_first_name")
    _conflict(district, field="birth_date", status=ConflictStatus.RESOLVED_LOCAL)
    _conflict(elsewhere)  # another district's: neither counted nor listed
    Conflict.objects.filter(field="grade_level").update(
        created_at=timezone.now() - dt.timedelta(days=3)
    )
    _login_district_admin(client, district)

    lines = attention_panel(client)
    assert set(lines) == {"1 sync run held for review", "2 conflicts to decide"}
    assert changelist_count(client, lines["1 sync run held for review"]) == 1
    assert changelist_count(client, lines["2 conflicts to decide"]) == 2
    page = client.get(reverse("admin:index")).text
    assert "(oldest: 3\xa0days ago)" in page  # the conflicts
    assert "(oldest: just now)" in page  # the held run
    # Errors come first: a held run stops the district's syncs, a conflict waits.
    assert page.index("held for review") < page.index("conflicts to decide")


def test_a_connection_counts_when_its_latest_run_failed(client):
    district = DistrictFactory()
    make = SISConnection.objects.create
    failing = make(district=district, name="Failing", provider="powerschool")
    recovered = make(district=district, name="Recovered", provider="powerschool")
    make(district=district, name="Never run", provider="powerschool")
    _run(failing, RunStatus.COMPLETED)
    _run(failing, RunStatus.FAILED, error_summary="SIS unreachable")
    _run(recovered, RunStatus.FAILED)
    _run(recovered, RunStatus.COMPLETED)
    _login_district_admin(client, district)

    link = attention_panel(client)["1 connection whose latest sync failed"]
    page = client.get(link)
    assert page.context["cl"].result_count == 1
    assert [c.name for c in page.context["cl"].result_list] == ["Failing"]
    never = client.get(reverse("admin:syncing_syncconnection_changelist") + "?latest_run=never")
    assert [c.name for c in never.context["cl"].result_list] == ["Never run"]


def test_a_school_administrator_counts_only_their_school(client):
    school = SchoolFactory()
    other = SchoolFactory(district=school.district)
    _conflict(school.district, school=school)
    _conflict(school.district, school=other)
    user = UserFactory()
    MembershipFactory(
        user=user, district=school.district, school=school, role=MembershipRole.SCHOOL_ADMIN
    )
    client.force_login(user)
    lines = attention_panel(client)
    assert set(lines) == {"1 conflict to decide"}
    assert changelist_count(client, lines["1 conflict to decide"]) == 1


def test_every_line_links_to_a_list_that_takes_its_filter(client):
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    request = RequestFactory().get("/admin/")
    request.user = root
    entries = attention_lines(request, include_empty=True)
    assert len(entries) >= 9
    client.force_login(root)
    for line in entries:
        if "/gateway/routes/" not in line.url:  # a source's line, not a changelist's
            assert changelist_count(client, line.url) == 0, line.label


def test_a_count_or_check_that_fails_is_a_line_not_a_broken_home_page(client, monkeypatch, caplog):
    from core import attention

    broken = Attention(
        model=Conflict, singular="broken thing", plural="broken things",
        params={"no_such_field__exact": "1"},
    )  # fmt: skip

    def failing_check(request):
        raise ConnectionError("state store unreachable")

    monkeypatch.setattr(attention, "_REGISTERED", [broken, *attention._REGISTERED])
    monkeypatch.setattr(attention, "_SOURCES", [failing_check])
    district = DistrictFactory()
    _conflict(district)
    _login_district_admin(client, district)

    page = client.get(reverse("admin:index"))
    assert page.status_code == 200
    assert "broken things: could not count (see the logs)" in page.text
    assert "one check could not run (see the logs)" in page.text
    assert "1 conflict to decide" in page.text  # the rest still counted
    failures = {r.getMessage() for r in caplog.records if r.name == "core.attention"}
    assert failures == {"attention count failed", "attention source failed"}
