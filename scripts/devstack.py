"""`make run`: migrate, install the periodic schedules, create the admin login, start the
sandbox SIS (a simulated PowerSchool) and sync the demo district from it, then run web, worker
and beat together until Ctrl-C stops them all (the sandbox included).

With no DATABASE_URL / REDIS_URL everything runs on local files (SQLite and kombu's filesystem
broker under ./var); with them set, PostgreSQL and Redis are used.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CELERY = str(Path(PYTHON).parent / "celery")
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = os.environ.get("PORT", "8000")
SANDBOX_PORT = os.environ.get("SANDBOX_PORT", "8765")
DEMO_STUDENTS = os.environ.get("DEMO_STUDENTS", "600")
DEMO_DISTRICT = "Demo Unified School District"
DEMO_CONNECTION = "Demo PowerSchool"


def manage(*args: str, check: bool = True) -> int:
    return subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, check=check).returncode


def start(name: str, command: list[str]) -> subprocess.Popen[bytes]:
    print(f"starting {name}: {' '.join(command)}", flush=True)
    # Own process group: a terminal's Ctrl-C reaches only this supervisor, which stops each
    # process in turn, and the kill after the deadline takes its children too (celery's pool).
    return subprocess.Popen(command, cwd=ROOT, start_new_session=True)


def wait_healthy(url: str, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (local URL)
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
    return False


# How long the processes get to stop after SIGTERM (a worker finishing its task) before SIGKILL.
STOP_TIMEOUT = 10.0


def stop_all(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    """Stop every process: SIGTERM, then SIGKILL to the process groups still running after
    :data:`STOP_TIMEOUT`. A second Ctrl-C or SIGTERM meanwhile is ignored: it interrupted the
    wait and left a Celery worker running with no one to stop it."""
    for interrupt in (signal.SIGINT, signal.SIGTERM):
        signal.signal(interrupt, signal.SIG_IGN)
    for process in processes.values():
        if process.poll() is None:
            # The leader only, as Celery documents: the worker stops its own pool. Sent to the
            # whole group, the pool processes died under it (an ERROR line each), and once its
            # warm shutdown waited until the deadline killed it.
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for process in processes.values():
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def connect_demo_district(sandbox_url: str) -> None:
    """Connect the demo district to the sandbox (on the first run) and sync it in the
    foreground, so the admin shows a roster that came through a PowerSchool-style API (on
    SQLite too: the engine has a portable twin of its PostgreSQL statements)."""
    connection = [
        "--name", DEMO_CONNECTION, "--district", DEMO_DISTRICT, "--provider", "powerschool",
        "--base-url", sandbox_url, "--client-id", "sandbox-client",
        "--client-secret", "sandbox-secret",
    ]  # fmt: skip
    # The first run adds the connection; a later one finds it there (the add's "already
    # exists" is expected, so it is shown only if the update fails too) and updates it.
    added = subprocess.run(
        [PYTHON, "manage.py", "sis_connection", "add", *connection],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if added.returncode == 0:
        print(added.stdout, end="", flush=True)
    elif manage("sis_connection", "update", *connection, check=False) != 0:
        print(added.stderr, end="", file=sys.stderr)
        raise SystemExit("Could not connect the demo district to the sandbox SIS.")
    if manage("sync", DEMO_CONNECTION, "--full", "--district", DEMO_DISTRICT, check=False) != 0:
        print("The demo sync did not complete; see its summary above.", file=sys.stderr)
    # Then as a district would run it: beat syncs the changes every hour.
    manage("sync_schedule", DEMO_CONNECTION, "--district", DEMO_DISTRICT, "--hourly")


# One demo guardian's mobile number as the SIS gave it, to try the parent portal with.
_DEMO_GUARDIAN = """
from attendance.models import StudentGuardian
link = (
    StudentGuardian.objects.filter(
        contact_allowed=True, guardian__active=True, student__active=True,
        guardian__district__name={district!r},
    )
    .exclude(guardian__mobile_phone="").select_related("guardian").order_by("guardian_id").first()
)
print(link.guardian.mobile_phone_raw if link else "")
"""


def demo_guardian_phone() -> str:
    found = subprocess.run(
        [PYTHON, "manage.py", "shell", "--no-imports", "-c",
         _DEMO_GUARDIAN.format(district=DEMO_DISTRICT)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    return found.stdout.strip().splitlines()[-1] if found.stdout.strip() else ""


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
    var = Path(os.environ.get("VAR_DIR", ROOT / "var"))
    for folder in ("broker/queue", "broker/processed"):
        (var / folder).mkdir(parents=True, exist_ok=True)
    manage("migrate", "--noinput")
    manage("install_schedules")
    manage("ensure_admin")

    processes: dict[str, subprocess.Popen[bytes]] = {}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        processes["sandbox"] = start(
            "sandbox SIS",
            [PYTHON, "manage.py", "sis_sandbox", "--provider", "powerschool",
             "--students", DEMO_STUDENTS, "--port", SANDBOX_PORT],
        )  # fmt: skip
        sandbox_url = f"http://127.0.0.1:{SANDBOX_PORT}"
        if not wait_healthy(f"{sandbox_url}/ws/v1/time"):
            print("The sandbox SIS did not start (port taken? set SANDBOX_PORT)", file=sys.stderr)
            return 1
        connect_demo_district(sandbox_url)

        processes["web"] = start(
            "web", [PYTHON, "manage.py", "runserver", f"{HOST}:{PORT}", "--noreload"]
        )
        processes["worker"] = start(
            "worker",
            [CELERY, "-A", "config", "worker", "-Q", "default,sync,writeback,notify",
             "--concurrency", "2", "--loglevel", "INFO"],
        )  # fmt: skip
        processes["beat"] = start(
            "beat",
            [CELERY, "-A", "config", "beat", "--loglevel", "INFO",
             "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler"],
        )  # fmt: skip
        if wait_healthy(f"http://{HOST}:{PORT}/healthz"):
            print(f"\nReady: http://{HOST}:{PORT}/admin/  (Ctrl-C stops everything)", flush=True)
            if phone := demo_guardian_phone():
                print(
                    f"Parent portal: http://{HOST}:{PORT}/portal/ - sign in as a demo guardian "
                    f"with {phone}; the code, like every message, is printed here.\n",
                    flush=True,
                )
            manage("ensure_admin")
        while all(process.poll() is None for process in processes.values()):
            time.sleep(1)
        dead = [name for name, process in processes.items() if process.poll() is not None]
        print(f"stopped: {', '.join(dead)} exited", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop_all(processes)


if __name__ == "__main__":
    sys.exit(main())
