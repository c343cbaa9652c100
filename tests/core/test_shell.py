"""The shell imports every model it can and warns about none (history models excluded)."""

from __future__ import annotations

from django.core.management import call_command


def test_the_shell_opens_without_import_warnings(capsys):
    call_command("shell", "--command", "print(SyncRun.__module__, Student.history.model)")
    out = capsys.readouterr().out
    assert "could not be automatically imported" not in out
    assert "syncing.models.runs" in out
    assert "HistoricalStudent" in out
