"""Events that notify guardians: attendance marks and chronic absence thresholds."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db.models import Count, Q
from django.utils import formats, timezone, translation

from attendance.models import (
    AttendanceRecord,
    AttendanceStatus,
    Student,
    StudentGuardian,
    Term,
    TermKind,
)
from notifications.models import Category, Notification
from notifications.services.planning import (
    EventSpec,
    Recipient,
    notifications_cancel,
    notifications_plan,
    notifications_plan_many,
    recipients_for_student,
)

# Unexcused marks that notify. Excused absences and tardies never do.
NOTIFYING = (AttendanceStatus.ABSENT, AttendanceStatus.TARDY)
STATUS_TEXT = {
    "en": {AttendanceStatus.ABSENT: "absent", AttendanceStatus.TARDY: "tardy"},
    "es": {AttendanceStatus.ABSENT: "ausente", AttendanceStatus.TARDY: "tarde"},
}
# How each language writes "Nov 25" (Django date format syntax, month names from its locale).
DATE_FORMATS = {"en": "M j", "es": r"j \d\e F"}
AND_WORDS = {"en": " and ", "es": " y "}
MIN_DAYS_FOR_PERCENT = 10


def attendance_event_key(student_id: int, date: dt.date) -> str:
    return f"attendance:{student_id}:{date.isoformat()}"


def attendance_change_handle(
    *, record_id: int, now: dt.datetime | None = None
) -> list[Notification]:
    """React to an attendance write: plan (or update, or cancel) the day's attendance message.

    One message per student, day and guardian: further absent periods that day update the
    pending message; a correction to present before it is sent cancels it; withdrawn
    (inactive) students and old dates never notify.
    """
    return attendance_changes_handle(record_ids=[record_id], now=now)


def attendance_changes_handle(
    *, record_ids: list[int], now: dt.datetime | None = None, enqueue: bool = True
) -> list[Notification]:
    """:func:`attendance_change_handle` for many records at once (a bulk post, a SIS import,
    the fan-out benchmark): the day's records, guardian links, contact points and preferences
    are read once for the whole batch."""
    now = now or timezone.now()
    records = list(
        AttendanceRecord.objects.select_related("student__district", "school").filter(
            pk__in=record_ids
        )
    )
    days: dict[tuple[int, dt.date], AttendanceRecord] = {}
    for record in records:
        district = record.student.district
        if not record.student.active:
            continue
        today = district.today(now)
        age = (today - record.date).days
        if age > settings.NOTIFY_ATTENDANCE_MAX_AGE_DAYS or record.date > today:
            continue
        days.setdefault((record.student_id, record.date), record)
    if not days:
        return []
    marks_by_day: dict[tuple[int, dt.date], list[AttendanceRecord]] = {key: [] for key in days}
    for other in (
        AttendanceRecord.objects.filter(
            student_id__in={k[0] for k in days}, date__in={k[1] for k in days}
        )
        .select_related("section")
        .order_by("period", "section_id")
    ):
        key = (other.student_id, other.date)
        if key in marks_by_day and other.status in NOTIFYING:
            marks_by_day[key].append(other)
    links: dict[int, list[Recipient]] = {}
    for link in (
        StudentGuardian.objects.filter(student_id__in={k[0] for k in days})
        .select_related("guardian")
        .order_by("priority", "id")
    ):
        links.setdefault(link.student_id, []).append(Recipient(link.guardian, link))
    category = category_by_code(Category.ATTENDANCE)
    not_before = now + dt.timedelta(seconds=settings.NOTIFY_ATTENDANCE_HOLD_SECONDS)
    events: list[tuple[EventSpec, list[Recipient]]] = []
    absent_students: list[tuple[Student, dt.date]] = []
    for key, record in days.items():
        event_key = attendance_event_key(*key)
        marks = marks_by_day[key]
        if not marks:
            notifications_cancel(event_key=event_key, reason="Corrected to present before sending.")
            continue
        student = record.student
        events.append(
            (
                EventSpec(
                    event_key=event_key,
                    category=category,
                    district=student.district,
                    school=record.school,
                    student=student,
                    context=_attendance_context(student, record, marks),
                    localized=_attendance_localized(record, marks),
                    not_before=not_before,
                ),
                links.get(student.pk, []),
            )
        )
        if any(m.status == AttendanceStatus.ABSENT for m in marks):
            absent_students.append((student, record.date))
    notifications = notifications_plan_many(
        events=events, now=now, update_pending=True, enqueue=enqueue
    )
    if absent_students:
        notifications += chronic_absences_check(students=absent_students, now=now)
    return notifications


def _attendance_context(
    student: Student, record: AttendanceRecord, marks: list[AttendanceRecord]
) -> dict[str, Any]:
    statuses = {r.status for r in marks}
    periods = [
        r.period or (r.section.periods[0] if r.section and r.section.periods else "") for r in marks
    ]
    text = STATUS_TEXT["en"]
    whole_day = any(r.section_id is None for r in marks)
    return {
        "student_first_name": student.display_first_name,
        "school_name": record.school.name,
        "date": record.date.strftime("%b %-d"),
        "status_text": " and ".join(text[s] for s in NOTIFYING if s in statuses),
        "periods": "" if whole_day else ", ".join(sorted({p for p in periods if p})),
    }


def _attendance_localized(
    record: AttendanceRecord, marks: list[AttendanceRecord]
) -> dict[str, dict[str, Any]]:
    statuses = {r.status for r in marks}
    localized: dict[str, dict[str, Any]] = {}
    for language, words in STATUS_TEXT.items():
        with translation.override(language):
            date_text = formats.date_format(record.date, DATE_FORMATS[language])
        localized[language] = {
            "status_text": AND_WORDS[language].join(words[s] for s in NOTIFYING if s in statuses),
            "date": date_text,
        }
    return localized


def category_by_code(code: str) -> Category:
    # Not cached: tests (and admins) recreate categories, and it is one query per batch.
    return Category.objects.get(code=code)


def _school_year(district_id: int, on: dt.date) -> tuple[str, dt.date]:
    term = (
        Term.objects.filter(
            district_id=district_id,
            kind=TermKind.SCHOOL_YEAR,
            start_date__lte=on,
            end_date__gte=on,
        )
        .order_by("-start_date")
        .first()
    )
    if term is not None:
        return str(term.pk), term.start_date
    start = dt.date(on.year if on.month >= 8 else on.year - 1, 8, 1)
    return str(start.year), start


def chronic_absence_check(
    *, student: Student, on: dt.date, now: dt.datetime | None = None
) -> list[Notification]:
    """Crossing ``NOTIFY_CHRONIC_ABSENCE_COUNT`` unexcused absence days, and
    ``NOTIFY_CHRONIC_ABSENCE_PERCENT`` % of days with attendance taken, each send one escalation
    notice per school year (the event key makes a second crossing a no-op)."""
    return chronic_absences_check(students=[(student, on)], now=now)


def chronic_absences_check(
    *, students: list[tuple[Student, dt.date]], now: dt.datetime | None = None
) -> list[Notification]:
    """:func:`chronic_absence_check` for many students: one grouped count per school year."""
    now = now or timezone.now()
    groups: dict[tuple[int, dt.date], list[Student]] = {}
    for student, on in students:
        groups.setdefault((student.district_id, on), []).append(student)
    crossing: list[tuple[Student, str, str, int, int]] = []
    for (district_id, on), members in groups.items():
        year_key, start = _school_year(district_id, on)
        counts: dict[int, dict[str, Any]] = {
            row["student_id"]: dict(row)
            for row in AttendanceRecord.objects.filter(
                student_id__in=[m.pk for m in members], date__gte=start, date__lte=on
            )
            .values("student_id")
            .annotate(
                taken=Count("date", distinct=True),
                absent=Count("date", distinct=True, filter=Q(status=AttendanceStatus.ABSENT)),
            )
        }
        for student in members:
            row: dict[str, Any] = counts.get(student.pk) or {}
            taken, absent = int(row.get("taken") or 0), int(row.get("absent") or 0)
            if absent >= settings.NOTIFY_CHRONIC_ABSENCE_COUNT:
                threshold = f"count{settings.NOTIFY_CHRONIC_ABSENCE_COUNT}"
                crossing.append((student, year_key, threshold, absent, taken))
            if (
                taken >= MIN_DAYS_FOR_PERCENT
                and 100 * absent >= settings.NOTIFY_CHRONIC_ABSENCE_PERCENT * taken
            ):
                threshold = f"percent{settings.NOTIFY_CHRONIC_ABSENCE_PERCENT}"
                crossing.append((student, year_key, threshold, absent, taken))
    if not crossing:
        return []
    keys = {f"chronic:{s.pk}:{year}:{t}" for s, year, t, _, _ in crossing}
    done = set(Notification.objects.filter(event_key__in=keys).values_list("event_key", flat=True))
    category = category_by_code(Category.CHRONIC_ABSENCE)
    result: list[Notification] = []
    for student, year_key, threshold, absent, taken in crossing:
        event_key = f"chronic:{student.pk}:{year_key}:{threshold}"
        if event_key in done:
            continue
        school = student.school
        spec = EventSpec(
            event_key=event_key,
            category=category,
            district=student.district,
            school=school,
            student=student,
            context={
                "student_first_name": student.display_first_name,
                "school_name": school.name if school else student.district.name,
                "absences": absent,
                "percent": round(100 * absent / taken) if taken else 0,
                "threshold": threshold,
            },
        )
        result += notifications_plan(
            spec=spec, recipients=recipients_for_student(student=student), now=now
        )
    return result
