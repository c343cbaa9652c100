"""The PowerSchool sandbox's PowerTeacher Pro gradebook (``/ws/xte``; a mixin of
:class:`sis.sandbox.powerschool.PowerSchoolDialect`), per /work/shared/reference/sis-apis.md
§1.6:

- ``GET /ws/xte/teacher_category?users_dcid&year_id``: the teacher's categories (Homework,
  Tests, Participation);
- ``POST /ws/xte/section/assignment/?users_dcid``: creates an assignment from
  ``_assignmentsections[]`` and answers it with its ``assignmentid`` and each section's
  ``assignmentsectionid``;
- ``PUT /ws/xte/score?users_dcid&status=A&term_id``: stores ``assignment_scores[]``; a term in
  ``locked_terms`` answers 409 (locked term), a score for an unknown assignment 409
  (validation).

``users_dcid`` is required on each (400 without it) and must be a teacher's Users DCID (a
staff member's is their staff id plus :data:`USERS_DCID_OFFSET`, served as ``users_dcid`` on
``/ws/v1/staff``). Every call is recorded in ``/__sandbox/writes`` (the category read too, so a
test can count them); ``assignments`` and ``scores`` hold what was stored. Faults: any forced
fault by path (``409``, ``412``, ``503`` …) and ``ignore_write`` (a score PUT answered 200 but
not stored).
"""

from __future__ import annotations

import json
import re
from typing import Any

from sis.sandbox.district import District
from sis.sandbox.server import SandboxHandler, SandboxState

USERS_DCID_OFFSET = 500_000
CATEGORIES = ("Homework", "Tests", "Participation")
XTE_ROUTE = re.compile(r"^/ws/xte/(teacher_category|section/assignment/?|score)$")
ASSIGNMENT_FIELDS = (
    "sectionsdcid",
    "name",
    "duedate",
    "scoretype",
    "scoreentrypoints",
    "totalpointvalue",
    "weight",
    "iscountedinfinalgrades",
    "_assignmentcategoryassociations",
)


def users_dcid(staff_id: Any) -> str:
    """The Users DCID of a staff member (PowerSchool's Users and SchoolStaff ids differ)."""
    text = str(staff_id)
    return str(int(text) + USERS_DCID_OFFSET) if text.isdigit() else f"u-{text}"


class PowerTeacherGradebook:
    state: SandboxState
    district: District

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        raise NotImplementedError

    def gradebook_init(self) -> None:
        self.assignments: dict[int, dict[str, Any]] = {}  # assignmentsectionid → section
        self.scores: dict[tuple[int, str], dict[str, Any]] = {}  # (asid, studentsdcid) → score
        self.locked_terms: set[str] = set()
        self._next_id = 9000

    def is_gradebook_path(self, path: str) -> bool:
        return XTE_ROUTE.match(path) is not None

    def gradebook(
        self,
        handler: SandboxHandler,
        method: str,
        path: str,
        query: dict[str, str],
        body: bytes,
        fault: str | None,
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
        teacher = self._teacher(query.get("users_dcid", ""))
        if teacher is None:
            handler.send_json(400, self.error_body(400, "users_dcid must name a teacher"))
            return
        if method == "GET" and path == "/ws/xte/teacher_category":
            if not query.get("year_id", "").isdigit():
                handler.send_json(400, self.error_body(400, "year_id is required"))
                return
            handler.send_json(200, self._categories(teacher))
        elif method == "POST" and path.startswith("/ws/xte/section/assignment"):
            self._assignment_create(handler, teacher, payload)
        elif method == "PUT" and path == "/ws/xte/score":
            self._scores_put(handler, query, payload, apply=fault != "ignore_write")
        else:
            handler.send_json(405, self.error_body(405, f"{method} is not allowed on {path}"))

    # ---------------------------------------------------------------- helpers ------------------
    def _teacher(self, dcid: str) -> dict[str, Any] | None:
        if not dcid:
            return None
        staff_id = str(int(dcid) - USERS_DCID_OFFSET) if dcid.isdigit() else dcid[2:]
        staff = self.district.get("staff", staff_id)
        return staff if staff and staff.get("role") == "teacher" else None

    def _categories(self, teacher: dict[str, Any]) -> list[dict[str, Any]]:
        staff_id = str(teacher["id"])
        base = int(staff_id) * 10 if staff_id.isdigit() else 0
        return [
            {"teachercategoryid": base + n, "name": name, "isactive": True}
            for n, name in enumerate(CATEGORIES, start=1)
        ]

    def _assignment_create(
        self, handler: SandboxHandler, teacher: dict[str, Any], payload: Any
    ) -> None:
        sections = payload.get("_assignmentsections") if isinstance(payload, dict) else None
        if not isinstance(sections, list) or not sections:
            handler.send_json(400, self.error_body(400, "_assignmentsections[] is required"))
            return
        categories = {c["teachercategoryid"] for c in self._categories(teacher)}
        created = []
        for section in sections:
            missing = [f for f in ASSIGNMENT_FIELDS if f not in section]
            if missing:
                handler.send_json(400, self.error_body(400, f"missing {', '.join(missing)}"))
                return
            known = self.district.get("section", str(section["sectionsdcid"]))
            if known is None or str(known["teacher"]) != str(teacher["id"]):
                handler.send_json(
                    409, self.error_body(409, "The section is not one of this teacher's")
                )
                return
            links = section["_assignmentcategoryassociations"]
            if not any(link.get("teachercategoryid") in categories for link in links):
                handler.send_json(409, self.error_body(409, "Unknown teacher category"))
                return
        with self.state.lock:
            self._next_id += 1
            assignment_id = self._next_id
            for section in sections:
                self._next_id += 1
                stored = {**section, "assignmentid": assignment_id}
                stored["assignmentsectionid"] = self._next_id
                self.assignments[self._next_id] = stored
                created.append(stored)
        handler.send_json(200, {"assignmentid": assignment_id, "_assignmentsections": created})

    def _scores_put(
        self, handler: SandboxHandler, query: dict[str, str], payload: Any, *, apply: bool
    ) -> None:
        term_id = query.get("term_id", "")
        if not term_id.isdigit() or query.get("status") != "A":
            handler.send_json(400, self.error_body(400, "term_id and status=A are required"))
            return
        if term_id in self.locked_terms:
            handler.send_json(409, self.error_body(409, f"Term {term_id} is locked for grading"))
            return
        scores = payload.get("assignment_scores") if isinstance(payload, dict) else None
        if not isinstance(scores, list):
            handler.send_json(400, self.error_body(400, "assignment_scores[] is required"))
            return
        for score in scores:
            if score.get("assignmentsectionid") not in self.assignments:
                handler.send_json(409, self.error_body(409, "Unknown assignmentsectionid"))
                return
            if self.district.get("student", str(score.get("studentsdcid"))) is None:
                handler.send_json(409, self.error_body(409, "Unknown studentsdcid"))
                return
        if apply:
            with self.state.lock:
                for score in scores:
                    key = (score["assignmentsectionid"], str(score["studentsdcid"]))
                    self.scores[key] = dict(score)
        handler.send_json(200, {"assignment_scores": {"count": len(scores)}})
