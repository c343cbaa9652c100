"""The sandbox SIS: a real HTTP server speaking PowerSchool or OneRoster (1.1, 1.2).

It needs no database: the district is generated (or loaded from Grand Bend) in memory. Control
endpoints under ``/__sandbox/`` let tests advance the change script, read what changed, inject
faults, expire tokens, and read the writes and request counters.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import gc
import json
import logging
import random
import re
import secrets
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from sis.sandbox.district import District, GeneratedDistrict

logger = logging.getLogger(__name__)

PROVIDERS = ("powerschool", "oneroster-1.1", "oneroster-1.2")
FAULT_KINDS = ("500", "503", "timeout", "429", "throttle", "malformed", "duplicate_page")


def parse_faults(spec: str) -> dict[str, float]:
    """``"500:0.05,429:0.05"`` → ``{"500": 0.05, "429": 0.05}`` (clear errors on bad input)."""
    rates: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in (spec or "").split(","))):
        kind, _, rate = part.partition(":")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        try:
            value = float(rate)
        except ValueError:
            raise ValueError(f"fault {kind!r} needs a rate between 0 and 1") from None
        if not 0 <= value <= 1:
            raise ValueError(f"fault {kind!r} needs a rate between 0 and 1")
        rates[kind] = value
    return rates


@dataclass
class SandboxState:
    district: District
    provider: str
    client_id: str = "sandbox-client"
    client_secret: str = "sandbox-secret"  # noqa: S105 (a fake credential of a fake server)
    token_ttl: float = 3600.0
    page_cap: int = 1000
    default_limit: int = 100
    oauth1: bool = False
    app_name: str = ""  # when set, the token URL must carry ?appName=<it> (Infinite Campus)
    fault_rates: dict[str, float] = field(default_factory=dict)
    seed: int = 1
    throttle_wait: int = 1
    retry_after: int = 1
    timeout_seconds: float = 3.0
    tokens: dict[str, float] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    writes: list[dict[str, Any]] = field(default_factory=list)
    forced: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    nonces: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)  # noqa: S311 (fault injection, not security)
        self.last_pages: dict[str, Any] = {}

    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.stats[name] = self.stats.get(name, 0) + n

    def issue_token(self) -> dict[str, Any]:
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = time.time() + self.token_ttl
            self.stats["token_requests"] = self.stats.get("token_requests", 0) + 1
        return {"access_token": token, "token_type": "Bearer", "expires_in": int(self.token_ttl)}

    def token_valid(self, token: str) -> bool:
        with self.lock:
            expiry = self.tokens.get(token)
        return expiry is not None and expiry > time.time()

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def next_fault(self, path: str) -> str | None:
        """A forced fault for this path (tests), else one drawn from the seeded rates."""
        with self.lock:
            for index, forced in enumerate(self.forced):
                if forced.get("path", "") in path:
                    if forced.get("skip", 0) > 0:
                        forced["skip"] -= 1
                        continue
                    forced["times"] = forced.get("times", 1) - 1
                    if forced["times"] <= 0:
                        self.forced.pop(index)
                    return str(forced["fault"])
            for kind, rate in self.fault_rates.items():
                if rate and self.rng.random() < rate:
                    return kind
        return None


class SandboxHandler(BaseHTTPRequestHandler):
    server: SandboxHTTPServer
    protocol_version = "HTTP/1.1"
    _body: bytes | None = None  # the current request's body, once read
    disable_nagle_algorithm = True  # TCP_NODELAY: small JSON answers must not wait 40 ms

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: tests and the benchmark make thousands of calls

    # ---------------------------------------------------------------- plumbing -----------------
    @property
    def state(self) -> SandboxState:
        return self.server.state

    def body(self) -> bytes:
        # Read once per request (cached): a fault answer must still consume the body, or the
        # next request on the kept-alive connection would start inside it.
        cached = self._body
        if cached is None:
            length = int(self.headers.get("Content-Length") or 0)
            cached = self._body = self.rfile.read(length) if length else b""
        return cached

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        # orjson: the sandbox serves a 100,000-student district's million records in the
        # benchmarks, on the same two cores as the sync it serves.
        data = orjson.dumps(
            payload,
            default=_json_default,
            option=orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS,
        )
        self.send_bytes(status, data, headers)

    def send_bytes(
        self,
        status: int,
        data: bytes,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def do_PUT(self) -> None:
        self.dispatch("PUT")

    def do_DELETE(self) -> None:
        self.dispatch("DELETE")

    def dispatch(self, method: str) -> None:
        self._body = None  # one handler serves every request of a connection
        split = urlsplit(self.path)
        path = split.path
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        try:
            if path.startswith("/__sandbox/"):
                self.control(method, path, query)
                return
            self.state.count("requests")
            dialect = self.server.dialect
            if dialect.is_token_path(path) and method == "POST":
                self.state.count("token_calls")
                dialect.token(self, query)
                return
            fault = None if dialect.is_open_path(path) else self.state.next_fault(path)
            if fault and self.fault(fault, dialect):
                return
            if not dialect.authorised(self, method, path, query):
                return
            dialect.handle(self, method, path, query, fault)
        except (BrokenPipeError, ConnectionResetError):
            return
        except Exception as exc:  # the sandbox must answer, not die, on a bad request
            self.send_json(500, {"message": f"sandbox error: {type(exc).__name__}: {exc}"})

    def fault(self, fault: str, dialect: Any) -> bool:
        """Serve a transport-level fault; True when the request is answered."""
        self.state.count(f"fault_{fault}")
        self.body()
        if fault in ("400", "403", "409", "412"):
            self.send_json(int(fault), dialect.error_body(int(fault), "Injected refusal"))
            return True
        if fault in ("500", "503"):
            self.send_json(int(fault), dialect.error_body(int(fault), "Injected server error"))
            return True
        if fault == "timeout":
            time.sleep(self.state.timeout_seconds)
            self.send_json(504, dialect.error_body(504, "Injected timeout"))
            return True
        if fault == "429":
            self.send_json(
                429,
                dialect.error_body(429, "Too many requests"),
                {"Retry-After": str(self.state.retry_after)},
            )
            return True
        if fault == "throttle":
            dialect.throttle(self)
            return True
        return False  # malformed / duplicate_page are applied by the dialect to the payload

    # ---------------------------------------------------------------- control ------------------
    def control(self, method: str, path: str, query: dict[str, str]) -> None:
        state = self.state
        name = path[len("/__sandbox/") :].strip("/")
        payload: dict[str, Any] = {}
        if method in ("POST", "PUT"):
            raw = self.body()
            payload = json.loads(raw) if raw else {}
        if name == "advance" and method == "POST":
            days = int(payload.get("days", query.get("days", 1)))
            with state.lock:
                made = state.district.advance(days)
            after = getattr(self.server.dialect, "after_advance", None)
            if after is not None:
                after(made)  # e.g. PowerSchool's event subscription deliveries
            self.send_json(200, {"day": state.district.day, "changes": [c.as_dict() for c in made]})
        elif name == "changes":
            day = query.get("day")
            changes = state.district.changes_on(int(day) if day else None)
            self.send_json(
                200, {"day": state.district.day, "changes": [c.as_dict() for c in changes]}
            )
        elif name == "counts":
            self.send_json(200, self.server.dialect.expected_counts())
        elif name == "stats":
            with state.lock:
                self.send_json(200, dict(state.stats))
        elif name == "reset-stats" and method == "POST":
            with state.lock:
                state.stats.clear()
            self.send_json(200, {})
        elif name == "expire-tokens" and method == "POST":
            state.expire_tokens()
            self.send_json(200, {})
        elif name == "faults" and method == "POST":
            with state.lock:
                if "rates" in payload:
                    state.fault_rates = parse_faults(
                        ",".join(f"{k}:{v}" for k, v in payload["rates"].items())
                    )
                for forced in payload.get("next", []):
                    state.forced.append(dict(forced))
                if payload.get("clear"):
                    state.forced.clear()
                    state.fault_rates = {}
            self.send_json(200, {"rates": state.fault_rates, "forced": state.forced})
        elif name == "config" and method == "POST":
            with state.lock:
                for key in (
                    "token_ttl",
                    "page_cap",
                    "throttle_wait",
                    "retry_after",
                    "timeout_seconds",
                    "client_secret",
                ):
                    if key in payload:
                        setattr(state, key, type(getattr(state, key))(payload[key]))
            self.send_json(200, {})
        elif name == "writes":
            with state.lock:
                self.send_json(200, {"writes": list(state.writes)})
        elif name == "events":
            delivered = getattr(self.server.dialect, "events_delivered", [])
            with state.lock:
                self.send_json(200, {"deliveries": list(delivered)})
        else:
            self.send_json(404, {"message": f"no sandbox control {name!r}"})


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: SandboxState) -> None:
        self.state = state
        self.dialect = make_dialect(state)
        super().__init__(address, SandboxHandler)

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().server_bind()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-request (a worker killed on purpose, a test that timed
        out) is routine for a test SIS: one log line instead of socketserver's traceback on
        stderr. Anything else keeps the traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionResetError | BrokenPipeError):
            logger.info("sandbox client went away", extra={"error": type(error).__name__})
            return
        super().handle_error(request, client_address)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        if isinstance(host, bytes):
            host = host.decode()
        return f"http://{host}:{port}"


def make_dialect(state: SandboxState) -> Any:
    if state.provider == "powerschool":
        from sis.sandbox.powerschool import PowerSchoolDialect

        return PowerSchoolDialect(state)
    if state.provider in ("oneroster-1.1", "oneroster-1.2"):
        from sis.sandbox.oneroster import OneRosterDialect

        return OneRosterDialect(state)
    raise ValueError(f"unknown sandbox provider {state.provider!r}; known: {', '.join(PROVIDERS)}")


def build_district(
    *, students: int, seed: int, dataset: str | None = None, dataset_path: str | None = None
) -> District:
    if dataset == "grand-bend":
        from sis.sandbox.grandbend import GrandBendDistrict

        return GrandBendDistrict.load(dataset_path)
    if dataset:
        raise ValueError(f"unknown dataset {dataset!r}; known: grand-bend")
    return GeneratedDistrict(students=students, seed=seed)


def make_server(
    *,
    provider: str,
    students: int = 200,
    seed: int = 1,
    host: str = "127.0.0.1",
    port: int = 0,
    dataset: str | None = None,
    dataset_path: str | None = None,
    faults: str = "",
    **options: Any,
) -> SandboxHTTPServer:
    district = build_district(
        students=students, seed=seed, dataset=dataset, dataset_path=dataset_path
    )
    state = SandboxState(
        district=district, provider=provider, seed=seed, fault_rates=parse_faults(faults), **options
    )
    return SandboxHTTPServer((host, port), state)


def serve_until_terminated(server: SandboxHTTPServer) -> None:
    """Serve in this thread until SIGTERM or Ctrl-C (the command-line entry points), then close.

    The district is built once and lives as long as the process, so the garbage collector's
    view of it is frozen first: its full collections walked the district every few requests
    (listing 10,000 students took 0.17 CPU-seconds with them, 0.13 without; CPU that a client
    on the same machine, like the sync benchmarks, shares)."""
    gc.freeze()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _interrupt(*_: Any) -> None:
    # serve_forever runs in this thread, so shutdown() would wait for itself: unwind instead.
    raise KeyboardInterrupt


# ---------------------------------------------------------------- shared helpers ----------------
def basic_credentials(handler: SandboxHandler) -> tuple[str, str] | None:
    header = handler.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:]).decode()
    except ValueError:
        return None
    client_id, _, secret = decoded.partition(":")
    return client_id, secret


def bearer_token(handler: SandboxHandler) -> str | None:
    header = handler.headers.get("Authorization", "")
    match = re.match(r"(?i)bearer\s+(\S+)", header)
    return match.group(1) if match else None


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(type(value).__name__)


@functools.lru_cache(maxsize=4096)
def iso(value: dt.datetime) -> str:
    # Few distinct timestamps (one per change day): formatting each once saves real time.
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
