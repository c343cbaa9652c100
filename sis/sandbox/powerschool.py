"""The PowerSchool dialect of the sandbox (shapes per /work/shared/reference/sis-apis.md §1).

- ``POST /oauth/access_token`` with Basic auth → ``{access_token, token_type, expires_in}``;
- ``/ws/v1/...`` resources with ``/count``, ``page`` (from 1) / ``pagesize`` capped at the
  ``*_max_page_size`` of ``/ws/v1/metadata``; a page of one item is an object, not a list;
- guardians through the PowerQuery ``com.pearson.core.guardian.student_guardian_detail``
  (records whose values are all strings) and ``/ws/contacts/student/{dcid}``;
- section enrollments through the ``CC`` schema table;
- the per-plugin throttle answered as HTTP 403 with a "wait N seconds" message (PowerSchool
  publishes no status for it), errors as ``{"message", "errors": [{resource, field, code}]}``.

A student's DCID (``/ws/v1`` ids) and ID (``CC.studentid``, data-version answers) differ, as in
PowerSchool. The ID map, data versions and event subscriptions are in ``powerschool_changes``;
the PowerTeacher Pro gradebook (``/ws/xte``) in ``powerschool_gradebook``; how records,
the ``CC`` table and guardians are rendered in ``powerschool_records``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from typing import Any

from sis.sandbox.district import changed_positions, school_positions
from sis.sandbox.powerschool_changes import (
    DATA_VERSION_TABLES,
    DCID_ID_QUERY,
    GUARDIAN_QUERY,
    PowerSchoolChanges,
    json_object,
)
from sis.sandbox.powerschool_gradebook import PowerTeacherGradebook
from sis.sandbox.powerschool_records import PowerSchoolRecords
from sis.sandbox.server import SandboxHandler, SandboxState, basic_credentials, bearer_token

WRITABLE = {  # POST /ws/v1/student block.field → district item field
    ("name", "first_name"): "first",
    ("name", "middle_name"): "middle",
    ("name", "last_name"): "last",
    ("demographics", "gender"): "gender",
    ("demographics", "birth_date"): "birth_date",
}


LIST_ROUTE = re.compile(r"^/ws/v1/school/(\d+)/(staff|course|term|section)(/count)?$")
ONE_ROUTE = re.compile(
    r"^/ws/v1/(student|staff|section|course|term|school|section_enrollment)"
    r"/(\d+)$"
)


class PowerSchoolDialect(PowerSchoolRecords, PowerSchoolChanges, PowerTeacherGradebook):
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.district = state.district
        self._links: list[tuple[int, Any]] | None = None
        self.subscription: dict[str, Any] | None = None
        self.events_delivered: list[dict[str, Any]] = []
        self.gradebook_init()

    # ---------------------------------------------------------------- auth ---------------------
    def is_token_path(self, path: str) -> bool:
        return path.rstrip("/") == "/oauth/access_token"

    def is_open_path(self, path: str) -> bool:
        return path == "/ws/v1/time"

    def token(self, handler: SandboxHandler, query: dict[str, str]) -> None:
        handler.body()
        creds = basic_credentials(handler)
        if creds != (self.state.client_id, self.state.client_secret):
            handler.send_json(
                401,
                {"error": "invalid_client", "error_description": "Client authentication failed"},
            )
            return
        handler.send_json(200, self.state.issue_token())

    def authorised(
        self, handler: SandboxHandler, method: str, path: str, query: dict[str, str]
    ) -> bool:
        if self.is_open_path(path):
            return True
        token = bearer_token(handler)
        if token and self.state.token_valid(token):
            return True
        handler.body()
        handler.send_json(401, self.error_body(401, "Invalid or expired access token"))
        return False

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {
            "message": message,
            "errors": [{"resource": "request", "field": "", "code": str(status)}],
        }

    def throttle(self, handler: SandboxHandler) -> None:
        wait = self.state.throttle_wait
        handler.send_json(
            403,
            {
                "message": "Minimum time interval between API requests has not elapsed for this "
                f"plugin. Please wait {wait} seconds before making another request.",
                "errors": [{"resource": "plugin", "field": "", "code": "throttled"}],
            },
        )

    # ---------------------------------------------------------------- counts -------------------
    def expected_counts(self) -> dict[str, int]:
        d = self.district
        links = len(self._guardian_positions())
        return {
            "school": d.count("school"),
            "term": d.count("term"),
            "course": d.count("course"),
            "section": d.count("section"),
            "staff": d.count("staff"),
            "student": d.count("student"),
            "enrollment": d.count("student"),
            "guardian": links,
            "student_guardian": links,
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
        if method == "GET" and path == "/ws/v1/time":
            handler.send_json(200, {"time": time.strftime("%Y-%m-%dT%H:%M:%S")})
        elif method == "GET" and path == "/ws/v1/metadata":
            cap = self.state.page_cap
            handler.send_json(
                200,
                {
                    "metadata": {
                        "plugin_id": 7,
                        "powerschool_version": "24.7.0",
                        "state": "TX",
                        **{
                            f"{k}_max_page_size": cap
                            for k in (
                                "course",
                                "school",
                                "section",
                                "section_enrollment",
                                "staff",
                                "student",
                                "term",
                                "schema_table_query",
                            )
                        },
                    }
                },
            )
        elif method == "GET" and path == "/ws/v1/district":
            handler.send_json(200, {"district": {"name": self.district.name}})
        elif method == "GET" and path.startswith("/ws/v1/district/school"):
            self.listing(
                handler,
                path,
                query,
                "school",
                range(self.district.count("school")),
                "schools",
                "school",
                fault,
            )
        elif method == "GET" and path.startswith("/ws/v1/district/student"):
            positions: Any = range(self.district.count("student"))
            self.listing(handler, path, query, "student", positions, "students", "student", fault)
        elif method == "GET" and (m := LIST_ROUTE.match(path)):
            school_id, resource = int(m.group(1)), m.group(2)
            positions = school_positions(self.district, resource, school_id)
            plural = {
                "staff": "staffs",
                "course": "courses",
                "term": "terms",
                "section": "sections",
            }[resource]
            self.listing(handler, path, query, resource, positions, plural, resource, fault)
        elif method == "GET" and path.startswith("/ws/schema/table/cc"):
            self.table_cc(handler, path, query, fault)
        elif method == "POST" and (m := re.match(r"^/ws/schema/query/([\w.]+?)(/count)?$", path)):
            name = m.group(1)
            arguments = json_object(body)
            if name in DATA_VERSION_TABLES and "$dataversion" in arguments:
                self.data_version(handler, name, arguments)
            elif name == GUARDIAN_QUERY:
                self.guardian_query(handler, path, query, fault)
            elif name == DCID_ID_QUERY:
                self.dcid_id_query(handler, path, query)
            else:
                handler.send_json(404, self.error_body(404, f"No PowerQuery {name}"))
        elif path == "/ws/v1/event_subscription":
            self.event_subscription(handler, method, body)
        elif method == "GET" and (m := re.match(r"^/ws/contacts/student/(\d+)$", path)):
            self.contacts(handler, m.group(1))
        elif method == "GET" and (m := ONE_ROUTE.match(path)):
            self.one(handler, m.group(1), m.group(2))
        elif self.is_gradebook_path(path):
            self.gradebook(handler, method, path, query, body, fault)
        elif method in ("POST", "PUT") and path in ("/ws/v1/student", "/ws/xte/score/assignment"):
            self.record_write(handler, method, path, query, body, fault)
        else:
            handler.send_json(404, self.error_body(404, f"No resource at {path}"))

    # ---------------------------------------------------------------- listings -----------------
    def _page(self, query: dict[str, str], total: int) -> tuple[int, int] | str:
        try:
            page = int(query.get("page", "1"))
            size = int(query.get("pagesize", str(self.state.page_cap)))
        except ValueError:
            return "page and pagesize must be numbers"
        if page < 1 or size < 1:
            return "page and pagesize must be positive"
        if size > self.state.page_cap:
            return f"pagesize may not exceed {self.state.page_cap}"
        return page, size

    def listing(
        self,
        handler: SandboxHandler,
        path: str,
        query: dict[str, str],
        kind: str,
        positions: Any,
        plural: str,
        singular: str,
        fault: str | None,
    ) -> None:
        if kind == "student" and query.get("q"):
            positions = self._filter_students(query["q"], positions)
        if path.endswith("/count"):
            handler.send_json(200, {"resource": {"count": len(positions)}})
            return
        paged = self._page(query, len(positions))
        if isinstance(paged, str):
            handler.send_json(
                400,
                {
                    "message": paged,
                    "errors": [{"resource": plural, "field": "pagesize", "code": "INVALID"}],
                },
            )
            return
        page, size = paged
        key = f"{path}:{query.get('q', '')}"
        if fault == "duplicate_page" and key in self.state.last_pages:
            items = self.state.last_pages[key]
        else:
            start = (page - 1) * size
            stop = min(start + size, len(positions))
            expansions = {e.strip() for e in query.get("expansions", "").split(",")}
            items = [
                self.render(kind, self.district.item(kind, positions[k]), expansions)
                for k in range(start, stop)
            ]
            if fault == "malformed" and items:
                items[len(items) // 2] = self.corrupt(kind, items[len(items) // 2])
            self.state.last_pages[key] = items
        handler.send_json(200, {plural: _one_or_many(singular, items, query.get("expansions", ""))})

    def _filter_students(self, q: str, positions: Any) -> Any:
        # Only the FIQL term the connector's delta uses: last modified after a timestamp.
        import datetime as dt

        match = re.search(r"last_modified=gt=([0-9T:\-.Z+]+)", q)
        if not match:
            return positions
        since = dt.datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
        if since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
        return changed_positions(self.district, "student", since)

    def corrupt(self, kind: str, item: dict[str, Any]) -> dict[str, Any]:
        broken = dict(item)
        broken.pop("name", None)
        if "school_enrollment" in broken:
            broken["school_enrollment"] = {
                **broken["school_enrollment"],
                "entry_date": "not-a-date",
            }
        return broken

    # ---------------------------------------------------------------- one / writes -------------
    def one(self, handler: SandboxHandler, kind: str, item_id: str) -> None:
        item = self.district.get(kind, item_id)
        if item is None:
            handler.send_json(404, self.error_body(404, f"{kind} {item_id} not found"))
            return
        expansions = {"school_enrollment", "demographics", "addresses", "contact_info"}
        handler.send_json(200, {kind: self.render(kind, item, expansions)})

    def record_write(
        self,
        handler: SandboxHandler,
        method: str,
        path: str,
        query: dict[str, str],
        body: bytes,
        fault: str | None = None,
    ) -> None:
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            handler.send_json(400, self.error_body(400, "Body is not JSON"))
            return
        with self.state.lock:
            self.state.writes.append(
                {"method": method, "path": path, "query": query, "body": payload}
            )
        if path == "/ws/v1/student":
            students = payload.get("students", {}).get("student", [])
            if isinstance(students, dict):
                students = [students]
            results = [self._student_update(s, apply=fault != "ignore_write") for s in students]
            handler.send_json(
                200,
                {
                    "results": {
                        "insert_count": 0,
                        "update_count": sum(1 for r in results if r["status"] == "SUCCESS"),
                        "result": _one_or_many_list(results),
                    }
                },
            )
        else:
            handler.send_json(200, {"status": "ok"})

    def _student_update(self, student: dict[str, Any], *, apply: bool) -> dict[str, Any]:
        """Apply one UPDATE of ``POST /ws/v1/student`` to the district (so a read-back sees
        it), unless the ``ignore_write`` fault asks for a write that silently does nothing."""
        dcid = str(student.get("id", ""))
        result = {"client_uid": student.get("client_uid"), "action": "UPDATE"}
        if self.district.get("student", dcid) is None:
            return {**result, "status": "ERROR", "error_message": f"No student with id {dcid}"}
        changes: dict[str, Any] = {}
        for (block, name), field in WRITABLE.items():
            value = (student.get(block) or {}).get(name)
            if value is None:
                continue
            changes[field] = dt.date.fromisoformat(value) if field == "birth_date" else value
        if apply and changes:
            with self.state.lock:
                self.district.overrides["student"].setdefault(dcid, {}).update(changes)
        return {**result, "status": "SUCCESS", "success_message": {"id": dcid}}


def _one_or_many(singular: str, items: list[dict[str, Any]], expansions: str) -> Any:
    wrapper: dict[str, Any] = {}
    if expansions:
        wrapper["@expansions"] = "demographics, addresses, alerts, phones, school_enrollment, "
        wrapper["@expansions"] += "ethnicity_race, contact, contact_info, initial_enrollment"
    if len(items) == 1:
        wrapper[singular] = items[0]  # the XML-shaped quirk: one result is an object
    elif items:
        wrapper[singular] = items
    return wrapper


def _one_or_many_list(items: list[dict[str, Any]]) -> Any:
    return items[0] if len(items) == 1 else items
