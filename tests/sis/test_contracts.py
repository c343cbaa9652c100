"""Payloads shaped exactly as the reference documents them (captured shapes in fixtures/)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import requests

from attendance.models import GradeLevel
from sis.connectors.oneroster import mapping as oneroster
from sis.connectors.powerschool import mapping as powerschool
from sis.connectors.records import EnrollmentStatus, Entity, Status, grade_level_code

FIXTURES = Path(__file__).parent / "fixtures"


def load(name):
    return json.loads((FIXTURES / name).read_text())


def response(status, body):
    r = requests.Response()
    r.status_code = status
    r._content = json.dumps(body).encode()
    r.headers["Content-Type"] = "application/json"
    return r


def test_powerschool_single_object_instead_of_a_list():
    items = powerschool.as_list(load("powerschool/student_single.json")["students"]["student"])
    assert len(items) == 1
    (student,) = powerschool.map_student(items[0])
    assert student.source_id == "5999" and student.local_id == "103237"
    assert student.grade_level == "12" and student.school_id == "6"
    assert student.birth_date == dt.date(2008, 4, 2)
    (enrollment,) = powerschool.map_enrollment(items[0])
    assert enrollment.enrollment_status == EnrollmentStatus.ACTIVE
    assert enrollment.exit_date is None  # an active student's exit_date is the scheduled end


def test_powerschool_numbers_as_strings_and_missing_blocks():
    items = powerschool.as_list(load("powerschool/students_mixed.json")["students"]["student"])
    transferred, bare, preregistered = (next(iter(powerschool.map_student(i))) for i in items)
    assert transferred.source_id == "6001" and transferred.grade_level == "KG"
    assert not transferred.active
    assert bare.school_id is None and bare.birth_date is None and bare.active
    assert preregistered.grade_level == "PK"
    (enrollment,) = powerschool.map_enrollment(items[0])
    assert enrollment.enrollment_status == EnrollmentStatus.TRANSFERRED_OUT
    assert enrollment.exit_date == dt.date(2017, 1, 15)
    assert powerschool.as_list(None) == [] and powerschool.as_list("") == []


def test_powerschool_powerquery_guardian_record_with_string_values():
    record = powerschool.as_list(load("powerschool/guardian_powerquery.json")["record"])[0]
    (guardian,) = powerschool.map_guardian(record)
    (link,) = powerschool.map_student_guardian(record)
    assert guardian.source_id == "7001" and guardian.mobile_phone == "(555) 555-0101"
    assert link.relationship == "grandparent" and link.priority == 2
    assert not link.custody and link.contact_allowed and link.lives_with


def test_powerschool_error_body():
    message = powerschool.error_message(response(400, load("powerschool/error.json")))
    assert message == "Validation Failed (student/local_id/INVALID_FIELD)"


def test_oneroster_1_1_users():
    users = load("oneroster/users_1_1.json")["users"]
    (student,) = oneroster.map_item(Entity.STUDENT, users[0], version="1.1")
    assert student.school_id == "s-1" and student.grade_level == "03"
    assert list(oneroster.map_item(Entity.STUDENT, users[1], version="1.1")) == []
    (guardian,) = oneroster.map_item(Entity.GUARDIAN, users[1], version="1.1")
    assert guardian.mobile_phone == "(555) 555-0102"
    (link,) = oneroster.map_item(Entity.STUDENT_GUARDIAN, users[1], version="1.1")
    assert (link.student_id, link.guardian_id, link.relationship) == ("u-1", "p-1", "parent")
    (inactive,) = oneroster.map_item(Entity.STUDENT, users[2], version="1.1")
    assert inactive.status == Status.TO_BE_DELETED and not inactive.active  # 1.0 "inactive"


def test_oneroster_1_2_roles_and_primary_org():
    users = load("oneroster/users_1_2.json")["users"]
    (student,) = oneroster.map_item(Entity.STUDENT, users[0], version="1.2")
    assert student.school_id == "s-1" and student.state_id == "TX-700001"
    assert student.preferred_first_name == "Avi"
    enrollments = list(oneroster.map_item(Entity.ENROLLMENT, users[0], version="1.2"))
    by_school = {e.school_id: e for e in enrollments}
    assert by_school["s-1"].primary and by_school["s-1"].entry_date == dt.date(2026, 8, 17)
    assert by_school["s-2"].exit_date == dt.date(2026, 12, 18)
    assert by_school["s-2"].enrollment_status == EnrollmentStatus.INACTIVE
    links = list(oneroster.map_item(Entity.STUDENT_GUARDIAN, users[1], version="1.2"))
    assert [link.student_id for link in links] == ["u-1", "u-9"]
    assert {link.status for link in links} == {Status.TO_BE_DELETED}


def test_oneroster_status_info_set_list_and_single_object():
    assert oneroster.error_message(response(422, load("oneroster/error_list.json"))) == (
        "The filter field is not supported (invalid_filter_field)"
    )
    assert oneroster.error_message(response(401, load("oneroster/error_single.json"))) == (
        "Unauthorized (unauthorisedrequest)"
    )


@pytest.mark.parametrize(
    ("sent", "code"),
    [
        (4, "04"),
        ("4", "04"),
        ("04", "04"),
        (12, "12"),
        ("0", "KG"),
        ("k", "KG"),
        (-1, "PK"),
        ("-2", "PK"),
        ("pk", "PK"),
        ("UG", "UG"),
        ("other", "Other"),
        ("14", "Other"),
        ("Grade Four", "Other"),
        ("", ""),
        (None, ""),
    ],
)
def test_grade_levels_arrive_as_ceds_codes(sent: object, code: str) -> None:
    # A stored code outside GradeLevel's choices would make every form refuse the student.
    assert grade_level_code(sent) == code
    assert code == "" or code in GradeLevel.values
