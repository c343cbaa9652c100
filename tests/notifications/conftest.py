from __future__ import annotations

import datetime as dt

import pytest

from notifications.models import Category
from notifications.providers import providers_reset
from notifications.providers.test import TestProvider
from notifications.services.templates import templates_cache_clear
from tests.factories import (
    DistrictFactory,
    EnrollmentFactory,
    GuardianFactory,
    SchoolFactory,
    StudentFactory,
    StudentGuardianFactory,
)
from tests.notifications.twilio_fake import TwilioFake

CATEGORIES = [
    ("attendance", "Attendance", False, ["sms", "email"]),
    ("chronic_absence", "Chronic absence", False, ["sms", "email"]),
    ("general", "General announcements", False, ["email"]),
    ("emergency", "Emergency", True, ["sms", "email"]),
    ("operational", "Operational (administrators)", False, ["email"]),
]


@pytest.fixture
def categories(db):
    """The seeded categories (transactional tests flush what the migration seeded)."""
    result = {}
    for code, name, critical, channels in CATEGORIES:
        result[code], _ = Category.objects.get_or_create(
            code=code, defaults={"name": name, "critical": critical, "default_channels": channels}
        )
    return result


@pytest.fixture(autouse=True)
def notify_settings(settings):
    settings.NOTIFY_SMS_PROVIDER = "test"
    settings.NOTIFY_EMAIL_PROVIDER = "test"
    settings.NOTIFY_ATTENDANCE_HOLD_SECONDS = 0
    settings.PUBLIC_BASE_URL = "http://testserver"
    providers_reset()
    TestProvider.reset()
    templates_cache_clear()
    yield settings
    providers_reset()
    TestProvider.reset()
    templates_cache_clear()


# A school-day morning in Chicago (the factories' district time zone): 2026-09-01 10:00 CDT.
NOW = dt.datetime(2026, 9, 1, 15, 0, tzinfo=dt.UTC)
TODAY = dt.date(2026, 9, 1)


@pytest.fixture
def family(categories):
    """A student with two guardians; each has a verified mobile and e-mail contact point."""
    district = DistrictFactory()
    school = SchoolFactory(district=district)
    student = StudentFactory(district=district, school=school)
    EnrollmentFactory(student=student, school=school)
    mother = GuardianFactory(district=district)
    father = GuardianFactory(district=district)
    links = [
        StudentGuardianFactory(student=student, guardian=mother, priority=1),
        StudentGuardianFactory(student=student, guardian=father, priority=2),
    ]
    return {
        "district": district,
        "school": school,
        "student": student,
        "mother": mother,
        "father": father,
        "links": links,
    }


ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-auth-token-current"
PREVIOUS_TOKEN = "test-auth-token-previous"
SERVICE_SID = "MG" + "fedcba9876543210" * 2


@pytest.fixture
def fake():
    server = TwilioFake(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    yield server
    server.stop()


@pytest.fixture
def twilio(settings, fake):
    settings.NOTIFY_SMS_PROVIDER = "twilio"
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    settings.TWILIO_AUTH_TOKEN_PREVIOUS = PREVIOUS_TOKEN
    settings.TWILIO_MESSAGING_SERVICE_SID = SERVICE_SID
    settings.TWILIO_FROM_NUMBER = ""
    settings.TWILIO_API_BASE_URL = fake.url
    settings.TWILIO_SEGMENTS_PER_SECOND = None
    providers_reset()
    return fake
