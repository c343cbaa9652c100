"""The management commands' progress bar keeps log lines out of its own line."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.sqlite_project import ROOT, project_env

# Logs while a bar is shown, as a sync logs a gateway call per SIS page; the console handler is
# the project's own (JSON, redacting), configured by Django from the dev settings.
_SCRIPT = """
import logging
import django
django.setup()
from core.progress import progress_bar
log = logging.getLogger("sas.gateway")
with progress_bar(total=3, unit="page", desc="work") as bar:
    for number in range(3):
        bar.update(1)
        log.warning("page %s of https://sis.test/x?client_secret=hunter2 for jane@example.org",
                    number)
print("done")
"""


def _run(script: str, tmp_path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=project_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_log_lines_print_above_the_bar_whole_and_redacted(tmp_path):
    result = _run(_SCRIPT, tmp_path)
    assert result.stdout.strip() == "done"
    # The terminal's view: each \r or \n starts a new line. A log record written through the
    # bar starts on a line of its own; without the redirect it follows the bar's text.
    segments = [s for s in re.split(r"[\r\n]", result.stderr) if s.strip()]
    logged = [s for s in segments if '"sas.gateway"' in s]
    assert len(logged) == 3, segments
    records = [json.loads(line) for line in logged]  # fails if the bar's text is in the line
    assert [r["message"].split()[1] for r in records] == ["0", "1", "2"]
    assert "hunter2" not in result.stderr and "jane@example.org" not in result.stderr
    assert "client_secret=[redacted]" in records[0]["message"]
    assert any(s.startswith("work: 100%") for s in segments)  # the bar itself was drawn


def test_a_disabled_bar_draws_nothing_and_leaves_logging_alone(tmp_path):
    script = _SCRIPT.replace("progress_bar(total=3", "progress_bar(enabled=False, total=3")
    result = _run(script, tmp_path)
    lines = result.stderr.splitlines()
    assert len(lines) == 3 and all(json.loads(line)["logger"] == "sas.gateway" for line in lines)
    assert "work" not in result.stderr
