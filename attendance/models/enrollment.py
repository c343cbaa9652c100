"""Enrollments are dated spans. A withdrawal closes a span; re-entry opens a new one; nothing is
deleted, so the history of where a student was and when is always there."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from attendance.models.base import TimeStampedModel
from attendance.models.organization import School, Section
from attendance.models.people import GradeLevel, Staff, Student


class ExitReason(models.TextChoices):
    WITHDRAWN = "withdrawn", "Withdrawn"
    TRANSFERRED = "transferred", "Transferred to another school"
    GRADUATED = "graduated", "Graduated"
    PROMOTED = "promoted", "End of year"
    DROPPED = "dropped", "Dropped the section"
    NOT_IN_SIS = "not_in_sis", "No longer reported by the SIS"
    # The end date the SIS gives a span it still reports (a class's last day in the term).
    ENDED = "ended", "Ends on the SIS's end date"
    OTHER = "other", "Other"


class Enrollment(TimeStampedModel):
    # Foreign keys without an index of their own: the composite indexes below lead with them
    # (each index more is written with every one of a big district's spans).
    student = models.ForeignKey(
        Student, on_delete=models.PROTECT, related_name="enrollments", db_index=False
    )
    school = models.ForeignKey(
        School, on_delete=models.PROTECT, related_name="enrollments", db_index=False
    )
    entry_date = models.DateField()
    # Last day enrolled; null while the span is open.
    exit_date = models.DateField(null=True, blank=True)
    exit_reason = models.CharField(max_length=16, choices=ExitReason.choices, blank=True)
    grade_level = models.CharField(max_length=8, choices=GradeLevel.choices, blank=True)
    # A student may attend a second school part-time; only one enrollment is primary.
    is_primary = models.BooleanField(default=True)
    # History is read per row (by id and date), never by these keys: no index on them.
    history = HistoricalRecords(no_db_index=["student", "school"])

    class Meta:
        ordering = ["student_id", "-entry_date"]
        constraints = [
            models.CheckConstraint(
                condition=Q(exit_date__isnull=True) | Q(exit_date__gte=F("entry_date")),
                name="enrollment_exit_after_entry",
            ),
            models.CheckConstraint(
                condition=Q(exit_date__isnull=True, exit_reason="")
                | Q(exit_date__isnull=False) & ~Q(exit_reason=""),
                name="enrollment_exit_reason_iff_closed",
            ),
            models.UniqueConstraint(
                fields=["student"],
                condition=Q(exit_date__isnull=True, is_primary=True),
                name="enrollment_one_open_primary",
            ),
            models.UniqueConstraint(
                fields=["student", "school"],
                condition=Q(exit_date__isnull=True),
                name="enrollment_one_open_per_school",
            ),
            models.UniqueConstraint(
                fields=["student", "school", "entry_date"], name="enrollment_unique_entry"
            ),
        ]
        indexes = [
            models.Index(fields=["school", "exit_date"], name="enrollment_school_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.school} from {self.entry_date}"

    @property
    def is_open(self) -> bool:
        return self.exit_date is None


class SectionRole(models.TextChoices):
    STUDENT = "student", "Student"
    TEACHER = "teacher", "Teacher"
    AIDE = "aide", "Aide"


class SectionEnrollment(TimeStampedModel):
    """A student (or a teacher or aide) in a section for a dated span."""

    section = models.ForeignKey(Section, on_delete=models.PROTECT, related_name="enrollments")
    role = models.CharField(max_length=8, choices=SectionRole.choices, default=SectionRole.STUDENT)
    student = models.ForeignKey(
        Student,
        on_delete=models.PROTECT,
        related_name="section_enrollments",
        null=True,
        blank=True,
        db_index=False,  # section_enr_student_idx leads with it
    )
    staff = models.ForeignKey(
        Staff,
        on_delete=models.PROTECT,
        related_name="section_enrollments",
        null=True,
        blank=True,
    )
    entry_date = models.DateField()
    exit_date = models.DateField(null=True, blank=True)
    exit_reason = models.CharField(max_length=16, choices=ExitReason.choices, blank=True)
    history = HistoricalRecords(no_db_index=["section", "student", "staff"])

    class Meta:
        ordering = ["section_id", "-entry_date"]
        constraints = [
            models.CheckConstraint(
                condition=Q(exit_date__isnull=True) | Q(exit_date__gte=F("entry_date")),
                name="section_enrollment_exit_after_entry",
            ),
            models.CheckConstraint(
                condition=Q(role="student", student__isnull=False, staff__isnull=True)
                | Q(role__in=["teacher", "aide"], student__isnull=True, staff__isnull=False),
                name="section_enrollment_person_matches_role",
            ),
            models.UniqueConstraint(
                fields=["section", "student"],
                condition=Q(exit_date__isnull=True, student__isnull=False),
                name="section_enrollment_one_open_student",
            ),
            models.UniqueConstraint(
                fields=["section", "staff"],
                condition=Q(exit_date__isnull=True, staff__isnull=False),
                name="section_enrollment_one_open_staff",
            ),
        ]
        indexes = [
            models.Index(fields=["student", "exit_date"], name="section_enr_student_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.role} in section {self.section_id} from {self.entry_date}"
