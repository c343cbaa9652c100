"""A worker killed (SIGKILL) at random points of a sync: after redelivery the database equals a
clean run's, with no duplicate rows and no doubled history. Real Celery worker, real Redis
broker, real PostgreSQL, sandbox over HTTP."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection as db

from attendance.models import District
from config.celery import app as celery_app
from syncing.engine.run import run_execute
from syncing.models import RunStatus, SyncRun
from syncing.services import sync_start
from tests.factories import DistrictFactory
from tests.syncing.sandbox import connection_for, sandbox_for

ROOT = Path(__file__).resolve().parent.parent.parent
STUDENTS = 1000
KILLS = 3

# Content of every synced table for one district, without ids or timestamps: two districts
# synced from the same SIS data must have equal digests.
DIGESTS = {
    "school": "SELECT name, local_id, active FROM attendance_school WHERE district_id = %s",
    "student": """
        SELECT s.local_id, s.legal_first_name, s.legal_last_name, s.birth_date, s.grade_level,
               s.active, sc.local_id
        FROM attendance_student s LEFT JOIN attendance_school sc ON sc.id = s.school_id
        WHERE s.district_id = %s""",
    "guardian": """
        SELECT first_name, last_name, email, mobile_phone_raw, mobile_phone, active
        FROM attendance_guardian WHERE district_id = %s""",
    "student_guardian": """
        SELECT s.local_id, g.email, sg.relationship, sg.contact_allowed, sg.active
        FROM attendance_studentguardian sg JOIN attendance_student s ON s.id = sg.student_id
        JOIN attendance_guardian g ON g.id = sg.guardian_id WHERE s.district_id = %s""",
    "enrollment": """
        SELECT s.local_id, sc.local_id, e.entry_date, e.exit_date, e.exit_reason
        FROM attendance_enrollment e JOIN attendance_student s ON s.id = e.student_id
        JOIN attendance_school sc ON sc.id = e.school_id WHERE s.district_id = %s""",
    "section_enrollment": """
        SELECT s.local_id, sec.section_number, c.code, se.entry_date, se.exit_date
        FROM attendance_sectionenrollment se JOIN attendance_student s ON s.id = se.student_id
        JOIN attendance_section sec ON sec.id = se.section_id
        JOIN attendance_course c ON c.id = sec.course_id WHERE s.district_id = %s""",
    "student_history": """
        SELECT h.local_id, h.history_type, h.legal_last_name, h.active
        FROM attendance_historicalstudent h WHERE h.district_id = %s""",
}


def _digest(district: District) -> dict[str, tuple[int, str]]:
    result = {}
    with db.cursor() as cursor:
        for name, sql in DIGESTS.items():
            cursor.execute(
                f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM ({sql}) t",  # noqa: S608
                [district.pk],
            )
            result[name] = tuple(cursor.fetchone())
    return result


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


@pytest.fixture
def sync_worker(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "TEST_DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db.settings_dict['NAME']}",
        "CELERY_MAX_DELIVERIES": "10",
        "CELERY_VISIBILITY_TIMEOUT": "60",
        "SYNC_BATCH_SIZE": "500",
    }
    celery_app.control.purge()
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "sync",
             "--concurrency", "1", "--pool", "prefork", "--loglevel", "WARNING",
             "--hostname", f"sync-test-{uuid.uuid4().hex[:8]}@%h"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            yield process, log_path
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_killed_workers_resume_to_the_same_database_as_a_clean_run(sync_worker):
    process, log_path = sync_worker
    rng = random.Random(5)
    with sandbox_for(students=STUDENTS, page_cap=200) as sandbox:
        clean_district = DistrictFactory(name="Clean")
        clean = run_execute(
            sync_start(connection=connection_for(sandbox, clean_district), enqueue=False)[0].pk
        )
        assert clean.status == RunStatus.COMPLETED

        district = DistrictFactory(name="Killed")
        connection = connection_for(sandbox, district)
        run, _ = sync_start(connection=connection)  # queued to the real worker
        kills = 0
        seen_phases = set()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.status not in (RunStatus.PENDING, RunStatus.RUNNING):
                break
            if kills < KILLS and run.status == RunStatus.RUNNING:
                # Let it work a random while, then kill the process running the task.
                time.sleep(rng.uniform(0.5, 3.0))
                run.refresh_from_db()
                if run.status != RunStatus.RUNNING:
                    continue
                children = _children(process.pid)
                if children:
                    seen_phases.add(run.phase)
                    os.kill(children[0], signal.SIGKILL)
                    kills += 1
                    time.sleep(0.5)
                continue
            time.sleep(0.3)
        run.refresh_from_db()
        log = log_path.read_text(errors="replace")
        assert run.status == RunStatus.COMPLETED, (run.status, run.error_summary, log[-3000:])
    assert kills == KILLS, log[-2000:]
    assert SyncRun.objects.filter(connection=connection).count() == 1
    assert _digest(district) == _digest(clean_district)
