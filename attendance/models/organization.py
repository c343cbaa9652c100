"""Districts, schools, the term calendar, courses and sections."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone as django_timezone
from simple_history.models import HistoricalRecords

from attendance.models.base import TimeStampedModel


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a known time zone.")


class District(TimeStampedModel):
    """The tenant. Every student record, credential and message belongs to exactly one."""

    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=80, unique=True)
    timezone = models.CharField(
        max_length=64, default="America/Chicago", validators=[validate_timezone]
    )
    default_language = models.CharField(max_length=8, default="en")
    # Region used to read phone numbers written without a country code.
    phone_region = models.CharField(max_length=2, default="US")
    active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def today(self, now: dt.datetime | None = None) -> dt.date:
        """The date in the district's own time zone, now or at ``now``: the school day that
        attendance, notices and sync safety windows mean by "today"."""
        return (now or django_timezone.now()).astimezone(self.zone).date()


class SchoolLevel(models.TextChoices):
    ELEMENTARY = "elementary", "Elementary"
    MIDDLE = "middle", "Middle"
    HIGH = "high", "High"
    OTHER = "other", "Other"


class School(TimeStampedModel):
    district = models.ForeignKey(
        District,
        on_delete=models.PROTECT,
        related_name="schools",
        db_index=False,  # school_unique_name leads with it
    )
    name = models.CharField(max_length=200)
    # The SIS school number; empty for schools created here.
    local_id = models.CharField(max_length=64, blank=True)
    state_id = models.CharField(max_length=64, blank=True)
    level = models.CharField(max_length=16, choices=SchoolLevel.choices, default=SchoolLevel.OTHER)
    active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["district_id", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["district", "local_id"],
                condition=~Q(local_id=""),
                name="school_unique_local_id_per_district",
            ),
            models.UniqueConstraint(fields=["district", "name"], name="school_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name


class TermKind(models.TextChoices):
    SCHOOL_YEAR = "school_year", "School year"
    SEMESTER = "semester", "Semester"
    TRIMESTER = "trimester", "Trimester"
    QUARTER = "quarter", "Quarter"
    GRADING_PERIOD = "grading_period", "Grading period"


class Term(TimeStampedModel):
    """An academic session. Nested: school year → semester → grading period."""

    district = models.ForeignKey(
        District,
        on_delete=models.PROTECT,
        related_name="terms",
        db_index=False,  # the (district, start_date) index leads with it
    )
    # Null for a district-wide calendar.
    school = models.ForeignKey(
        School, on_delete=models.PROTECT, related_name="terms", null=True, blank=True
    )
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, related_name="children", null=True, blank=True
    )
    kind = models.CharField(max_length=16, choices=TermKind.choices)
    name = models.CharField(max_length=120)
    start_date = models.DateField()
    end_date = models.DateField()
    history = HistoricalRecords()

    class Meta:
        ordering = ["start_date", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end_date__gte=F("start_date")), name="term_ends_after_start"
            ),
            models.CheckConstraint(condition=~Q(parent=F("id")), name="term_not_own_parent"),
        ]
        indexes = [models.Index(fields=["district", "start_date"])]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        parent = self.parent
        if parent is None:
            return
        if parent.district_id != self.district_id:
            raise ValidationError("A term and its parent must belong to the same district.")
        if self.start_date < parent.start_date or self.end_date > parent.end_date:
            raise ValidationError("A term must lie within its parent term.")


class Course(TimeStampedModel):
    district = models.ForeignKey(
        District,
        on_delete=models.PROTECT,
        related_name="courses",
        db_index=False,  # course_unique_code leads with it
    )
    school = models.ForeignKey(
        School, on_delete=models.PROTECT, related_name="courses", null=True, blank=True
    )
    code = models.CharField(max_length=64)
    title = models.CharField(max_length=200)
    active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["code"]
        constraints = [
            models.UniqueConstraint(fields=["district", "code"], name="course_unique_code"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.title}"


class Section(TimeStampedModel):
    """A class: a course taught at a school in a term, in one or more periods."""

    # No index of its own: the unique section number (school, term, course, number) leads with it.
    school = models.ForeignKey(
        School, on_delete=models.PROTECT, related_name="sections", db_index=False
    )
    course = models.ForeignKey(Course, on_delete=models.PROTECT, related_name="sections")
    term = models.ForeignKey(Term, on_delete=models.PROTECT, related_name="sections")
    section_number = models.CharField(max_length=64)
    # Period codes as the SIS names them, e.g. ["1", "2"] or ["A"].
    periods = models.JSONField(default=list, blank=True)
    room = models.CharField(max_length=64, blank=True)
    teacher = models.ForeignKey(
        "attendance.Staff",
        on_delete=models.SET_NULL,
        related_name="sections",
        null=True,
        blank=True,
    )
    active = models.BooleanField(default=True)
    # History is read per row (by id and date), never by these keys: no index on them.
    history = HistoricalRecords(no_db_index=["school", "course", "term", "teacher"])

    class Meta:
        ordering = ["school_id", "course__code", "section_number"]
        constraints = [
            models.UniqueConstraint(
                fields=["school", "term", "course", "section_number"],
                name="section_unique_number",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.course.code}-{self.section_number}"
