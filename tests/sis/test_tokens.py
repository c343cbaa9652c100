from __future__ import annotations

import threading

import pytest
from django.core.cache import cache

from sis.connectors.records import Entity
from sis.connectors.tokens import CacheTokenStore
from tests.sis.conftest import make_connector


def test_concurrent_refreshers_make_one_token_request(ps_sandbox):
    ps_sandbox.control("reset-stats", {})
    workers = 8
    barrier = threading.Barrier(workers)
    errors = []

    def worker():
        # Each thread is a separate "worker" with its own connector; only the store is shared.
        connector = make_connector(ps_sandbox, key="lock", token_store=CacheTokenStore("lock-test"))
        barrier.wait()
        try:
            connector.count(Entity.SCHOOL)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert ps_sandbox.stats()["token_requests"] == 1


def test_the_cached_token_is_encrypted_and_reused(ps_sandbox):
    store = CacheTokenStore("reuse-test")
    first = make_connector(ps_sandbox, key="reuse", token_store=store)
    first.authenticate()
    raw = cache.get(store.key)
    assert raw.startswith("enc1:") and first._token.access_token not in raw
    second = make_connector(ps_sandbox, key="reuse", token_store=store)
    ps_sandbox.control("reset-stats", {})
    second.count(Entity.SCHOOL)
    assert ps_sandbox.stats().get("token_requests", 0) == 0


def test_a_token_close_to_expiry_is_refreshed_before_use(ps_sandbox):
    ps_sandbox.control("config", {"token_ttl": 30})  # inside the 60 s safety margin
    connector = make_connector(ps_sandbox, key="margin")
    ps_sandbox.control("reset-stats", {})
    connector.count(Entity.SCHOOL)
    connector.count(Entity.SCHOOL)
    assert ps_sandbox.stats()["token_requests"] == 2


@pytest.mark.parametrize("status", [401])
def test_a_second_401_after_reauthentication_is_permanent(ps_sandbox, status):
    from sis.connectors.errors import AuthenticationFailed

    connector = make_connector(ps_sandbox, key="double-401")
    connector.authenticate()
    ps_sandbox.control("config", {"token_ttl": -1})  # every new token is already expired
    ps_sandbox.control("expire-tokens", {})
    with pytest.raises(AuthenticationFailed):
        connector.count(Entity.SCHOOL)
    assert connector.stats["reauthentications"] == 1
