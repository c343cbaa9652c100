"""A small deterministic demo district, built through the services.

Used by ``make run`` until the sandbox SIS can serve one (the SIS issue replaces this with a
real sync). Names are generated from short word lists: no real people.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable

from django.db import transaction

from attendance import services
from attendance.models import (
    AttendanceCode,
    AttendanceStatus,
    Course,
    District,
    Relationship,
    School,
    SchoolLevel,
    Section,
    Staff,
    Student,
    Term,
    TermKind,
)

FIRST_NAMES = [
    "Ava", "Ben", "Carmen", "Diego", "Elena", "Farah", "Gus", "Hana", "Ivan", "Jada",
    "Kai", "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tariq",
]  # fmt: skip
LAST_NAMES = [
    "Alder", "Brook", "Cedar", "Dale", "Elm", "Fern", "Glen", "Heath", "Ivy", "Juniper",
    "Knoll", "Larch", "Moss", "North", "Oak", "Pine", "Reed", "Stone", "Thorn", "Vale",
]  # fmt: skip

DEMO_DISTRICT = "Demo Unified School District"


def load_demo_district(
    *, students_per_school: int = 30, seed: int = 7, progress: Callable[[int], None] | None = None
) -> District:
    """Create the demo district if it is not there yet (idempotent: a second call returns it)."""
    existing = District.objects.filter(name=DEMO_DISTRICT).first()
    if existing is not None:
        return existing
    rng = random.Random(seed)
    with transaction.atomic():
        district = District.objects.create(name=DEMO_DISTRICT, slug="demo-usd")
        for code, status, text in [
            ("P", AttendanceStatus.PRESENT, "Present"),
            ("A", AttendanceStatus.ABSENT, "Absent, unexcused"),
            ("EX", AttendanceStatus.EXCUSED_ABSENCE, "Absent, excused"),
            ("T", AttendanceStatus.TARDY, "Tardy"),
        ]:
            AttendanceCode.objects.create(
                district=district, code=code, status=status, description=text
            )
        year_start = dt.date(2026, 8, 17)
        year = Term.objects.create(
            district=district,
            kind=TermKind.SCHOOL_YEAR,
            name="2026-2027",
            start_date=year_start,
            end_date=dt.date(2027, 6, 4),
        )
        semester = Term.objects.create(
            district=district,
            parent=year,
            kind=TermKind.SEMESTER,
            name="Fall 2026",
            start_date=year_start,
            end_date=dt.date(2026, 12, 18),
        )
        school_grades = [
            (
                "Maple Elementary",
                "100",
                SchoolLevel.ELEMENTARY,
                ["KG", "01", "02", "03", "04", "05"],
            ),
            ("Ridge Middle", "200", SchoolLevel.MIDDLE, ["06", "07", "08"]),
        ]
        schools = [
            (
                School.objects.create(district=district, name=name, local_id=number, level=level),
                grades,
            )
            for name, number, level, grades in school_grades
        ]
        number = 1000
        for school, grades in schools:
            teacher = Staff.objects.create(
                district=district,
                local_id=f"T{school.local_id}",
                first_name=rng.choice(FIRST_NAMES),
                last_name=rng.choice(LAST_NAMES),
            )
            teacher.schools.add(school)
            course = Course.objects.create(
                district=district, school=school, code=f"HR{school.local_id}", title="Homeroom"
            )
            section = Section.objects.create(
                school=school, course=course, term=semester, section_number="1",
                periods=["1"], teacher=teacher,
            )  # fmt: skip
            for _ in range(students_per_school):
                number += 1
                last = rng.choice(LAST_NAMES)
                student = services.student_create(
                    district=district,
                    local_id=str(number),
                    legal_first_name=rng.choice(FIRST_NAMES),
                    legal_last_name=last,
                    birth_date=dt.date(
                        2014 + rng.randint(0, 6), rng.randint(1, 12), rng.randint(1, 28)
                    ),
                    grade_level=rng.choice(grades),
                )
                services.student_enroll(student=student, school=school, entry_date=year_start)
                services.section_enroll_student(
                    student=student, section=section, entry_date=year_start
                )
                _add_guardians(rng, district, student, last)
                if progress:
                    progress(1)
    return district


def _add_guardians(rng: random.Random, district: District, student: Student, last: str) -> None:
    for index in range(rng.choice([1, 2, 2])):
        first = rng.choice(FIRST_NAMES)
        guardian = services.guardian_create(
            district=district,
            local_id=f"G{student.local_id}{index}",
            first_name=first,
            last_name=last,
            # Reserved example domain and a number range set aside for fiction.
            email=f"{first.lower()}.{last.lower()}{student.local_id}@example.org",
            mobile_phone_raw=f"(312) 555-01{rng.randint(0, 99):02d}",
            preferred_language=rng.choice(["en", "en", "es"]),
        )
        services.guardian_link(
            student=student,
            guardian=guardian,
            relationship=rng.choice(
                [Relationship.MOTHER, Relationship.FATHER, Relationship.GUARDIAN]
            ),
            is_primary=index == 0,
            priority=index + 1,
        )


__all__ = ["DEMO_DISTRICT", "load_demo_district"]
