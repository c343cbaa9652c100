"""Canonical records: the one vocabulary every connector translates its SIS into.

Each record carries the SIS's own id (``source_id``), the ids of the records it refers to (also
source ids, of the same connection), a ``status`` (``active`` or ``tobedeleted``), the SIS's last
modification time when it gives one, and the ``raw`` payload it was mapped from, untouched, so the
sync engine can keep it and re-map it later. Vendor codes are translated at the edge (here); an
unknown code maps to ``unknown`` rather than failing.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar


class Entity(StrEnum):
    SCHOOL = "school"
    TERM = "term"
    COURSE = "course"
    SECTION = "section"
    STAFF = "staff"
    STUDENT = "student"
    GUARDIAN = "guardian"
    STUDENT_GUARDIAN = "student_guardian"
    ENROLLMENT = "enrollment"
    SECTION_ENROLLMENT = "section_enrollment"
    ATTENDANCE = "attendance"


class Status(StrEnum):
    ACTIVE = "active"
    TO_BE_DELETED = "tobedeleted"


class EnrollmentStatus(StrEnum):
    ACTIVE = "active"
    PRE_REGISTERED = "pre_registered"
    TRANSFERRED_OUT = "transferred_out"
    GRADUATED = "graduated"
    HISTORICAL = "historical"
    INACTIVE = "inactive"
    UNKNOWN = "unknown"


@dataclass(slots=True, kw_only=True)
class Record:
    entity: ClassVar[Entity]
    source_id: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    status: Status = Status.ACTIVE
    modified_at: dt.datetime | None = None


@dataclass(slots=True, kw_only=True)
class SchoolRecord(Record):
    entity = Entity.SCHOOL
    name: str
    local_id: str = ""
    state_id: str = ""
    level: str = "other"  # elementary | middle | high | other


@dataclass(slots=True, kw_only=True)
class TermRecord(Record):
    entity = Entity.TERM
    name: str
    kind: str  # school_year | semester | trimester | quarter | grading_period
    start_date: dt.date
    end_date: dt.date
    parent_id: str | None = None
    school_id: str | None = None


@dataclass(slots=True, kw_only=True)
class CourseRecord(Record):
    entity = Entity.COURSE
    code: str
    title: str
    school_id: str | None = None


@dataclass(slots=True, kw_only=True)
class SectionRecord(Record):
    entity = Entity.SECTION
    name: str
    course_id: str | None
    school_id: str
    term_ids: list[str] = field(default_factory=list)
    teacher_ids: list[str] = field(default_factory=list)
    period: str = ""
    section_number: str = ""


@dataclass(slots=True, kw_only=True)
class StaffRecord(Record):
    entity = Entity.STAFF
    first_name: str
    last_name: str
    local_id: str = ""
    email: str = ""
    role: str = "teacher"  # teacher | administrator | aide | other
    school_ids: list[str] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class StudentRecord(Record):
    entity = Entity.STUDENT
    first_name: str
    last_name: str
    local_id: str = ""
    state_id: str = ""
    middle_name: str = ""
    preferred_first_name: str = ""
    birth_date: dt.date | None = None
    grade_level: str = ""
    gender: str = ""
    email: str = ""
    school_id: str | None = None  # the school of the current primary enrollment
    active: bool = True


@dataclass(slots=True, kw_only=True)
class GuardianRecord(Record):
    entity = Entity.GUARDIAN
    first_name: str
    last_name: str
    local_id: str = ""
    email: str = ""
    mobile_phone: str = ""
    home_phone: str = ""
    work_phone: str = ""


@dataclass(slots=True, kw_only=True)
class StudentGuardianRecord(Record):
    entity = Entity.STUDENT_GUARDIAN
    student_id: str
    guardian_id: str
    relationship: str = "guardian"  # mother | father | guardian | grandparent | relative | other
    custody: bool = True
    contact_allowed: bool = True
    lives_with: bool = False
    emergency_contact: bool = False
    priority: int = 1


@dataclass(slots=True, kw_only=True)
class EnrollmentRecord(Record):
    entity = Entity.ENROLLMENT
    student_id: str
    school_id: str
    entry_date: dt.date | None = None
    exit_date: dt.date | None = None
    enrollment_status: EnrollmentStatus = EnrollmentStatus.ACTIVE
    grade_level: str = ""
    primary: bool = True


@dataclass(slots=True, kw_only=True)
class SectionEnrollmentRecord(Record):
    entity = Entity.SECTION_ENROLLMENT
    student_id: str
    section_id: str
    entry_date: dt.date | None = None
    exit_date: dt.date | None = None
    role: str = "student"


@dataclass(slots=True, kw_only=True)
class AttendanceRecord(Record):
    entity = Entity.ATTENDANCE
    student_id: str
    date: dt.date
    code: str  # the SIS's own code; the sync engine maps it with the district's code table
    section_id: str | None = None
    period: str = ""


RECORD_TYPES: dict[Entity, type[Record]] = {
    cls.entity: cls
    for cls in (
        SchoolRecord,
        TermRecord,
        CourseRecord,
        SectionRecord,
        StaffRecord,
        StudentRecord,
        GuardianRecord,
        StudentGuardianRecord,
        EnrollmentRecord,
        SectionEnrollmentRecord,
        AttendanceRecord,
    )
}


@dataclass(slots=True)
class Quarantined:
    """An item of a page that could not be mapped: kept with the reason, never dropped."""

    entity: Entity
    reason: str
    raw: Any
    source_id: str | None = None


@dataclass(slots=True)
class Page:
    """One page of one entity, as the connector mapped it.

    ``records`` are canonical records of ``entity``; ``quarantined`` the items that failed to
    map. ``number`` counts from 0 within one ``fetch``; ``total`` is what the SIS reported for
    the whole listing when it did (``/count``, ``X-Total-Count``), else ``None``. ``delta`` says
    whether the listing is complete (False) or holds changes only (True).
    """

    entity: Entity
    records: list[Record]
    quarantined: list[Quarantined] = field(default_factory=list)
    number: int = 0
    total: int | None = None
    #: True when the page holds changes only (a ``since`` fetch, a CSV delta file): records
    #: missing from it are unchanged, not gone
    delta: bool = False


@dataclass(slots=True, kw_only=True)
class GradeWrite:
    """One participation grade to write to a SIS gradebook, in canonical terms.

    ``line_item_id`` and ``result_id`` are *our* ids for the gradebook column (one per section
    and grading period) and the cell (one per student and column): SIS APIs that let the client
    name what it writes (OneRoster PUT) make a repeated write an idempotent replace.
    """

    line_item_id: str
    result_id: str
    section_id: str
    student_id: str
    term_id: str = ""
    school_id: str = ""
    title: str = "Participation"
    score: float
    score_max: float = 100.0
    date: dt.date


# CEDS / OneRoster grade codes (attendance.models.GradeLevel) that SISs already send as-is.
_GRADE_CODES = frozenset(
    {"IT", "PR", "PK", "TK", "KG", "PS", "UG", "Other"} | {f"{n:02d}" for n in range(1, 14)}
)
_KINDERGARTEN = frozenset({"0", "00", "K", "KG", "KF", "KH"})


def grade_level_code(value: Any) -> str:
    """The CEDS grade code for what a SIS sends: PowerSchool's numbers (``4``, ``0`` for
    kindergarten, negatives for pre-K), OneRoster vendors' unpadded ``"4"`` or the proper
    ``"04"``. Blank stays blank; a value outside the vocabulary maps to ``Other`` so the
    record still syncs and the admin can see it, instead of storing a code no form accepts."""
    text = str(value).strip() if value is not None else ""
    if not text:
        return ""
    upper = text.upper()
    if upper in _KINDERGARTEN:
        return "KG"
    if upper == "OTHER":
        return "Other"
    if upper in _GRADE_CODES:
        return upper
    if upper.lstrip("-").isdigit():
        number = int(upper)
        if number < 0:
            return "PK"
        if 1 <= number <= 13:
            return f"{number:02d}"
    return "Other"


def parse_date(value: Any) -> dt.date | None:
    """ISO dates and date-times to a date; empty to ``None``; anything else raises ValueError."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    return _date_from_text(str(value)[:10])


def parse_datetime(value: Any) -> dt.datetime | None:
    """ISO-8601 date-times (``Z`` or an offset; naive ones are taken as UTC)."""
    if value is None or value == "":
        return None
    return _datetime_from_text(str(value))


# Rosters repeat the same few dates and timestamps thousands of times: parse each once.
@functools.lru_cache(maxsize=8192)
def _date_from_text(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


@functools.lru_cache(maxsize=8192)
def _datetime_from_text(text: str) -> dt.datetime:
    return as_utc(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))


def as_utc(moment: dt.datetime) -> dt.datetime:
    """``moment`` with a time zone: a naive one is UTC, as every SIS time is read (a plugin's
    records may carry naive ones)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
