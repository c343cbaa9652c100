"""A real HTTP server that behaves like Twilio's Messages API for the numbers we give it.

Requests are checked against Twilio's official OpenAPI description
(/work/shared/vendor-specs/twilio_api_v2010.json, ``CreateMessageRequest``): only documented
parameter names, the required ones present, the AccountSid path pattern, HTTP basic auth with
the account SID and token. Each accepted message is recorded with its arrival time, and status
callbacks are posted to its ``StatusCallback`` URL, signed with the test Auth Token the way
Twilio documents it (HMAC-SHA1 over the URL followed by the sorted parameters, base64).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import queue
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import requests

SPEC_PATH = Path("/work/shared/vendor-specs/twilio_api_v2010.json")
MESSAGES_PATH = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
_PATH_RE = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Messages\.json$")


def _load_contract() -> tuple[set[str], set[str], re.Pattern[str]]:
    spec = json.loads(SPEC_PATH.read_text())
    post = spec["paths"][MESSAGES_PATH]["post"]
    schema = post["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    sid_pattern = next(p for p in post["parameters"] if p["name"] == "AccountSid")["schema"][
        "pattern"
    ]
    assert "accountSid_authToken" in spec["components"]["securitySchemes"]
    return set(schema["properties"]), set(schema.get("required", [])), re.compile(sid_pattern)


PARAMS, REQUIRED, SID_RE = _load_contract()


def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's documented algorithm, computed independently of the twilio package."""
    data = url + "".join(f"{key}{params[key]}" for key in sorted(params))
    digest = hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


# Outcomes per number: what the fake answers and which callbacks follow.
DELIVERED = "delivered"
UNDELIVERED = "undelivered"
FAILED = "failed"
OPTED_OUT = "opted_out"  # 400, code 21610
INVALID = "invalid"  # 400, code 21211
SERVER_ERROR = "server_error"  # 500
THROTTLED = "throttled"  # 429, code 20429


@dataclass
class Received:
    at: float
    account_sid: str
    params: dict[str, str]
    sid: str = ""


@dataclass
class TwilioFake:
    account_sid: str
    auth_token: str
    outcomes: dict[str, str] = field(default_factory=dict)
    send_callbacks: bool = True
    duplicate_callbacks: bool = False
    reverse_callbacks: bool = False
    callback_signing_token: str | None = None  # default: auth_token
    received: list[Received] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    callback_results: list[int] = field(default_factory=list)
    final_status: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: queue.Queue[tuple[str, dict[str, str]] | None] = queue.Queue()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The headers and the body are two writes: with Nagle's algorithm on, the body
            # waits for the client's delayed ACK (~40 ms per call on a kept-alive connection).
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                status, payload = fake.fetch(self.path, self.headers.get("Authorization", ""))
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                status, payload = fake.handle(
                    self.path,
                    self.headers.get("Authorization", ""),
                    self.headers.get("Content-Type", ""),
                    body,
                )
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._threads = [
            threading.Thread(target=self.server.serve_forever, daemon=True),
            threading.Thread(target=self._callback_loop, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._callbacks.put(None)
        self.server.shutdown()
        self.server.server_close()

    # --- the Messages API ------------------------------------------------------------------

    def _error(self, status: int, code: int, message: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.rejected.append((code, message))
        return status, {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }

    def handle(
        self, path: str, auth: str, content_type: str, body: str
    ) -> tuple[int, dict[str, Any]]:
        match = _PATH_RE.match(path)
        if not match:
            return self._error(404, 20404, "The requested resource was not found")
        account_sid = match.group(1)
        if not SID_RE.match(account_sid):
            return self._error(400, 20404, "AccountSid does not match the documented pattern")
        expected = (
            "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        )
        if auth != expected or account_sid != self.account_sid:
            return self._error(401, 20003, "Authenticate")
        if not content_type.startswith("application/x-www-form-urlencoded"):
            return self._error(400, 21000, "form-encoded body expected")
        pairs = parse_qsl(body, keep_blank_values=True)
        params = dict(pairs)
        unknown = sorted(set(params) - PARAMS)
        if unknown:
            return self._error(400, 21000, f"Unknown parameters: {', '.join(unknown)}")
        missing = sorted(REQUIRED - set(params))
        if missing:
            return self._error(400, 21604, f"Missing required parameter {missing[0]}")
        if not (params.get("From") or params.get("MessagingServiceSid")):
            return self._error(
                400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required"
            )
        if not (params.get("Body") or params.get("MediaUrl") or params.get("ContentSid")):
            return self._error(400, 21602, "Message body is required")
        to = params["To"]
        if not re.fullmatch(r"\+[1-9]\d{6,14}", to):
            return self._error(400, 21211, "Invalid 'To' Phone Number")
        outcome = self.outcomes.get(to, DELIVERED)
        if outcome == OPTED_OUT:
            return self._error(400, 21610, "Attempt to send to unsubscribed recipient")
        if outcome == INVALID:
            return self._error(400, 21211, "Invalid 'To' Phone Number")
        if outcome == SERVER_ERROR:
            return self._error(500, 20500, "Internal Server Error")
        if outcome == THROTTLED:
            return self._error(429, 20429, "Too Many Requests")
        sid = "SM" + uuid.uuid4().hex
        with self._lock:
            self.received.append(Received(time.time(), account_sid, params, sid))
            self.final_status[sid] = {UNDELIVERED: "undelivered", FAILED: "failed"}.get(
                outcome, "delivered"
            )
        initial = "accepted" if params.get("MessagingServiceSid") else "queued"
        callback = params.get("StatusCallback")
        if callback and self.send_callbacks:
            self._queue_callbacks(callback, sid, params, outcome)
        now = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
        return 201, {
            "account_sid": account_sid,
            "api_version": "2010-04-01",
            "body": params.get("Body", ""),
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": params.get("From"),
            "messaging_service_sid": params.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": initial,
            "subresource_uris": {
                "media": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}/Media.json"
            },
            "to": to,
            "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
        }

    def fetch(self, path: str, auth: str) -> tuple[int, dict[str, Any]]:
        """``GET .../Messages/{Sid}.json``: the message's final status in this fake."""
        match = re.match(r"^/2010-04-01/Accounts/([^/]+)/Messages/(SM[0-9a-f]{32})\.json$", path)
        expected = (
            "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        )
        if not match or auth != expected:
            return self._error(404 if not match else 401, 20404, "not found")
        sid = match.group(2)
        with self._lock:
            status = self.final_status.get(sid)
        if status is None:
            return self._error(404, 20404, "not found")
        return 200, {"sid": sid, "status": status, "account_sid": self.account_sid}

    # --- status callbacks ---------------------------------------------------------------------

    def _queue_callbacks(self, url: str, sid: str, params: dict[str, str], outcome: str) -> None:
        sequence: list[tuple[str, str]] = [("sent", "")]
        if outcome == UNDELIVERED:
            sequence.append(("undelivered", "30003"))
        elif outcome == FAILED:
            sequence.append(("failed", "30008"))
        else:
            sequence.append(("delivered", ""))
        if self.reverse_callbacks:
            sequence.reverse()
        for status, error in sequence:
            data = {
                "AccountSid": self.account_sid,
                "ApiVersion": "2010-04-01",
                "From": params.get("From", "+15555550100"),
                "MessageSid": sid,
                "MessageStatus": status,
                "SmsSid": sid,
                "SmsStatus": status,
                "To": params["To"],
            }
            if params.get("MessagingServiceSid"):
                data["MessagingServiceSid"] = params["MessagingServiceSid"]
            if error:
                data["ErrorCode"] = error
            repeats = 2 if self.duplicate_callbacks else 1
            for _ in range(repeats):
                self._callbacks.put((url, data))

    def _callback_loop(self) -> None:
        session = requests.Session()
        while True:
            item = self._callbacks.get()
            if item is None:
                return
            url, data = item
            token = self.callback_signing_token or self.auth_token
            headers = {
                "X-Twilio-Signature": twilio_signature(token, url, data),
                "I-Twilio-Idempotency-Token": hashlib.sha256(
                    urlencode(sorted(data.items())).encode()
                ).hexdigest(),
                "Content-Type": "application/x-www-form-urlencoded",
            }
            try:
                response = session.post(url, data=data, headers=headers, timeout=10)
                code = response.status_code
            except requests.RequestException:
                code = 0
            with self._lock:
                self.callback_results.append(code)
            self._callbacks.task_done()

    def wait_for_callbacks(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self._callbacks.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not self._callbacks.unfinished_tasks, "callbacks still pending"

    def numbers_sent(self) -> list[str]:
        with self._lock:
            return [r.params["To"] for r in self.received]
