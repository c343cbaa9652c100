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
the PowerTeacher Pro gradebook (``/ws/xte``) in ``powerschool_gradebook``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from typing import Any

from sis.sandbox.district import Compacted, changed_positions, school_positions
from sis.sandbox.powerschool_changes import (
    DATA_VERSION_TABLES,
    DCID_ID_QUERY,
    GUARDIAN_QUERY,
    PowerSchoolChanges,
    fiql_values,
    json_object,
    student_number_id,
)
from sis.sandbox.powerschool_gradebook import PowerTeacherGradebook, users_dcid
from sis.sandbox.server import SandboxHandler, SandboxState, basic_credentials, bearer_token

STATUS_CODES = {"A": 0, "P": -1, "T": 2, "G": 3, "H": 4, "I": 1}
STATUS_TEXT = {
    "A": "Active",
    "P": "Pre-registered",
    "T": "Transferred out",
    "G": "Graduated",
    "H": "Historical",
    "I": "Inactive",
}
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


class PowerSchoolDialect(PowerSchoolChanges, PowerTeacherGradebook):
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

    def _guardian_positions(self) -> Any:
        """Positions of the PowerQuery's rows: one per student–contact link. Generated
        districts have one link per guardian (deleted guardians are left out); a data set with
        shared contacts (Grand Bend) lists (guardian position, student id) pairs."""
        if getattr(self.district, "shared_guardians", False):
            if self._links is None:
                self._links = [
                    (g, student)
                    for g in range(self.district.count("guardian"))
                    for student in self.district.item("guardian", g).get("students") or []
                ]
            return self._links
        deleted = getattr(self.district, "deleted_guardians", [])
        return Compacted(self.district.count("guardian"), list(deleted))

    def _guardian_row(self, position: Any) -> dict[str, Any]:
        if isinstance(position, tuple):
            g, student = position
            return self._guardian_record(self.district.item("guardian", g), student)
        return self._guardian_record(self.district.item("guardian", position))

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

    def render(self, kind: str, item: dict[str, Any], expansions: set[str]) -> dict[str, Any]:
        if kind == "school":
            return {
                "id": item["id"],
                "name": item["name"],
                "school_number": int(item["number"]),
                "state_province_id": item["state_id"],
                "low_grade": _grade(item["low_grade"]),
                "high_grade": _grade(item["high_grade"]),
                "addresses": {"physical": {"city": "Grand Bend", "state_province": "TX"}},
            }
        if kind == "term":
            return {
                "id": item["yearid"] * 100 + item["term_number"],
                "dcid": item["id"],
                "name": item["name"],
                "abbreviation": item["abbreviation"],
                "school_id": item["school"],
                "start_date": item["start"],
                "end_date": item["end"],
                "year_id": item["yearid"],
                "parent_dcid": item["parent"],
            }
        if kind == "course":
            return {
                "id": item["id"],
                "course_number": item["code"],
                "course_name": item["title"],
                "school_id": item["school"],
            }
        if kind == "section":
            return {
                "id": item["id"],
                "school_id": item["school"],
                "course_id": item["course"],
                # PowerSchool sections name the term by its ID (yearid*100+n), per school.
                "term_id": 3600,
                "staff_id": item["teacher"],
                "section_number": item["section_number"],
                "expression": f"{item['period']}(A)",
                "name": item["name"],
            }
        if kind == "staff":
            return {
                "id": item["id"],
                "local_id": item["local_id"],
                "users_dcid": users_dcid(item["id"]),
                "name": {"first_name": item["first"], "last_name": item["last"]},
                "emails": {"work_email": item["email"]},
                "admin_username": "",
                "school_affiliations": {
                    "school_affiliation": {
                        "school_id": item["school"],
                        "type": 1 if item["role"] == "administrator" else 0,
                        "status": 1,
                    }
                },
            }
        if kind == "student":
            status = item["enroll_status"]
            local_id = item["local_id"]
            student: dict[str, Any] = {
                "id": item["id"],
                # PowerSchool sends numeric local ids as numbers.
                "local_id": int(local_id) if local_id.isdigit() else local_id,
                "student_username": f"s{item['local_id']}",
                "state_province_id": item["state_id"],
                "name": {
                    "first_name": item["first"],
                    "middle_name": item["middle"],
                    "last_name": item["last"],
                },
            }
            if "school_enrollment" in expansions:
                student["school_enrollment"] = {
                    "enroll_status": status,
                    "enroll_status_description": STATUS_TEXT[status],
                    "enroll_status_code": STATUS_CODES[status],
                    "grade_level": _grade(item["grade"]),
                    "entry_date": item["entry_date"],
                    "exit_date": item["exit_date"] or "2027-06-05",
                    "school_number": item["school"],
                    "school_id": item["school"],
                }
            if "demographics" in expansions:
                student["demographics"] = {
                    "gender": item["gender"],
                    "birth_date": item["birth_date"],
                    "projected_graduation_year": 2030,
                }
            if "addresses" in expansions:
                student["addresses"] = {
                    "physical": {
                        "street": "1 Example Way",
                        "city": "Grand Bend",
                        "state_province": "TX",
                        "postal_code": "75001",
                    }
                }
            if "contact_info" in expansions:
                student["contact_info"] = {"email": item["email"]}
            return student
        if kind == "section_enrollment":
            return {
                "id": item["id"],
                "section_id": item["section"],
                "student_id": item["student"],
                "entry_date": item["entry_date"],
                "exit_date": item["exit_date"] or "2027-06-05",
                "dropped": False,
            }
        raise KeyError(kind)

    # ---------------------------------------------------------------- CC table -----------------
    def table_cc(
        self, handler: SandboxHandler, path: str, query: dict[str, str], fault: str | None
    ) -> None:
        positions: Any = range(self.district.count("section_enrollment"))
        # The sandbox's CC rows carry the same value as ID and DCID.
        by_id, by_dcid = (fiql_values(query.get("q", ""), name) for name in ("id", "dcid"))
        wanted = None if by_id is None else by_id | (by_dcid or set())
        if wanted is not None:
            found = (self.district.index_of("section_enrollment", i) for i in sorted(wanted))
            positions = [
                p for p in found if p is not None and p < self.district.count("section_enrollment")
            ]
        if path.endswith("/count"):
            handler.send_json(200, {"count": len(positions)})
            return
        paged = self._page(query, len(positions))
        if isinstance(paged, str):
            handler.send_json(400, self.error_body(400, paged))
            return
        page, size = paged
        key = f"cc:{query.get('q', '')}"
        if fault == "duplicate_page" and key in self.state.last_pages:
            records = self.state.last_pages[key]
        else:
            records = []
            for k in range((page - 1) * size, min(page * size, len(positions))):
                item = self.district.item("section_enrollment", positions[k])
                records.append(
                    {
                        "id": item["id"],
                        "name": "CC",
                        "tables": {
                            "cc": {
                                "dcid": str(item["id"]),
                                "id": str(item["id"]),
                                # CC names the student by ID, not DCID.
                                "studentid": student_number_id(item["student"]),
                                "sectionid": str(item["section"]),
                                "schoolid": str(item["school"]),
                                "dateenrolled": str(item["entry_date"]),
                                "dateleft": str(item["exit_date"] or "2027-06-05"),
                            }
                        },
                    }
                )
            if fault == "malformed" and records:
                records[0]["tables"]["cc"]["dateenrolled"] = "00/00/0000"
            self.state.last_pages[key] = records
        handler.send_json(200, {"name": "CC", "record": records})

    # ---------------------------------------------------------------- guardians ---------------
    def _guardian_record(self, g: dict[str, Any], student_id: Any = None) -> dict[str, Any]:
        student_id = g["student"] if student_id is None else student_id
        student = self.district.get("student", str(student_id)) or {}
        values = {
            "studentsdcid": student_id,
            "student_number": student.get("local_id", ""),
            "contactdcid": g["id"],
            "firstname": g["first"],
            "lastname": g["last"],
            "email": g["email"],
            "relationship": g["relationship"].title(),
            "mobile_phone": g["mobile"],
            "home_phone": g["home"],
            "work_phone": g["work"],
            "custodial": "1" if g["custody"] else "0",
            "receivesmail": "1" if g["contact_allowed"] else "0",
            "liveswith": "1" if g["lives_with"] else "0",
            "isemergency": "1" if g["emergency"] else "0",
            "contactpriority": g["priority"],
        }
        # PowerQuery records carry every value as a string.
        return {
            "id": g["id"],
            "name": "studentcontactassoc",
            "tables": {"studentcontactassoc": {k: str(v) for k, v in values.items()}},
        }

    def guardian_query(
        self, handler: SandboxHandler, path: str, query: dict[str, str], fault: str | None
    ) -> None:
        positions = self._guardian_positions()
        wanted = fiql_values(query.get("$q", ""), "contactdcid")
        if wanted is not None and not getattr(self.district, "shared_guardians", False):
            deleted = set(getattr(self.district, "deleted_guardians", []))
            found = (self.district.index_of("guardian", w) for w in sorted(wanted))
            positions = [
                g
                for g in found
                if g is not None and g < self.district.count("guardian") and g not in deleted
            ]
        elif wanted is not None:
            positions = [
                positions[k]
                for k in range(len(positions))
                if self._guardian_id(positions[k]) in wanted
            ]
        if path.endswith("/count"):
            handler.send_json(200, {"count": len(positions)})
            return
        paged = self._page(query, len(positions))
        if isinstance(paged, str):
            handler.send_json(400, self.error_body(400, paged))
            return
        page, size = paged
        key = f"guardians:{query.get('$q', '')}"
        if fault == "duplicate_page" and key in self.state.last_pages:
            records = self.state.last_pages[key]
        else:
            records = [
                self._guardian_row(positions[k])
                for k in range((page - 1) * size, min(page * size, len(positions)))
            ]
            if fault == "malformed" and records:
                records[0] = {
                    "id": records[0]["id"],
                    "name": "studentcontactassoc",
                    "tables": {"studentcontactassoc": {"contactdcid": "x"}},
                }
            self.state.last_pages[key] = records
        payload: dict[str, Any] = {"name": GUARDIAN_QUERY, "record": records}
        if query.get("includeCount") in ("true", "1"):
            payload["count"] = len(positions)
        handler.send_json(200, payload)

    def contacts(self, handler: SandboxHandler, dcid: str) -> None:
        student = self.district.get("student", dcid)
        if student is None:
            handler.send_json(404, self.error_body(404, "Student not found"))
            return
        contacts = []
        for gid in student["guardians"]:
            g = self.district.get("guardian", str(gid))
            if g is None or g.get("deleted"):
                continue
            contacts.append(
                self._guardian_record(g, student["id"])["tables"]["studentcontactassoc"]
            )
        handler.send_json(200, contacts)

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

    def _guardian_id(self, position: Any) -> str:
        g = position[0] if isinstance(position, tuple) else position
        return str(self.district.item("guardian", g)["id"])

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


def _grade(grade: str) -> int:
    return 0 if grade in ("KG", "K") else int(grade) if grade.lstrip("-").isdigit() else 0


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
