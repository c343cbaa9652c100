"""The schema carries no index that another index of the same table already provides.

Django gives every foreign key an index of its own; where a composite index (or a unique
constraint) leads with the same column, that index only costs: one more entry to write for
every inserted row (attendance records, notifications, access-log lines, sync pages) and one
more to vacuum. Such foreign keys say ``db_index=False`` and name the index that leads with
them; this test keeps it that way for new models.
"""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import connection as db

OUR_APPS = ("core", "attendance", "sis", "gateway", "syncing", "notifications", "portal")


def _our_tables() -> list[str]:
    tables = set()
    for label in OUR_APPS:
        for model in apps.get_app_config(label).get_models(include_auto_created=False):
            if model._meta.managed and not model._meta.proxy:
                tables.add(model._meta.db_table)
    return sorted(tables)


def _indexes(tables: list[str]) -> list[dict]:
    with db.cursor() as cursor:
        cursor.execute(
            """
            SELECT t.relname, i.relname, x.indisunique, x.indpred IS NOT NULL,
                   x.indexprs IS NOT NULL, am.amname,
                   x.indkey::text, x.indclass::text, x.indoption::text, x.indnkeyatts
            FROM pg_index x
            JOIN pg_class t ON t.oid = x.indrelid
            JOIN pg_class i ON i.oid = x.indexrelid
            JOIN pg_am am ON am.oid = i.relam
            JOIN pg_namespace n ON n.oid = t.relnamespace
            WHERE n.nspname = current_schema() AND t.relname = ANY(%s)
            """,
            [tables],
        )
        return [
            {
                "table": table,
                "name": name,
                "unique": unique,
                "partial": partial,
                "expressions": expressions,
                "method": method,
                # (column, operator class, ordering) of each key column, in order
                "keys": list(zip(keys.split(), classes.split(), options.split(), strict=True))[
                    :key_columns
                ],
            }
            for table, name, unique, partial, expressions, method, keys, classes, options,
            key_columns in cursor.fetchall()
        ]  # fmt: skip


def _redundant(indexes: list[dict]) -> list[tuple[str, str]]:
    """(index, the index that covers it): a plain index whose key columns, operator classes and
    orderings begin another full-table index of the same kind on the same table."""
    found = []
    for index in indexes:
        if index["unique"] or index["partial"] or index["expressions"]:
            continue  # a constraint, or an index over only some rows or over expressions
        for other in indexes:
            if (
                other is not index
                and other["table"] == index["table"]
                and other["method"] == index["method"]
                and not other["partial"]
                and not other["expressions"]
                and other["keys"][: len(index["keys"])] == index["keys"]
                and (len(other["keys"]) > len(index["keys"]) or other["unique"])
            ):
                found.append((index["name"], other["name"]))
                break
    return found


def test_the_check_finds_an_index_that_a_composite_index_covers():
    indexes = [
        {"table": "t", "name": "t_a", "unique": False, "partial": False, "expressions": False,
         "method": "btree", "keys": [("1", "c", "0")]},
        {"table": "t", "name": "t_a_b", "unique": False, "partial": False, "expressions": False,
         "method": "btree", "keys": [("1", "c", "0"), ("2", "c", "0")]},
        {"table": "t", "name": "t_b_like", "unique": False, "partial": False,
         "expressions": False, "method": "btree", "keys": [("2", "pattern", "0")]},
        {"table": "t", "name": "t_b_open", "unique": True, "partial": True, "expressions": False,
         "method": "btree", "keys": [("2", "c", "0"), ("3", "c", "0")]},
    ]  # fmt: skip
    # t_b_like: another operator class; t_b_open covers only some rows.
    assert _redundant(indexes) == [("t_a", "t_a_b")]


@pytest.mark.django_db
def test_no_index_of_ours_is_covered_by_another():
    if db.vendor != "postgresql":
        pytest.skip("reads PostgreSQL's catalog")
    tables = _our_tables()
    indexes = _indexes(tables)
    assert {index["table"] for index in indexes} >= {"attendance_attendancerecord"}
    assert _redundant(indexes) == []


@pytest.mark.django_db
def test_every_declared_constraint_and_index_exists():
    """The migrated schema holds every constraint and index the models declare (an
    ``AlterField`` that drops a foreign key's index drops every single-column index on that
    column, a partial unique constraint included, unless the migration says otherwise)."""
    if db.vendor != "postgresql":
        pytest.skip("reads PostgreSQL's catalog")
    declared = {
        (model._meta.db_table, item.name)
        for label in OUR_APPS
        for model in apps.get_app_config(label).get_models()
        if model._meta.managed and not model._meta.proxy
        for item in [*model._meta.constraints, *model._meta.indexes]
    }
    with db.cursor() as cursor:
        present = {
            (table, name)
            for table in {table for table, _ in declared}
            for name in db.introspection.get_constraints(cursor, table)
        }
    assert ("syncing_syncrun", "syncrun_one_active_per_connection") in declared
    assert declared - present == set()
