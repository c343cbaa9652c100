"""Reads of the attendance domain, and what a staff user may see of it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.db.models import Model, Q, QuerySet
from django.utils import timezone

from attendance.models import (
    AttendanceRecord,
    Enrollment,
    Guardian,
    Membership,
    MembershipRole,
    School,
    Student,
    StudentGuardian,
)

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class AccessScope:
    """What a staff user may see and change.

    ``district_ids``: districts seen whole; ``school_ids``: single schools seen (a school
    administrator or a school-level read-only user). ``writable_*`` are the subsets they may
    change. A superuser has ``everything``.
    """

    everything: bool = False
    district_ids: frozenset[int] = field(default_factory=frozenset)
    school_ids: frozenset[int] = field(default_factory=frozenset)
    # Districts of the schools in ``school_ids``: their reference data (terms, courses, codes)
    # is visible to school-level users too.
    school_district_ids: frozenset[int] = field(default_factory=frozenset)
    writable_district_ids: frozenset[int] = field(default_factory=frozenset)
    writable_school_ids: frozenset[int] = field(default_factory=frozenset)

    @property
    def is_empty(self) -> bool:
        return not (self.everything or self.district_ids or self.school_ids)

    @property
    def can_write(self) -> bool:
        return self.everything or bool(self.writable_district_ids or self.writable_school_ids)

    @property
    def can_write_district_data(self) -> bool:
        return self.everything or bool(self.writable_district_ids)

    def writable(self) -> AccessScope:
        """The part of this scope its user may change: the districts they administer whole and
        the schools they administer (a school's administrator reads their district's reference
        data but does not change it, hence no ``school_district_ids``)."""
        return AccessScope(
            everything=self.everything,
            district_ids=self.writable_district_ids,
            school_ids=self.writable_school_ids,
            writable_district_ids=self.writable_district_ids,
            writable_school_ids=self.writable_school_ids,
        )

    def writes_all_it_sees(self, *, school_path: str | None) -> bool:
        """Whether every row this scope shows (of a model scoped by ``school_path``) is one it
        may change: true for a superuser and for anyone whose memberships are all
        administrator roles, so only mixed memberships need a row-by-row check."""
        if self.everything:
            return True
        if self.district_ids != self.writable_district_ids:
            return False
        if school_path is None:
            return self.school_district_ids <= self.writable_district_ids
        return self.school_ids == self.writable_school_ids

    def filter(
        self, queryset: QuerySet[M], *, district_path: str, school_path: str | None
    ) -> QuerySet[M]:
        """Keep the rows this scope may see.

        ``district_path`` leads from the model to its district's id, ``school_path`` to the
        school(s) that make a row visible to a school-level user. Without a school path the
        model is district reference data, visible to school-level users of that district.
        Multi-valued paths go through a subquery so rows are never duplicated.
        """
        if self.everything:
            return queryset
        condition = Q(**{f"{district_path}__in": self.district_ids})
        if school_path is None:
            condition |= Q(**{f"{district_path}__in": self.school_district_ids})
        elif self.school_ids:
            visible = queryset.model._default_manager.filter(
                **{f"{school_path}__in": self.school_ids}
            ).values("pk")
            condition |= Q(pk__in=visible)
        return queryset.filter(condition)


def user_scope(user: Any) -> AccessScope:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return AccessScope()
    if user.is_superuser:
        return AccessScope(everything=True)
    district_ids: set[int] = set()
    school_ids: set[int] = set()
    school_district_ids: set[int] = set()
    writable_districts: set[int] = set()
    writable_schools: set[int] = set()
    for membership in Membership.objects.filter(user=user, district__active=True):
        if membership.school_id is None:
            district_ids.add(membership.district_id)
            if membership.role == MembershipRole.DISTRICT_ADMIN:
                writable_districts.add(membership.district_id)
        else:
            school_ids.add(membership.school_id)
            school_district_ids.add(membership.district_id)
            if membership.role == MembershipRole.SCHOOL_ADMIN:
                writable_schools.add(membership.school_id)
    return AccessScope(
        district_ids=frozenset(district_ids),
        school_ids=frozenset(school_ids),
        school_district_ids=frozenset(school_district_ids),
        writable_district_ids=frozenset(writable_districts),
        writable_school_ids=frozenset(writable_schools),
    )


def student_roster(
    *, school: School, grade_level: str | None = None, on: dt.date | None = None
) -> QuerySet[Student]:
    """Students enrolled at ``school`` on a date (today by default), optionally one grade."""
    on = on or timezone.localdate()
    enrolled = Enrollment.objects.filter(school=school, entry_date__lte=on).exclude(
        exit_date__lt=on
    )
    students = Student.objects.filter(pk__in=enrolled.values("student_id"))
    if grade_level:
        students = students.filter(grade_level=grade_level)
    return students.order_by("legal_last_name", "legal_first_name", "id")


def student_guardians(
    *, student: Student, contactable_only: bool = False
) -> QuerySet[StudentGuardian]:
    """The student's active guardian links in priority order; ``contactable_only`` keeps those
    the school may contact (contact rights)."""
    links = StudentGuardian.objects.filter(student=student, active=True, guardian__active=True)
    if contactable_only:
        links = links.filter(contact_allowed=True)
    return links.select_related("guardian").order_by("priority", "id")


def guardian_students(*, guardian: Guardian) -> QuerySet[Student]:
    return Student.objects.filter(
        guardian_links__guardian=guardian, guardian_links__active=True
    ).order_by("legal_last_name", "legal_first_name")


def school_attendance_on(*, school: School, on: dt.date) -> QuerySet[AttendanceRecord]:
    return (
        AttendanceRecord.objects.filter(school=school, date=on)
        .select_related("student", "section", "code")
        .order_by("student__legal_last_name", "student_id", "section_id")
    )


def student_open_enrollment(*, student: Student) -> Enrollment | None:
    return (
        Enrollment.objects.filter(student=student, exit_date__isnull=True, is_primary=True)
        .select_related("school")
        .first()
    )
