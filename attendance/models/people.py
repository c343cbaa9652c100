"""Staff, students, guardians and the student–guardian relationship."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from attendance.models.base import TimeStampedModel
from attendance.models.organization import District, School


class StaffRole(models.TextChoices):
    TEACHER = "teacher", "Teacher"
    ADMINISTRATOR = "administrator", "Administrator"
    AIDE = "aide", "Aide"
    OTHER = "other", "Other"


class Staff(TimeStampedModel):
    district = models.ForeignKey(District, on_delete=models.PROTECT, related_name="staff")
    # The login of a staff member who uses this system, when they have one.
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="staff_profile",
    )
    local_id = models.CharField(max_length=64, blank=True)
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    email = models.EmailField(blank=True)
    role = models.CharField(max_length=16, choices=StaffRole.choices, default=StaffRole.TEACHER)
    schools = models.ManyToManyField(School, related_name="staff", blank=True)
    active = models.BooleanField(default=True)
    history = HistoricalRecords(m2m_fields=[schools])

    class Meta:
        ordering = ["last_name", "first_name"]
        verbose_name_plural = "staff"
        constraints = [
            models.UniqueConstraint(
                fields=["district", "local_id"],
                condition=~Q(local_id=""),
                name="staff_unique_local_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.last_name}, {self.first_name}"


class GradeLevel(models.TextChoices):
    """Grade levels in the CEDS / OneRoster vocabulary."""

    INFANT = "IT", "Infant/toddler"
    PRESCHOOL = "PR", "Preschool"
    PRE_K = "PK", "Pre-kindergarten"
    TRANSITIONAL_K = "TK", "Transitional kindergarten"
    KINDERGARTEN = "KG", "Kindergarten"
    FIRST = "01", "Grade 1"
    SECOND = "02", "Grade 2"
    THIRD = "03", "Grade 3"
    FOURTH = "04", "Grade 4"
    FIFTH = "05", "Grade 5"
    SIXTH = "06", "Grade 6"
    SEVENTH = "07", "Grade 7"
    EIGHTH = "08", "Grade 8"
    NINTH = "09", "Grade 9"
    TENTH = "10", "Grade 10"
    ELEVENTH = "11", "Grade 11"
    TWELFTH = "12", "Grade 12"
    THIRTEENTH = "13", "Grade 13"
    POSTSECONDARY = "PS", "Postsecondary"
    UNGRADED = "UG", "Ungraded"
    OTHER = "Other", "Other"


class Student(TimeStampedModel):
    # No index of its own on either foreign key: the unique local id and the name index lead
    # with the district, the roster and page indexes with the school (each index more is
    # written with every student of a big district's first load).
    district = models.ForeignKey(
        District, on_delete=models.PROTECT, related_name="students", db_index=False
    )
    # The SIS student number: what integrators and school staff know a student by.
    local_id = models.CharField(max_length=64)
    state_id = models.CharField(max_length=64, blank=True)
    legal_first_name = models.CharField(max_length=100)
    legal_middle_name = models.CharField(max_length=100, blank=True)
    legal_last_name = models.CharField(max_length=100)
    preferred_first_name = models.CharField(max_length=100, blank=True)
    preferred_last_name = models.CharField(max_length=100, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    grade_level = models.CharField(max_length=8, choices=GradeLevel.choices, blank=True)
    gender = models.CharField(max_length=32, blank=True)
    hispanic_or_latino = models.BooleanField(null=True, blank=True)
    races = models.JSONField(default=list, blank=True)
    primary_language = models.CharField(max_length=32, blank=True)
    # The school of the student's open primary enrollment, kept by the enrollment services so
    # that "roster by school and grade" is one indexed read.
    school = models.ForeignKey(
        School,
        on_delete=models.PROTECT,
        related_name="students",
        null=True,
        blank=True,
        db_index=False,
    )
    active = models.BooleanField(default=True)
    # History is read per row (by id and date), never by these keys: no index on them.
    history = HistoricalRecords(no_db_index=["district", "school"])

    class Meta:
        ordering = ["legal_last_name", "legal_first_name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["district", "local_id"], name="student_unique_local_id"
            ),
            models.CheckConstraint(condition=~Q(local_id=""), name="student_local_id_not_empty"),
        ]
        indexes = [
            models.Index(fields=["school", "grade_level", "id"], name="student_roster_idx"),
            # The API's hottest read: a school's students a page at a time, in id order.
            models.Index(fields=["school", "id"], name="student_school_page_idx"),
            models.Index(fields=["district", "legal_last_name"], name="student_name_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.display_last_name}, {self.display_first_name} ({self.local_id})"

    @property
    def display_first_name(self) -> str:
        return self.preferred_first_name or self.legal_first_name

    @property
    def display_last_name(self) -> str:
        return self.preferred_last_name or self.legal_last_name


class Guardian(TimeStampedModel):
    """A parent or other adult responsible for students. Phone numbers are kept exactly as the
    SIS gave them (``*_raw``) and normalised to E.164 for sending; a number that cannot be
    normalised keeps its raw value and an empty E.164 value."""

    district = models.ForeignKey(District, on_delete=models.PROTECT, related_name="guardians")
    local_id = models.CharField(max_length=64, blank=True)
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    email = models.EmailField(blank=True)
    mobile_phone_raw = models.CharField(max_length=64, blank=True)
    mobile_phone = models.CharField(max_length=16, blank=True)
    home_phone_raw = models.CharField(max_length=64, blank=True)
    home_phone = models.CharField(max_length=16, blank=True)
    work_phone_raw = models.CharField(max_length=64, blank=True)
    work_phone = models.CharField(max_length=16, blank=True)
    preferred_language = models.CharField(max_length=8, blank=True)
    active = models.BooleanField(default=True)
    students = models.ManyToManyField(
        Student, through="attendance.StudentGuardian", related_name="guardians"
    )
    history = HistoricalRecords(no_db_index=["district"])

    class Meta:
        ordering = ["last_name", "first_name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["district", "local_id"],
                condition=~Q(local_id=""),
                name="guardian_unique_local_id",
            ),
            *[
                models.CheckConstraint(
                    condition=Q(**{field: ""}) | Q(**{f"{field}__regex": r"^\+[1-9][0-9]{6,14}$"}),
                    name=f"guardian_{field}_e164",
                )
                for field in ("mobile_phone", "home_phone", "work_phone")
            ],
        ]
        indexes = [
            models.Index(fields=["mobile_phone"], name="guardian_mobile_idx"),
            models.Index(fields=["email"], name="guardian_email_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.last_name}, {self.first_name}"


class Relationship(models.TextChoices):
    MOTHER = "mother", "Mother"
    FATHER = "father", "Father"
    PARENT = "parent", "Parent"
    STEPMOTHER = "stepmother", "Stepmother"
    STEPFATHER = "stepfather", "Stepfather"
    GRANDPARENT = "grandparent", "Grandparent"
    GUARDIAN = "guardian", "Legal guardian"
    FOSTER_PARENT = "foster_parent", "Foster parent"
    RELATIVE = "relative", "Other relative"
    OTHER = "other", "Other"


class StudentGuardian(TimeStampedModel):
    """How a guardian relates to one student, and what they may be told.

    ``contact_allowed`` is the gate for every notification: a guardian without contact rights
    (a court order, a custody arrangement) receives nothing about this student.
    """

    # No index of their own: the unique (student, guardian) and (guardian, student) lead with them.
    student = models.ForeignKey(
        Student, on_delete=models.PROTECT, related_name="guardian_links", db_index=False
    )
    guardian = models.ForeignKey(
        Guardian, on_delete=models.PROTECT, related_name="student_links", db_index=False
    )
    relationship = models.CharField(
        max_length=16, choices=Relationship.choices, default=Relationship.PARENT
    )
    has_custody = models.BooleanField(default=True)
    contact_allowed = models.BooleanField(default=True)
    lives_with = models.BooleanField(default=True)
    emergency_contact = models.BooleanField(default=False)
    is_primary = models.BooleanField(default=False)
    # 1 is contacted first.
    priority = models.PositiveSmallIntegerField(default=1)
    active = models.BooleanField(default=True)
    history = HistoricalRecords(no_db_index=["student", "guardian"])

    class Meta:
        ordering = ["student_id", "priority", "id"]
        constraints = [
            models.UniqueConstraint(fields=["student", "guardian"], name="student_guardian_unique"),
            models.UniqueConstraint(
                fields=["student"],
                condition=Q(is_primary=True, active=True),
                name="student_one_primary_guardian",
            ),
            models.CheckConstraint(condition=Q(priority__gte=1), name="student_guardian_priority"),
        ]
        indexes = [models.Index(fields=["guardian", "student"], name="guardian_students_idx")]

    def __str__(self) -> str:
        return f"{self.guardian} → {self.student}"
