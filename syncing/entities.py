"""How each canonical record maps onto our domain models.

One :class:`EntitySpec` per entity: the model, the plain fields the SIS owns (compared three-way
against local edits), the references (kept as source ids in staged values, resolved to local ids
through SourceLinks when applied), validation, and how a record that the SIS stopped returning is
deactivated. Values are JSON-ready (dates as ISO strings) so they can be staged, hashed and kept
as a baseline without conversion.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from django.db import models

from attendance.models import (
    Course,
    Enrollment,
    ExitReason,
    Guardian,
    School,
    Section,
    SectionEnrollment,
    Staff,
    Student,
    StudentGuardian,
    Term,
)

# Loose but strict enough: what EmailField accepts in practice, without Django's slow validator.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z0-9-]{2,}$")

Values = dict[str, Any]


@dataclass(frozen=True)
class Ref:
    """A reference from one record to another of the same connection."""

    attname: str  # our column: "school_id"
    entity: str  # the referenced entity
    required: bool = True


@dataclass(frozen=True)
class EntitySpec:
    name: str
    model: type[models.Model]
    rank: int
    # Plain fields the SIS owns: synced, kept in the baseline, compared three-way.
    fields: tuple[str, ...]
    refs: tuple[Ref, ...] = ()
    required: tuple[str, ...] = ()
    # The reference (attname) that tells which school an object belongs to, if any.
    school_ref: str | None = None
    # Values set on a deactivated object; None for dated spans (closed instead).
    deactivate_values: Mapping[str, Any] | None = field(default_factory=lambda: {"active": False})
    is_span: bool = False
    # Extra columns computed from the plain values (e.g. E.164 phones from raw numbers).
    derive: Callable[[Values, str], Values] | None = None
    # Fields a local edit may own and that a connector may write back (capability name).
    writeback_capability: str | None = None

    @property
    def derived_fields(self) -> list[str]:
        """Columns ``derive`` computes (staged with a create's values)."""
        return sorted(self.derive({}, "US")) if self.derive is not None else []

    @property
    def all_attnames(self) -> list[str]:
        return [*self.fields, *(ref.attname for ref in self.refs)]

    def school_of(
        self,
        row: Mapping[str, Any],
        object_id: int | None,
        section_schools: Mapping[int, int] | None = None,
    ) -> int | None:
        """The school a link records for ``row``, our object ``object_id`` (for per-school
        safety thresholds): a section enrollment's is its section's, looked up in
        ``section_schools``."""
        if self.name == "section_enrollment":
            return (section_schools or {}).get(row["section_id"])
        if self.school_ref == "id":
            return object_id
        if self.school_ref:
            return row.get(self.school_ref)
        return None


def section_schools(section_ids: set[int]) -> dict[int, int]:
    """School of each section in ``section_ids`` (a section enrollment's link records its
    section's school: see :meth:`EntitySpec.school_of`); one parameter whatever the count."""
    return dict(Section.objects.filter(pk__any=section_ids).values_list("id", "school_id"))


def _date(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return dt.date.fromisoformat(str(value)[:10]).isoformat()


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


@functools.lru_cache(maxsize=65536)
def _phone(raw: str, region: str) -> tuple[bool, str]:
    """``(possible, e164)`` from one parse (validation and the stored E.164 value both need
    it, and parsing is the costly part). ``possible``: shaped like a phone number at all
    (digits, length for the region). A well-formed number that is not assigned (an unknown
    area code) is kept with an empty E.164 value, as the domain does; only garbage is
    quarantined. ``e164`` follows ``attendance.phones.phone_to_e164``."""
    if not raw or not raw.strip():
        return False, ""
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return False, ""
    possible = bool(phonenumbers.is_possible_number(parsed))
    # Valid for the district's own region first: the same answer as is_valid_number for the
    # usual local number, without its search for the number's region (a +1 number is tried
    # against two dozen NANP regions; half the cost of staging a guardian).
    if not (
        phonenumbers.is_valid_number_for_region(parsed, region)
        or phonenumbers.is_valid_number(parsed)
    ):
        return possible, ""
    return possible, phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _guardian_phones(values: Values, region: str) -> Values:
    return {
        name: _phone(values.get(f"{name}_raw", ""), region)[1]
        for name in ("mobile_phone", "home_phone", "work_phone")
    }


_RELATIONSHIPS = {
    "mother",
    "father",
    "parent",
    "stepmother",
    "stepfather",
    "grandparent",
    "guardian",
    "foster_parent",
    "relative",
    "other",
}
_STAFF_ROLES = {"teacher", "administrator", "aide", "other"}
_LEVELS = {"elementary", "middle", "high", "other"}
_TERM_KINDS = {"school_year", "semester", "trimester", "quarter", "grading_period"}
_EXIT_REASON_BY_STATUS = {
    "transferred_out": ExitReason.TRANSFERRED,
    "graduated": ExitReason.GRADUATED,
    "historical": ExitReason.PROMOTED,
}


def plain_value(value: Any) -> Any:
    """A model field's value as staged values and baselines hold it (dates as ISO strings)."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def record_values(record: Any) -> Values:
    """The canonical record as our field values (references as source ids)."""
    return _MAPPERS[str(record.entity)](record)


def _school(r: Any) -> Values:
    return {
        "name": _text(r.name),
        "local_id": _text(r.local_id),
        "state_id": _text(r.state_id),
        "level": r.level if r.level in _LEVELS else "other",
        "active": True,
    }


def _term(r: Any) -> Values:
    return {
        "name": _text(r.name),
        "kind": r.kind if r.kind in _TERM_KINDS else "semester",
        "start_date": _date(r.start_date),
        "end_date": _date(r.end_date),
        "parent_id": r.parent_id or None,
        "school_id": r.school_id or None,
    }


def _course(r: Any) -> Values:
    return {
        "code": _text(r.code),
        "title": _text(r.title),
        "school_id": r.school_id or None,
        "active": True,
    }


def _section(r: Any) -> Values:
    return {
        "section_number": _text(r.section_number or r.name),
        "periods": [r.period] if r.period else [],
        "school_id": r.school_id or None,
        "course_id": r.course_id or None,
        "term_id": r.term_ids[0] if r.term_ids else None,
        "teacher_id": r.teacher_ids[0] if r.teacher_ids else None,
        "active": True,
    }


def _staff(r: Any) -> Values:
    return {
        "local_id": _text(r.local_id),
        "first_name": _text(r.first_name),
        "last_name": _text(r.last_name),
        "email": _text(r.email).lower(),
        "role": r.role if r.role in _STAFF_ROLES else "other",
        "active": True,
    }


def _student(r: Any) -> Values:
    return {
        "local_id": _text(r.local_id),
        "state_id": _text(r.state_id),
        "legal_first_name": _text(r.first_name),
        "legal_middle_name": _text(r.middle_name),
        "legal_last_name": _text(r.last_name),
        "preferred_first_name": _text(r.preferred_first_name),
        "birth_date": _date(r.birth_date),
        "grade_level": _text(r.grade_level),
        "gender": _text(r.gender),
        "school_id": r.school_id or None,
        "active": bool(r.active),
    }


def _guardian(r: Any) -> Values:
    return {
        "local_id": _text(r.local_id),
        "first_name": _text(r.first_name),
        "last_name": _text(r.last_name),
        "email": _text(r.email).lower(),
        "mobile_phone_raw": _text(r.mobile_phone),
        "home_phone_raw": _text(r.home_phone),
        "work_phone_raw": _text(r.work_phone),
        "active": True,
    }


def _student_guardian(r: Any) -> Values:
    return {
        "student_id": r.student_id or None,
        "guardian_id": r.guardian_id or None,
        "relationship": r.relationship if r.relationship in _RELATIONSHIPS else "other",
        "has_custody": bool(r.custody),
        "contact_allowed": bool(r.contact_allowed),
        "lives_with": bool(r.lives_with),
        "emergency_contact": bool(r.emergency_contact),
        "priority": max(1, int(r.priority or 1)),
        "active": True,
    }


def _span_exit(entry: str | None, exit_date: str | None) -> str | None:
    """A span the SIS closes before it opened (a no-show, a withdrawal back-dated past the
    entry) is closed on its entry date, as the enrollment services do."""
    if entry and exit_date and exit_date < entry:
        return entry
    return exit_date


def _enrollment(r: Any) -> Values:
    exit_date = _span_exit(_date(r.entry_date), _date(r.exit_date))
    status = str(getattr(r, "enrollment_status", "active"))
    return {
        "student_id": r.student_id or None,
        "school_id": r.school_id or None,
        "entry_date": _date(r.entry_date),
        "exit_date": exit_date,
        "exit_reason": (
            _EXIT_REASON_BY_STATUS.get(status, ExitReason.WITHDRAWN) if exit_date else ""
        ),
        "grade_level": _text(r.grade_level),
        "is_primary": bool(r.primary),
    }


def _section_enrollment(r: Any) -> Values:
    role = r.role if r.role in ("student", "teacher", "aide") else "student"
    person = r.student_id or None
    exit_date = _span_exit(_date(r.entry_date), _date(r.exit_date))
    return {
        "section_id": r.section_id or None,
        "role": role,
        "student_id": person if role == "student" else None,
        "staff_id": person if role != "student" else None,
        "entry_date": _date(r.entry_date),
        "exit_date": exit_date,
        # The SIS still reports the class: its end date is the class's last day (for
        # PowerSchool's CC rows, the term's), not a drop; a dropped class is not reported.
        "exit_reason": ExitReason.ENDED if exit_date else "",
    }


_MAPPERS: dict[str, Callable[[Any], Values]] = {
    "school": _school,
    "term": _term,
    "course": _course,
    "section": _section,
    "staff": _staff,
    "student": _student,
    "guardian": _guardian,
    "student_guardian": _student_guardian,
    "enrollment": _enrollment,
    "section_enrollment": _section_enrollment,
}

SPECS: dict[str, EntitySpec] = {
    spec.name: spec
    for spec in (
        EntitySpec(
            "school",
            School,
            0,
            fields=("name", "local_id", "state_id", "level", "active"),
            required=("name",),
            school_ref="id",
        ),
        EntitySpec(
            "term",
            Term,
            1,
            fields=("name", "kind", "start_date", "end_date"),
            refs=(Ref("parent_id", "term", False), Ref("school_id", "school", False)),
            required=("name", "start_date", "end_date"),
            school_ref="school_id",
            deactivate_values={},
        ),
        EntitySpec(
            "course",
            Course,
            2,
            fields=("code", "title", "active"),
            refs=(Ref("school_id", "school", False),),
            required=("code", "title"),
            school_ref="school_id",
        ),
        EntitySpec(
            "staff",
            Staff,
            3,
            fields=("local_id", "first_name", "last_name", "email", "role", "active"),
            required=("first_name", "last_name"),
        ),
        EntitySpec(
            "section",
            Section,
            4,
            fields=("section_number", "periods", "active"),
            refs=(
                Ref("school_id", "school"),
                Ref("course_id", "course"),
                Ref("term_id", "term"),
                Ref("teacher_id", "staff", False),
            ),
            required=("section_number",),
            school_ref="school_id",
        ),
        EntitySpec(
            "student",
            Student,
            5,
            fields=(
                "local_id",
                "state_id",
                "legal_first_name",
                "legal_middle_name",
                "legal_last_name",
                "preferred_first_name",
                "birth_date",
                "grade_level",
                "gender",
                "active",
            ),
            refs=(Ref("school_id", "school", False),),
            required=("local_id", "legal_first_name", "legal_last_name"),
            school_ref="school_id",
            writeback_capability="write_demographics",
        ),
        EntitySpec(
            "guardian",
            Guardian,
            6,
            fields=(
                "local_id",
                "first_name",
                "last_name",
                "email",
                "mobile_phone_raw",
                "home_phone_raw",
                "work_phone_raw",
                "active",
            ),
            required=("first_name", "last_name"),
            derive=_guardian_phones,
        ),
        EntitySpec(
            "student_guardian",
            StudentGuardian,
            7,
            fields=(
                "relationship",
                "has_custody",
                "contact_allowed",
                "lives_with",
                "emergency_contact",
                "priority",
                "active",
            ),
            refs=(Ref("student_id", "student"), Ref("guardian_id", "guardian")),
        ),
        EntitySpec(
            "enrollment",
            Enrollment,
            8,
            fields=("entry_date", "exit_date", "exit_reason", "grade_level", "is_primary"),
            refs=(Ref("student_id", "student"), Ref("school_id", "school")),
            required=("entry_date",),
            school_ref="school_id",
            deactivate_values=None,
            is_span=True,
        ),
        EntitySpec(
            "section_enrollment",
            SectionEnrollment,
            9,
            fields=("role", "entry_date", "exit_date", "exit_reason"),
            refs=(
                Ref("section_id", "section"),
                Ref("student_id", "student", False),
                Ref("staff_id", "staff", False),
            ),
            required=("entry_date",),
            deactivate_values=None,
            is_span=True,
        ),
    )
}

ORDER: list[str] = sorted(SPECS, key=lambda name: SPECS[name].rank)


class Invalid(Exception):
    """A record that must be quarantined: ``code`` is the reason code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _max_lengths(model: type[models.Model]) -> dict[str, int]:
    return {
        f.attname: f.max_length
        for f in model._meta.concrete_fields
        if isinstance(f, models.CharField) and f.max_length
    }


_MAX_LENGTHS = {name: _max_lengths(spec.model) for name, spec in SPECS.items()}


def warnings(spec: EntitySpec, values: Values) -> list[Invalid]:
    """Problems that do not block a record (it is applied without the bad value) but are
    reported in the quarantine for someone to fix at the SIS."""
    email = values.get("email")
    if email and not _EMAIL.match(email):
        return [Invalid("invalid_email", "email is not a valid address; applied without it.")]
    return []


def validate(spec: EntitySpec, values: Values, region: str) -> None:
    """Raise :class:`Invalid` for a value we cannot store or trust (references are checked
    separately, against the crosswalk). Non-blocking problems are cleared from ``values``;
    call :func:`warnings` first to report them."""
    for name in spec.required:
        if values.get(name) in (None, ""):
            raise Invalid("missing_field", f"Required field {name} is empty.")
    for name, limit in _MAX_LENGTHS[spec.name].items():
        value = values.get(name)
        if isinstance(value, str) and len(value) > limit:
            raise Invalid("field_too_long", f"{name} is longer than {limit} characters.")
    for name in ("start_date", "end_date", "entry_date", "exit_date", "birth_date"):
        value = values.get(name)
        if value is not None and name in values:
            try:
                parsed = dt.date.fromisoformat(value)
            except (TypeError, ValueError):
                raise Invalid("bad_date", f"{name} is not a date.") from None
            if not 1900 <= parsed.year <= 2100:
                raise Invalid("bad_date", f"{name} is out of range.")
    start, end = values.get("start_date"), values.get("end_date")
    if start and end and end < start:
        raise Invalid("bad_date", "end_date is before start_date.")
    email = values.get("email")
    if email and not _EMAIL.match(email):
        # Not worth losing a person over: the record is applied without the address and the
        # problem is reported (see warnings()).
        values["email"] = ""
    if spec.name == "guardian":
        for name in ("mobile_phone", "home_phone", "work_phone"):
            raw = values.get(f"{name}_raw")
            if raw and not _phone(raw, region)[0]:
                raise Invalid("invalid_phone", f"{name} is not a valid phone number.")
    if spec.name == "section_enrollment":
        person = values.get("student_id") or values.get("staff_id")
        if not person:
            raise Invalid("missing_field", "The section enrollment names no person.")
