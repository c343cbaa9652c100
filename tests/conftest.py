from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from django.core.cache import cache

from config.celery import app as celery_app
from tests.sqlite_project import PendingMigration


def _clear_cache() -> None:
    # Only our prefixed keys: a FLUSHDB would also wipe the Celery broker's queues, which share
    # the Redis database with the cache in the test settings.
    cache.delete_pattern("*")  # type: ignore[attr-defined]


@pytest.fixture(autouse=True, scope="session")
def _no_gateway_state_from_earlier_runs():
    """Route registry, breakers and limiters live in Redis under their own prefix, which the
    cache clearing below leaves alone (tests of one run use unique route names). What an
    earlier run left would show in this one's admin pages: an open breaker of a route whose
    district id a new test database hands out again."""
    from gateway.redis_state import key_prefix, run

    def forget(client):
        keys = list(client.scan_iter(match=f"{key_prefix()}:*", count=1000))
        if keys:
            client.delete(*keys)

    run(forget)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with an empty shared cache (rate limits, locks, delivery counters)."""
    _clear_cache()
    yield
    _clear_cache()


@pytest.fixture
def eager_celery():
    """Tasks run in the calling thread (errors raised there), as the commit callbacks queue
    them; restored afterwards."""
    previous = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = previous


# The SQLite template's migration, started once collection shows a test that needs it.
_started: list[PendingMigration] = []


def pytest_collection_modifyitems(session: pytest.Session, items: list[pytest.Item]) -> None:
    """Start migrating the SQLite template as soon as a collected test needs it: it then runs
    in its own process beside the PostgreSQL test database's creation (each takes most of a
    minute, most of it one core's Python) instead of after it."""
    if any("migrated_sqlite" in getattr(item, "fixturenames", ()) for item in items):
        _started.append(PendingMigration(Path(tempfile.mkdtemp(prefix="sas-sqlite-template-"))))


def pytest_sessionfinish(session: pytest.Session) -> None:
    for pending in _started:  # stopped if never waited for (the run ended early)
        pending.stop()
        shutil.rmtree(pending.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated by ``manage.py migrate`` with the dev settings, made once per
    session; tests that run the project on SQLite copy it (tests/sqlite_project.py)."""
    if _started:
        return _started[0].wait()
    return PendingMigration(tmp_path_factory.mktemp("sqlite-template")).wait()
