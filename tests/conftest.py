from __future__ import annotations

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
