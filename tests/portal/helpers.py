"""Fixtures shared by the portal's view tests and the browser tests."""

from __future__ import annotations

import re
from dataclasses import dataclass

from attendance.models import Guardian, Student
from notifications.models import Category
from notifications.providers.test import TestProvider
from tests.factories import (
    DistrictFactory,
    EnrollmentFactory,
    GuardianFactory,
    SchoolFactory,
    StudentFactory,
    StudentGuardianFactory,
)

CATEGORIES = [
    ("attendance", "Attendance", False, ["sms", "email"]),
    ("chronic_absence", "Chronic absence", False, ["sms", "email"]),
    ("general", "General announcements", False, ["email"]),
    ("emergency", "Emergency", True, ["sms", "email"]),
    ("operational", "Operational (administrators)", False, ["email"]),
]


def categories_ensure() -> dict[str, Category]:
    """The seeded categories (transactional tests flush what the migration seeded)."""
    result = {}
    for code, name, critical, channels in CATEGORIES:
        result[code], _ = Category.objects.get_or_create(
            code=code, defaults={"name": name, "critical": critical, "default_channels": channels}
        )
    return result


@dataclass
class Family:
    guardian: Guardian
    first: Student
    second: Student
    hidden: Student  # the guardian has no contact rights for this one
    other_guardian: Guardian


def family_make(*, phone="+13125550142", email="parent@example.org"):
    district = DistrictFactory(name="Lakeview District")
    school = SchoolFactory(district=district, name="Lakeview Elementary")
    guardian = GuardianFactory(
        district=district,
        first_name="Alex",
        last_name="Rivera",
        mobile_phone=phone,
        mobile_phone_raw="(312) 555-0142",
        email=email,
    )
    # Explicit contacts: factory sequences could otherwise repeat the guardian's number.
    other = GuardianFactory(
        district=district,
        mobile_phone="+13125550143",
        mobile_phone_raw="(312) 555-0143",
        email="other.parent@example.org",
    )
    students = []
    for first_name in ("Maya", "Leo", "Sam"):
        student = StudentFactory(
            district=district, school=school, legal_first_name=first_name, legal_last_name="Rivera"
        )
        EnrollmentFactory(student=student, school=school)
        students.append(student)
    StudentGuardianFactory(student=students[0], guardian=guardian, priority=1)
    StudentGuardianFactory(student=students[1], guardian=guardian, priority=1)
    StudentGuardianFactory(student=students[2], guardian=guardian, contact_allowed=False)
    StudentGuardianFactory(student=students[0], guardian=other, priority=2)
    return Family(guardian, students[0], students[1], students[2], other)


CODE_RE = re.compile(r"\b(\d{6})\b")


def last_code_to(to: str) -> str:
    """The code in the newest test-provider message to ``to``."""
    messages = TestProvider.messages_to(to)
    assert messages, f"no message was sent to {to}"
    match = CODE_RE.search(messages[-1].body)
    assert match, messages[-1].body
    return match.group(1)
