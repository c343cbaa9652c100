"""Attendance codes, records and the participation grades derived from them."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from attendance.models.base import TimeStampedModel
from attendance.models.organization import District, School, Section, Term
from attendance.models.people import Student


class AttendanceStatus(models.TextChoices):
    """Our canonical statuses; each district's SIS codes map onto these."""

    PRESENT = "present", "Present"
    ABSENT = "absent", "Absent (unexcused)"
    EXCUSED_ABSENCE = "excused_absence", "Absent (excused)"
    TARDY = "tardy", "Tardy (unexcused)"
    EXCUSED_TARDY = "excused_tardy", "Tardy (excused)"
    EARLY_DEPARTURE = "early_departure", "Early departure"
    SCHOOL_ACTIVITY = "school_activity", "School activity (counted present)"


class AttendanceSource(models.TextChoices):
    TEACHER = "teacher", "Teacher"
    ADMIN = "admin", "Administrator"
    API = "api", "API"
    SIS = "sis", "SIS"


class AttendanceCode(TimeStampedModel):
    """One of a district's SIS attendance codes (``A``, ``T``, ``EX`` …) and what it means."""

    district = models.ForeignKey(
        District,
        on_delete=models.PROTECT,
        related_name="attendance_codes",
        db_index=False,  # attendance_code_unique leads with it
    )
    code = models.CharField(max_length=16)
    description = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=AttendanceStatus.choices)
    active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["district_id", "code"]
        constraints = [
            models.UniqueConstraint(fields=["district", "code"], name="attendance_code_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.code} ({self.get_status_display()})"


class AttendanceRecord(TimeStampedModel):
    """A student's attendance on a date: for the whole day (no section) or for one section."""

    school = models.ForeignKey(
        School,
        on_delete=models.PROTECT,
        related_name="attendance",
        db_index=False,  # attendance_school_date_idx leads with it
    )
    student = models.ForeignKey(
        Student,
        on_delete=models.PROTECT,
        related_name="attendance",
        db_index=False,  # attendance_student_date_idx leads with it
    )
    date = models.DateField()
    section = models.ForeignKey(
        Section, on_delete=models.PROTECT, related_name="attendance", null=True, blank=True
    )
    period = models.CharField(max_length=16, blank=True)
    status = models.CharField(max_length=16, choices=AttendanceStatus.choices)
    code = models.ForeignKey(
        AttendanceCode, on_delete=models.PROTECT, null=True, blank=True, related_name="records"
    )
    source = models.CharField(max_length=8, choices=AttendanceSource.choices)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    comment = models.CharField(max_length=500, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-date", "student_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["student", "date", "section"],
                condition=Q(section__isnull=False),
                name="attendance_one_per_section_day",
            ),
            models.UniqueConstraint(
                fields=["student", "date"],
                condition=Q(section__isnull=True),
                name="attendance_one_daily_per_day",
            ),
        ]
        indexes = [
            models.Index(fields=["school", "date"], name="attendance_school_date_idx"),
            models.Index(fields=["student", "date"], name="attendance_student_date_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.student_id} {self.date} {self.status}"


class ParticipationGrade(TimeStampedModel):
    """A grade derived from attendance for one section and grading period; what is written back
    to the SIS gradebook. ``rule`` names the rule and version that computed it."""

    student = models.ForeignKey(
        Student,
        on_delete=models.PROTECT,
        related_name="participation_grades",
        db_index=False,  # participation_grade_unique leads with it
    )
    section = models.ForeignKey(
        Section, on_delete=models.PROTECT, related_name="participation_grades"
    )
    grading_period = models.ForeignKey(
        Term, on_delete=models.PROTECT, related_name="participation_grades"
    )
    value = models.DecimalField(max_digits=5, decimal_places=2)
    rule = models.CharField(max_length=64)
    computed_at = models.DateTimeField()
    history = HistoricalRecords()

    class Meta:
        ordering = ["section_id", "student_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["student", "section", "grading_period"],
                name="participation_grade_unique",
            ),
            models.CheckConstraint(
                condition=Q(value__gte=0, value__lte=100), name="participation_grade_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.student_id} {self.section_id}: {self.value}"
