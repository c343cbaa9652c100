"""The outbound client: retries, writes, timeouts, throttle detection, call log, metrics."""

from __future__ import annotations

import json
import logging
import time

import pytest
import requests
from prometheus_client import REGISTRY

from gateway.client import (
    CallStats,
    Route,
    RoutePolicy,
    request,
    request_observed,
    templated_path,
    throttle_detector_register,
)
from gateway.errors import RateLimited, UpstreamUnavailable
from gateway.limiter import limiter_state_read
from gateway.registry import route_get
from tests.gateway import outbound_support
from tests.gateway.outbound_support import Answer, unique

server = outbound_support.server
gateway_clean = outbound_support.gateway_clean
pytestmark = [pytest.mark.usefixtures("gateway_clean")]

FAST = {"backoff_base": 0.01, "backoff_cap": 0.02}


def _route(name: str, **policy) -> Route:
    return Route("test", unique(name), RoutePolicy(**(FAST | policy)))


def test_idempotent_requests_are_retried_on_5xx(server):
    server.script = lambda i, path: Answer(503) if i < 2 else Answer(200)
    stats = CallStats()
    response = request_observed(_route("get"), "GET", server.url(), stats=stats)
    assert response.status_code == 200
    assert (len(server.hits), stats.attempts, stats.retries) == (3, 3, 2)


def test_retries_stop_at_the_attempt_limit(server):
    server.script = lambda i, path: Answer(502)
    with pytest.raises(UpstreamUnavailable, match="HTTP 502"):
        request(_route("limit", attempts=3), "GET", server.url())
    assert len(server.hits) == 3


def test_writes_are_not_retried_unless_safe_to_repeat(server):
    server.script = lambda i, path: Answer(503) if i in (0, 1) else Answer(201)
    with pytest.raises(UpstreamUnavailable):
        request(_route("post"), "POST", server.url(), json={"a": 1})
    assert len(server.hits) == 1
    response = request(_route("post-safe"), "POST", server.url(), json={"a": 1}, retry_writes=True)
    assert response.status_code == 201
    assert len(server.hits) == 3


def test_4xx_answers_are_returned_without_retry(server):
    server.script = lambda i, path: Answer(404)
    assert request(_route("404"), "GET", server.url()).status_code == 404
    assert len(server.hits) == 1


def test_timeouts_are_always_set(server):
    server.script = lambda i, path: Answer(200, delay=2.0)
    route = _route("timeout", read_timeout=0.3, attempts=1)
    started = time.perf_counter()
    with pytest.raises(UpstreamUnavailable, match="ReadTimeout"):
        request(route, "GET", server.url(), timeout=None)  # None is replaced, not honoured
    assert time.perf_counter() - started < 1.5


def test_a_provider_throttle_answer_blocks_the_route(server):
    throttle_detector_register(
        "throttly",
        lambda response: 30.0 if response.status_code == 400 and b"slow down" in response.content
        else None,
    )  # fmt: skip
    server.script = lambda i, path: Answer(400, body=b'{"error": "slow down"}')
    route = Route("throttly", unique("t"), RoutePolicy(max_wait=1))
    with pytest.raises(RateLimited) as caught:
        request(route, "GET", server.url())
    assert caught.value.retry_after == 30.0
    assert limiter_state_read(route).blocked_for > 28
    with pytest.raises(RateLimited):
        request(route, "GET", server.url())
    assert len(server.hits) == 1


def test_one_log_line_per_call_without_query_strings_or_ids(server, caplog):
    server.script = lambda i, path: Answer(503) if i == 0 else Answer(200)
    route = _route("log")
    with caplog.at_level(logging.INFO, logger="sas.gateway"):
        request(route, "GET", server.url("/ws/v1/student/40021?access_token=abc&q=Smith"))
    lines = [r for r in caplog.records if r.name == "sas.gateway" and r.msg == "gateway call"]
    assert len(lines) == 2
    first, second = lines
    assert (first.status, first.attempt, first.outcome) == (503, 1, "5xx")
    assert (second.status, second.attempt, second.outcome) == (200, 2, "ok")
    for line in lines:
        assert line.path == "/ws/v1/student/{id}"
        assert line.provider == "test" and line.route == route.name
        assert line.breaker_state == "closed" and line.method == "GET"
        assert isinstance(line.duration_ms, float)
        text = json.dumps(vars(line), default=str)
        assert "abc" not in text and "Smith" not in text and "40021" not in text


def test_path_template_from_the_caller_wins(server, caplog):
    with caplog.at_level(logging.INFO, logger="sas.gateway"):
        request(_route("tpl"), "GET", server.url("/ims/oneroster/v1p1/users/ab-cd"),
                path_template="/ims/oneroster/v1p1/users/{sourcedId}")  # fmt: skip
    assert caplog.records[-1].path == "/ims/oneroster/v1p1/users/{sourcedId}"


def test_templated_path_hides_ids():
    uuid_url = "https://x.example.org/a/123/b/5f0c9c1e-8d1a-4b47-9f5e-2d9d3b1e0a11?x=1"
    assert templated_path(uuid_url) == "/a/{id}/b/{id}"
    assert templated_path("http://[bad-host/") == "{invalid}"
    assert templated_path("https://x.example.org/Accounts/AC123abc456/Messages.json") == (
        "/Accounts/{id}/Messages.json"
    )


def test_metrics_count_calls_and_retries(server):
    server.script = lambda i, path: Answer(500) if i == 0 else Answer(200)
    route = _route("metrics")
    request(route, "GET", server.url())

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    base = {"provider": "test", "route": route.name}
    assert value("sas_gateway_calls_total", **base, status_class="5xx") == 1
    assert value("sas_gateway_calls_total", **base, status_class="2xx") == 1
    assert value("sas_gateway_retries_total", **base, reason="5xx") == 1
    assert value("sas_gateway_call_duration_seconds_count", **base) == 2


def test_routes_register_themselves_with_their_policy(server):
    route = Route("powerschool", unique("reg"), RoutePolicy(rate_per_second=7), district_id=9)
    request(route, "GET", server.url())
    info = route_get(route.name)
    assert info is not None
    assert info.route == route


def test_connection_pool_is_reused_per_route(server):
    route = _route("pool")
    for _ in range(5):
        request(route, "GET", server.url())
    from gateway.client import _session

    assert _session(route) is _session(route)
    assert isinstance(_session(route), requests.Session)
