"""Circuit breaker per route: what trips it, what it lets through, and Redis outages."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
import requests

from gateway.breaker import CLOSED, OPEN, breaker_for
from gateway.client import Route, RoutePolicy, request
from gateway.errors import CircuitOpen, RateLimited, UpstreamUnavailable
from tests.gateway import outbound_support
from tests.gateway.outbound_support import (
    ROOT,
    Answer,
    PrivateRedis,
    collect,
    free_port,
    start_workers,
    unique,
    worker_env,
)

server = outbound_support.server
gateway_clean = outbound_support.gateway_clean
pytestmark = [pytest.mark.usefixtures("gateway_clean")]


def _route(name: str, **policy) -> Route:
    defaults = {"attempts": 1, "breaker_threshold": 3, "breaker_reset": 30.0}
    return Route("test", unique(name), RoutePolicy(**(defaults | policy)))


def _outcome(route: Route, url: str) -> str:
    try:
        return str(request(route, "GET", url).status_code)
    except UpstreamUnavailable:
        return "unavailable"
    except CircuitOpen:
        return "open"
    except RateLimited:
        return "rate_limited"


def test_failures_past_the_threshold_open_it_and_no_request_reaches_the_server(server):
    server.script = lambda i, path: Answer(503)
    route = _route("trip")
    assert [_outcome(route, server.url()) for _ in range(3)] == ["unavailable"] * 3
    assert breaker_for(route).storage.snapshot().state == OPEN

    started = time.perf_counter()
    assert [_outcome(route, server.url()) for _ in range(20)] == ["open"] * 20
    # Fails fast: one Redis round trip, no request (about 1 ms; generous under CI load).
    assert (time.perf_counter() - started) / 20 < 0.05
    assert len(server.hits) == 3


def test_a_successful_probe_after_the_reset_timeout_closes_it(server):
    server.script = lambda i, path: Answer(503) if i < 3 else Answer(200)
    route = _route("recover", breaker_reset=0.5)
    for _ in range(3):
        _outcome(route, server.url())
    assert _outcome(route, server.url()) == "open"
    time.sleep(0.6)
    assert _outcome(route, server.url()) == "200"
    assert breaker_for(route).storage.snapshot().state == CLOSED
    assert [_outcome(route, server.url()) for _ in range(3)] == ["200"] * 3


@pytest.mark.slow
def test_exactly_one_probe_reaches_the_server_with_four_processes_waiting(server):
    # The probe fails slowly, so the breaker re-opens and nobody else may follow it.
    server.script = lambda i, path: Answer(503, delay=0.5 if i >= 3 else 0)
    policy = RoutePolicy(attempts=1, breaker_threshold=3, breaker_reset=2.0)
    route = Route("test", unique("probe"), policy)
    for _ in range(3):
        _outcome(route, server.url())
    opened = time.time()
    assert _outcome(route, server.url()) == "open"
    spec = {
        "provider": route.provider,
        "key": route.key,
        "policy": policy.to_dict(),
        "url": server.url(),
        "duration": 1.5,
        "pause": 0.01,
    }
    processes = start_workers([spec] * 4, delay=max(0.3, opened + 2.2 - time.time()))
    results = collect(processes)

    assert len(server.hits) == 3 + 1
    outcomes = [outcome for result in results for _, outcome in result["outcomes"]]
    assert outcomes.count("unavailable") == 1  # the one probe
    assert outcomes.count("breaker_open") >= 4, results  # everyone else was turned away


def test_4xx_answers_neither_trip_nor_reset_it(server):
    statuses = [503, 503, 404, 422, 400, 404, 409, 503]
    server.script = lambda i, path: Answer(statuses[i]) if i < len(statuses) else Answer(200)
    route = _route("4xx")
    outcomes = [_outcome(route, server.url()) for _ in range(7)]
    assert outcomes == ["unavailable", "unavailable", "404", "422", "400", "404", "409"]
    snap = breaker_for(route).storage.snapshot()
    assert (snap.state, snap.failures) == (CLOSED, 2)  # the 4xx did not reset the count
    assert _outcome(route, server.url()) == "unavailable"  # third 5xx
    assert _outcome(route, server.url()) == "open"
    assert len(server.hits) == 8


def test_a_flood_of_4xx_and_429_never_opens_it(server):
    server.script = lambda i, path: Answer(429, {"Retry-After": "0"}) if i % 5 == 4 else Answer(404)
    route = _route("flood", backoff_base=0.01, backoff_cap=0.01)
    outcomes = [_outcome(route, server.url()) for _ in range(15)]
    assert set(outcomes) == {"404", "rate_limited"}
    snap = breaker_for(route).storage.snapshot()
    assert (snap.state, snap.failures) == (CLOSED, 0)


def test_a_hung_server_hits_the_read_timeout_and_counts_as_a_failure(server):
    server.script = lambda i, path: Answer(200, delay=2.0)
    route = _route("hung", read_timeout=0.3, breaker_threshold=2)
    started = time.perf_counter()
    assert _outcome(route, server.url()) == "unavailable"
    assert time.perf_counter() - started < 1.5
    assert breaker_for(route).storage.snapshot().failures == 1
    assert _outcome(route, server.url()) == "unavailable"
    assert _outcome(route, server.url()) == "open"
    assert len(server.hits) == 2


def test_connection_errors_count_as_failures():
    route = _route("refused", breaker_threshold=2)
    url = f"http://127.0.0.1:{free_port()}/nothing-listens"
    assert [_outcome(route, url) for _ in range(3)] == ["unavailable", "unavailable", "open"]


def test_it_still_opens_when_redis_is_unreachable(server, settings):
    settings.GATEWAY_REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens
    server.script = lambda i, path: Answer(503)
    route = _route("no-redis")
    assert [_outcome(route, server.url()) for _ in range(5)] == ["unavailable"] * 3 + ["open"] * 2
    assert len(server.hits) == 3
    assert breaker_for(route).storage.snapshot().shared is False


@pytest.mark.slow
def test_redis_dying_mid_run_keeps_the_count_and_opens_on_local_state(server, settings):
    private = PrivateRedis()
    try:
        settings.GATEWAY_REDIS_URL = private.url
        server.script = lambda i, path: Answer(503)
        route = _route("redis-dies")
        assert [_outcome(route, server.url()) for _ in range(2)] == ["unavailable"] * 2
        snap = breaker_for(route).storage.snapshot()
        assert (snap.shared, snap.failures) == (True, 2)
        private.kill()
        # The third failure is counted on the local mirror, which remembers the first two.
        assert _outcome(route, server.url()) == "unavailable"
        assert [_outcome(route, server.url()) for _ in range(3)] == ["open"] * 3
        assert len(server.hits) == 3
    finally:
        private.kill()


def test_the_app_imports_and_serves_without_redis():
    env = worker_env() | {"GATEWAY_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    code = """
import django
django.setup()
from django.test import Client
from gateway.breaker import breaker_for
from gateway.client import Route, RoutePolicy
import gateway.admin_routes
breaker_for(Route("test", "boot", RoutePolicy()))
assert Client(HTTP_HOST="localhost").get("/healthz").status_code == 200
print("served")
"""
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "served" in done.stdout


def test_a_probe_that_fails_on_our_side_gives_its_reservation_back(server):
    server.script = lambda i, path: Answer(503) if i < 3 else Answer(200)
    route = _route("bad-probe", breaker_reset=0.3)
    for _ in range(3):
        _outcome(route, server.url())
    time.sleep(0.4)
    with pytest.raises(requests.exceptions.InvalidURL):
        request(route, "GET", "http://127.0.0.1:notaport/")  # our bug, not an outage
    assert _outcome(route, server.url()) == "200"  # the next caller may probe at once
    assert breaker_for(route).storage.snapshot().state == CLOSED


def test_calls_through_one_breaker_are_not_serialised(server):
    # pybreaker holds its lock around the guarded call; ours replays the outcome afterwards,
    # so four slow calls of one route in one process overlap instead of queueing.
    server.script = lambda i, path: Answer(200, delay=0.5)
    route = _route("parallel")
    threads = [
        threading.Thread(target=request, args=(route, "GET", server.url())) for _ in range(4)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert time.perf_counter() - started < 1.5  # serialised, it would take 2 s
    assert len(server.hits) == 4
