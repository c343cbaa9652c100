"""API latency under load (``make bench``): gunicorn with 2 workers on loopback, an asyncio
load generator (its own CPU share is reported), and a district generated with set-based inserts.

Measured: pages of 100 students of one school (target p99 < 50 ms at 16 concurrent clients,
>= 300 requests/s), a deep page (cursor near the end), and a bulk attendance post of 1,000
records (target < 1 s). ``full=False`` uses 5,000 students instead of 100,000.

Roster pages are cached (attendance/api/cache.py), so the student page is measured twice:
clients paging through one school over and over (the first pass misses, later passes hit; the
hit ratio is read from the server's own counters) and every request a miss (a distinct query
string each: the cold cost, compute and store). Server CPU per request is the gunicorn workers'
user + system time over the run divided by the requests served.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import requests
from django.conf import settings
from django.db import connection, transaction

from attendance.models import District, School, Student
from attendance.services import attendance_record
from attendance.services_bulk import AttendanceItem, attendance_record_bulk
from core.bench import BenchResult, benchmark
from gateway.inbound.api_keys import api_key_create

SCHOOLS = 20
CONCURRENCY = 16
DURATION_S = 8.0
WARM_UP_S = 1.0


def _generate(students: int) -> tuple[District, list[int]]:
    slug = f"bench-api-{students}"
    district = District.objects.filter(slug=slug).first()
    if district is not None and Student.objects.filter(district=district).count() == students:
        return district, list(district.schools.values_list("pk", flat=True))
    if district is not None:
        _drop(district)
    district = District.objects.create(name=f"Bench API {students}", slug=slug)
    schools = School.objects.bulk_create(
        School(district=district, name=f"Bench School {n}", local_id=f"BS{n}")
        for n in range(SCHOOLS)
    )
    school_ids = [s.pk for s in schools]
    with connection.cursor() as cursor:
        # One INSERT … SELECT for the students, one for their enrollments: seconds, not minutes.
        cursor.execute(
            """
            INSERT INTO attendance_student (district_id, local_id, state_id, legal_first_name,
                legal_middle_name, legal_last_name, preferred_first_name, preferred_last_name,
                birth_date, grade_level, gender, races, primary_language, school_id, active,
                created_at, updated_at)
            SELECT %s, 'S' || g, '', 'First' || g, '', 'Last' || (g %% 997), '', '',
                DATE '2015-01-01', '05', '', '[]'::jsonb, 'en', (%s::bigint[])[(g %% %s) + 1],
                true, now(), now()
            FROM generate_series(1, %s) AS g
            """,
            [district.pk, school_ids, SCHOOLS, students],
        )
        cursor.execute(
            """
            INSERT INTO attendance_enrollment (student_id, school_id, entry_date, exit_reason,
                grade_level, is_primary, created_at, updated_at)
            SELECT id, school_id, DATE '2026-08-17', '', '05', true, now(), now()
            FROM attendance_student WHERE district_id = %s
            """,
            [district.pk],
        )
        cursor.execute("ANALYZE attendance_student; ANALYZE attendance_enrollment")
    return district, school_ids


def _drop(district: District) -> None:
    with connection.cursor() as cursor:
        for sql in (
            "DELETE FROM attendance_historicalattendancerecord WHERE student_id IN "
            "(SELECT id FROM attendance_student WHERE district_id = %s)",
            "DELETE FROM attendance_attendancerecord WHERE student_id IN "
            "(SELECT id FROM attendance_student WHERE district_id = %s)",
            "DELETE FROM attendance_enrollment WHERE student_id IN "
            "(SELECT id FROM attendance_student WHERE district_id = %s)",
            "DELETE FROM attendance_apiaccesslog WHERE district_id = %s",
            "DELETE FROM gateway_historicalapikey WHERE district_id = %s",
            "DELETE FROM gateway_apikey WHERE district_id = %s",
            "DELETE FROM attendance_student WHERE district_id = %s",
            "DELETE FROM attendance_school WHERE district_id = %s",
            "DELETE FROM attendance_district WHERE id = %s",
        ):
            cursor.execute(sql, [district.pk])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


METRICS_TOKEN = "bench-metrics-" + "x" * 20  # a local server's throwaway token


def _start_gunicorn(port: int, metrics_dir: str) -> subprocess.Popen[bytes]:
    # Production settings (the test settings re-scan static files on every request), pointed at
    # this run's database and cache, with the pepper the benchmark's key was hashed with.
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": "bench-only-" + "x" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": str(settings.REDIS_URL),
        "API_KEY_PEPPER": settings.API_KEY_PEPPER,
        # Production requires the keys; the benchmark reads no encrypted secret.
        "FIELD_ENCRYPTION_KEYS": os.environ.get(
            "FIELD_ENCRYPTION_KEYS", "4Bq0b6fJ7c0W1cG0m5c2o8n3f8w4Yx1mVQn2Yb7lK9E="
        ),
        "API_RATE_LIMIT": "10000000/m",
        # Production requires providers that send; the web process only queues messages (no
        # worker runs here), so nothing leaves.
        "SMS_PROVIDER": "twilio",
        "EMAIL_PROVIDER": "email",
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        # The cache's hit/miss counters of both workers, read through /metrics.
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        "METRICS_TOKEN": METRICS_TOKEN,
        "LOG_LEVEL": "WARNING",
    }
    gunicorn = Path(sys.executable).with_name("gunicorn")
    process = subprocess.Popen(  # noqa: S603 - our own server on loopback
        [
            str(gunicorn),
            "config.wsgi",
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=str(settings.BASE_DIR),
        # Not our pipes: a server left behind must not keep a caller's pipeline open.
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            return process
        except requests.RequestException:
            time.sleep(0.2)
    process.kill()
    process.wait(timeout=10)
    raise RuntimeError("gunicorn did not start")


def _naive_bulk(district: District, local_ids: list[str], *, sample: int) -> float:
    """The naive way, in-process: the per-record service once per record (a few queries
    each), scaled to the number of records in the bulk post."""
    students = list(Student.objects.filter(district=district, local_id__in=local_ids[:sample]))
    began = time.perf_counter()
    for student in students:
        attendance_record(student=student, date=dt.date(2026, 9, 9), status="present")
    return (time.perf_counter() - began) * len(local_ids) / max(1, len(students))


def _bulk_service_split(district: District, local_ids: list[str]) -> tuple[float, float]:
    """Time the bulk service's own work apart from what receivers of ``attendance_changed`` do
    after commit (one signal per written record; other apps enqueue work there)."""
    items = [
        AttendanceItem(date=dt.date(2026, 9, 10), student_local_id=lid, status=status)
        for lid, status in zip(local_ids, ["tardy", "present"] * len(local_ids), strict=False)
    ]
    began = time.perf_counter()
    with transaction.atomic():
        attendance_record_bulk(district_id=district.pk, items=items)
        written = time.perf_counter()
    ended = time.perf_counter()  # the outer commit ran the after-commit announcements
    return written - began, ended - written


def _database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def _workers_cpu(server: subprocess.Popen[bytes]) -> float:
    """CPU seconds (user + system) the gunicorn workers have used so far."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    total = 0
    for pid in children:
        # Fields after the parenthesised command name; utime and stime are the 14th and 15th.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _cache_counts(base: str) -> dict[str, float]:
    """The roster page cache's lookups so far, by result, summed over the workers."""
    text = requests.get(
        f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
    ).text
    pattern = r'^sas_api_list_cache_lookups_total\{result="(\w+)"\} ([0-9.e+]+)$'
    return {m[1]: float(m[2]) for m in re.finditer(pattern, text, re.MULTILINE)}


@dataclass(frozen=True)
class LoadResult:
    rps: float
    p50_ms: float
    p99_ms: float
    client_cpu: float  # the load generator's CPU time / wall time (1.0 = one core)
    server_cpu_ms: float = 0.0  # the workers' CPU time per request
    hit_ratio: float | None = None  # of the roster page cache, over this run


def _measured(
    server: subprocess.Popen[bytes],
    origin: str,
    url_of: Callable[[int, int], str],
    headers: dict[str, str],
    *,
    duration: float = DURATION_S,
) -> LoadResult:
    """:func:`_load` with the server's CPU per request and the cache's hit ratio."""
    counts, cpu = _cache_counts(origin), _workers_cpu(server)
    result = _load(url_of, headers, duration=duration)
    cpu = _workers_cpu(server) - cpu
    after = _cache_counts(origin)
    lookups = {k: after.get(k, 0.0) - counts.get(k, 0.0) for k in ("hit", "miss", "bypass")}
    total = sum(lookups.values())
    requests_served = result.rps * result.elapsed
    return LoadResult(
        result.rps,
        result.p50_ms,
        result.p99_ms,
        result.client_cpu,
        server_cpu_ms=cpu * 1000 / max(1.0, requests_served),
        hit_ratio=lookups["hit"] / total if total else None,
    )


@dataclass(frozen=True)
class _Run:
    rps: float
    p50_ms: float
    p99_ms: float
    client_cpu: float
    elapsed: float


def _load(
    url_of: Callable[[int, int], str], headers: dict[str, str], *, duration: float = DURATION_S
) -> _Run:
    """CONCURRENCY closed-loop clients for ``duration`` seconds; client ``c`` asks for
    ``url_of(c, n)`` as its ``n``-th request.

    The clients share the server's two cores, so they must be cheap: one asyncio loop, raw
    sockets, the request bytes built once, the status line checked and the body drained
    (gunicorn's sync workers close each connection, as they would behind a proxy). A thread
    per client with ``requests`` cost more CPU than a worker and capped the throughput.
    """
    first = urlsplit(url_of(0, 0))
    host, port = str(first.hostname), int(first.port or 80)
    tail = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    tail = f" HTTP/1.1\r\nHost: {host}:{port}\r\n{tail}Connection: close\r\n\r\n"
    latencies: list[float] = []
    failures = 0

    async def client(number: int, stop: float) -> None:
        nonlocal failures
        sent = 0
        while time.monotonic() < stop:
            parts = urlsplit(url_of(number, sent))
            raw = f"GET {parts.path}?{parts.query}{tail}".encode()
            sent += 1
            started = time.perf_counter()
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(raw)
            response = await reader.read()
            writer.close()
            latencies.append((time.perf_counter() - started) * 1000)
            failures += not response.startswith(b"HTTP/1.1 200 ")

    async def run() -> None:
        stop = time.monotonic() + duration
        await asyncio.gather(*(client(number, stop) for number in range(CONCURRENCY)))

    began, began_cpu = time.monotonic(), time.process_time()
    asyncio.run(run())
    elapsed, cpu = time.monotonic() - began, time.process_time() - began_cpu
    if failures:
        raise RuntimeError(f"{failures} requests failed during the load run")
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return _Run(len(latencies) / elapsed, statistics.median(latencies), p99, cpu / elapsed, elapsed)


def _cursor(position: int) -> str:
    """DRF's cursor for the page after the row ``position`` (ordering by id)."""
    return base64.b64encode(urlencode({"p": str(position)}).encode()).decode()


@benchmark("api_load")
def api_benchmark(full: bool) -> list[BenchResult]:
    students = 100_000 if full else 5_000
    started = time.perf_counter()
    district, school_ids = _generate(students)
    generated_s = time.perf_counter() - started
    key = api_key_create(
        district=district, name="bench", scopes=["roster:read", "attendance:write"]
    ).plaintext
    headers = {"X-API-Key": key}
    port = _free_port()
    metrics_dir = tempfile.mkdtemp(prefix="bench-metrics-")
    server = _start_gunicorn(port, metrics_dir)
    origin = f"http://127.0.0.1:{port}"
    base = f"{origin}/api/v1"
    load_average = os.getloadavg()[0]
    try:
        page_url = f"{base}/students/?school={school_ids[0]}&page_size=100"
        requests.get(page_url, headers=headers, timeout=10).raise_for_status()
        # Both workers warm and the key verified, on a query string no measured run asks for.
        _load(lambda c, n: f"{page_url}&warm={c}-{n}", headers, duration=WARM_UP_S)
        ids = list(
            Student.objects.filter(school_id=school_ids[0])
            .order_by("id")
            .values_list("pk", flat=True)
        )
        # Every page of the school, as a reader following the "next" links sees them.
        pages = [page_url] + [
            f"{page_url}&{urlencode({'cursor': _cursor(ids[i - 1])})}"
            for i in range(100, len(ids), 100)
        ]
        # Paging through the school again and again, each client from its own page on.
        paging = _measured(server, origin, lambda c, n: pages[(c + n) % len(pages)], headers)
        # Every request a miss: a distinct (ignored) parameter makes each query string new.
        cold = _measured(server, origin, lambda c, n: f"{page_url}&run={c}-{n}", headers)
        deep_url = f"{page_url}&{urlencode({'cursor': _cursor(ids[int(len(ids) * 0.9)])})}"
        requests.get(deep_url, headers=headers, timeout=10).raise_for_status()
        deep = _measured(server, origin, lambda c, n: f"{deep_url}&run={c}-{n}", headers)

        local_ids = list(
            Student.objects.filter(district=district)
            .order_by("id")
            .values_list("local_id", flat=True)[:1000]
        )
        bulk_times = []
        for round_ in range(4):
            status = "absent" if round_ % 2 else "present"
            body = {
                "records": [
                    {"student_local_id": lid, "date": "2026-09-08", "status": status}
                    for lid in local_ids
                ]
            }
            began = time.perf_counter()
            response = requests.post(
                f"{base}/attendance/bulk/", json=body, headers=headers, timeout=30
            )
            bulk_times.append(time.perf_counter() - began)
            response.raise_for_status()
        bulk_s = statistics.median(bulk_times)
        naive_s = _naive_bulk(district, local_ids, sample=1000 if full else 200)
        service_s, receivers_s = _bulk_service_split(district, local_ids)
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(metrics_dir, ignore_errors=True)
    label = f"{students:,} students"
    return [
        BenchResult(f"generate {label} (set-based)", generated_s, "s"),
        BenchResult("load average (1 min) before the load runs", load_average, ""),
        BenchResult(f"student pages of 100, paging through one school ({len(pages)} pages), "
                    f"{label}: req/s", paging.rps, "req/s", target=">= 300",
                    passed=paging.rps >= 300),
        BenchResult("  cache hit ratio over the run", (paging.hit_ratio or 0) * 100, "%"),
        BenchResult("  p50", paging.p50_ms, "ms"),
        BenchResult("  p99 (16 clients)", paging.p99_ms, "ms", target="< 50",
                    passed=paging.p99_ms < 50),
        BenchResult("  server CPU per request", paging.server_cpu_ms, "ms"),
        BenchResult("  load generator CPU (share of one core)", paging.client_cpu * 100, "%"),
        BenchResult("student page, every request a miss (cold): req/s", cold.rps, "req/s"),
        BenchResult("  cache hit ratio over the run", (cold.hit_ratio or 0) * 100, "%"),
        BenchResult("  p50", cold.p50_ms, "ms"),
        BenchResult("  p99 (16 clients)", cold.p99_ms, "ms"),
        BenchResult("  server CPU per request", cold.server_cpu_ms, "ms"),
        BenchResult("deep page, every request a miss: req/s", deep.rps, "req/s"),
        BenchResult("  p50", deep.p50_ms, "ms"),
        BenchResult("  p99", deep.p99_ms, "ms"),
        BenchResult("  server CPU per request", deep.server_cpu_ms, "ms"),
        BenchResult(f"bulk attendance post, {len(local_ids)} records (median of 4)", bulk_s, "s",
                    baseline=naive_s, target="< 1", passed=bulk_s < 1),
        BenchResult("  of which: bulk service in-process (set-based writes)", service_s, "s"),
        BenchResult("  of which: attendance_changed receivers after commit", receivers_s, "s"),
    ]  # fmt: skip
