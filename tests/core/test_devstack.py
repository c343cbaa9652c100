"""`make run`'s supervisor (scripts/devstack.py): stopping leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

DEVSTACK = Path(__file__).resolve().parents[2] / "scripts" / "devstack.py"

# Loads devstack, starts a child that ignores SIGTERM (a worker busy with a task), prints the
# child's pid, and stops everything on Ctrl-C as devstack's main() does.
DRIVER = """
import importlib.util, signal, sys, time
# Ctrl-C as in a terminal, even when the test runs where SIGINT is ignored (a background job).
signal.signal(signal.SIGINT, signal.default_int_handler)
spec = importlib.util.spec_from_file_location("devstack", {devstack!r})
devstack = importlib.util.module_from_spec(spec)
spec.loader.exec_module(devstack)
devstack.STOP_TIMEOUT = 1.5
child = devstack.start("stubborn", [sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
print("pid", child.pid, flush=True)
try:
    time.sleep(120)
except KeyboardInterrupt:
    print("stopping", flush=True)
finally:
    devstack.stop_all({{"stubborn": child}})
"""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_a_second_ctrl_c_while_stopping_still_stops_a_stubborn_process(tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(devstack=str(DEVSTACK)))
    supervisor = subprocess.Popen([sys.executable, str(driver)], stdout=subprocess.PIPE, text=True)
    child = 0
    try:
        assert supervisor.stdout is not None
        lines = iter(supervisor.stdout.readline, "")
        child = int(next(line for line in lines if line.startswith("pid ")).split()[1])
        time.sleep(0.5)  # the child has set its signal handler
        supervisor.send_signal(signal.SIGINT)
        assert next(lines).strip() == "stopping"
        time.sleep(0.3)  # inside stop_all, waiting for the child that ignores SIGTERM
        assert _running(child)
        supervisor.send_signal(signal.SIGINT)  # the impatient second Ctrl-C
        supervisor.wait(timeout=20)
        assert not _running(child)
    finally:
        supervisor.kill()
        if child and _running(child):
            os.kill(child, signal.SIGKILL)
