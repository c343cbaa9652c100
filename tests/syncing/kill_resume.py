"""Kill-and-resume machinery shared by the test (small district) and the ``sync`` benchmark
(20,000 students): a real Celery worker for the ``sync`` queue, SIGKILLs of the process running
the task at random points, and table digests that must equal a clean run's."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.db import connection as db

from syncing.models import RunStatus, SyncRun
from tests.workers import celery_worker

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
    "contact_point": """
        SELECT g.local_id, c.kind, c.value, c.source, c.verified, c.active
        FROM notifications_contactpoint c JOIN attendance_guardian g ON g.id = c.guardian_id
        WHERE g.district_id = %s""",
    "student_history": """
        SELECT h.local_id, h.history_type, h.legal_last_name, h.active
        FROM attendance_historicalstudent h WHERE h.district_id = %s""",
}


def district_digest(district_id: int) -> dict[str, tuple[int, str]]:
    """(row count, md5 of the sorted rows) per synced table of one district."""
    result = {}
    with db.cursor() as cursor:
        for name, sql in DIGESTS.items():
            cursor.execute(
                f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM ({sql}) t",  # noqa: S608
                [district_id],
            )
            result[name] = tuple(cursor.fetchone())
    return result


def pool_children(pid: int) -> list[int]:
    """Process ids of a worker's pool children (the processes that run its tasks)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


@contextmanager
def sync_worker(log_path: Path, *, batch_size: int = 500) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker (one prefork child) for the ``sync`` queue, on this process's
    database and broker; stopped on exit. Redeliveries come quickly (60 s visibility) and
    often enough (10 deliveries) for several kills of one run."""
    env = {
        "CELERY_MAX_DELIVERIES": "10",
        "CELERY_VISIBILITY_TIMEOUT": "60",
        "SYNC_BATCH_SIZE": str(batch_size),
    }
    with celery_worker(queue="sync", log_path=log_path, env=env) as process:
        yield process


def pauses_within(clean: SyncRun, kills: int) -> tuple[float, float]:
    """A pause range for :func:`kill_while_running` that fits inside the shorter phase of
    ``clean``, a clean run of the same data: each pause at most that phase's duration over
    ``kills + 1``. Fixed pauses outlasted a fast machine's staging of a small district, and
    the kill meant for staging landed in applying."""
    if clean.started_at is None or clean.staged_at is None or clean.finished_at is None:
        raise ValueError("the clean run has not finished")
    shorter = min(
        (clean.staged_at - clean.started_at).total_seconds(),
        (clean.finished_at - clean.staged_at).total_seconds(),
    )
    longest = shorter / (kills + 1)
    return longest / 4, longest


def kill_while_running(
    run: SyncRun,
    worker: subprocess.Popen[Any],
    *,
    kills: int,
    rng: random.Random,
    pause: tuple[float, float] = (0.5, 3.0),
    timeout: float = 240,
    phases: Sequence[str] = (),
) -> tuple[int, list[str]]:
    """SIGKILL the process running ``run`` ``kills`` times, each after a random pause while it
    runs, then wait for the run to come to rest (the broker redelivers after each kill).
    ``phases`` (optional, one per kill) makes a kill wait until the run is in that phase first,
    so the kills land in staging *and* in applying (a kill while staging restarts its entity, so
    time alone rarely reaches the apply phase of a big run). Returns the kills made and the
    phases they hit."""
    made: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status not in (RunStatus.PENDING, RunStatus.RUNNING):
            break
        wanted = phases[len(made)] if len(made) < len(phases) else None
        if len(made) < kills and run.status == RunStatus.RUNNING and wanted in (None, run.phase):
            time.sleep(rng.uniform(*pause))
            run.refresh_from_db()
            if run.status != RunStatus.RUNNING:
                continue
            children = pool_children(worker.pid)
            if children:
                made.append(run.phase)
                os.kill(children[0], signal.SIGKILL)
                time.sleep(0.5)
            continue
        # Often enough that a pause starts soon after its phase does.
        time.sleep(0.05)
    run.refresh_from_db()
    return len(made), made
