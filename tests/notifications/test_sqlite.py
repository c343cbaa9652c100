"""`make run` on SQLite: an absence notifies a guardian, participation grades compute and a
gradebook column is created once — with the portable twins of the PostgreSQL statements.

The suite runs on PostgreSQL, so this test runs the project in a subprocess with the dev
settings exactly as ``make run`` has them with no services (no DATABASE_URL, no REDIS_URL: the
SQLite file in VAR_DIR), Celery tasks eager and the in-process ``test`` SMS provider.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.sqlite_project import last_json, manage, project_env

# An absence recorded through the service the API uses; the receiver's tasks run eagerly:
# plan, dispatch (portable INSERT … SELECT twin), cancel check, claim, send, record.
_NOTIFY = """
import datetime as dt, json, uuid, zoneinfo
from django.utils import timezone
from attendance.models import AttendanceStatus
from attendance.services import attendance_record
from notifications.models import Delivery, DeliveryEvent, Notification
from notifications.providers.base import SendResult
from notifications.providers.test import TestProvider
from notifications.services import sending
from tests.factories import (DistrictFactory, EnrollmentFactory, GuardianFactory, SchoolFactory,
                             StudentFactory, StudentGuardianFactory)

district = DistrictFactory()
school = SchoolFactory(district=district)
student = StudentFactory(district=district, school=school)
today = timezone.now().astimezone(zoneinfo.ZoneInfo(district.timezone)).date()
EnrollmentFactory(student=student, school=school, entry_date=today - dt.timedelta(days=30))
guardian = GuardianFactory(district=district, email="")
StudentGuardianFactory(student=student, guardian=guardian, priority=1)
points = list(guardian.contact_points.all())  # built from the roster when it was saved
attendance_record(student=student, date=today, status=AttendanceStatus.ABSENT)

delivery = Delivery.objects.get(notification__guardian=guardian)
sent = {
    "points": [[p.kind, p.verified] for p in points],
    "delivery": [delivery.channel, delivery.status, delivery.to == guardian.mobile_phone,
                 delivery.attempts, delivery.provider_message_id],
    "notification": delivery.notification.status,
    "outbox": [[m.channel, m.to == guardian.mobile_phone, m.delivery_uuid == str(delivery.uuid)]
               for m in TestProvider.outbox],
    "events": list(DeliveryEvent.objects.filter(delivery=delivery).values_list("source", "status")),
}
# Sending it again claims nothing: no second message.
sent["again"] = [o.status for o in sending.deliveries_send_many(delivery_ids=[delivery.pk])]
sent["outbox_after"] = len(TestProvider.outbox)
# A late, lower status never moves the row back nor replaces the provider id.
sending._record_sent([(delivery, SendResult("other-id", "accepted", "accepted"))])
delivery.refresh_from_db()
sent["forward_only"] = [delivery.status, delivery.provider_message_id]

# A pending delivery of a cancelled notification is cancelled, not sent.
clone = Delivery.objects.get(pk=delivery.pk)
clone.pk, clone.uuid, clone.idempotency_key = None, uuid.uuid4(), "clone"
clone.status, clone.provider_message_id, clone.attempts = "pending", "", 0
clone.save()
Notification.objects.filter(pk=delivery.notification_id).update(status="cancelled")
outcomes = sending.deliveries_send_many(delivery_ids=[clone.pk])
clone.refresh_from_db()
sent["cancelled"] = {
    "outcomes": [o.status for o in outcomes],
    "row": [clone.status, clone.error_code, clone.attempts],
    "events": list(
        DeliveryEvent.objects.filter(delivery=clone).values_list("status", "error_code")
    ),
    "outbox": len(TestProvider.outbox),
}
print(json.dumps(sent))
"""

# The parametrised cases of tests/attendance/test_participation.py, one student each.
_CASES = [
    (["present"] * 4, "100.00"),
    (["present"] * 3 + ["absent"], "75.00"),
    (["present", "tardy"], "75.00"),
    (["present", "excused_tardy"], "100.00"),
    (["school_activity", "absent"], "50.00"),
    (["absent", "excused_absence", "present"], "50.00"),
    (["present", "present", "absent"], "66.67"),
    (["tardy", "tardy", "present"], "66.67"),
    (["excused_absence"], None),
]

_GRADES = f"""
import datetime as dt, json
from attendance.models import AttendanceRecord, ParticipationGrade, TermKind
from attendance.services_participation import participation_grades_compute
from tests.factories import (AttendanceRecordFactory, DistrictFactory, SchoolFactory,
                             SectionEnrollmentFactory, SectionFactory, StudentFactory, TermFactory)

# Each script is a new process whose factory sequences start again: distinct district slugs.
district = DistrictFactory(name="Grades", slug="grades")
school = SchoolFactory(district=district)
year = TermFactory(district=district)
period = TermFactory(district=district, parent=year, kind=TermKind.GRADING_PERIOD, name="Q1",
                     start_date=dt.date(2026, 9, 1), end_date=dt.date(2026, 10, 31))
section = SectionFactory(school=school, term=year)
students = []
for statuses, _ in {_CASES!r}:
    student = SectionEnrollmentFactory(section=section, student=StudentFactory(district=district),
                                       entry_date=dt.date(2026, 8, 17)).student
    students.append(student)
    for n, status in enumerate(statuses):
        AttendanceRecordFactory(school=school, student=student, section=section, status=status,
                                date=dt.date(2026, 9, 1) + dt.timedelta(days=n))
# Outside the period, and a student not enrolled in the section: neither counts.
AttendanceRecordFactory(school=school, student=students[0], section=section, status="absent",
                        date=dt.date(2026, 11, 2))
AttendanceRecordFactory(school=school, student=StudentFactory(district=district),
                        section=section, status="present", date=dt.date(2026, 9, 1))

def grades():
    found = dict(ParticipationGrade.objects.values_list("student_id", "value"))
    return [str(found[s.pk]) if s.pk in found else None for s in students]

out = {{"dry_run": participation_grades_compute(grading_period=period, dry_run=True).as_dict(),
        "dry_run_rows": ParticipationGrade.objects.count()}}
out["first"] = participation_grades_compute(grading_period=period).as_dict()
out["grades"] = grades()
out["again"] = participation_grades_compute(grading_period=period).as_dict()
record = AttendanceRecord.objects.get(student=students[1], date=dt.date(2026, 9, 4))
record.status = "present"
record.save()
out["changed"] = participation_grades_compute(grading_period=period).as_dict()
out["grades_after"] = grades()
grade = ParticipationGrade.objects.get(student=students[1])
out["history"] = list(grade.history.order_by("history_id").values_list("history_type", "value"))
out["history"] = [[t, str(v)] for t, v in out["history"]]
print(json.dumps(out))
"""

# Two workers want the same gradebook column at once: the SIS is asked once.
_COLUMN = """
import json, threading, time
from django.db import connection
from sis.gradebook import DatabaseColumnStore
from sis.models import GradebookColumn, SISConnection
from tests.factories import DistrictFactory

sis = SISConnection.objects.create(
    district=DistrictFactory(name="Columns", slug="columns"), name="Gradebook", provider="test"
)
calls, got = [], []
def create():
    calls.append(1)
    time.sleep(0.3)
    return f"column-{len(calls)}"
def worker():
    try:
        got.append(DatabaseColumnStore(sis.pk).get_or_create("sas-1-2", create))
    finally:
        connection.close()
threads = [threading.Thread(target=worker) for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"calls": len(calls), "got": got,
                  "rows": list(GradebookColumn.objects.values_list("key", "sis_id"))}))
"""


def _env(tmp_path: Path) -> dict[str, str]:
    # No DATABASE_URL: the SQLite file of `make run` (IMMEDIATE transactions), in VAR_DIR.
    return project_env(
        tmp_path,
        SMS_PROVIDER="test",
        CELERY_TASK_ALWAYS_EAGER="true",
        NOTIFY_ATTENDANCE_HOLD_SECONDS="0",
    )


def _shell(env: dict[str, str], script: str) -> Any:
    return last_json(manage(env, "shell", "-c", script, timeout=120))


def test_on_sqlite_an_absence_is_sent_grades_compute_and_a_column_is_created_once(
    tmp_path, migrated_sqlite
):
    env = _env(tmp_path)
    shutil.copyfile(migrated_sqlite, tmp_path / "var" / "db.sqlite3")

    sent = _shell(env, _NOTIFY)
    assert sent["points"] == [["sms", True]]
    assert sent["delivery"] == ["sms", "sent", True, 1, "test-1"]
    assert sent["notification"] == "sent"
    assert sent["outbox"] == [["sms", True, True]]
    assert sent["events"] == [["send", "sent"]]
    assert sent["again"] == []
    assert sent["outbox_after"] == 1
    assert sent["forward_only"] == ["sent", "test-1"]
    assert sent["cancelled"] == {
        "outcomes": ["cancelled"],
        "row": ["cancelled", "cancelled", 0],
        "events": [["cancelled", "cancelled"]],
        "outbox": 1,
    }

    graded = _shell(env, _GRADES)
    expected = [value for _, value in _CASES]
    counted = sum(1 for value in expected if value is not None)
    assert graded["dry_run"]["computed"] == counted
    assert graded["dry_run"]["created"] == counted
    assert graded["dry_run_rows"] == 0
    assert graded["first"]["created"] == counted and graded["first"]["updated"] == 0
    assert graded["grades"] == expected
    assert graded["again"]["unchanged"] == counted
    assert graded["again"]["created"] == graded["again"]["updated"] == 0
    assert graded["changed"]["updated"] == 1 and graded["changed"]["created"] == 0
    assert graded["grades_after"] == [expected[0], "100.00", *expected[2:]]
    assert graded["history"] == [["+", "75.00"], ["~", "100.00"]]

    column = _shell(env, _COLUMN)
    assert column == {
        "calls": 1,
        "got": ["column-1", "column-1"],
        "rows": [["sas-1-2", "column-1"]],
    }
