from __future__ import annotations

import pytest
from django.core.cache import cache


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
