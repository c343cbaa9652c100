"""The project run in subprocesses with the dev settings on SQLite, as ``make run`` runs it
with no services: the environment for such a subprocess, and one migrated database that every
such test starts from (migrating a new SQLite file takes 30–45 s here, most of it Django
rendering migration states; each test copies the file instead). The suite starts that migration
as soon as it knows a test will need it (tests/conftest.py), beside the PostgreSQL test
database's creation rather than after it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def project_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This process's environment without the suite's database, cache and broker settings,
    with a fresh VAR_DIR (the SQLite file and the embedded broker's folders) under ``tmp_path``.
    Without DATABASE_URL in ``extra`` the database is ``VAR_DIR/db.sqlite3``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TEST_", "REDIS_", "CELERY_", "DATABASE_", "DJANGO_"))
    }
    var = tmp_path / "var"
    for folder in ("broker/queue", "broker/processed"):
        (var / folder).mkdir(parents=True, exist_ok=True)
    env.update(DJANGO_SETTINGS_MODULE="config.settings.dev", VAR_DIR=str(var), **extra)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """Run ``manage.py *args`` in a subprocess with ``env``; returns its standard output, and
    fails the test with the tail of both outputs unless it exits with 0."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (args, result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout


def last_json(output: str) -> Any:
    """The JSON a script printed on its last line of output."""
    return json.loads(output.strip().splitlines()[-1])


class PendingMigration:
    """``manage.py migrate`` into a new ``VAR_DIR/db.sqlite3`` under ``folder``, running in the
    background from construction until :meth:`wait` (its output goes to files beside it, so a
    full pipe never stalls it)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        env = project_env(folder)
        self.stdout = (folder / "migrate.out").open("w")
        self.stderr = (folder / "migrate.err").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=ROOT,
            env=env,
            stdout=self.stdout,
            stderr=self.stderr,
        )

    def wait(self, timeout: float = 300) -> Path:
        """The migrated file, once ``migrate`` has exited with 0; fails with its output's tail
        otherwise."""
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            self.stdout.close()
            self.stderr.close()
        tails = [
            (self.folder / name).read_text()[-3000:] for name in ("migrate.out", "migrate.err")
        ]
        assert code == 0, ("migrate", code, *tails)
        database = self.folder / "var" / "db.sqlite3"
        assert database.exists()
        return database

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.stdout.close()
        self.stderr.close()
