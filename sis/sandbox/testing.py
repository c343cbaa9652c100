"""Start a sandbox SIS in a background thread (pytest fixtures, the benchmark, the shell).

    with running_sandbox(provider="powerschool", students=200) as sandbox:
        sandbox.base_url, sandbox.control("advance"), sandbox.counts()

Later tests import :func:`running_sandbox` or the :func:`sandbox_fixture` factory.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sis.sandbox.server import SandboxHTTPServer, SandboxState, make_server


@dataclass
class RunningSandbox:
    server: SandboxHTTPServer
    thread: threading.Thread

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def state(self) -> SandboxState:
        return self.server.state

    @property
    def client_id(self) -> str:
        return self.state.client_id

    @property
    def client_secret(self) -> str:
        return self.state.client_secret

    @property
    def token_url(self) -> str:
        if self.state.provider == "powerschool":
            return f"{self.base_url}/oauth/access_token"
        suffix = f"?appName={self.state.app_name}" if self.state.app_name else ""
        return f"{self.base_url}/oauth/token{suffix}"

    @property
    def api_base_url(self) -> str:
        """The base URL a connection is configured with."""
        if self.state.provider == "oneroster-1.1":
            return f"{self.base_url}/ims/oneroster/v1p1"
        if self.state.provider == "oneroster-1.2":
            return f"{self.base_url}/ims/oneroster/rostering/v1p2"
        return self.base_url

    def control(
        self, name: str, payload: dict[str, Any] | None = None, method: str | None = None
    ) -> Any:
        """Call a /__sandbox/ control endpoint (POST when a payload is given)."""
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(  # noqa: S310 (loopback URL we built)
            f"{self.base_url}/__sandbox/{name}",
            data=data,
            method=method or ("POST" if data is not None else "GET"),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read() or b"{}")

    def counts(self) -> dict[str, int]:
        return dict(self.control("counts"))

    def stats(self) -> dict[str, int]:
        return dict(self.control("stats"))

    def inject(self, fault: str, *, path: str = "", times: int = 1, skip: int = 0) -> None:
        self.control(
            "faults", {"next": [{"fault": fault, "path": path, "times": times, "skip": skip}]}
        )


@contextmanager
def running_sandbox(
    *, provider: str, students: int = 200, seed: int = 1, **options: Any
) -> Iterator[RunningSandbox]:
    server = make_server(
        provider=provider, students=students, seed=seed, host="127.0.0.1", port=0, **options
    )
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},
        name=f"sis-sandbox-{provider}",
        daemon=True,
    )
    thread.start()
    try:
        yield RunningSandbox(server, thread)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
