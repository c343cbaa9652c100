"""/metrics is not public: 404 without a token setting, 401/403 without the right token."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.client import Route, RoutePolicy, request
from tests.gateway import outbound_support
from tests.gateway.outbound_support import ROOT, unique, worker_env

server = outbound_support.server
gateway_clean = outbound_support.gateway_clean
pytestmark = [pytest.mark.usefixtures("gateway_clean")]


def test_metrics_do_not_exist_without_a_token_setting(client, settings):
    settings.METRICS_TOKEN = None
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer x"}).status_code == 404


def test_metrics_refuse_a_missing_or_wrong_token(client, settings):
    settings.METRICS_TOKEN = "right-token-value"
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"].startswith("Bearer")
    wrong = client.get("/metrics", headers={"Authorization": "Bearer wrong-token-value"})
    assert wrong.status_code == 403
    assert b"sas_gateway" not in wrong.content


def test_metrics_with_the_right_token(client, settings, server):
    settings.METRICS_TOKEN = "right-token-value"
    route = Route("test", unique("scraped"), RoutePolicy())
    request(route, "GET", server.url())
    response = client.get("/metrics", headers={"Authorization": "Bearer right-token-value"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    body = response.content.decode()
    assert (
        f'sas_gateway_calls_total{{provider="test",route="{route.name}",status_class="2xx"}} 1.0'
        in body
    )
    assert "sas_gateway_call_duration_seconds_bucket" in body


def test_multiprocess_mode_adds_up_every_process(tmp_path, server):
    code = """
import logging, sys
logging.disable(logging.CRITICAL)
from gateway.client import Route, RoutePolicy, request
from gateway.metrics import exposition
route = Route("mp", sys.argv[1], RoutePolicy())
if sys.argv[2] == "call":
    request(route, "GET", sys.argv[3])
else:
    print(exposition()[0].decode())
"""
    env = worker_env() | {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    key = unique("mp")

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code, key, *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return done.stdout

    run("call", server.url())
    run("call", server.url())
    scraped = run("scrape")
    assert f'sas_gateway_calls_total{{provider="mp",route="mp:{key}",status_class="2xx"}} 2.0' in (
        scraped
    )
