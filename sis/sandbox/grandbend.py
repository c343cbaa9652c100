"""The Ed-Fi "Grand Bend ISD" sample district, served by the sandbox (``--dataset grand-bend``).

The original student–school and student–section enrollment file is not part of the copy we
have, so students are placed by this rule (docs/sandbox.md):

1. the school of the student's school attendance events (the most frequent one), else
2. the school of a section the student has section attendance for, else
3. by age on 1 September 2021: 5–10 elementary, 11–13 middle, 14+ high school.

Grade level is age on 1 September 2021 minus 5 (KG at 5), clamped to the school's range.
Each student takes up to six sections of their school, picked deterministically (a stable hash
of the student id) among the school's fall-semester sections, one per class period when the
school has enough. Guardians are the contacts with their StudentContactAssociation links
(relation, primary contact, lives with, emergency contact). E-mail domains are rewritten to
example.org; everything else is served as published.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from sis.sandbox.district import District

NS = "{http://ed-fi.org/5.2.0}"
REFERENCE_DAY = dt.date(2021, 9, 1)
MODIFIED = dt.datetime(2021, 8, 20, tzinfo=dt.UTC)
FALL = (dt.date(2021, 8, 23), dt.date(2021, 12, 17))
SPRING = (dt.date(2022, 1, 4), dt.date(2022, 5, 27))
YEAR = (FALL[0], SPRING[1])
LEVEL_GRADES = {"elementary": (0, 5), "middle": (6, 8), "high": (9, 12)}


def _t(element: ET.Element | None, path: str) -> str:
    if element is None:
        return ""
    found = element.find(_ns(path))
    return (found.text or "").strip() if found is not None and found.text else ""


def _ns(path: str) -> str:
    return "/".join(f"{NS}{part}" if part and part != "." else part for part in path.split("/"))


def _descriptor(value: str) -> str:
    return value.rsplit("#", 1)[-1]


def _stable(value: str) -> int:
    return int(hashlib.sha256(value.encode()).hexdigest()[:12], 16)


class GrandBendDistrict(District):
    name = "Grand Bend ISD"
    shared_guardians = True  # a contact may be linked to several students

    def __init__(self, records: dict[str, list[dict[str, Any]]]) -> None:
        super().__init__()
        self.records = records
        self.positions = {
            kind: {str(item["id"]): i for i, item in enumerate(items)}
            for kind, items in records.items()
        }
        self.by_school: dict[str, dict[int, list[int]]] = {}
        for kind in ("term", "course", "section", "staff"):
            grouped: dict[int, list[int]] = defaultdict(list)
            for i, item in enumerate(records[kind]):
                grouped[int(item["school"])].append(i)
            self.by_school[kind] = grouped

    # ---------------------------------------------------------------- District interface -------
    def count(self, kind: str) -> int:
        return len(self.records[kind])

    def base_item(self, kind: str, index: int) -> dict[str, Any]:
        return self.records[kind][index]

    def index_of(self, kind: str, item_id: str) -> int | None:
        return self.positions.get(kind, {}).get(str(item_id))

    def school_positions(self, kind: str, school_id: int) -> list[int]:
        return self.by_school[kind].get(int(school_id), [])

    # ---------------------------------------------------------------- loading ------------------
    @classmethod
    def load(cls, path: str | None) -> GrandBendDistrict:
        if not path:
            raise ValueError(
                "--dataset grand-bend needs the data set path "
                "(SIS_SANDBOX_GRAND_BEND_PATH or --dataset-path)"
            )
        folder = Path(path)
        if not (folder / "Student.xml").exists():
            raise ValueError(f"{folder} does not hold the Grand Bend files (Student.xml missing)")
        return cls(_load(folder))


def _parse(folder: Path, name: str) -> ET.Element:
    return ET.parse(folder / name).getroot()  # noqa: S314 (trusted local sample files)


def _load(folder: Path) -> dict[str, list[dict[str, Any]]]:
    org = _parse(folder, "EducationOrganization.xml")
    schools: list[dict[str, Any]] = []
    for school_el in org.findall(f"{NS}School"):
        school_number = _t(school_el, "SchoolId")
        name = _t(school_el, "NameOfInstitution")
        level = "high" if "High" in name else "middle" if "Middle" in name else "elementary"
        low, high = LEVEL_GRADES[level]
        schools.append(
            {
                "id": int(school_number),
                "number": school_number,
                "name": name,
                "level": level,
                "low_grade": "KG" if low == 0 else str(low),
                "high_grade": str(high),
                "state_id": school_number,
                "modified": MODIFIED,
            }
        )
    school_ids = {s["id"] for s in schools}
    level_of = {s["id"]: s["level"] for s in schools}

    terms: list[dict[str, Any]] = []
    for s in schools:
        year_id = f"{s['id']}-2021"
        terms.append(
            {
                "id": year_id,
                "name": "2021-2022",
                "abbreviation": "21-22",
                "kind": "school_year",
                "start": YEAR[0],
                "end": YEAR[1],
                "parent": None,
                "school": s["id"],
                "yearid": 31,
                "term_number": 0,
                "modified": MODIFIED,
            }
        )
        for n, (label, (start, end)) in enumerate((("Fall", FALL), ("Spring", SPRING)), 1):
            terms.append(
                {
                    "id": f"{s['id']}-2021-{label.lower()}",
                    "name": f"2021-2022 {label} Semester",
                    "abbreviation": f"S{n}",
                    "kind": "semester",
                    "start": start,
                    "end": end,
                    "parent": year_id,
                    "school": s["id"],
                    "yearid": 31,
                    "term_number": n,
                    "modified": MODIFIED,
                }
            )

    schedule = _parse(folder, "MasterSchedule.xml")
    sections: list[dict[str, Any]] = []
    course_school: dict[str, int] = {}
    for section_el in schedule.findall(f"{NS}Section"):
        identity = section_el.find(f"{NS}CourseOfferingReference/{NS}CourseOfferingIdentity")
        section_school_id = int(_t(identity, "SchoolReference/SchoolIdentity/SchoolId"))
        code = _t(identity, "LocalCourseCode")
        session = _t(identity, "SessionReference/SessionIdentity/SessionName")
        period = _t(section_el, "ClassPeriodReference/ClassPeriodIdentity/ClassPeriodName")
        course_school.setdefault(code, section_school_id)
        semester = "spring" if "Spring" in session else "fall"
        sections.append(
            {
                "id": _t(section_el, "SectionIdentifier"),
                "school": section_school_id,
                "course": code,
                "term": f"{section_school_id}-2021-{semester}",
                "teacher": None,
                "period": period or "1",
                # The whole identifier: its tail alone (course and year) repeats across the
                # periods of one course, and a section number is unique per course and term.
                "section_number": _t(section_el, "SectionIdentifier"),
                "name": f"{code} {period}".strip(),
                "semester": semester,
                "modified": MODIFIED,
            }
        )
    courses = []
    first_school = schools[0]["id"] if schools else 0
    for course in org.findall(f"{NS}Course"):
        code = _t(course, "CourseCode")
        courses.append(
            {
                "id": code,
                "code": code,
                "title": _t(course, "CourseTitle") or code,
                "school": course_school.get(code, first_school),
                "modified": MODIFIED,
            }
        )

    staff_xml = _parse(folder, "StaffAssociation.xml")
    staff_school: dict[str, int] = {}
    for assoc in staff_xml.findall(f"{NS}StaffSchoolAssociation"):
        staff_school.setdefault(
            _t(assoc, "StaffReference/StaffIdentity/StaffUniqueId"),
            int(_t(assoc, "SchoolReference/SchoolIdentity/SchoolId")),
        )
    section_index = {s["id"]: s for s in sections}
    for assoc in staff_xml.findall(f"{NS}StaffSectionAssociation"):
        section_id = _t(assoc, "SectionReference/SectionIdentity/SectionIdentifier")
        if section_id in section_index and section_index[section_id]["teacher"] is None:
            section_index[section_id]["teacher"] = _t(
                assoc, "StaffReference/StaffIdentity/StaffUniqueId"
            )
    staff = []
    for person in staff_xml.findall(f"{NS}Staff"):
        uid = _t(person, "StaffUniqueId")
        first, last = _t(person, "Name/FirstName"), _t(person, "Name/LastSurname")
        staff.append(
            {
                "id": uid,
                "local_id": uid,
                "first": first,
                "last": last,
                "email": f"{first}.{last}.{uid}@staff.example.org".lower(),
                "role": "teacher",
                "school": staff_school.get(uid, first_school),
                "modified": MODIFIED,
            }
        )

    # Placement evidence: school attendance events, then section attendance.
    attended: dict[str, Counter[int]] = defaultdict(Counter)
    for event in _parse(folder, "StudentSchoolAttendance.xml"):
        sid = _t(event, "StudentReference/StudentIdentity/StudentUniqueId")
        school = _t(event, "SchoolReference/SchoolIdentity/SchoolId")
        if sid and school:
            attended[sid][int(school)] += 1
    tardy_file = folder / "StudentSectionAttendance-Tardy.xml"
    section_school: dict[str, int] = {}
    if tardy_file.exists():
        for event in _parse(folder, tardy_file.name):
            sid = _t(event, "StudentReference/StudentIdentity/StudentUniqueId")
            school = _t(
                event,
                "SectionReference/SectionIdentity/CourseOfferingReference/"
                "CourseOfferingIdentity/SchoolReference/SchoolIdentity/SchoolId",
            )
            if sid and school:
                section_school.setdefault(sid, int(school))

    by_level = {level: [s["id"] for s in schools if s["level"] == level] for level in LEVEL_GRADES}
    fall_sections: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for section in sections:
        if section["semester"] == "fall":
            fall_sections[section["school"]].append(section)

    contacts_xml = _parse(folder, "Contact.xml")
    links_by_student: dict[str, list[tuple[str, ET.Element]]] = defaultdict(list)
    students_by_contact: dict[str, list[str]] = defaultdict(list)
    for assoc in contacts_xml.findall(f"{NS}StudentContactAssociation"):
        sid = _t(assoc, "StudentReference/StudentIdentity/StudentUniqueId")
        ref = assoc.find(f"{NS}ContactReference")
        contact_ref = ref.get("ref", "") if ref is not None else ""
        contact_id = contact_ref.removeprefix("PRNT_") or _t(
            assoc, "ContactReference/ContactIdentity/ContactUniqueId"
        )
        links_by_student[sid].append((contact_id, assoc))
        students_by_contact[contact_id].append(sid)

    students = []
    section_enrollments = []
    for student in _parse(folder, "Student.xml").findall(f"{NS}Student"):
        sid = _t(student, "StudentUniqueId")
        birth = dt.date.fromisoformat(_t(student, "BirthData/BirthDate"))
        age = (
            REFERENCE_DAY.year
            - birth.year
            - ((REFERENCE_DAY.month, REFERENCE_DAY.day) < (birth.month, birth.day))
        )
        if attended.get(sid):
            school_id = attended[sid].most_common(1)[0][0]
        elif sid in section_school:
            school_id = section_school[sid]
        else:
            level = "elementary" if age <= 10 else "middle" if age <= 13 else "high"
            options = by_level[level] or [first_school]
            school_id = options[_stable(sid) % len(options)]
        if school_id not in school_ids:
            school_id = first_school
        low, high = LEVEL_GRADES[level_of[school_id]]
        grade_number = min(max(age - 5, low), high)
        first, last = _t(student, "Name/FirstName"), _t(student, "Name/LastSurname")
        guardian_ids = [c for c, _ in links_by_student.get(sid, [])]
        students.append(
            {
                "id": sid,
                "local_id": sid,
                "state_id": sid,
                "first": first,
                "middle": _t(student, "Name/MiddleName"),
                "last": last,
                "preferred_first": _t(student, "Name/PreferredFirstName"),
                "birth_date": birth,
                "grade": "KG" if grade_number == 0 else str(grade_number),
                "gender": "",
                "school": school_id,
                "entry_date": FALL[0],
                "exit_date": None,
                "enroll_status": "A",
                "email": f"{first}.{last}.{sid}@students.example.org".lower(),
                "guardians": guardian_ids,
                "deleted": False,
                "modified": MODIFIED,
            }
        )
        pool = fall_sections.get(school_id, [])
        if pool:
            first_pick = _stable(sid) % len(pool)
            chosen: list[dict[str, Any]] = []
            periods: set[str] = set()
            for k in range(len(pool)):
                section = pool[(first_pick + k * 7) % len(pool)]
                if section in chosen or (section["period"] in periods and len(periods) < 6):
                    continue
                chosen.append(section)
                periods.add(section["period"])
                if len(chosen) == 6:
                    break
            for section in chosen:
                section_enrollments.append(
                    {
                        "id": f"{sid}-{section['id']}",
                        "student": sid,
                        "section": section["id"],
                        "school": school_id,
                        "entry_date": FALL[0],
                        "exit_date": None,
                        "deleted": False,
                        "modified": MODIFIED,
                    }
                )

    guardians = []
    relation_of: dict[tuple[str, str], ET.Element] = {}
    for sid, links in links_by_student.items():
        for contact_id, assoc in links:
            relation_of[(contact_id, sid)] = assoc
    for contact in contacts_xml.findall(f"{NS}Contact"):
        cid = _t(contact, "ContactUniqueId") or contact.get("id", "").removeprefix("PRNT_")
        linked = students_by_contact.get(cid, [])
        link = relation_of.get((cid, linked[0])) if linked else None
        phones = [
            (_descriptor(_t(p, "TelephoneNumberType")), _t(p, "TelephoneNumber"))
            for p in contact.findall(f"{NS}Telephone")
        ]
        email = _t(contact, "ElectronicMail/ElectronicMailAddress")
        local_part = email.split("@", 1)[0] if email else ""
        relation = _descriptor(_t(link, "Relation")).lower() if link is not None else ""
        guardians.append(
            {
                "id": cid,
                "first": _t(contact, "Name/FirstName"),
                "last": _t(contact, "Name/LastSurname"),
                "email": f"{local_part}@example.org".lower() if local_part else "",
                "mobile": next((n for t, n in phones if t in ("Mobile", "Other")), ""),
                "home": next((n for t, n in phones if t == "Home"), ""),
                "work": next((n for t, n in phones if t == "Work"), ""),
                "relationship": relation or "guardian",
                "custody": _t(link, "PrimaryContactStatus") == "true",
                "contact_allowed": True,
                "lives_with": _t(link, "LivesWith") == "true",
                "emergency": _t(link, "EmergencyContactStatus") == "true",
                "priority": 1,
                "student": linked[0] if linked else None,
                "students": linked,
                "deleted": False,
                "modified": MODIFIED,
            }
        )
    for section in sections:
        section.pop("semester", None)
    return {
        "school": schools,
        "term": terms,
        "course": courses,
        "section": sections,
        "staff": staff,
        "student": students,
        "guardian": guardians,
        "section_enrollment": section_enrollments,
    }
