from __future__ import annotations

from pathlib import Path

import pytest
from django.core.cache import cache

from config.celery import app as celery_app


def _clear_cache() -> None:
    # Only our prefixed keys: a FLUSHDB would also wipe the Celery broker's queues, which share
    # the Redis database with the cache in the test settings.
    cache.delete_pattern("*")  # type: ignore[attr-defined]


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


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated by ``manage.py migrate`` with the dev settings, made once per
    session; tests that run the project on SQLite copy it (tests/sqlite_project.py)."""
    from tests.sqlite_project import migrate_into

    return migrate_into(tmp_path_factory.mktemp("sqlite-template"))
