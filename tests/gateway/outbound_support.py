"""Shared pieces of the outbound gateway tests: a scripted local HTTP server that records when
each request arrived, a private redis-server, and worker processes that call the gateway.

Run as ``python -m tests.gateway.outbound_support SPEC_JSON`` it is one such worker process.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from subprocess import Popen

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"ok": true}'
    delay: float = 0.0


Script = Callable[[int, str], Answer]  # (index of this request, path) -> answer


class ScriptedServer:
    """A real HTTP/1.1 server on 127.0.0.1 (free port) answering from a script.

    ``script(i, path)`` picks the answer for the i-th request; ``hits`` records
    (arrival time, method, path) of every request that reached the server.
    """

    def __init__(self) -> None:
        self.hits: list[tuple[float, str, str]] = []
        self.script: Script = lambda i, path: Answer()
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body in one segment, no Nagle: otherwise every answer waits ~40 ms
            # for a delayed ACK and timings mean nothing.
            disable_nagle_algorithm = True
            wbufsize = 65536

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                with outer._lock:
                    index = len(outer.hits)
                    outer.hits.append((time.time(), self.command, self.path))
                    answer = outer.script(index, self.path)
                if answer.delay:
                    time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def url(self, path: str = "/ws/v1/thing") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def hit_times(self, since: float = 0.0) -> list[float]:
        with self._lock:
            return [t for t, _, _ in self.hits if t >= since]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def max_in_window(times: list[float], window: float) -> int:
    """The most events in any half-open window [t, t + window)."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A throw-away redis-server on a free port (the shared one is never stopped)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    env["PYTHONPATH"] = str(ROOT)
    return env


def start_workers(specs: list[dict[str, object]], delay: float = 0.3) -> list[Popen[str]]:
    """Start one worker process per spec, wait until each has set Django up, then release
    them all at the same moment (``delay`` seconds from now)."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.gateway.outbound_support", json.dumps(spec)],
            cwd=ROOT,
            env=worker_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for spec in specs
    ]
    for process in processes:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip() == "ready", line
    start_at = time.time() + delay
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(f"{start_at}\n")
        process.stdin.flush()
    return processes


def collect(processes: list[Popen[str]], timeout: float = 90) -> list[dict]:
    results = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        assert process.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _worker(spec: dict) -> dict:
    """Call the gateway as the spec says; report each call's outcome and time."""
    # Settings only, no django.setup(): the gateway needs no app registry, and populating
    # every app in four processes at once is slow on a small machine.
    import logging

    logging.getLogger("sas.gateway").setLevel(logging.ERROR)
    from gateway.client import Route, RoutePolicy, request
    from gateway.errors import CircuitOpen, RateLimited, UpstreamUnavailable

    route = Route(spec["provider"], spec["key"], RoutePolicy.from_dict(spec["policy"]))
    # Warm up (lazy imports, first connections) so the first real call is not the slowest.
    import requests

    from gateway.breaker import breaker_for
    from gateway.redis_state import run

    with contextlib.suppress(requests.RequestException):
        requests.get(f"http://127.0.0.1:{free_port()}/", timeout=0.5)
    run(lambda client: client.ping())
    breaker_for(route)
    # Every process waits for the same moment, so they really run at once.
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())
    time.sleep(max(0.0, start_at - time.time()))
    until = start_at + spec["duration"] if "duration" in spec else None
    count = spec.get("count")
    outcomes: list[tuple[float, str]] = []
    n = 0
    while (count is None or n < count) and (until is None or time.time() < until):
        n += 1
        try:
            response = request(route, "GET", spec["url"])
            outcome = str(response.status_code)
        except RateLimited:
            outcome = "rate_limited"
            time.sleep(spec.get("pause", 0.05))
        except CircuitOpen:
            outcome = "breaker_open"
            time.sleep(spec.get("pause", 0.05))
        except UpstreamUnavailable:
            outcome = "unavailable"
        outcomes.append((time.time(), outcome))
    return {"outcomes": outcomes}


def gateway_state_reset() -> None:
    """Forget this process's gateway state (clients, breakers, local fallbacks, registry)."""
    from gateway import breaker, limiter, redis_state, registry

    redis_state.reset()
    breaker._breakers.clear()
    limiter._local = limiter._LocalLimiter()
    registry.registry_forget_local()


def unique(name: str) -> str:
    # Short hex, not a long digit run (the log redaction filter would take it for a phone).
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    """A scripted HTTP server on a free loopback port, stopped after the test."""
    scripted = ScriptedServer()
    try:
        yield scripted
    finally:
        scripted.stop()


@pytest.fixture
def gateway_clean() -> Iterator[None]:
    """Fresh per-process gateway state before and after the test (Redis is flushed by the
    suite's autouse cache fixture)."""
    gateway_state_reset()
    yield
    gateway_state_reset()


if __name__ == "__main__":
    print(json.dumps(_worker(json.loads(sys.argv[1]))))
