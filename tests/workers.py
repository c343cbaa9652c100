"""Real Celery workers for tests, for any queue and pool size: the SIGKILL sync test's worker
(tests/syncing/kill_resume.py) and the notification workers use this one command line."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

from django.db import connection as db

from config.celery import app as celery_app

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def celery_worker(
    *, queue: str, log_path: Path, concurrency: int = 1, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A prefork worker on ``queue`` using the test database and broker; ``env`` adds
    settings (provider URLs, limits). Stopped (then killed) when the block ends."""
    full_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "TEST_DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db.settings_dict['NAME']}",
        **(env or {}),
    }
    celery_app.control.purge()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue,
             "--concurrency", str(concurrency), "--pool", "prefork", "--loglevel", "WARNING",
             "--hostname", f"{queue}-test-{uuid.uuid4().hex[:8]}@%h"],
            cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
