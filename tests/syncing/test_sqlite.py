"""`make run` on SQLite: the portable sync engine, lock and bulk writers, end to end.

The suite runs on PostgreSQL, so this test runs the project in subprocesses with the dev
settings on a copy of a freshly migrated SQLite file (no REDIS_URL; tests/sqlite_project.py):
connect to the sandbox SIS (started here, over real HTTP), sync, re-sync, advance the sandbox
a day, sync again, then post a bulk attendance batch through the API's writer.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tests.sqlite_project import last_json, manage, project_env
from tests.syncing.sandbox import sandbox_for

_MODELS = (
    "School", "Term", "Course", "Staff", "Section", "Student", "Enrollment", "Guardian",
    "StudentGuardian", "SectionEnrollment",
)  # fmt: skip

# Counts and history totals of the synced models, as JSON on the last line.
_TOTALS = f"""
import json
from attendance import models
names = {_MODELS!r}
from tests.syncing.helpers import links_with_wrong_school
print(json.dumps({{
    "rows": {{n: getattr(models, n).objects.count() for n in names}},
    "history": {{n: getattr(models, n).history.count() for n in names}},
    "links_with_wrong_school": links_with_wrong_school(),
}}))
"""

# Bulk attendance for three synced students: created, then the same batch unchanged, then one
# changed (updated, with one history row).
_BULK = """
import json
from django.utils import timezone
from attendance.models import AttendanceRecord, Enrollment
from attendance.services_bulk import AttendanceItem, attendance_record_bulk
spans = list(Enrollment.objects.filter(exit_date__isnull=True).order_by("id")[:3])
day = max(span.entry_date for span in spans)
def post(statuses):
    items = [AttendanceItem(date=day, student_id=span.student_id, status=status)
             for span, status in zip(spans, statuses)]
    result = attendance_record_bulk(district_id=spans[0].student.district_id, items=items)
    return [r.outcome for r in result.results]
outcomes = [post(["present", "absent", "present"]), post(["present", "absent", "present"]),
            post(["present", "present", "present"])]
changed = AttendanceRecord.objects.get(student_id=spans[1].student_id, date=day)
print(json.dumps({"outcomes": outcomes, "status": changed.status,
                  "history": list(changed.history.order_by("history_id")
                                  .values_list("history_type", "status"))}))
"""


def _env(tmp_path: Path) -> dict[str, str]:
    return project_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")


def _sync(env: dict[str, str]) -> dict[str, Any]:
    summary = last_json(manage(env, "sync", "Demo", "--full", "--json"))
    assert summary["event"] == "summary"
    assert summary["status"] == "completed", summary
    return dict(summary)


def test_make_run_on_sqlite_syncs_resyncs_nothing_applies_a_day_and_posts_attendance(
    tmp_path, migrated_sqlite
):
    env = _env(tmp_path)
    shutil.copyfile(migrated_sqlite, tmp_path / "db.sqlite3")
    with sandbox_for(students=60) as sandbox:
        manage(
            env,
            "sis_connection", "add", "--district", "Demo District", "--name", "Demo",
            "--provider", "powerschool", "--base-url", sandbox.api_base_url,
            "--client-id", sandbox.client_id, "--client-secret", sandbox.client_secret,
        )  # fmt: skip
        first = _sync(env)
        expected = sandbox.counts()
        totals = last_json(manage(env, "shell", "-c", _TOTALS))
        entity = {
            "School": "school", "Term": "term", "Course": "course", "Staff": "staff",
            "Section": "section", "Student": "student", "Enrollment": "enrollment",
            "Guardian": "guardian", "StudentGuardian": "student_guardian",
            "SectionEnrollment": "section_enrollment",
        }  # fmt: skip
        assert totals["rows"] == {name: expected[entity[name]] for name in _MODELS}
        # One "+" history row per created row, written by the portable bulk writer.
        assert totals["history"] == totals["rows"]
        assert totals["links_with_wrong_school"] == []
        assert first["changes_applied"] == sum(totals["rows"].values())

        # An identical re-sync writes nothing, history included.
        again = _sync(env)
        assert again["changes_total"] == 0
        assert last_json(manage(env, "shell", "-c", _TOTALS)) == totals

        changes = {c["kind"]: c for c in sandbox.control("advance", {"days": 1})["changes"]}
        day = _sync(env)
        assert day["changes_applied"] > 0
        after = last_json(manage(env, "shell", "-c", _TOTALS))
        assert after["rows"]["Student"] == sandbox.counts()["student"]
        edit, moved = changes["edit"], changes["transfer"]
        check = f"""
import json
from attendance.models import Student
edited = Student.objects.get(local_id="{int(edit["id"]) + 100000}")
moved = Student.objects.get(local_id="{int(moved["id"]) + 100000}")
spans = sorted(moved.enrollments.values_list(
    "school__local_id", "exit_date", "exit_reason"))
print(json.dumps({{"last_name": edited.legal_last_name, "school": moved.school.local_id,
                   "spans": [[s, e is not None, r] for s, e, r in spans]}}))
"""
        state = last_json(manage(env, "shell", "-c", check))
        assert state["last_name"] == edit["detail"]["new"]
        assert state["school"] == str(moved["detail"]["to"])
        # The old span closed as a transfer, the new one open at the new school.
        assert sorted(state["spans"]) == sorted(
            [
                [str(moved["detail"]["from"]), True, "transferred"],
                [str(moved["detail"]["to"]), False, ""],
            ]
        )
        assert _sync(env)["changes_total"] == 0

    bulk = last_json(manage(env, "shell", "-c", _BULK))
    assert bulk["outcomes"] == [
        ["created", "created", "created"],
        ["unchanged", "unchanged", "unchanged"],
        ["unchanged", "updated", "unchanged"],
    ]
    assert bulk["status"] == "present"
    assert bulk["history"] == [["+", "absent"], ["~", "present"]]
