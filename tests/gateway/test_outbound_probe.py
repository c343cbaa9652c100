"""``manage.py gateway_probe``: outcome counts, JSON output, and probes sharing a route's limit."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from django.core.management import call_command

from gateway.client import Route, RoutePolicy, request
from gateway.errors import UpstreamUnavailable
from tests.gateway import outbound_support
from tests.gateway.outbound_support import ROOT, Answer, max_in_window, unique, worker_env

server = outbound_support.server
gateway_clean = outbound_support.gateway_clean
pytestmark = [pytest.mark.usefixtures("gateway_clean")]


def _probe(*args: str) -> str:
    out = io.StringIO()
    call_command("gateway_probe", *args, stdout=out)
    return out.getvalue()


def test_probe_counts_outcomes_as_json(server):
    answers = [Answer(200)] * 4 + [Answer(404)] * 2 + [Answer(429, {"Retry-After": "60"})]
    server.script = lambda i, path: answers[i] if i < len(answers) else Answer(200)
    name = f"probe:{unique('json')}"
    report = json.loads(_probe(server.url(), "--route", name, "--requests", "8", "--json"))
    assert report["route"] == name
    assert report["outcomes"] == {
        "ok": 4, "4xx": 2, "5xx": 0, "429": 1, "error": 0,
        "breaker_rejected": 0, "rate_limited": 1,
    }  # fmt: skip
    assert len(server.hits) == 7  # the 8th waited on the 60 s block and was not sent


def test_probe_uses_the_routes_configured_policy_and_reports_breaker_rejections(server):
    server.script = lambda i, path: Answer(503)
    route = Route("probe", unique("configured"), RoutePolicy(attempts=1, breaker_threshold=2))
    with pytest.raises(UpstreamUnavailable):
        request(route, "GET", server.url())  # registers the route and its policy
    text = _probe(server.url(), "--route", route.name, "--requests", "4")
    assert "breaker_rejected  3" in text
    assert "5xx               1" in text
    assert len(server.hits) == 2


def test_probe_retries_are_counted(server):
    server.script = lambda i, path: Answer(500) if i == 0 else Answer(200)
    report = json.loads(
        _probe(server.url(), "--route", f"probe:{unique('retry')}", "--requests", "2", "--json")
    )
    assert report["outcomes"]["ok"] == 2
    assert report["retried"] == 1


def test_probe_rejects_a_bad_route_name(server):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="PROVIDER:KEY"):
        _probe(server.url(), "--route", "nocolon", "--requests", "1")


@pytest.mark.slow
def test_two_probes_at_once_share_the_limit(server):
    name = f"probe:{unique('shared')}"
    command = [sys.executable, "manage.py", "gateway_probe", server.url(), "--route", name,
               "--requests", "20", "--rate", "10", "--burst", "1", "--json"]  # fmt: skip
    processes = [
        subprocess.Popen(
            command,
            cwd=ROOT,
            env=worker_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    reports = [
        json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in processes
    ]
    assert [r["outcomes"]["ok"] for r in reports] == [20, 20]
    times = server.hit_times()
    assert len(times) == 40
    # One shared budget of 10/s (+1 burst): alone, each probe would send 20 in about 2 s.
    assert max_in_window(times, 1.0) <= 11
    assert max(times) - min(times) >= 3.5
