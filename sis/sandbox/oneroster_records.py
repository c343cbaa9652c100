"""How the OneRoster sandbox renders its records (a mixin of
:class:`sis.sandbox.oneroster.OneRosterDialect`): orgs, users (students, teachers,
administrators, guardians with their agents), courses, classes, academic sessions and
enrollments in the 1.1 or 1.2 shape, with references as ``{href, sourcedId, type}``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sis.sandbox.district import District
from sis.sandbox.server import iso

GUARDIAN_ROLES = {
    "mother": "parent",
    "father": "parent",
    "guardian": "guardian",
    "grandparent": "relative",
    "relative": "relative",
}


class OneRosterRecords:
    district: District
    #: "1.1" or "1.2"
    version: str
    #: the rostering service's path (``/ims/oneroster/v1p1`` or ``…/rostering/v1p2``)
    base: str

    def _ref(self, kind: str, sid: Any) -> dict[str, str]:
        path = {
            "org": "orgs",
            "user": "users",
            "course": "courses",
            "class": "classes",
            "academicSession": "academicSessions",
        }[kind]
        return {"href": f"{self.base}/{path}/{sid}", "sourcedId": str(sid), "type": kind}

    def _common(self, sid: Any, modified: dt.datetime, deleted: bool = False) -> dict[str, Any]:
        return {
            "sourcedId": str(sid),
            "status": "tobedeleted" if deleted else "active",
            "dateLastModified": iso(modified),
            "metadata": {},
        }

    def _user(
        self,
        item: dict[str, Any],
        role: str,
        org_ids: list[Any],
        agents: list[Any],
        grades: list[str],
    ) -> dict[str, Any]:
        user = {
            **self._common(item["id"], item["modified"], item.get("deleted", False)),
            "username": item.get("username") or f"u{item['id']}",
            "userIds": [{"type": "LocalId", "identifier": str(item.get("local_id", item["id"]))}],
            "enabledUser": "true",
            "givenName": item["first"],
            "familyName": item["last"],
            "middleName": item.get("middle", ""),
            "identifier": str(item.get("local_id", "")),
            "email": item.get("email", ""),
            "sms": item.get("mobile", ""),
            "phone": item.get("home", ""),
            "agents": [self._ref("user", a) for a in agents],
            "grades": grades,
        }
        if self.version == "1.1":
            user["role"] = role
            user["orgs"] = [self._ref("org", o) for o in org_ids]
        else:
            user["roles"] = [
                {
                    "roleType": "primary" if n == 0 else "secondary",
                    "role": role,
                    "org": self._ref("org", o),
                    **({"beginDate": str(item["entry_date"])} if item.get("entry_date") else {}),
                    **({"endDate": str(item["exit_date"])} if item.get("exit_date") else {}),
                }
                for n, o in enumerate(org_ids or ["district-1"])
            ]
            if org_ids:
                user["primaryOrg"] = self._ref("org", org_ids[0])
            user["userMasterIdentifier"] = item.get("state_id", "")
            user["preferredFirstName"] = item.get("preferred_first", "")
            user["userProfiles"] = []
        return user

    def render(self, kind: str, position: int) -> dict[str, Any]:
        d = self.district
        if kind == "district":
            return {
                **self._common("district-1", dt.datetime(2026, 8, 1, tzinfo=dt.UTC)),
                "name": d.name,
                "type": "district",
                "identifier": "D1",
                "children": [],
            }
        item = d.item(kind if kind != "demographic" else "student", position)
        if kind == "school":
            return {
                **self._common(item["id"], item["modified"]),
                "name": item["name"],
                "type": "school",
                "identifier": item["number"],
                "parent": self._ref("org", "district-1"),
                "children": [],
                "metadata": {"level": item["level"]},
            }
        if kind == "term":
            session = {
                **self._common(item["id"], item["modified"]),
                "title": item["name"],
                "type": "schoolYear" if item["kind"] == "school_year" else "semester",
                "startDate": str(item["start"]),
                "endDate": str(item["end"]),
                "schoolYear": "2027",
                "metadata": {"school": str(item["school"])},
            }
            if item["parent"]:
                session["parent"] = self._ref("academicSession", item["parent"])
            if self.version == "1.2":
                session["org"] = self._ref("org", item["school"])
            return session
        if kind == "course":
            return {
                **self._common(item["id"], item["modified"]),
                "title": item["title"],
                "courseCode": item["code"],
                "org": self._ref("org", item["school"]),
                "grades": [],
                "subjects": [],
            }
        if kind == "section":
            return {
                **self._common(item["id"], item["modified"]),
                "title": item["name"],
                "classCode": item["section_number"],
                "classType": "scheduled",
                "location": "",
                "course": self._ref("course", item["course"]),
                "school": self._ref("org", item["school"]),
                "terms": [self._ref("academicSession", item["term"])],
                "periods": [item["period"]],
            }
        if kind == "student":
            return self._user(
                {**item, "username": f"s{item['local_id']}"},
                "student",
                [item["school"]],
                item["guardians"],
                [item["grade"]],
            )
        if kind == "staff":
            return self._user(item, item["role"], [item["school"]], [], [])
        if kind == "guardian":
            role = GUARDIAN_ROLES.get(item["relationship"], "guardian")
            students = item["students"] if "students" in item else [item["student"]]
            school = item.get("school")
            if school is None and students:
                school = (d.get("student", str(students[0])) or {}).get("school")
            orgs = [school] if school else []
            user = self._user(
                {**item, "entry_date": None, "exit_date": None}, role, orgs, students, []
            )
            user["metadata"] = {"relationship": item["relationship"]}
            return user
        if kind == "section_enrollment":
            enrollment = {
                **self._common(item["id"], item["modified"], item.get("deleted", False)),
                "user": self._ref("user", item["student"]),
                "class": self._ref("class", item["section"]),
                "school": self._ref("org", item["school"]),
                "role": "student",
                "primary": "false",
                "beginDate": str(item["entry_date"]),
            }
            if item.get("exit_date"):
                enrollment["endDate"] = str(item["exit_date"])
            return enrollment
        if kind == "demographic":
            return {
                **self._common(item["id"], item["modified"]),
                "birthDate": str(item["birth_date"]),
                "sex": "female" if item["gender"] == "F" else "male",
            }
        raise KeyError(kind)

    def _find_user(self, sid: str) -> dict[str, Any] | None:
        for kind in ("student", "staff", "guardian"):
            item = self.district.get(kind, sid)
            if item is not None:
                position = self.district.index_of(kind, sid)
                if position is not None:
                    return self.render(kind, position)
        return None
