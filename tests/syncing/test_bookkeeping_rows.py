"""The crosswalk and the change table have no database foreign-key constraints on their
bookkeeping columns (a check per inserted row cost more than the insert); Django's
``on_delete`` must still protect and clean up exactly as the constraints did."""

from __future__ import annotations

import pytest
from django.db import connection as database
from django.db.models import ProtectedError

from syncing.models import SourceLink, SyncChange, SyncRun
from tests.syncing.helpers import sync


def _foreign_keys(table: str) -> set[str]:
    with database.cursor() as cursor:
        cursor.execute(
            "SELECT a.attname FROM pg_constraint c "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey) "
            "WHERE c.contype = 'f' AND c.conrelid = %s::regclass",
            [table],
        )
        return {row[0] for row in cursor.fetchall()}


def test_the_bookkeeping_columns_carry_no_database_constraint(db):
    assert _foreign_keys("syncing_sourcelink") == set()
    assert _foreign_keys("syncing_syncchange") == set()
    # The domain tables keep theirs.
    assert {"district_id", "school_id"} <= _foreign_keys("attendance_student")


def test_a_connection_or_district_with_links_cannot_be_deleted(connection, source):
    sync(connection, source)
    links = SourceLink.objects.filter(connection=connection).count()
    assert links > 0
    with pytest.raises(ProtectedError):
        connection.delete()
    with pytest.raises(ProtectedError):
        connection.district.delete()
    assert SourceLink.objects.filter(connection=connection).count() == links


def test_deleting_a_run_deletes_its_changes_and_unsets_it_on_links(connection, source):
    run = sync(connection, source)
    assert SyncChange.objects.filter(run=run).exists()
    assert SourceLink.objects.filter(first_run=run).exists()
    SyncRun.objects.filter(pk=run.pk).delete()
    assert not SyncChange.objects.filter(run_id=run.pk).exists()
    assert not SourceLink.objects.filter(first_run_id=run.pk).exists()
    assert not SourceLink.objects.filter(last_run_id=run.pk).exists()
    assert SourceLink.objects.filter(connection=connection, first_run__isnull=True).exists()
