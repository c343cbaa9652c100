"""How the PowerSchool sandbox renders its records (a mixin of
:class:`sis.sandbox.powerschool.PowerSchoolDialect`): ``/ws/v1`` resources with their
expansions, the ``CC`` schema table of section enrollments, and guardians through the
PowerQuery ``com.pearson.core.guardian.student_guardian_detail`` and
``/ws/contacts/student/{dcid}``.
"""

from __future__ import annotations

from typing import Any

from sis.sandbox.district import Compacted, District
from sis.sandbox.powerschool_changes import (
    GUARDIAN_QUERY,
    fiql_values,
    student_number_id,
)
from sis.sandbox.powerschool_gradebook import users_dcid
from sis.sandbox.server import SandboxHandler, SandboxState

STATUS_CODES = {"A": 0, "P": -1, "T": 2, "G": 3, "H": 4, "I": 1}
STATUS_TEXT = {
    "A": "Active",
    "P": "Pre-registered",
    "T": "Transferred out",
    "G": "Graduated",
    "H": "Historical",
    "I": "Inactive",
}


class PowerSchoolRecords:
    state: SandboxState
    district: District
    #: the PowerQuery's (guardian, student) rows of a shared-contacts data set, once listed
    _links: list[tuple[int, Any]] | None

    def _page(self, query: dict[str, str], total: int) -> tuple[int, int] | str:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        raise NotImplementedError

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

    def _guardian_id(self, position: Any) -> str:
        g = position[0] if isinstance(position, tuple) else position
        return str(self.district.item("guardian", g)["id"])


def _grade(grade: str) -> int:
    return 0 if grade in ("KG", "K") else int(grade) if grade.lstrip("-").isdigit() else 0
