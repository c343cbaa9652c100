"""PowerSchool payloads → canonical records (pure functions; contract-tested with fixtures)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import requests

from sis.connectors.errors import AuthenticationFailed, MalformedRecord
from sis.connectors.records import (
    CourseRecord,
    EnrollmentRecord,
    EnrollmentStatus,
    Entity,
    GuardianRecord,
    Record,
    SchoolRecord,
    SectionEnrollmentRecord,
    SectionRecord,
    StaffRecord,
    Status,
    StudentGuardianRecord,
    StudentRecord,
    TermRecord,
    grade_level_code,
    parse_date,
)
from sis.connectors.tokens import Token

#: ``school_enrollment.enroll_status_code`` → our vocabulary (reference §1.2)
ENROLL_STATUS = {
    0: EnrollmentStatus.ACTIVE,
    -1: EnrollmentStatus.PRE_REGISTERED,
    2: EnrollmentStatus.TRANSFERRED_OUT,
    3: EnrollmentStatus.GRADUATED,
    4: EnrollmentStatus.HISTORICAL,
}
ENROLL_STATUS_LETTER = {
    "A": EnrollmentStatus.ACTIVE,
    "P": EnrollmentStatus.PRE_REGISTERED,
    "T": EnrollmentStatus.TRANSFERRED_OUT,
    "G": EnrollmentStatus.GRADUATED,
    "H": EnrollmentStatus.HISTORICAL,
    "I": EnrollmentStatus.INACTIVE,
}
RELATIONSHIPS = {
    "mother": "mother",
    "father": "father",
    "guardian": "guardian",
    "legal guardian": "guardian",
    "grandmother": "grandparent",
    "grandfather": "grandparent",
    "grandparent": "grandparent",
    "stepmother": "guardian",
    "stepfather": "guardian",
    "aunt": "relative",
    "uncle": "relative",
    "relative": "relative",
    "sibling": "relative",
}


def as_list(value: Any) -> list[Any]:
    """PowerSchool follows XML conventions: one result is an object, none is absent or ''."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    return [value]


def text(value: Any) -> str:
    """Numbers may arrive as ints or strings; ids and codes are compared as text."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def flag(value: Any) -> bool:
    return text(value).lower() in ("1", "true", "yes", "y")


def token_from_response(response: requests.Response, *, label: str) -> Token:
    if response.status_code in (400, 401, 403):
        raise AuthenticationFailed(
            f"{label} refused the client credentials (HTTP {response.status_code}): "
            f"{_oauth_error(response)}. Check the client ID and secret of the plugin.",
            status=response.status_code,
        )
    if response.status_code >= 300:
        raise AuthenticationFailed(
            f"{label} token endpoint answered HTTP {response.status_code}",
            status=response.status_code,
        )
    try:
        data = response.json()
        access_token = str(data["access_token"])
    except (ValueError, KeyError, TypeError):
        raise AuthenticationFailed(f"{label} token endpoint sent no access token") from None
    expires_in = float(data.get("expires_in") or 3600)
    return Token(access_token, time.time() + expires_in, str(data.get("token_type") or "Bearer"))


def _oauth_error(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return "no details"
    if isinstance(data, dict):
        return str(
            data.get("error_description")
            or data.get("error")
            or data.get("message")
            or "no details"
        )[:300]
    return "no details"


def error_message(response: requests.Response) -> str:
    """``{"message": ..., "errors": [{"resource", "field", "code"}]}`` → one line."""
    try:
        data = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if not isinstance(data, dict):
        return f"HTTP {response.status_code}"
    message = str(
        data.get("message")
        or data.get("error_description")
        or data.get("error")
        or f"HTTP {response.status_code}"
    )
    details = []
    for error in as_list(data.get("errors")):
        if isinstance(error, dict):
            parts = [text(error.get(k)) for k in ("resource", "field", "code")]
            details.append("/".join(p for p in parts if p))
    if details:
        message += f" ({'; '.join(details)})"
    return message[:500]


def _require(value: Any, what: str) -> str:
    result = text(value)
    if not result:
        raise MalformedRecord(f"missing {what}")
    return result


def map_school(item: dict[str, Any]) -> Iterable[Record]:
    high = text(item.get("high_grade"))
    high_n = int(high) if high.lstrip("-").isdigit() else 12
    level = "elementary" if high_n <= 5 else "middle" if high_n <= 8 else "high"
    yield SchoolRecord(
        source_id=_require(item.get("id"), "id"),
        raw=item,
        name=_require(item.get("name"), "name"),
        local_id=text(item.get("school_number")),
        state_id=text(item.get("state_province_id")),
        level=level,
    )


def map_term(item: dict[str, Any]) -> Iterable[Record]:
    school = _require(item.get("school_id"), "school_id")
    term_id = _require(item.get("id"), "id")
    number = int(term_id) % 100
    abbreviation = text(item.get("abbreviation")).upper()
    kind = (
        "school_year"
        if number == 0
        else {"S": "semester", "Q": "quarter", "T": "trimester"}.get(abbreviation[:1], "semester")
    )
    year_id = text(item.get("year_id")) or str(int(term_id) // 100)
    start, end = parse_date(item.get("start_date")), parse_date(item.get("end_date"))
    if start is None or end is None:
        raise MalformedRecord("term without start or end date")
    yield TermRecord(
        # Term ids repeat across schools (TERMS is keyed by id and school).
        source_id=f"{school}:{term_id}",
        raw=item,
        name=_require(item.get("name"), "name"),
        kind=kind,
        start_date=start,
        end_date=end,
        parent_id=None if number == 0 else f"{school}:{int(year_id) * 100}",
        school_id=school,
    )


def map_course(item: dict[str, Any]) -> Iterable[Record]:
    yield CourseRecord(
        source_id=_require(item.get("id"), "id"),
        raw=item,
        code=_require(item.get("course_number"), "course_number"),
        title=text(item.get("course_name")) or text(item.get("course_number")),
        school_id=text(item.get("school_id")) or None,
    )


def map_section(item: dict[str, Any]) -> Iterable[Record]:
    school = _require(item.get("school_id"), "school_id")
    number = text(item.get("section_number"))
    yield SectionRecord(
        source_id=_require(item.get("id"), "id"),
        raw=item,
        name=text(item.get("name")) or number,
        course_id=text(item.get("course_id")) or None,
        school_id=school,
        term_ids=[f"{school}:{text(item['term_id'])}"] if text(item.get("term_id")) else [],
        teacher_ids=[text(item["staff_id"])] if text(item.get("staff_id")) else [],
        period=text(item.get("expression")),
        section_number=number,
    )


def map_staff(item: dict[str, Any]) -> Iterable[Record]:
    name = item["name"]
    affiliations = as_list((item.get("school_affiliations") or {}).get("school_affiliation"))
    emails = item.get("emails") or {}
    yield StaffRecord(
        source_id=_require(item.get("id"), "id"),
        raw=item,
        first_name=text(name.get("first_name")),
        last_name=_require(name.get("last_name"), "last name"),
        local_id=text(item.get("local_id")),
        email=text(emails.get("work_email")),
        role="administrator"
        if any(text(a.get("type")) == "1" for a in affiliations)
        else "teacher",
        school_ids=[text(a.get("school_id")) for a in affiliations if text(a.get("school_id"))],
    )


def _enrollment_status(enrollment: dict[str, Any]) -> EnrollmentStatus:
    code = text(enrollment.get("enroll_status_code"))
    if code.lstrip("-").isdigit():
        return ENROLL_STATUS.get(int(code), EnrollmentStatus.INACTIVE)
    return ENROLL_STATUS_LETTER.get(text(enrollment.get("enroll_status")), EnrollmentStatus.UNKNOWN)


def map_student(item: dict[str, Any]) -> Iterable[Record]:
    name = item["name"]
    demographics = item.get("demographics") or {}
    enrollment = item.get("school_enrollment") or {}
    status = _enrollment_status(enrollment) if enrollment else EnrollmentStatus.UNKNOWN
    contact = item.get("contact_info") or {}
    yield StudentRecord(
        source_id=_require(item.get("id"), "id"),
        raw=item,
        first_name=_require(name.get("first_name"), "first name"),
        last_name=_require(name.get("last_name"), "last name"),
        middle_name=text(name.get("middle_name")),
        local_id=text(item.get("local_id")),
        state_id=text(item.get("state_province_id")),
        birth_date=parse_date(demographics.get("birth_date")),
        gender=text(demographics.get("gender")),
        grade_level=grade_level_code(enrollment.get("grade_level")),
        email=text(contact.get("email")),
        school_id=text(enrollment.get("school_id")) or None,
        active=status in (EnrollmentStatus.ACTIVE, EnrollmentStatus.UNKNOWN),
    )


def map_enrollment(item: dict[str, Any]) -> Iterable[Record]:
    enrollment = item.get("school_enrollment")
    if not enrollment:
        raise MalformedRecord("student without school_enrollment expansion")
    student = _require(item.get("id"), "id")
    school = _require(enrollment.get("school_id"), "school_id")
    entry = parse_date(enrollment.get("entry_date"))
    status = _enrollment_status(enrollment)
    yield EnrollmentRecord(
        source_id=f"{student}:{school}:{entry}",
        raw=item,
        student_id=student,
        school_id=school,
        entry_date=entry,
        # For active students PowerSchool's exit_date is the scheduled last day, not an exit.
        exit_date=None
        if status == EnrollmentStatus.ACTIVE
        else parse_date(enrollment.get("exit_date")),
        enrollment_status=status,
        grade_level=grade_level_code(enrollment.get("grade_level")),
    )


def table_row(item: dict[str, Any]) -> dict[str, Any]:
    tables = item.get("tables")
    if isinstance(tables, dict):
        for row in tables.values():
            if isinstance(row, dict):
                return row
    return item


def map_guardian(item: dict[str, Any]) -> Iterable[Record]:
    row = table_row(item)
    guardian_id = _require(row.get("contactdcid"), "contactdcid")
    if not guardian_id.isdigit():
        raise MalformedRecord(f"contactdcid {guardian_id!r} is not a number")
    yield GuardianRecord(
        source_id=guardian_id,
        raw=item,
        first_name=text(row.get("firstname")),
        last_name=_require(row.get("lastname"), "lastname"),
        email=text(row.get("email")),
        mobile_phone=text(row.get("mobile_phone")),
        home_phone=text(row.get("home_phone")),
        work_phone=text(row.get("work_phone")),
    )


def map_student_guardian(item: dict[str, Any]) -> Iterable[Record]:
    row = table_row(item)
    student = _require(row.get("studentsdcid"), "studentsdcid")
    guardian = _require(row.get("contactdcid"), "contactdcid")
    if not guardian.isdigit():
        raise MalformedRecord(f"contactdcid {guardian!r} is not a number")
    priority = text(row.get("contactpriority"))
    yield StudentGuardianRecord(
        source_id=f"{student}:{guardian}",
        raw=item,
        student_id=student,
        guardian_id=guardian,
        relationship=RELATIONSHIPS.get(text(row.get("relationship")).lower(), "other"),
        custody=flag(row.get("custodial")),
        contact_allowed=flag(row.get("receivesmail")),
        lives_with=flag(row.get("liveswith")),
        emergency_contact=flag(row.get("isemergency")),
        priority=int(priority) if priority.isdigit() else 1,
    )


def map_section_enrollment(item: dict[str, Any]) -> Iterable[Record]:
    row = table_row(item)
    section = _require(row.get("sectionid"), "sectionid")
    # A negative section id marks a dropped class in PowerSchool's CC table.
    dropped = section.startswith("-")
    yield SectionEnrollmentRecord(
        source_id=_require(row.get("dcid") or row.get("id"), "dcid"),
        raw=item,
        student_id=_require(row.get("studentid"), "studentid"),
        section_id=section.lstrip("-"),
        entry_date=parse_date(row.get("dateenrolled")),
        exit_date=parse_date(row.get("dateleft")),
        status=Status.TO_BE_DELETED if dropped else Status.ACTIVE,
    )


MAPPERS: dict[Entity, Callable[[dict[str, Any]], Iterable[Record]]] = {
    Entity.SCHOOL: map_school,
    Entity.TERM: map_term,
    Entity.COURSE: map_course,
    Entity.SECTION: map_section,
    Entity.STAFF: map_staff,
    Entity.STUDENT: map_student,
    Entity.ENROLLMENT: map_enrollment,
    Entity.GUARDIAN: map_guardian,
    Entity.STUDENT_GUARDIAN: map_student_guardian,
    Entity.SECTION_ENROLLMENT: map_section_enrollment,
}
