"""Writes to the attendance domain. Views, admin actions, tasks and the sync engine call these;
nothing else saves these models directly.

Student data is never deleted here: withdrawals close dated spans and deactivate records, so the
history of a student stays whole.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from attendance.models import (
    AttendanceCode,
    AttendanceRecord,
    AttendanceSource,
    AttendanceStatus,
    District,
    Enrollment,
    ExitReason,
    Guardian,
    School,
    Section,
    SectionEnrollment,
    Student,
    StudentGuardian,
)
from attendance.phones import phone_to_e164
from attendance.signals import AttendanceChange, attendance_changed
from core.errors import ApplicationError, ConflictError

_STUDENT_FIELDS = {
    "local_id",
    "state_id",
    "legal_first_name",
    "legal_middle_name",
    "legal_last_name",
    "preferred_first_name",
    "preferred_last_name",
    "birth_date",
    "grade_level",
    "gender",
    "hispanic_or_latino",
    "races",
    "primary_language",
    "active",
}
_GUARDIAN_FIELDS = {
    "local_id",
    "first_name",
    "last_name",
    "email",
    "mobile_phone_raw",
    "home_phone_raw",
    "work_phone_raw",
    "preferred_language",
    "active",
}
_PHONE_FIELDS = ("mobile_phone", "home_phone", "work_phone")
_LINK_FIELDS = {
    "relationship",
    "has_custody",
    "contact_allowed",
    "lives_with",
    "emergency_contact",
    "is_primary",
    "priority",
    "active",
}


def _check_fields(given: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ApplicationError(
            f"Unknown {what} field(s): {', '.join(unknown)}.",
            code="unknown_field",
            details={"fields": unknown},
        )


def _apply_changes(instance: Any, changes: dict[str, Any]) -> list[str]:
    """Set the fields that really change and return their names (empty: nothing to save, so
    no history row is written for a no-op update)."""
    changed = [name for name, value in changes.items() if getattr(instance, name) != value]
    for name in changed:
        setattr(instance, name, changes[name])
    return changed


def _save_validated(instance: Any, changed: list[str] | None = None) -> None:
    instance.full_clean(validate_unique=False, validate_constraints=False)
    if changed is None:
        instance.save()
    else:
        instance.save(update_fields=[*changed, "updated_at"])


# --- Students ----------------------------------------------------------------------------------


def student_create(*, district: District, local_id: str, **fields: Any) -> Student:
    _check_fields(fields, _STUDENT_FIELDS - {"local_id"}, "student")
    if Student.objects.filter(district=district, local_id=local_id).exists():
        raise ConflictError(
            "A student with this local id already exists in the district.",
            code="duplicate_student",
        )
    student = Student(district=district, local_id=local_id, **fields)
    _save_validated(student)
    return student


def student_update(*, student: Student, **fields: Any) -> Student:
    _check_fields(fields, _STUDENT_FIELDS, "student")
    changed = _apply_changes(student, fields)
    if changed:
        _save_validated(student, changed)
    return student


# --- Guardians ---------------------------------------------------------------------------------


def _normalise_phones(guardian: Guardian, region: str) -> dict[str, str]:
    return {
        field: phone_to_e164(getattr(guardian, f"{field}_raw"), region=region)
        for field in _PHONE_FIELDS
    }


def guardian_create(*, district: District, **fields: Any) -> Guardian:
    _check_fields(fields, _GUARDIAN_FIELDS, "guardian")
    guardian = Guardian(district=district, **fields)
    for name, value in _normalise_phones(guardian, district.phone_region).items():
        setattr(guardian, name, value)
    _save_validated(guardian)
    return guardian


def guardian_update(*, guardian: Guardian, **fields: Any) -> Guardian:
    _check_fields(fields, _GUARDIAN_FIELDS, "guardian")
    changed = _apply_changes(guardian, fields)
    if any(name.endswith("_phone_raw") for name in changed):
        changed += _apply_changes(
            guardian, _normalise_phones(guardian, guardian.district.phone_region)
        )
    if changed:
        _save_validated(guardian, changed)
    return guardian


def guardian_link_check(*, student: Student, guardian: Guardian) -> None:
    """What :func:`guardian_link` refuses before it writes (for a form to say so first)."""
    if student.district_id != guardian.district_id:
        raise ApplicationError(
            "A guardian can only be linked to students of the same district.",
            code="cross_district_link",
        )


def guardian_link(*, student: Student, guardian: Guardian, **fields: Any) -> StudentGuardian:
    """Create or update the relationship between a guardian and a student. Making a guardian
    the primary one demotes the student's current primary guardian."""
    _check_fields(fields, _LINK_FIELDS, "relationship")
    guardian_link_check(student=student, guardian=guardian)
    with transaction.atomic():
        link = (
            StudentGuardian.objects.select_for_update()
            .filter(student=student, guardian=guardian)
            .first()
        )
        if fields.get("is_primary"):
            # Only one primary guardian per student: demote the current one first.
            for other in StudentGuardian.objects.filter(
                student=student, is_primary=True, active=True
            ).exclude(guardian=guardian):
                other.is_primary = False
                other.save(update_fields=["is_primary", "updated_at"])
        if link is None:
            link = StudentGuardian(student=student, guardian=guardian, **fields)
            _save_validated(link)
        else:
            changed = _apply_changes(link, fields)
            if changed:
                _save_validated(link, changed)
    return link


# --- Enrollment spans --------------------------------------------------------------------------


def _open_primary_enrollment(student: Student) -> Enrollment | None:
    return (
        Enrollment.objects.select_for_update()
        .filter(student=student, exit_date__isnull=True, is_primary=True)
        .first()
    )


def _set_current_school(student: Student, school: School | None, *, active: bool) -> None:
    changed = _apply_changes(student, {"school": school, "active": active})
    if changed:
        student.save(update_fields=[*changed, "updated_at"])


_TRANSFER_INSTEAD = "The student is already enrolled at another school; transfer instead."


def _check_enroll_district(student: Student, school: School) -> None:
    if school.district_id != student.district_id:
        raise ApplicationError(
            "A student can only enroll in a school of their district.", code="cross_district"
        )


def student_enroll_check(*, student: Student, school: School, is_primary: bool = True) -> None:
    """What :func:`student_enroll` refuses, for a form to say so before saving: a school of
    another district, or a primary span while the student has one open at another school.
    An open span at the same school is refused too (the form would add nothing)."""
    _check_enroll_district(student, school)
    open_spans = Enrollment.objects.filter(student=student, exit_date__isnull=True)
    if open_spans.filter(school=school).exists():
        raise ConflictError("The student is already enrolled at this school.", code="enrolled")
    if is_primary and open_spans.filter(is_primary=True).exists():
        raise ConflictError(_TRANSFER_INSTEAD, code="already_enrolled")


def student_enroll(
    *,
    student: Student,
    school: School,
    entry_date: dt.date,
    grade_level: str = "",
    is_primary: bool = True,
) -> Enrollment:
    """Open an enrollment span. Enrolling again where the student already has an open span is a
    no-op that returns that span; enrolling as primary while enrolled elsewhere is refused (use
    :func:`student_transfer`)."""
    _check_enroll_district(student, school)
    with transaction.atomic():
        existing = (
            Enrollment.objects.select_for_update()
            .filter(student=student, school=school, exit_date__isnull=True)
            .first()
        )
        if existing is not None:
            return existing
        if is_primary:
            current = _open_primary_enrollment(student)
            if current is not None:
                raise ConflictError(_TRANSFER_INSTEAD, code="already_enrolled")
        enrollment = Enrollment(
            student=student,
            school=school,
            entry_date=entry_date,
            grade_level=grade_level or student.grade_level,
            is_primary=is_primary,
        )
        _save_validated(enrollment)
        if is_primary:
            _set_current_school(student, school, active=True)
    return enrollment


def _close_section_enrollments(student: Student, school: School, exit_date: dt.date) -> None:
    for span in SectionEnrollment.objects.select_for_update().filter(
        student=student, section__school=school, exit_date__isnull=True
    ):
        span.exit_date = max(exit_date, span.entry_date)
        span.exit_reason = ExitReason.DROPPED
        span.save(update_fields=["exit_date", "exit_reason", "updated_at"])


def _close_enrollment(enrollment: Enrollment, exit_date: dt.date, reason: str) -> None:
    enrollment.exit_date = max(exit_date, enrollment.entry_date)
    enrollment.exit_reason = reason
    enrollment.save(update_fields=["exit_date", "exit_reason", "updated_at"])
    _close_section_enrollments(enrollment.student, enrollment.school, enrollment.exit_date)


def student_withdraw(
    *, student: Student, exit_date: dt.date, reason: str = ExitReason.WITHDRAWN
) -> Enrollment:
    """Close the student's open primary enrollment (and its section spans) and deactivate the
    student. Nothing is deleted; re-enrolling later opens a new span."""
    with transaction.atomic():
        current = _open_primary_enrollment(student)
        if current is None:
            raise ApplicationError("The student has no open enrollment.", code="not_enrolled")
        return enrollment_close(enrollment=current, exit_date=exit_date, reason=reason)


def enrollment_close_check(*, enrollment: Enrollment, exit_date: dt.date) -> None:
    """What :func:`enrollment_close` refuses, for a form to say so before saving."""
    if enrollment.exit_date is not None:
        raise ApplicationError(
            "This enrollment is closed already; a return opens a new one.", code="closed"
        )
    if exit_date < enrollment.entry_date:
        raise ApplicationError("The exit date is before the entry date.", code="exit_before_entry")


def enrollment_close(
    *, enrollment: Enrollment, exit_date: dt.date, reason: str = ExitReason.WITHDRAWN
) -> Enrollment:
    """Close one open enrollment span on ``exit_date`` and the student's section spans at its
    school. Closing the primary span withdraws the student (no current school, inactive: no
    attendance expected, no messages), as :func:`student_withdraw` does."""
    with transaction.atomic():
        spans = Enrollment.objects.select_for_update().select_related("student", "school")
        enrollment = spans.get(pk=enrollment.pk)
        enrollment_close_check(enrollment=enrollment, exit_date=exit_date)
        _close_enrollment(enrollment, exit_date, reason)
        if enrollment.is_primary:
            _set_current_school(enrollment.student, None, active=False)
    return enrollment


def student_transfer(
    *, student: Student, to_school: School, transfer_date: dt.date, grade_level: str = ""
) -> Enrollment:
    """Close the current span the day before ``transfer_date`` and open one at ``to_school``."""
    with transaction.atomic():
        current = _open_primary_enrollment(student)
        if current is None:
            raise ApplicationError("The student has no open enrollment.", code="not_enrolled")
        if current.school_id == to_school.pk:
            return current
        _close_enrollment(current, transfer_date - dt.timedelta(days=1), ExitReason.TRANSFERRED)
        return student_enroll(
            student=student, school=to_school, entry_date=transfer_date, grade_level=grade_level
        )


def section_enroll_student(
    *, student: Student, section: Section, entry_date: dt.date
) -> SectionEnrollment:
    with transaction.atomic():
        existing = (
            SectionEnrollment.objects.select_for_update()
            .filter(student=student, section=section, exit_date__isnull=True)
            .first()
        )
        if existing is not None:
            return existing
        span = SectionEnrollment(section=section, student=student, entry_date=entry_date)
        _save_validated(span)
    return span


# --- Attendance --------------------------------------------------------------------------------


def _enrollment_on(student: Student, on: dt.date) -> Enrollment | None:
    return (
        Enrollment.objects.filter(student=student, entry_date__lte=on)
        .exclude(exit_date__lt=on)
        .order_by("-is_primary", "-entry_date")
        .select_related("school")
        .first()
    )


def attendance_record_check(
    *,
    student: Student,
    date: dt.date,
    status: str | None = None,
    section: Section | None = None,
    code: AttendanceCode | None = None,
) -> tuple[str, School]:
    """What :func:`attendance_record` checks before it writes, for a form to say so before
    saving: the status (given, or the code's), and the school the record belongs to (the
    section's, else the school the student was enrolled at on that date). Raises
    ``ApplicationError`` for an unknown status, code or section or a date the student was not
    enrolled."""
    if code is not None:
        if code.district_id != student.district_id:
            raise ApplicationError("Unknown attendance code.", code="unknown_code")
        status = status or code.status
    if status not in AttendanceStatus.values:
        raise ApplicationError(
            "Unknown attendance status.",
            code="invalid_status",
            details={"allowed": list(AttendanceStatus.values)},
        )
    enrollment = _enrollment_on(student, date)
    if enrollment is None:
        raise ApplicationError(
            "The student was not enrolled on that date.", code="not_enrolled_on_date"
        )
    if section is None:
        return status, enrollment.school
    if section.school.district_id != student.district_id:
        raise ApplicationError("Unknown section.", code="unknown_section")
    return status, section.school


def attendance_record(
    *,
    student: Student,
    date: dt.date,
    status: str | None = None,
    source: str = AttendanceSource.TEACHER,
    section: Section | None = None,
    period: str = "",
    code: AttendanceCode | None = None,
    recorded_by: User | None = None,
    comment: str = "",
) -> tuple[AttendanceRecord, bool]:
    """Record attendance for a student on a date (daily, or for one section), idempotently.

    One record exists per student, date and section: recording again updates it, and recording
    the same values again writes nothing. Returns the record and whether anything was written.
    The status may be given directly or through one of the district's SIS codes.
    """
    status, school = attendance_record_check(
        student=student, date=date, status=status, section=section, code=code
    )
    values: dict[str, Any] = {
        "school": school,
        "status": status,
        "code": code,
        "source": source,
        "period": period,
        "comment": comment,
    }
    for attempt in range(2):
        try:
            with transaction.atomic():
                record = (
                    AttendanceRecord.objects.select_for_update()
                    .filter(student=student, date=date, section=section)
                    .first()
                )
                if record is None:
                    record = AttendanceRecord(
                        student=student,
                        date=date,
                        section=section,
                        recorded_by=recorded_by,
                        **values,
                    )
                    _save_validated(record)
                    _announce_attendance_change(record, previous_status=None)
                    return record, True
                previous_status = record.status
                changed = _apply_changes(record, values)
                if not changed:
                    return record, False
                if recorded_by is not None:
                    record.recorded_by = recorded_by
                    changed.append("recorded_by")
                _save_validated(record, changed)
                _announce_attendance_change(record, previous_status=previous_status)
                return record, True
        except IntegrityError:
            # Two writers created the same record at once; the loser updates the winner's row.
            if attempt == 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _announce_attendance_change(record: AttendanceRecord, *, previous_status: str | None) -> None:
    change = AttendanceChange(record.pk, previous_status, record.status)
    transaction.on_commit(
        lambda: attendance_changed.send(sender=AttendanceRecord, changes=[change])
    )
