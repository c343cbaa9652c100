"""A real worker consumes the real Redis broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache

from config.celery import app as celery_app
from core.tasks import countdown_within_visibility, ping

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    celery_app.control.purge()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "default",
             "--concurrency", "1", "--pool", "prefork", "--loglevel", "INFO",
             "--hostname", f"test-{uuid.uuid4().hex[:8]}@%h"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            yield process, log_path
        finally:
            process.terminate()
            process.wait(timeout=30)


def test_a_task_round_trips_through_a_real_worker(worker):
    result = ping.delay()
    assert result.get(timeout=60)["pong"] == "ok"


def test_a_message_past_its_delivery_cap_is_dropped_and_logged(worker):
    _, log_path = worker
    task_id = f"poison-{uuid.uuid4().hex}"
    # As if the message had already killed its worker CELERY_MAX_DELIVERIES times.
    cache.set(f"task-deliveries:{task_id}:0", settings.CELERY_MAX_DELIVERIES, timeout=600)
    ping.apply_async(task_id=task_id)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if task_id in log_path.read_text(errors="replace") and "too many deliveries" in (
            log_path.read_text(errors="replace")
        ):
            break
        time.sleep(0.5)
    else:
        pytest.fail("the worker did not report dropping the poisoned message")
    # It never ran: no successful result exists for it.
    assert ping.AsyncResult(task_id).state != "SUCCESS"
    # A healthy message after it still runs.
    assert ping.delay().get(timeout=60)["pong"] == "ok"


def test_reliability_settings_are_in_force():
    conf = celery_app.conf
    visibility = settings.CELERY_VISIBILITY_TIMEOUT
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] == visibility
    assert conf.task_time_limit < visibility
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert {queue.name for queue in conf.task_queues} == {"default", "sync", "writeback", "notify"}
    assert countdown_within_visibility(10 * visibility) < visibility
    assert countdown_within_visibility(-5) == 0
