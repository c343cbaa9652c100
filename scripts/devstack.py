"""`make run`: migrate, create the admin login, load the demo district, then run web, worker
and beat together until Ctrl-C stops them all.

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
BIN = Path(PYTHON).parent
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = os.environ.get("PORT", "8000")


def manage(*args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, check=True)


def start(name: str, command: list[str]) -> subprocess.Popen[bytes]:
    print(f"starting {name}: {' '.join(command)}", flush=True)
    # Own process group, so Ctrl-C handling below stops each child and its own children.
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


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
    var = Path(os.environ.get("VAR_DIR", ROOT / "var"))
    for folder in ("broker/queue", "broker/processed"):
        (var / folder).mkdir(parents=True, exist_ok=True)
    manage("migrate", "--noinput")
    manage("install_schedules")
    manage("ensure_admin")
    manage("load_demo_district")

    celery = str(BIN / "celery")
    processes = {
        "web": start("web", [PYTHON, "manage.py", "runserver", f"{HOST}:{PORT}", "--noreload"]),
        "worker": start(
            "worker",
            [
                celery,
                "-A",
                "config",
                "worker",
                "-Q",
                "default,sync,writeback,notify",
                "--concurrency",
                "2",
                "--loglevel",
                "INFO",
            ],
        ),  # fmt: skip
        "beat": start(
            "beat",
            [
                celery,
                "-A",
                "config",
                "beat",
                "--loglevel",
                "INFO",
                "--scheduler",
                "django_celery_beat.schedulers:DatabaseScheduler",
            ],
        ),  # fmt: skip
    }

    def stop(*_: object) -> None:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        if wait_healthy(f"http://{HOST}:{PORT}/healthz"):
            print(f"\nReady: http://{HOST}:{PORT}/admin/  (Ctrl-C stops everything)\n", flush=True)
            manage("ensure_admin")
        while all(process.poll() is None for process in processes.values()):
            time.sleep(1)
        dead = [name for name, process in processes.items() if process.poll() is not None]
        print(f"stopped: {', '.join(dead)} exited", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
