"""``field__any``: the same rows as ``__in``, with the values sent as one parameter."""

from __future__ import annotations

import pytest
from django.db import connection as db
from django.db.utils import ConnectionHandler
from django.test.utils import CaptureQueriesContext

from attendance.models import District


def _districts(*slugs: str) -> list[District]:
    return [District.objects.create(name=f"District {slug}", slug=slug) for slug in slugs]


@pytest.mark.django_db
def test_any_matches_exactly_the_listed_strings_and_ids():
    north, south, _east = _districts("north", "south", "east")
    by_slug = District.objects.filter(slug__any={"north", "south", "nowhere"})
    assert sorted(by_slug.values_list("slug", flat=True)) == ["north", "south"]
    by_id = District.objects.filter(pk__any=[north.pk, south.pk, 10**12])
    assert sorted(by_id.values_list("pk", flat=True)) == sorted([north.pk, south.pk])
    # The same rows as __in, combined with other conditions as usual.
    assert list(District.objects.filter(slug__any=["north", "east"], name__endswith="north")) == [
        north
    ]


@pytest.mark.django_db
def test_any_sends_one_array_parameter_on_postgresql():
    _districts("north")
    slugs = [f"slug-{n}" for n in range(1000)]
    with CaptureQueriesContext(db) as queries:
        list(District.objects.filter(slug__any=slugs))
    sql = queries.captured_queries[-1]["sql"]
    assert "= ANY(" in sql
    assert sql.count("slug-") == 1000  # inside one array literal, not 1,000 placeholders
    assert " IN (" not in sql


@pytest.mark.django_db
def test_an_empty_list_matches_nothing_without_a_query():
    _districts("north")
    with CaptureQueriesContext(db) as queries:
        assert list(District.objects.filter(slug__any=[])) == []
    assert len(queries.captured_queries) == 0


@pytest.mark.django_db  # the schema editor also consults the default database's connection
def test_any_on_sqlite_matches_the_listed_values():
    """The SQLite form (``make run`` without PostgreSQL): a JSON array, one parameter, clear
    of SQLite's limit on parameters per statement (40,002 values here)."""
    sqlite = ConnectionHandler(
        {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    )
    wrapper = sqlite["default"]
    wanted = ["slug-1", "slug-3", *[f"absent-{n}" for n in range(40_000)]]
    query = District.objects.filter(slug__any=wanted).order_by("slug").values_list("slug")
    sql, params = query.query.get_compiler(connection=wrapper).as_sql()
    assert "json_each" in sql
    assert len(params) == 1
    try:  # an in-memory database of this test's own
        _five_districts(wrapper)
        with wrapper.cursor() as cursor:
            cursor.execute(sql, params)
            slugs = [row[0] for row in cursor.fetchall()]
    finally:
        wrapper.close()
    assert slugs == ["slug-1", "slug-3"]


def _five_districts(wrapper) -> None:
    """The district table in ``wrapper``'s database, with districts slug-0 … slug-4."""
    with wrapper.schema_editor() as editor:
        editor.create_model(District)
    with wrapper.cursor() as cursor:
        for n in range(5):
            cursor.execute(
                "INSERT INTO attendance_district (created_at, updated_at, name, slug, "
                "timezone, default_language, phone_region, active) VALUES ('2026-01-01', "
                "'2026-01-01', %s, %s, 'UTC', 'en', 'US', 1)",
                [f"District {n}", f"slug-{n}"],
            )
