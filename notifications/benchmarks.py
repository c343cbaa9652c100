"""Notification fan-out (``make bench``): plan and dispatch notifications for 10,000 absences
(two guardians each, mixed preferences) to the Twilio fake (SMS) and the test provider
(e-mail), rate limits off; then the same pipeline with a 10 SMS/s limit, checked against the
fake's recorded arrival times. ``full=False`` uses 500 absences.

Every absence goes the real way, in batches of 100 as a bulk attendance import would:
``attendance_changes_handle`` (resolution → Notification rows) → ``notifications_dispatch_many``
(Delivery rows) → ``deliveries_send_many`` (claim, contact point locks per group, provider
calls, outcomes recorded in bulk), in ``PROCESSES`` worker processes like Celery's prefork pool
(the Twilio fake answers from this process). The baseline is the per-record path
(``attendance_change_handle`` with Celery eager, one record at a time) in this process, on a
tenth of the records.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import zoneinfo
from collections.abc import Callable
from pathlib import Path

from django.db import connection, transaction
from django.test.utils import override_settings

from attendance.models import (
    AttendanceRecord,
    AttendanceSource,
    AttendanceStatus,
    District,
    Enrollment,
    Guardian,
    School,
    Student,
    StudentGuardian,
)
from config.celery import app as celery_app
from core.bench import BenchResult, benchmark
from notifications.models import (
    HANDED_OVER_STATUSES_LIST,
    Category,
    Channel,
    ContactPoint,
    ContactSource,
    Delivery,
    Notification,
    Preference,
)
from notifications.providers import providers_reset
from notifications.services.events import attendance_change_handle

PROCESSES = 4
ROOT = Path(__file__).resolve().parent.parent
SLUG = "bench-notify"
CATEGORIES = [
    ("attendance", "Attendance", False, ["sms", "email"]),
    ("chronic_absence", "Chronic absence", False, ["sms", "email"]),
    ("general", "General announcements", False, ["email"]),
    ("emergency", "Emergency", True, ["sms", "email"]),
    ("operational", "Operational (administrators)", False, ["email"]),
]


def _district(students: int, today: dt.date) -> tuple[District, list[int]]:
    for code, name, critical, channels in CATEGORIES:
        Category.objects.get_or_create(
            code=code, defaults={"name": name, "critical": critical, "default_channels": channels}
        )
    slug = f"{SLUG}-{students}"
    district = District.objects.filter(slug=slug).first()
    if district is None:
        district = _generate(slug, students)
    Notification.objects.filter(district=district).delete()
    AttendanceRecord.objects.filter(student__district=district).delete()
    school = School.objects.get(district=district)
    ids = list(Student.objects.filter(district=district).values_list("pk", flat=True))
    records = AttendanceRecord.objects.bulk_create(
        AttendanceRecord(
            school=school,
            student_id=pk,
            date=today,
            status=AttendanceStatus.ABSENT,
            source=AttendanceSource.SIS,
        )
        for pk in ids
    )
    return district, [r.pk for r in records]


def _generate(slug: str, students: int) -> District:
    """Set-based inserts: seconds, not minutes (no history rows: benchmark data only)."""
    with transaction.atomic():
        district = District.objects.create(name=f"Bench notify {students}", slug=slug)
        school = School.objects.create(district=district, name="Bench school", local_id="BN1")
        created = Student.objects.bulk_create(
            Student(
                district=district,
                local_id=f"BN{n}",
                legal_first_name=f"First{n}",
                legal_last_name=f"Last{n % 997}",
                grade_level="05",
                school=school,
            )
            for n in range(students)
        )
        Enrollment.objects.bulk_create(
            Enrollment(student=s, school=school, entry_date=dt.date(2020, 8, 1)) for s in created
        )
        guardians = Guardian.objects.bulk_create(
            Guardian(
                district=district,
                first_name=f"G{n}",
                last_name="Bench",
                email=f"bench{n}@example.org",
                mobile_phone=f"+1555{n:07d}",  # 555 is no area code: clearly fake
                mobile_phone_raw=f"555{n:07d}",
            )
            for n in range(2 * students)
        )
        StudentGuardian.objects.bulk_create(
            StudentGuardian(student=s, guardian=guardians[2 * i + k], priority=k + 1)
            for i, s in enumerate(created)
            for k in (0, 1)
        )
        ContactPoint.objects.bulk_create(
            ContactPoint(
                guardian=g,
                kind=kind,
                value=g.mobile_phone if kind == Channel.SMS else g.email,
                source=ContactSource.SIS,
                verified=True,
            )
            for g in guardians
            for kind in (Channel.SMS, Channel.EMAIL)
        )
        # Mixed preferences for the second guardian: SMS only, e-mail only, daily digest.
        mixes: list[dict[str, object]] = [
            {"channels": ["sms"]},
            {"channels": ["email"]},
            {"delivery_mode": "digest"},
        ]
        Preference.objects.bulk_create(
            Preference(guardian=guardians[2 * i + 1], **mixes[i % 3]) for i in range(students)
        )
    return district


BATCH = 100
# A worker process imports Django first, then runs its share of the batches (see worker_main).
_WORKER_CODE = (
    "import django; django.setup(); from notifications.benchmarks import worker_main; worker_main()"
)


def _pipeline(batch: list[int], now: dt.datetime) -> None:
    """One batch of records the way a worker running a bulk attendance import takes it:
    plan → dispatch → send (the batch services)."""
    from notifications.services.events import attendance_changes_handle
    from notifications.services.planning import notifications_dispatch_many
    from notifications.services.sending import deliveries_send_many

    planned = attendance_changes_handle(record_ids=batch, now=now, enqueue=False)
    due = [
        n.pk
        for n in planned
        if n.status == "pending" and n.deferred_until and n.deferred_until <= now
    ]
    deliveries_send_many(delivery_ids=notifications_dispatch_many(notification_ids=due, now=now))


def worker_main() -> None:
    """Entry point of one worker process: settings from ``NOTIFY_BENCH_SETTINGS``, then
    "ready", then one line of work (``now`` and batches) on stdin, then "done"."""
    overrides = json.loads(os.environ["NOTIFY_BENCH_SETTINGS"])
    celery_app.conf.task_always_eager = True
    with override_settings(**overrides):
        providers_reset()
        print("ready", flush=True)
        job = json.loads(sys.stdin.readline())
        now = dt.datetime.fromisoformat(job["now"])
        for batch in job["batches"]:
            _pipeline(batch, now)
        connection.close()
    print("done", flush=True)


def _run(
    record_ids: list[int], now: dt.datetime, overrides: dict[str, object], processes: int
) -> float:
    """Worker processes (as Celery's prefork pool would run them: no shared GIL) take the
    batches; the clock runs from handing out the work until every worker is done, so the
    processes' start-up is not counted."""
    batches = [record_ids[i : i + BATCH] for i in range(0, len(record_ids), BATCH)]
    env = {**os.environ, "NOTIFY_BENCH_SETTINGS": json.dumps(overrides)}
    connection.close()  # the workers' connections take its place
    workers = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and a fixed script
            [sys.executable, "-c", _WORKER_CODE],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        pipes = [(w.stdin, w.stdout) for w in workers if w.stdin and w.stdout]
        for _, out in pipes:
            if out.readline().strip() != "ready":
                raise RuntimeError("a benchmark worker did not start (see its output above)")
        started = time.perf_counter()
        for number, (into, _) in enumerate(pipes):
            into.write(json.dumps({"now": now.isoformat(), "batches": batches[number::processes]}))
            into.close()
        for _, out in pipes:
            if out.readline().strip() != "done":
                raise RuntimeError("a benchmark worker failed (see its output above)")
        elapsed = time.perf_counter() - started
    finally:
        for worker in workers:
            worker.wait(timeout=60)
    return elapsed


def _run_single(record_ids: list[int], now: dt.datetime) -> float:
    started = time.perf_counter()
    for pk in record_ids:
        attendance_change_handle(record_id=pk, now=now)
    return time.perf_counter() - started


def _handed_over(district: District) -> int:
    return Delivery.objects.filter(
        notification__district=district, status__in=HANDED_OVER_STATUSES_LIST
    ).count()


def _max_in_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _with_fake(
    rate: int | None, body: Callable[[object, dict[str, object]], list[BenchResult]]
) -> list[BenchResult]:
    # The fake lives with the tests; benchmarks run from the repository root. It serves from
    # this process's threads while the worker processes do the sending.
    from tests.notifications.twilio_fake import TwilioFake

    fake = TwilioFake(account_sid="AC" + "b" * 32, auth_token="bench-token", send_callbacks=False)  # noqa: S106 - a fake
    overrides: dict[str, object] = {
        "NOTIFY_SMS_PROVIDER": "twilio",
        "NOTIFY_EMAIL_PROVIDER": "test",
        "NOTIFY_ATTENDANCE_HOLD_SECONDS": 0,
        "TWILIO_ACCOUNT_SID": fake.account_sid,
        "TWILIO_AUTH_TOKEN": fake.auth_token,
        "TWILIO_MESSAGING_SERVICE_SID": "MG" + "c" * 32,
        "TWILIO_API_BASE_URL": fake.url,
        "TWILIO_SEGMENTS_PER_SECOND": rate,
    }
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        with override_settings(**overrides):
            providers_reset()
            return body(fake, overrides)
    finally:
        celery_app.conf.task_always_eager = eager
        providers_reset()
        fake.stop()


@benchmark("notifications")
def notification_fanout(full: bool) -> list[BenchResult]:
    from notifications.providers.test import TestProvider

    absences = 10_000 if full else 500
    district_tz = zoneinfo.ZoneInfo("America/Chicago")
    # The real clock: the per-record baseline hands work to (eager) tasks that read it.
    now = dt.datetime.now(tz=dt.UTC)
    today = now.astimezone(district_tz).date()
    results: list[BenchResult] = []

    def unlimited(fake: object, overrides: dict[str, object]) -> list[BenchResult]:
        district, records = _district(absences, today)
        # Baseline: the per-record path on one thread, on a tenth of the records.
        sample = records[: max(50, len(records) // 10)]
        base_time = _run_single(sample, now)
        base_rate = _handed_over(district) / base_time
        Notification.objects.filter(district=district).delete()
        TestProvider.reset()
        elapsed = _run(records, now, overrides, PROCESSES)
        handed = _handed_over(district)
        planned = Notification.objects.filter(district=district).count()
        rate = handed / elapsed
        return [
            BenchResult(
                f"notify fan-out {absences} absences: deliveries/s ({PROCESSES} processes)",
                rate,
                "deliv/s",
                baseline=base_rate,
                target=">= 500/s",
                passed=rate >= 500,
            ),
            BenchResult(
                f"notify fan-out {absences} absences: notifications planned", planned, "rows"
            ),
            BenchResult(
                f"notify fan-out {absences} absences: deliveries handed over", handed, "rows"
            ),
        ]

    results += _with_fake(None, unlimited)

    limited_absences = 40 if full else 20

    def limited(fake: object, overrides: dict[str, object]) -> list[BenchResult]:
        district, records = _district(limited_absences, today)
        elapsed = _run(records, now, overrides, PROCESSES)
        times = [r.at for r in fake.received]  # type: ignore[attr-defined]
        peak = _max_in_window(times)
        return [
            BenchResult(
                f"notify 10 SMS/s limit: max SMS in any 1 s ({len(times)} sent, {elapsed:.1f} s)",
                peak,
                "sms",
                target="<= 10",
                passed=peak <= 10,
            )
        ]

    results += _with_fake(10, limited)
    return results
