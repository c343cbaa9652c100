"""Outbound rate limits, Retry-After blocks and concurrency leases, shared across processes."""

from __future__ import annotations

import datetime as dt
import threading
import time
from email.utils import format_datetime
from zoneinfo import ZoneInfo

import pytest
import requests

from gateway import limiter
from gateway.client import (
    CallStats,
    Route,
    RoutePolicy,
    request,
    request_observed,
    retry_after_seconds,
    route_block,
)
from gateway.errors import RateLimited
from gateway.routes import policy_for
from tests.gateway import outbound_support
from tests.gateway.outbound_support import Answer, collect, max_in_window, start_workers, unique

server = outbound_support.server
gateway_clean = outbound_support.gateway_clean

pytestmark = [pytest.mark.usefixtures("gateway_clean")]


@pytest.mark.slow
def test_four_processes_never_exceed_rate_plus_burst(server):
    policy = RoutePolicy(rate_per_second=10, burst=2, attempts=1, max_wait=30)
    key = unique("rate")
    spec = {
        "provider": "test",
        "key": key,
        "policy": policy.to_dict(),
        "url": server.url(),
        "count": 8,
    }
    results = collect(start_workers([spec] * 4))

    outcomes = [outcome for result in results for _, outcome in result["outcomes"]]
    assert outcomes == ["200"] * 32
    times = server.hit_times()
    assert len(times) == 32
    # GCRA: at most burst + rate * W calls in any window of W seconds.
    assert max_in_window(times, 1.0) <= 10 + 2
    # ... and it really paced them: 30 calls after the burst need about 3 s.
    assert max(times) - min(times) >= 2.7


@pytest.mark.slow
def test_retry_after_seen_by_one_process_blocks_every_process(server):
    server.script = lambda i, path: Answer(429, {"Retry-After": "3"}) if i == 0 else Answer(200)
    policy = RoutePolicy(attempts=2, max_wait=1.0)
    spec = {
        "provider": "test",
        "key": unique("retry-after"),
        "policy": policy.to_dict(),
        "url": server.url(),
        "duration": 4.5,
        "pause": 0.05,
    }
    results = collect(start_workers([spec] * 4))

    with server._lock:
        hits = list(server.hits)
    throttled_at = hits[0][0]
    # Requests already on the wire when the 429 was answered may still land right after it;
    # nothing sent after it may arrive before the 3 s are over.
    early = [t for t, _, _ in hits[1:] if throttled_at + 0.2 < t < throttled_at + 2.95]
    assert early == []
    assert any(t >= throttled_at + 2.95 for t, _, _ in hits)  # calls resumed afterwards
    outcomes = [outcome for result in results for _, outcome in result["outcomes"]]
    assert "rate_limited" in outcomes and "200" in outcomes


def test_retry_after_as_http_date_and_seconds():
    response = requests.Response()
    response.headers["Retry-After"] = "7"
    assert retry_after_seconds(response) == 7.0
    when = dt.datetime.now(tz=dt.UTC) + dt.timedelta(seconds=20)
    response.headers["Retry-After"] = format_datetime(when, usegmt=True)
    assert 17 <= (retry_after_seconds(response) or 0) <= 20
    response.headers["Retry-After"] = "soon"
    assert retry_after_seconds(response) is None


def test_a_long_block_is_raised_with_retry_after_and_a_safe_countdown(server, settings):
    route = Route("test", unique("block"), RoutePolicy(max_wait=1.0))
    route_block(route, 120)
    with pytest.raises(RateLimited) as caught:
        request(route, "GET", server.url())
    assert 118 <= (caught.value.retry_after or 0) <= 120
    assert server.hits == []
    settings.CELERY_VISIBILITY_TIMEOUT = 200
    assert caught.value.countdown() == 100  # clamped below the visibility timeout


def test_a_short_block_sleeps_then_calls(server):
    route = Route("test", unique("short"), RoutePolicy(max_wait=2.0))
    route_block(route, 0.4)
    started = time.time()
    assert request(route, "GET", server.url()).status_code == 200
    assert server.hit_times()[0] - started >= 0.35


def test_429_without_retry_after_backs_off_then_succeeds(server):
    server.script = lambda i, path: Answer(429) if i == 0 else Answer(200)
    route = Route("test", unique("429"), RoutePolicy(backoff_base=0.2, backoff_cap=0.2))
    assert request(route, "GET", server.url()).status_code == 200
    assert len(server.hits) == 2


def test_429_with_a_long_retry_after_is_raised(server):
    server.script = lambda i, path: Answer(429, {"Retry-After": "90"})
    route = Route("test", unique("429-long"), RoutePolicy(max_wait=5))
    with pytest.raises(RateLimited) as caught:
        request(route, "GET", server.url())
    assert caught.value.retry_after == 90
    assert len(server.hits) == 1
    # The route stays blocked for everyone: the next call does not reach the server.
    with pytest.raises(RateLimited):
        request(route, "GET", server.url())
    assert len(server.hits) == 1


def test_concurrency_lease_serialises_calls(server):
    server.script = lambda i, path: Answer(200, delay=0.3)
    route = Route("test", unique("serial"), RoutePolicy(max_in_flight=1, max_wait=5))
    threads = [
        threading.Thread(target=request, args=(route, "GET", server.url())) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    times = sorted(server.hit_times())
    assert len(times) == 3
    assert all(b - a >= 0.28 for a, b in zip(times, times[1:], strict=False))


def test_a_lease_never_released_expires(server):
    # A worker killed mid-call never gives its lease back; its TTL frees the slot.
    policy = RoutePolicy(max_in_flight=1, connect_timeout=0.1, read_timeout=0.1, max_wait=0.2)
    route = Route("test", unique("lease"), policy)
    lease = limiter.lease_acquire(route)
    assert lease.token and lease.shared
    with pytest.raises(RateLimited):
        limiter.lease_acquire(route)
    time.sleep(policy.lease_ttl + 0.1)
    assert request(route, "GET", server.url()).status_code == 200


class _QueueOnly(limiter._Releases):
    """Queues returned leases but never starts the background flush."""

    def add(self, route_name, token):
        with self._lock:
            self._tokens.setdefault(route_name, []).append(token)


def test_a_returned_lease_rides_on_the_next_admission(server, monkeypatch):
    # Only the next admission can free the slot here.
    monkeypatch.setattr(limiter, "_releases", _QueueOnly())
    route = Route("test", unique("fold"), RoutePolicy(max_in_flight=1, max_wait=0.2))
    for _ in range(3):
        stats = CallStats()
        assert request_observed(route, "GET", server.url(), stats=stats).status_code == 200
        assert stats.waits == 0  # the previous call's lease was removed by this admission
    assert limiter.limiter_state_read(route).in_flight == 1  # the last one, still queued


def test_a_returned_lease_is_removed_soon_without_another_call(server):
    route = Route("test", unique("flush"), RoutePolicy(max_in_flight=2))
    assert request(route, "GET", server.url()).status_code == 200
    deadline = time.monotonic() + 1.0
    while limiter.limiter_state_read(route).in_flight and time.monotonic() < deadline:
        time.sleep(0.005)
    assert limiter.limiter_state_read(route).in_flight == 0


def test_infinite_campus_is_serial_at_peak_and_five_off_peak():
    policy = policy_for("infinite_campus")
    zone = ZoneInfo("America/Chicago")
    tuesday_peak = dt.datetime(2026, 11, 24, 10, 0, tzinfo=zone)
    tuesday_night = dt.datetime(2026, 11, 24, 20, 0, tzinfo=zone)
    saturday = dt.datetime(2026, 11, 28, 10, 0, tzinfo=zone)
    assert policy.max_in_flight_at(tuesday_peak) == 1
    assert policy.max_in_flight_at(tuesday_night) == 5
    assert policy.max_in_flight_at(saturday) == 5


def test_policy_from_connection_settings_rejects_unknown_keys():
    policy = RoutePolicy.from_dict({"rate_per_second": 3, "burst": 2})
    assert policy.rate_per_second == 3
    with pytest.raises(ValueError, match="rate_per_sec"):
        RoutePolicy.from_dict({"rate_per_sec": 3})
    with pytest.raises(ValueError, match="burst"):
        RoutePolicy(burst=0)
