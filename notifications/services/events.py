"""Events that notify guardians: attendance marks and chronic absence thresholds."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from attendance.models import AttendanceRecord, AttendanceStatus, Student, Term, TermKind
from notifications.models import Category, Notification
from notifications.services.planning import (
    EventSpec,
    notifications_cancel,
    notifications_plan,
    recipients_for_student,
)

# Unexcused marks that notify. Excused absences and tardies never do.
NOTIFYING = (AttendanceStatus.ABSENT, AttendanceStatus.TARDY)
STATUS_TEXT = {
    "en": {AttendanceStatus.ABSENT: "absent", AttendanceStatus.TARDY: "tardy"},
    "es": {AttendanceStatus.ABSENT: "ausente", AttendanceStatus.TARDY: "tarde"},
}
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
    now = now or timezone.now()
    record = (
        AttendanceRecord.objects.select_related("student__district", "school")
        .filter(pk=record_id)
        .first()
    )
    if record is None:
        return []
    student = record.student
    district = student.district
    if not student.active:
        return []
    today = now.astimezone(zoneinfo.ZoneInfo(district.timezone)).date()
    if (today - record.date).days > settings.NOTIFY_ATTENDANCE_MAX_AGE_DAYS or record.date > today:
        return []
    event_key = attendance_event_key(student.pk, record.date)
    day = list(
        AttendanceRecord.objects.filter(student=student, date=record.date)
        .select_related("section")
        .order_by("period", "section_id")
    )
    marks = [r for r in day if r.status in NOTIFYING]
    if not marks:
        notifications_cancel(event_key=event_key, reason="Corrected to present before sending.")
        return []
    statuses = {r.status for r in marks}
    periods = [
        r.period or (r.section.periods[0] if r.section and r.section.periods else "") for r in marks
    ]
    periods = [p for p in periods if p]
    text = STATUS_TEXT["en"]
    status_text = " and ".join(text[s] for s in NOTIFYING if s in statuses)
    whole_day = any(r.section_id is None for r in marks)
    context = {
        "student_first_name": student.display_first_name,
        "school_name": record.school.name,
        "date": record.date.strftime("%b %-d"),
        "status_text": status_text,
        "periods": "" if whole_day else ", ".join(sorted(set(periods))),
    }
    spec = EventSpec(
        event_key=event_key,
        category=Category.objects.get(code=Category.ATTENDANCE),
        district=district,
        school=record.school,
        student=student,
        context=context,
        not_before=now + dt.timedelta(seconds=settings.NOTIFY_ATTENDANCE_HOLD_SECONDS),
    )
    notifications = notifications_plan(
        spec=spec, recipients=recipients_for_student(student=student), now=now, update_pending=True
    )
    if AttendanceStatus.ABSENT in statuses:
        notifications += chronic_absence_check(student=student, on=record.date, now=now)
    return notifications


def _school_year(student: Student, on: dt.date) -> tuple[str, dt.date]:
    term = (
        Term.objects.filter(
            district_id=student.district_id,
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
    now = now or timezone.now()
    year_key, start = _school_year(student, on)
    days = AttendanceRecord.objects.filter(
        student=student, date__gte=start, date__lte=on
    ).aggregate(
        taken=Count("date", distinct=True),
        absent=Count("date", distinct=True, filter=Q(status=AttendanceStatus.ABSENT)),
    )
    taken, absent = int(days["taken"] or 0), int(days["absent"] or 0)
    percent = round(100 * absent / taken) if taken else 0
    thresholds: list[str] = []
    if absent >= settings.NOTIFY_CHRONIC_ABSENCE_COUNT:
        thresholds.append(f"count{settings.NOTIFY_CHRONIC_ABSENCE_COUNT}")
    if (
        taken >= MIN_DAYS_FOR_PERCENT
        and 100 * absent >= settings.NOTIFY_CHRONIC_ABSENCE_PERCENT * taken
    ):
        thresholds.append(f"percent{settings.NOTIFY_CHRONIC_ABSENCE_PERCENT}")
    if not thresholds:
        return []
    category = Category.objects.get(code=Category.CHRONIC_ABSENCE)
    recipients = recipients_for_student(student=student)
    school = student.school
    result: list[Notification] = []
    for threshold in thresholds:
        event_key = f"chronic:{student.pk}:{year_key}:{threshold}"
        if Notification.objects.filter(event_key=event_key).exists():
            continue
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
                "percent": percent,
                "threshold": threshold,
            },
        )
        result += notifications_plan(spec=spec, recipients=recipients, now=now)
    return result
