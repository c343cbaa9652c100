"""The OneRoster 1.1 / 1.2 REST dialect of the sandbox (reference: sis-apis.md §2.3).

- OAuth 2.0 client credentials at any ``POST …/token`` path (Basic auth or form fields; with
  ``app_name`` set, the token URL must carry ``?appName=``, as Infinite Campus's does); or, for
  1.1 with ``oauth1``, OAuth 1.0a HMAC-SHA256 signatures over method, URL and every query
  parameter (timestamp window and nonce replay checked);
- ``limit`` (default 100, capped) / ``offset`` paging with ``X-Total-Count`` and ``Link``;
- ``filter`` with ``dateLastModified>'…'`` (delta) and role clauses (``role`` in 1.1,
  ``roles.role`` in 1.2) joined by AND/OR — enough for the connector's queries;
- ``status: tobedeleted`` on deleted records, ``statusInfoSet`` error bodies, 429 with
  ``Retry-After`` for throttling;
- gradebook writes (PUT lineItems/results/categories, 1.2 POST classes/{id}/lineItems) recorded.

How each record is rendered is in ``oneroster_records`` (a mixin).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import time
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from sis.sandbox.district import District, changed_positions
from sis.sandbox.oneroster_records import OneRosterRecords
from sis.sandbox.server import SandboxHandler, SandboxState, basic_credentials, bearer_token

ROLE_KINDS = {
    "student": "student",
    "teacher": "staff",
    "administrator": "staff",
    "parent": "guardian",
    "guardian": "guardian",
    "relative": "guardian",
}
COLLECTIONS = {
    "orgs": "org",
    "schools": "school",
    "academicSessions": "term",
    "terms": "term",
    "courses": "course",
    "classes": "section",
    "users": "user",
    "students": "student",
    "teachers": "teacher",
    "enrollments": "section_enrollment",
    "demographics": "demographic",
}
# The list key of each collection's body (getAllStudents answers {"users": [...]}, …).
BODY_KEYS = {
    "schools": "orgs",
    "terms": "academicSessions",
    "students": "users",
    "teachers": "users",
}
GRADEBOOK_PATH = re.compile(
    r"^/(lineItems|results|categories|classes)(?:/([^/]+))?(?:/lineItems)?$"
)
GRADEBOOK_SINGULAR = {"lineItems": "lineItem", "results": "result", "categories": "category"}
CLAUSE = re.compile(r"^\s*([\w.]+)\s*(>=|<=|!=|=|>|<|~)\s*'([^']*)'\s*$")


class Segments:
    """A listing made of (kind, positions) parts, indexable without materialising it."""

    def __init__(self, parts: list[tuple[str, Any]]) -> None:
        self.parts = [(k, p) for k, p in parts if len(p)]

    def __len__(self) -> int:
        return sum(len(p) for _, p in self.parts)

    def get(self, index: int) -> tuple[str, int]:
        for kind, positions in self.parts:
            if index < len(positions):
                return kind, positions[index]
            index -= len(positions)
        raise IndexError(index)


class OneRosterDialect(OneRosterRecords):
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.district: District = state.district
        self.version = "1.1" if state.provider == "oneroster-1.1" else "1.2"
        self.base = (
            "/ims/oneroster/v1p1" if self.version == "1.1" else ("/ims/oneroster/rostering/v1p2")
        )
        self.gradebook_base = (
            "/ims/oneroster/v1p1" if self.version == "1.1" else ("/ims/oneroster/gradebook/v1p2")
        )
        self._teachers: list[int] | None = None
        self._administrators: list[int] | None = None
        # Gradebook objects written with PUT: (collection, sourcedId) → the object.
        self.gradebook: dict[tuple[str, str], dict[str, Any]] = {}

    # ---------------------------------------------------------------- auth ---------------------
    def is_token_path(self, path: str) -> bool:
        return path.endswith("/token")

    def is_open_path(self, path: str) -> bool:
        return False

    def token(self, handler: SandboxHandler, query: dict[str, str]) -> None:
        form = dict(parse_qsl(handler.body().decode()))
        if self.state.app_name and query.get("appName") != self.state.app_name:
            handler.send_json(404, self.error_body(404, "Unknown application"))
            return
        creds = basic_credentials(handler) or (
            form.get("client_id", ""),
            form.get("client_secret", ""),
        )
        if form.get("grant_type") != "client_credentials":
            handler.send_json(400, {"error": "unsupported_grant_type"})
            return
        if creds != (self.state.client_id, self.state.client_secret):
            handler.send_json(
                401,
                {"error": "invalid_client", "error_description": "Client authentication failed"},
            )
            return
        handler.send_json(200, {**self.state.issue_token(), "scope": form.get("scope", "")})

    def authorised(
        self, handler: SandboxHandler, method: str, path: str, query: dict[str, str]
    ) -> bool:
        if self.state.oauth1:
            problem = self._check_oauth1(handler, method)
            if problem is None:
                return True
            handler.body()
            handler.send_json(401, self.error_body(401, problem))
            return False
        token = bearer_token(handler)
        if token and self.state.token_valid(token):
            return True
        handler.body()
        handler.send_json(401, self.error_body(401, "Invalid or expired access token"))
        return False

    def _check_oauth1(self, handler: SandboxHandler, method: str) -> str | None:
        from oauthlib.oauth1.rfc5849 import signature, utils

        header = handler.headers.get("Authorization", "")
        if not header.startswith("OAuth "):
            return "Missing OAuth 1.0a Authorization header"
        params = {
            unquote(k): unquote(v.strip('"'))
            for k, _, v in (p.strip().partition("=") for p in header[6:].split(","))
        }
        if params.get("oauth_signature_method") != "HMAC-SHA256":
            return "Signature method must be HMAC-SHA256"
        if params.get("oauth_consumer_key") != self.state.client_id:
            return "Unknown consumer key"
        try:
            stamp = int(params.get("oauth_timestamp", "0"))
        except ValueError:
            return "Bad timestamp"
        if abs(time.time() - stamp) > 300:
            return "Timestamp outside the allowed window"
        nonce = params.get("oauth_nonce", "")
        with self.state.lock:
            if not nonce or nonce in self.state.nonces:
                return "Nonce reused"
            self.state.nonces.add(nonce)
        split = urlsplit(handler.path)
        collected = signature.collect_parameters(
            uri_query=split.query,
            headers={"Authorization": header},
            exclude_oauth_signature=True,
        )
        normalized = signature.normalize_parameters(collected)
        host = handler.headers.get("Host", "127.0.0.1")
        uri = signature.base_string_uri(f"http://{host}{split.path}")
        base = signature.signature_base_string(method, uri, normalized)
        key = f"{utils.escape(self.state.client_secret)}&".encode()
        expected = base64.b64encode(hmac.new(key, base.encode(), hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(expected, params.get("oauth_signature", "")):
            return "Invalid OAuth 1.0a signature"
        return None

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        minor = {
            400: "invalid_data",
            401: "unauthorisedrequest",
            403: "forbidden",
            404: "unknownobject",
            422: "invalid_filter_field",
            429: "server_busy",
        }.get(status, "internal_server_error")
        return {
            "statusInfoSet": [
                {
                    "imsx_codeMajor": "failure",
                    "imsx_severity": "error",
                    "imsx_description": message,
                    "imsx_CodeMinor": {
                        "imsx_codeMinorField": [
                            {
                                "imsx_codeMinorFieldName": "TargetEndSystem",
                                "imsx_codeMinorFieldValue": minor,
                            }
                        ]
                    },
                }
            ]
        }

    def throttle(self, handler: SandboxHandler) -> None:
        handler.send_json(
            429,
            self.error_body(429, "Server busy, retry later"),
            {"Retry-After": str(self.state.throttle_wait)},
        )

    # ---------------------------------------------------------------- counts -------------------
    def teachers(self) -> list[int]:
        if self._teachers is None or len(self._teachers) == 0:
            d = self.district
            self._teachers = [
                i for i in range(d.count("staff")) if d.item("staff", i)["role"] == "teacher"
            ]
        return self._teachers

    def administrators(self) -> list[int]:
        if self._administrators is None:
            d = self.district
            self._administrators = [
                i for i in range(d.count("staff")) if d.item("staff", i)["role"] == "administrator"
            ]
        return self._administrators

    def expected_counts(self) -> dict[str, int]:
        d = self.district
        return {
            "school": d.count("school"),
            "term": d.count("term"),
            "course": d.count("course"),
            "section": d.count("section"),
            "staff": len(self.teachers()) + len(self.administrators()),
            "student": d.count("student"),
            "enrollment": d.count("student"),
            "guardian": d.count("guardian"),
            "student_guardian": sum(
                len(d.item("guardian", i).get("students") or []) for i in range(d.count("guardian"))
            )
            if _has_multi(d)
            else d.count("guardian"),
            "section_enrollment": d.count("section_enrollment"),
        }

    # ---------------------------------------------------------------- routing ------------------
    def handle(
        self,
        handler: SandboxHandler,
        method: str,
        path: str,
        query: dict[str, str],
        fault: str | None,
    ) -> None:
        body = handler.body()
        if method in ("PUT", "POST", "DELETE") and path.startswith(self.gradebook_base):
            self.record_write(handler, method, path, body, fault)
            return
        gradebook = GRADEBOOK_PATH.match(path[len(self.gradebook_base) :])
        if (
            method == "GET"
            and path.startswith(self.gradebook_base)
            and gradebook
            and gradebook.group(2)
            and gradebook.group(1) in GRADEBOOK_SINGULAR
        ):
            self.gradebook_read(handler, gradebook.group(1), gradebook.group(2))
            return
        if method != "GET" or not path.startswith(self.base + "/"):
            handler.send_json(404, self.error_body(404, f"No resource at {path}"))
            return
        parts = path[len(self.base) + 1 :].strip("/").split("/")
        collection = parts[0]
        if collection not in COLLECTIONS:
            handler.send_json(404, self.error_body(404, f"Unknown collection {collection}"))
            return
        if len(parts) == 1:
            self.listing(handler, path, collection, query, fault)
        elif len(parts) == 2:
            self.one(handler, collection, parts[1])
        elif len(parts) == 3 and collection == "users" and parts[2] == "agents":
            user = self._find_user(parts[1])
            if user is None:
                handler.send_json(404, self.error_body(404, "Unknown user"))
                return
            agents = [self._find_user(a["sourcedId"]) for a in user.get("agents", [])]
            handler.send_json(200, {"users": [a for a in agents if a]})
        else:
            handler.send_json(404, self.error_body(404, f"No resource at {path}"))

    def _parse_filter(self, text: str) -> tuple[set[str], dt.datetime | None, str | None] | str:
        roles: set[str] = set()
        since = None
        status = None
        for clause in re.split(r"\s+(?:AND|OR)\s+", text.strip().strip("()")):
            match = CLAUSE.match(clause.strip("() "))
            if not match:
                return f"Invalid filter clause: {clause!r}"
            name, op, value = match.groups()
            if name in ("role", "roles.role") and op == "=":
                roles.add(value)
            elif name == "dateLastModified" and op in (">", ">="):
                try:
                    since = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
                except ValueError:
                    return f"Invalid date in filter: {value!r}"
                if since.tzinfo is None:
                    since = since.replace(tzinfo=dt.UTC)
            elif name == "status" and op == "=":
                status = value
            else:
                return f"Unsupported filter field {name!r}"
        return roles, since, status

    def _segments(self, collection: str, roles: set[str], since: dt.datetime | None) -> Segments:
        d = self.district
        kind = COLLECTIONS[collection]

        def positions(k: str) -> Any:
            if since is not None:
                return changed_positions(d, k, since)
            return range(d.count(k))

        if kind in ("user", "student", "teacher"):
            wanted = (
                {"student"}
                if kind == "student"
                else {"teacher"}
                if kind == "teacher"
                else {ROLE_KINDS[r] for r in roles if r in ROLE_KINDS}
                or {"student", "staff", "guardian"}
            )
            parts: list[tuple[str, Any]] = []
            if "student" in wanted:
                parts.append(("student", positions("student")))
            if kind == "teacher" or ("staff" in wanted and roles and roles <= {"teacher"}):
                teachers = self.teachers()
                parts.append(
                    (
                        "staff",
                        teachers
                        if since is None
                        else [t for t in teachers if d.item("staff", t)["modified"] > since],
                    )
                )
            elif "staff" in wanted and roles and roles <= {"administrator"}:
                administrators = self.administrators()
                parts.append(
                    (
                        "staff",
                        administrators
                        if since is None
                        else [a for a in administrators if d.item("staff", a)["modified"] > since],
                    )
                )
            elif "staff" in wanted:
                parts.append(("staff", positions("staff")))
            if "guardian" in wanted:
                parts.append(("guardian", positions("guardian")))
            return Segments(parts)
        if kind == "org":
            return Segments([("district", range(1)), ("school", positions("school"))])
        if kind == "demographic":
            return Segments([("demographic", positions("student"))])
        return Segments([(kind, positions(kind))])

    def listing(
        self,
        handler: SandboxHandler,
        path: str,
        collection: str,
        query: dict[str, str],
        fault: str | None,
    ) -> None:
        parsed = self._parse_filter(query["filter"]) if query.get("filter") else (set(), None, None)
        if isinstance(parsed, str):
            handler.send_json(400, self.error_body(400, parsed))
            return
        roles, since, _status = parsed
        try:
            limit = int(query.get("limit", self.state.default_limit))
            offset = int(query.get("offset", 0))
        except ValueError:
            handler.send_json(400, self.error_body(400, "limit and offset must be numbers"))
            return
        if limit < 1 or offset < 0:
            handler.send_json(400, self.error_body(400, "limit must be positive"))
            return
        limit = min(limit, self.state.page_cap)
        segments = self._segments(collection, roles, since)
        total = len(segments)
        key = f"{collection}:{query.get('filter', '')}"
        if fault == "duplicate_page" and key in self.state.last_pages:
            items = self.state.last_pages[key]
        else:
            items = []
            for index in range(offset, min(offset + limit, total)):
                kind, position = segments.get(index)
                items.append(self.render(kind, position))
            if fault == "malformed" and items:
                broken = dict(items[len(items) // 2])
                for name in ("givenName", "title", "name", "user"):
                    broken.pop(name, None)
                broken["dateLastModified"] = "yesterday"
                items[len(items) // 2] = broken
            self.state.last_pages[key] = items
        headers = {
            "X-Total-Count": str(total),
            "Link": self._links(path, query, offset, limit, total),
        }
        handler.send_json(200, {BODY_KEYS.get(collection, collection): items}, headers)

    def _links(self, path: str, query: dict[str, str], offset: int, limit: int, total: int) -> str:
        def link(rel: str, at: int) -> str:
            params = {**query, "limit": str(limit), "offset": str(at)}
            return f'<{path}?{urlencode(params)}>; rel="{rel}"'

        links = [link("first", 0)]
        if offset + limit < total:
            links.append(link("next", offset + limit))
        if offset > 0:
            links.append(link("prev", max(0, offset - limit)))
        last = max(0, (total - 1) // limit * limit) if total else 0
        links.append(link("last", last))
        return ", ".join(links)

    def one(self, handler: SandboxHandler, collection: str, sid: str) -> None:
        kind = COLLECTIONS[collection]
        singular = {
            "orgs": "org",
            "schools": "org",
            "academicSessions": "academicSession",
            "terms": "academicSession",
            "courses": "course",
            "classes": "class",
            "users": "user",
            "students": "user",
            "teachers": "user",
            "enrollments": "enrollment",
            "demographics": "demographics",
        }[collection]
        rendered: dict[str, Any] | None
        if kind in ("user", "student", "teacher"):
            rendered = self._find_user(sid)
        else:
            lookup = {"org": "school", "demographic": "student"}.get(kind, kind)
            position = self.district.index_of(lookup, sid)
            if position is None or position >= self.district.count(lookup):
                rendered = None
            else:
                rendered = self.render(lookup if kind != "demographic" else kind, position)
        if rendered is None:
            handler.send_json(404, self.error_body(404, f"Unknown {singular} {sid}"))
            return
        handler.send_json(200, {singular: rendered})

    def record_write(
        self,
        handler: SandboxHandler,
        method: str,
        path: str,
        body: bytes,
        fault: str | None = None,
    ) -> None:
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            handler.send_json(400, self.error_body(400, "Body is not JSON"))
            return
        with self.state.lock:
            self.state.writes.append({"method": method, "path": path, "body": payload})
            match = GRADEBOOK_PATH.match(path[len(self.gradebook_base) :])
            # PUT creates or replaces the object under the client's sourcedId; the
            # ``ignore_write`` fault answers as usual but keeps nothing (a silent failure).
            if method == "PUT" and match and match.group(2) and fault != "ignore_write":
                singular = GRADEBOOK_SINGULAR.get(match.group(1))
                if singular and isinstance(payload.get(singular), dict):
                    self.gradebook[(match.group(1), match.group(2))] = payload[singular]
        handler.send_json(201 if method == "POST" else 200, payload or {})

    def gradebook_read(self, handler: SandboxHandler, collection: str, sid: str) -> None:
        with self.state.lock:
            stored = self.gradebook.get((collection, sid))
        singular = GRADEBOOK_SINGULAR.get(collection, collection)
        if stored is None:
            handler.send_json(404, self.error_body(404, f"Unknown {singular} {sid}"))
            return
        handler.send_json(200, {singular: stored})


def _has_multi(district: District) -> bool:
    return bool(getattr(district, "shared_guardians", False))
