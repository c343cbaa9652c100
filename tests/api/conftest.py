from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from gateway.inbound.api_keys import api_key_create
from tests.factories import (
    AttendanceCodeFactory,
    AttendanceRecordFactory,
    DistrictFactory,
    EnrollmentFactory,
    GuardianFactory,
    ParticipationGradeFactory,
    SchoolFactory,
    SectionFactory,
    StudentFactory,
    StudentGuardianFactory,
    TermFactory,
)

# Every scope, so the schemathesis run reaches every operation (not only its 403s).
ALL_SCOPES = sorted(settings.API_SCOPES)


@dataclass
class Tenant:
    district: object
    school: object
    term: object
    section: object
    students: list
    guardian: object
    enrollment: object
    record: object
    grade: object
    code: object
    key: str


def make_tenant(prefix: str, scopes=ALL_SCOPES) -> Tenant:
    district = DistrictFactory(name=f"{prefix} District", slug=f"{prefix.lower()}-district")
    school = SchoolFactory(district=district, name=f"{prefix} Elementary")
    term = TermFactory(district=district)
    section = SectionFactory(school=school, term=term)
    students = []
    enrollment = None
    for n in range(3):
        student = StudentFactory(
            district=district,
            local_id=f"{prefix}{n:03d}",
            legal_last_name=f"{prefix}Last{n}",
            school=school,
        )
        enrollment = EnrollmentFactory(student=student, school=school)
        students.append(student)
    guardian = GuardianFactory(district=district)
    StudentGuardianFactory(student=students[0], guardian=guardian, is_primary=True)
    record = AttendanceRecordFactory(
        school=school, student=students[0], date=dt.date(2026, 9, 1), status="absent"
    )
    grade = ParticipationGradeFactory(section=section, student=students[0])
    code = AttendanceCodeFactory(district=district, code="T", status="tardy")
    key = api_key_create(
        district=district,  # type: ignore[arg-type]
        name=f"{prefix} LMS",
        scopes=scopes,
    ).plaintext
    return Tenant(
        district, school, term, section, students, guardian, enrollment, record, grade, code, key
    )


@pytest.fixture
def tenant(db) -> Tenant:
    return make_tenant("A")


@pytest.fixture
def other(db) -> Tenant:
    return make_tenant("B")


@pytest.fixture
def client(tenant) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_X_API_KEY=tenant.key)
    return api
