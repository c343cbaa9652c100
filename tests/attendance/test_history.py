"""Every domain model keeps its history."""

from __future__ import annotations

import pytest
from django.apps import apps

from tests import factories

pytestmark = pytest.mark.django_db

AUDITED = [
    "District",
    "School",
    "Term",
    "Course",
    "Section",
    "Staff",
    "Student",
    "Guardian",
    "StudentGuardian",
    "Enrollment",
    "SectionEnrollment",
    "AttendanceCode",
    "AttendanceRecord",
    "ParticipationGrade",
]


@pytest.mark.parametrize("model_name", AUDITED)
def test_it_records_creation_and_change(model_name):
    factory = getattr(factories, f"{model_name}Factory")
    instance = factory()
    assert instance.history.count() == 1
    instance.save()
    assert instance.history.count() == 2
    assert instance.history.first().history_type == "~"


def test_every_attendance_model_is_audited_but_access_records():
    unaudited = {
        model.__name__
        for model in apps.get_app_config("attendance").get_models()
        if not model.__name__.startswith("Historical") and not hasattr(model, "history")
    }
    # Memberships are access configuration and the API access log is itself an audit record;
    # every model holding student data keeps history.
    assert unaudited == {"Membership", "ApiAccessLog"}
