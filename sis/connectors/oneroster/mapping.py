"""OneRoster payloads (REST JSON, and CSV rows shaped like them) → canonical records."""

from __future__ import annotations

import time
from collections.abc import Iterable
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
    parse_datetime,
)
from sis.connectors.tokens import Token

SESSION_KINDS = {
    "schoolyear": "school_year",
    "semester": "semester",
    "term": "semester",
    "trimester": "trimester",
    "quarter": "quarter",
    "gradingperiod": "grading_period",
}
GUARDIAN_ROLES = {"parent": "parent", "guardian": "guardian", "relative": "relative"}
RELATIONSHIPS = {
    "mother": "mother",
    "father": "father",
    "guardian": "guardian",
    "grandparent": "grandparent",
    "relative": "relative",
    "parent": "parent",
}
STAFF_ROLES = {"teacher", "administrator", "aide", "proctor"}


def token_from_response(response: requests.Response, *, label: str) -> Token:
    if response.status_code in (400, 401, 403):
        detail = "no details"
        try:
            data = response.json()
            if isinstance(data, dict):
                detail = str(data.get("error_description") or data.get("error") or detail)
        except ValueError:
            pass
        raise AuthenticationFailed(
            f"{label} refused the client credentials (HTTP {response.status_code}): "
            f"{detail[:300]}. Check the client ID, secret and token URL.",
            status=response.status_code,
        )
    if response.status_code == 404:
        raise AuthenticationFailed(
            f"{label} token URL not found (HTTP 404); copy it from the SIS exactly.", status=404
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
    return Token(access_token, time.time() + expires_in, "Bearer")


def error_message(response: requests.Response) -> str:
    """``statusInfoSet`` (a list, or a single object on some servers) → one line."""
    try:
        data = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if not isinstance(data, dict):
        return f"HTTP {response.status_code}"
    infos = data.get("statusInfoSet") or data.get("imsx_statusInfo") or data
    if isinstance(infos, dict):
        infos = [infos]
    parts = []
    for info in infos if isinstance(infos, list) else []:
        if not isinstance(info, dict):
            continue
        description = str(info.get("imsx_description") or info.get("message") or "")
        minor = info.get("imsx_CodeMinor") or {}
        fields = minor.get("imsx_codeMinorField") if isinstance(minor, dict) else None
        if isinstance(fields, dict):
            fields = [fields]
        codes = [
            str(f.get("imsx_codeMinorFieldValue"))
            for f in fields or []
            if isinstance(f, dict) and f.get("imsx_codeMinorFieldValue")
        ]
        parts.append(description + (f" ({', '.join(codes)})" if codes else ""))
    return ("; ".join(p for p in parts if p) or f"HTTP {response.status_code}")[:500]


def _ref(value: Any) -> str | None:
    if value.__class__ is dict:
        sid = value.get("sourcedId")
        if sid.__class__ is str:  # the common case, without str() and comparisons
            return sid or None
        return str(sid) if sid is not None else None
    if value is None or value == "":
        return None
    return str(value)


def _refs(values: Any) -> list[str]:
    if values in (None, ""):
        return []
    if not isinstance(values, list):
        values = [values]
    return [r for r in (_ref(v) for v in values) if r]


def _common(item: dict[str, Any]) -> dict[str, Any]:
    sid = item.get("sourcedId")
    if sid is None or sid == "":
        raise MalformedRecord("missing sourcedId")
    status = item.get("status")
    if status is None or status == "active":
        resolved = Status.ACTIVE
    else:
        # OneRoster 1.0's "inactive" means deleted, like "tobedeleted".
        lowered = str(status).lower()
        resolved = (
            Status.TO_BE_DELETED if lowered in ("tobedeleted", "inactive") else (Status.ACTIVE)
        )
    return {
        "source_id": sid if sid.__class__ is str else str(sid),
        "raw": item,
        "status": resolved,
        "modified_at": parse_datetime(item.get("dateLastModified")),
    }


def _required(item: dict[str, Any], name: str) -> str:
    value = item.get(name)
    if value in (None, ""):
        raise MalformedRecord(f"missing {name}")
    return str(value)


def user_roles(item: dict[str, Any], version: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(role, org sourcedId, role entry) for 1.1 ``role``/``orgs`` and 1.2 ``roles[]``."""
    roles = item.get("roles")
    if isinstance(roles, list) and (roles or version == "1.2"):
        result = []
        for entry in sorted(roles, key=lambda r: r.get("roleType") != "primary"):
            result.append((str(entry.get("role") or "").lower(), _ref(entry.get("org")), entry))
        if not result and item.get("role"):
            return [(str(item["role"]).lower(), _ref(item.get("primaryOrg")), {})]
        return result
    role = str(item.get("role") or "").lower()
    orgs = _refs(item.get("orgs"))
    return [(role, org, {}) for org in orgs] or [(role, None, {})]


def primary_role(item: dict[str, Any], version: str) -> str:
    roles = user_roles(item, version)
    return roles[0][0] if roles else ""


def map_org(item: dict[str, Any]) -> Iterable[Record]:
    if str(item.get("type") or "school").lower() != "school":
        return
    metadata = item.get("metadata") if isinstance(item.get("metadata"), dict) else {}
    yield SchoolRecord(
        **_common(item),
        name=_required(item, "name"),
        local_id=str(item.get("identifier") or ""),
        level=str((metadata or {}).get("level") or "other"),
    )


def map_session(item: dict[str, Any]) -> Iterable[Record]:
    start, end = parse_date(item.get("startDate")), parse_date(item.get("endDate"))
    if start is None or end is None:
        raise MalformedRecord("academic session without startDate or endDate")
    yield TermRecord(
        **_common(item),
        name=_required(item, "title"),
        kind=SESSION_KINDS.get(str(item.get("type") or "").lower(), "semester"),
        start_date=start,
        end_date=end,
        parent_id=_ref(item.get("parent")),
        school_id=_ref(item.get("org")),
    )


def map_course(item: dict[str, Any]) -> Iterable[Record]:
    yield CourseRecord(
        **_common(item),
        code=str(item.get("courseCode") or item["sourcedId"]),
        title=_required(item, "title"),
        school_id=_ref(item.get("org")),
    )


def map_class(item: dict[str, Any]) -> Iterable[Record]:
    school = _ref(item.get("school"))
    if school is None:
        raise MalformedRecord("class without school")
    periods = item.get("periods") or []
    yield SectionRecord(
        **_common(item),
        name=_required(item, "title"),
        course_id=_ref(item.get("course")),
        school_id=school,
        term_ids=_refs(item.get("terms")),
        period=",".join(periods) if isinstance(periods, list) else str(periods),
        section_number=str(item.get("classCode") or ""),
    )


def _user_ids(item: dict[str, Any]) -> dict[str, Any]:
    return {"first_name": _required(item, "givenName"), "last_name": _required(item, "familyName")}


def _enabled(item: dict[str, Any]) -> bool:
    # "enabledUser" is the string "true"/"false" in OneRoster (a bool on some servers).
    return str(item.get("enabledUser", "true")).lower() != "false"


def map_staff(item: dict[str, Any], version: str) -> Iterable[Record]:
    roles = user_roles(item, version)
    role = roles[0][0] if roles else ""
    if role not in STAFF_ROLES:
        return
    yield StaffRecord(
        **_common(item),
        **_user_ids(item),
        local_id=str(item.get("identifier") or ""),
        email=str(item.get("email") or ""),
        role=role if role in ("teacher", "administrator", "aide") else "other",
        school_ids=[org for _, org, _ in roles if org],
    )


def map_student(item: dict[str, Any], version: str) -> Iterable[Record]:
    roles = user_roles(item, version)
    if not roles or roles[0][0] != "student":
        return
    common = _common(item)
    grades = item.get("grades") or []
    if isinstance(grades, str):
        grades = [g for g in grades.split(",") if g]
    yield StudentRecord(
        **common,
        **_user_ids(item),
        middle_name=str(item.get("middleName") or ""),
        local_id=str(item.get("identifier") or ""),
        state_id=str(item.get("userMasterIdentifier") or ""),
        preferred_first_name=str(item.get("preferredFirstName") or ""),
        grade_level=grade_level_code(grades[0]) if grades else "",
        email=str(item.get("email") or ""),
        school_id=_ref(item.get("primaryOrg")) or roles[0][1],
        active=_enabled(item) and common["status"] == Status.ACTIVE,
    )


def map_enrollment(item: dict[str, Any], version: str) -> Iterable[Record]:
    roles = user_roles(item, version)
    if not roles or roles[0][0] != "student":
        return
    common = _common(item)
    primary_org = _ref(item.get("primaryOrg")) or roles[0][1]
    for role, org, entry in roles:
        if role != "student" or org is None:
            continue
        exit_date = parse_date(entry.get("endDate"))
        yield EnrollmentRecord(
            source_id=f"{common['source_id']}:{org}",
            raw=item,
            status=common["status"],
            modified_at=common["modified_at"],
            student_id=common["source_id"],
            school_id=org,
            entry_date=parse_date(entry.get("beginDate")),
            exit_date=exit_date,
            enrollment_status=EnrollmentStatus.INACTIVE
            if exit_date or common["status"] != Status.ACTIVE
            else EnrollmentStatus.ACTIVE,
            grade_level=grade_level_code((item.get("grades") or [""])[0]),
            primary=org == primary_org,
        )


def _guardian_role(item: dict[str, Any], version: str) -> str | None:
    role = primary_role(item, version)
    return GUARDIAN_ROLES.get(role)


def map_guardian(item: dict[str, Any], version: str) -> Iterable[Record]:
    if _guardian_role(item, version) is None:
        return
    yield GuardianRecord(
        **_common(item),
        **_user_ids(item),
        local_id=str(item.get("identifier") or ""),
        email=str(item.get("email") or ""),
        mobile_phone=str(item.get("sms") or ""),
        home_phone=str(item.get("phone") or ""),
    )


def map_student_guardian(item: dict[str, Any], version: str) -> Iterable[Record]:
    role = _guardian_role(item, version)
    if role is None:
        return
    common = _common(item)
    metadata = item.get("metadata") if isinstance(item.get("metadata"), dict) else {}
    relationship = RELATIONSHIPS.get(
        str((metadata or {}).get("relationship") or role).lower(), role
    )
    for priority, student in enumerate(_refs(item.get("agents")), start=1):
        yield StudentGuardianRecord(
            source_id=f"{student}:{common['source_id']}",
            raw=item,
            status=common["status"],
            modified_at=common["modified_at"],
            student_id=student,
            guardian_id=common["source_id"],
            relationship=relationship,
            priority=priority,
        )


def map_section_enrollment(item: dict[str, Any]) -> Iterable[Record]:
    user = _ref(item.get("user"))
    section = _ref(item.get("class"))
    if user is None or section is None:
        raise MalformedRecord("enrollment without user or class")
    yield SectionEnrollmentRecord(
        **_common(item),
        student_id=user,
        section_id=section,
        entry_date=parse_date(item.get("beginDate")),
        exit_date=parse_date(item.get("endDate")),
        role=str(item.get("role") or "student").lower(),
    )


def map_item(entity: Entity, item: Any, *, version: str) -> Iterable[Record]:
    if not isinstance(item, dict):
        raise MalformedRecord(f"expected an object, got {type(item).__name__}")
    if entity is Entity.SECTION_ENROLLMENT:  # by far the most numerous: test it first
        return map_section_enrollment(item)
    if entity == Entity.SCHOOL:
        return map_org(item)
    if entity == Entity.TERM:
        return map_session(item)
    if entity == Entity.COURSE:
        return map_course(item)
    if entity == Entity.SECTION:
        return map_class(item)
    if entity == Entity.STAFF:
        return map_staff(item, version)
    if entity == Entity.STUDENT:
        return map_student(item, version)
    if entity == Entity.ENROLLMENT:
        return map_enrollment(item, version)
    if entity == Entity.GUARDIAN:
        return map_guardian(item, version)
    if entity == Entity.STUDENT_GUARDIAN:
        return map_student_guardian(item, version)
    if entity == Entity.SECTION_ENROLLMENT:
        return map_section_enrollment(item)
    raise MalformedRecord(f"no mapping for {entity}")
