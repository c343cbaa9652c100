"""The Celery application.

Queues per concern (``sync``, ``writeback``, ``notify``, ``default``) so a long roster sync never
delays an absence text. Reliability settings follow docs/operations.md: late acks, one message
prefetched at a time, redelivery when a worker dies mid-task (capped by
:class:`core.tasks.BaseTask`), and a broker visibility timeout that bounds every task.
"""

from __future__ import annotations

import os

from celery import Celery
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

app = Celery("attendance_system")
app.config_from_object("django.conf:settings", namespace="CELERY")

QUEUE_NAMES = ("default", "sync", "writeback", "notify")

app.conf.update(
    task_queues=[Queue(name, Exchange(name), routing_key=name) for name in QUEUE_NAMES],
    task_default_queue="default",
    task_default_exchange="default",
    task_default_routing_key="default",
    # Tasks route by the app that defines them; see docs/operations.md.
    # First match wins: the narrower write-back pattern must come before "syncing.tasks.*".
    task_routes={
        "syncing.tasks.writeback_*": {"queue": "writeback"},
        "syncing.tasks.*": {"queue": "sync"},
        "sis.tasks.*": {"queue": "sync"},
        "notifications.tasks.*": {"queue": "notify"},
        "portal.tasks.*": {"queue": "notify"},
    },
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    task_track_started=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    timezone="UTC",
)

app.autodiscover_tasks()
