"""The operator command, against the sandbox over HTTP."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from attendance.models import Student
from sis.sandbox.district import GeneratedDistrict
from syncing.models import SyncRun
from tests.syncing.sandbox import connection_for, sandbox_for


def test_sync_command_prints_a_summary_and_dry_run_applies_nothing(district, capsys):
    with sandbox_for(students=40) as sandbox:
        connection = connection_for(sandbox, district, name="Command SIS")
        call_command("sync", "Command SIS", "--dry-run")
        out = capsys.readouterr().out
        assert "Change set" in out and "create" in out and "(dry run)" in out
        assert Student.objects.count() == 0
        call_command("sync", str(connection.pk), "--full", "--json")
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    summary = lines[-1]
    assert summary["event"] == "summary" and summary["status"] == "completed"
    assert summary["counts"]["student"]["create"] == 40
    assert any(line["event"] == "progress" for line in lines)
    assert Student.objects.count() == 40
    assert SyncRun.objects.count() == 2


def test_sync_command_exits_non_zero_when_held(district, capsys):
    with sandbox_for(students=40) as sandbox:
        connection_for(sandbox, district, name="Held SIS")
        call_command("sync", "Held SIS")
        # A different district answers behind the same ids: nearly every record changes at
        # once, past the update threshold, so the run is held.
        sandbox.state.district.__dict__.update(GeneratedDistrict(students=40, seed=99).__dict__)
        with pytest.raises(SystemExit) as exit_info:
            call_command("sync", "Held SIS")
    assert exit_info.value.code == 2
    assert "held:" in capsys.readouterr().out


def test_an_interrupted_sync_command_cancels_its_run(district, capsys, monkeypatch):
    """Ctrl-C while applying: the run is cancelled, not left "running" for the minute drain to
    hand to a worker behind the operator's back; what it had applied stays."""
    from syncing.management.commands import sync as command
    from syncing.models import RunStatus

    real = command.run_execute

    def interrupted(run_id, progress=None):
        def report(current):
            if current.phase == "apply" and current.changes_applied:
                raise KeyboardInterrupt
            progress(current)

        return real(run_id, progress=report)

    monkeypatch.setattr(command, "run_execute", interrupted)
    with sandbox_for(students=40) as sandbox:
        connection_for(sandbox, district, name="Stopped SIS")
        with pytest.raises(SystemExit) as exit_info:
            call_command("sync", "Stopped SIS", "--json")
    assert exit_info.value.code == 130
    run = SyncRun.objects.get()
    assert run.status == RunStatus.CANCELLED
    assert run.changes.filter(state="staged").count() == 0  # the rest rejected, not pending
    assert "Interrupted: run" in capsys.readouterr().err


def _json_sync(name: str, capsys) -> tuple[list[dict], dict]:
    call_command("sync", name, "--json")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return [line for line in lines if line["event"] == "progress"], lines[-1]


def test_progress_never_goes_back_and_is_estimated_from_the_last_run(district, capsys):
    """A first run cannot know how many pages it will read before its last entity reports its
    size: no expected count (an indeterminate bar) rather than a share that jumps back. The
    next run starts from the pages the first one read."""
    with sandbox_for(students=40) as sandbox:
        connection_for(sandbox, district, name="Progress SIS")
        first, first_summary = _json_sync("Progress SIS", capsys)
        second, second_summary = _json_sync("Progress SIS", capsys)
    assert first_summary["status"] == second_summary["status"] == "completed"
    pages = SyncRun.objects.get(pk=first_summary["run"]).pages_done
    assert pages > 10
    for events in (first, second):
        percents = [event["percent"] for event in events]
        assert percents == sorted(percents), percents
        assert all(e["percent"] < 50 for e in events if e["phase"] == "fetch")
    assert first[-1]["percent"] == 100  # the re-sync has nothing to apply
    staging = [event for event in first if event["phase"] == "fetch"]
    unknown = [e for e in staging if e["pages_expected"] is None]
    assert 0 < len(unknown) < len(staging)
    assert staging[: len(unknown)] == unknown  # once known, it stays known
    assert all(e["pages_expected"] >= e["pages_done"] for e in staging[len(unknown) :])
    # The identical re-sync reads the same pages, and knows it from its first page on.
    assert [e["pages_expected"] for e in second if e["phase"] == "fetch"] == [pages] * len(
        [e for e in second if e["phase"] == "fetch"]
    )
    runs = SyncRun.objects.order_by("pk")
    assert [run.pages_expected for run in runs] == [pages, pages]
