"""factory_boy factories for every model, in one place. Names are generated: no real people."""

from __future__ import annotations

import datetime as dt

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User

from attendance.models import (
    AttendanceCode,
    AttendanceRecord,
    AttendanceSource,
    AttendanceStatus,
    Course,
    District,
    Enrollment,
    Guardian,
    Membership,
    MembershipRole,
    ParticipationGrade,
    School,
    Section,
    SectionEnrollment,
    Staff,
    Student,
    StudentGuardian,
    Term,
    TermKind,
)

YEAR_START = dt.date(2026, 8, 17)
YEAR_END = dt.date(2027, 6, 4)


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    is_staff = True
    password = factory.django.Password("pw")


class DistrictFactory(factory.django.DjangoModelFactory[District]):
    class Meta:
        model = District

    name = factory.Sequence(lambda n: f"District {n}")
    slug = factory.Sequence(lambda n: f"district-{n}")


class SchoolFactory(factory.django.DjangoModelFactory[School]):
    class Meta:
        model = School

    district = factory.SubFactory(DistrictFactory)
    name = factory.Sequence(lambda n: f"School {n}")
    local_id = factory.Sequence(lambda n: f"{100 + n}")


class TermFactory(factory.django.DjangoModelFactory[Term]):
    class Meta:
        model = Term

    district = factory.SubFactory(DistrictFactory)
    kind = TermKind.SCHOOL_YEAR
    name = factory.Sequence(lambda n: f"Year {n}")
    start_date = YEAR_START
    end_date = YEAR_END


class CourseFactory(factory.django.DjangoModelFactory[Course]):
    class Meta:
        model = Course

    district = factory.SubFactory(DistrictFactory)
    code = factory.Sequence(lambda n: f"C{n:04d}")
    title = factory.Sequence(lambda n: f"Course {n}")


class StaffFactory(factory.django.DjangoModelFactory[Staff]):
    class Meta:
        model = Staff

    district = factory.SubFactory(DistrictFactory)
    local_id = factory.Sequence(lambda n: f"T{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")


class SectionFactory(factory.django.DjangoModelFactory[Section]):
    class Meta:
        model = Section

    school = factory.SubFactory(SchoolFactory)
    course = factory.SubFactory(CourseFactory, district=factory.SelfAttribute("..school.district"))
    term = factory.SubFactory(TermFactory, district=factory.SelfAttribute("..school.district"))
    section_number = factory.Sequence(lambda n: str(n))
    periods = factory.LazyFunction(lambda: ["1"])


class StudentFactory(factory.django.DjangoModelFactory[Student]):
    class Meta:
        model = Student

    district = factory.SubFactory(DistrictFactory)
    local_id = factory.Sequence(lambda n: f"{100000 + n}")
    legal_first_name = factory.Faker("first_name")
    legal_last_name = factory.Faker("last_name")
    birth_date = dt.date(2015, 3, 14)
    grade_level = "05"


class GuardianFactory(factory.django.DjangoModelFactory[Guardian]):
    class Meta:
        model = Guardian

    district = factory.SubFactory(DistrictFactory)
    local_id = factory.Sequence(lambda n: f"G{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.Sequence(lambda n: f"guardian{n}@example.org")
    mobile_phone_raw = factory.Sequence(lambda n: f"(312) 555-01{n % 100:02d}")
    mobile_phone = factory.Sequence(lambda n: f"+1312555{n % 100 + 100:04d}")


class StudentGuardianFactory(factory.django.DjangoModelFactory[StudentGuardian]):
    class Meta:
        model = StudentGuardian

    student = factory.SubFactory(StudentFactory)
    guardian = factory.SubFactory(
        GuardianFactory, district=factory.SelfAttribute("..student.district")
    )


class EnrollmentFactory(factory.django.DjangoModelFactory[Enrollment]):
    class Meta:
        model = Enrollment

    student = factory.SubFactory(StudentFactory)
    school = factory.SubFactory(SchoolFactory, district=factory.SelfAttribute("..student.district"))
    entry_date = YEAR_START


class SectionEnrollmentFactory(factory.django.DjangoModelFactory[SectionEnrollment]):
    class Meta:
        model = SectionEnrollment

    section = factory.SubFactory(SectionFactory)
    student = factory.SubFactory(
        StudentFactory, district=factory.SelfAttribute("..section.school.district")
    )
    entry_date = YEAR_START


class AttendanceCodeFactory(factory.django.DjangoModelFactory[AttendanceCode]):
    class Meta:
        model = AttendanceCode

    district = factory.SubFactory(DistrictFactory)
    code = factory.Sequence(lambda n: f"A{n}")
    status = AttendanceStatus.ABSENT


class AttendanceRecordFactory(factory.django.DjangoModelFactory[AttendanceRecord]):
    class Meta:
        model = AttendanceRecord

    school = factory.SubFactory(SchoolFactory)
    student = factory.SubFactory(
        StudentFactory, district=factory.SelfAttribute("..school.district")
    )
    date = dt.date(2026, 9, 1)
    status = AttendanceStatus.ABSENT
    source = AttendanceSource.TEACHER


class ParticipationGradeFactory(factory.django.DjangoModelFactory[ParticipationGrade]):
    class Meta:
        model = ParticipationGrade

    section = factory.SubFactory(SectionFactory)
    student = factory.SubFactory(
        StudentFactory, district=factory.SelfAttribute("..section.school.district")
    )
    grading_period = factory.SelfAttribute("section.term")
    value = 95
    rule = "attendance-share-v1"
    computed_at = factory.LazyFunction(lambda: dt.datetime(2026, 10, 1, tzinfo=dt.UTC))


class MembershipFactory(factory.django.DjangoModelFactory[Membership]):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    district = factory.SubFactory(DistrictFactory)
    role = MembershipRole.DISTRICT_ADMIN


def guardian_admin_form(district: District, **overrides: object) -> dict[str, object]:
    """The fields of the admin's guardian form, filled in."""
    data = {
        "district": district.pk,
        "local_id": "G-77",
        "first_name": "Rae",
        "last_name": "Stone",
        "email": "rae.stone@example.org",
        "mobile_phone_raw": "(312) 555-0188",
        "home_phone_raw": "",
        "work_phone_raw": "",
        "preferred_language": "es",
        "active": "on",
    }
    return {**data, **overrides}
