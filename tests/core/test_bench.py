"""``manage.py bench``: the table of registered benchmarks, framed by what the host measured."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from core import bench
from core.bench import BenchResult


@pytest.fixture
def probes(monkeypatch):
    """Two benchmarks of this test in the registry (discover() keeps what is registered), and a
    short host loop."""
    monkeypatch.setattr(bench, "HOST_ADDITIONS", 10_000)
    monkeypatch.setattr(bench, "HOST_COMMITS", 5)
    monkeypatch.setitem(
        bench._registry,
        "probe-ok",
        lambda full: [
            BenchResult(f"probe ({'full' if full else 'quick'})", 2.5, "s", 10.0, passed=True)
        ],
    )
    monkeypatch.setitem(
        bench._registry,
        "probe-missed",
        lambda full: [BenchResult("probe missed", 3.0, "s", target="< 1 s", passed=False)],
    )


@pytest.mark.django_db
def test_rows_come_between_the_host_before_and_after(probes):
    out = StringIO()
    call_command("bench", "--only", "probe-ok", "--quick", "--json", stdout=out, stderr=StringIO())
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    names = [row["name"] for row in rows]
    assert names == [
        "host before: Python loop, 10,000 additions",
        "host before: flushed commit (median)",
        "probe (quick)",
        "host after: Python loop, 10,000 additions",
        "host after: flushed commit (median)",
    ]
    for row in rows:
        assert row["value"] > 0
    assert [row["unit"] for row in rows] == ["s", "ms", "s", "s", "ms"]
    assert [row["passed"] for row in rows] == [None, None, True, None, None]


@pytest.mark.django_db
def test_a_missed_target_prints_the_table_then_fails(probes):
    out = StringIO()
    with pytest.raises(CommandError, match="missed their targets"):
        call_command("bench", "--only", "probe-missed", stdout=out, stderr=StringIO())
    table = out.getvalue()
    assert "probe missed" in table and "MISSED" in table
    assert "host after: Python loop" in table


@pytest.mark.django_db
def test_the_commit_probe_writes_wal_so_its_commit_must_reach_the_disk():
    """A transaction that writes no WAL commits without waiting for a flush, which would make
    the probe measure nothing of the disk."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn()")
        before = cursor.fetchone()[0]
        assert bench._flushed_commit_ms(3) is not None
        cursor.execute("SELECT pg_current_wal_insert_lsn() > %s::pg_lsn", [before])
        assert cursor.fetchone()[0] is True
