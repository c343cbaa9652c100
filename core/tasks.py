"""Task base class and helpers shared by every app.

Rules (docs/operations.md): tasks take ids, are idempotent, are enqueued after the transaction
commits, and never schedule anything past the broker's visibility timeout.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

from celery import Task, shared_task
from celery.exceptions import Reject
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)


class BaseTask(Task):
    """Caps redeliveries of one message.

    ``task_reject_on_worker_lost`` puts a message back on the queue when the worker running it
    dies (SIGKILL, OOM). A message that kills every worker that takes it would loop forever, so
    each delivery is counted in the shared cache and past ``CELERY_MAX_DELIVERIES`` the message
    is rejected for good and logged as poisoned.
    """

    abstract = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        if not request.is_eager and request.id:
            deliveries = delivery_count_increment(f"{request.id}:{request.retries}")
            if deliveries > settings.CELERY_MAX_DELIVERIES:
                logger.error(
                    "task dropped after too many deliveries",
                    extra={"task": self.name, "task_id": request.id, "deliveries": deliveries},
                )
                raise Reject("too many deliveries", requeue=False)
        return super().__call__(*args, **kwargs)


def delivery_count_increment(key: str) -> int:
    """Count one more delivery of a message; the count lives twice the visibility timeout."""
    cache_key = f"task-deliveries:{key}"
    cache.add(cache_key, 0, timeout=2 * settings.CELERY_VISIBILITY_TIMEOUT)
    try:
        return int(cache.incr(cache_key))
    except ValueError:  # evicted between add and incr
        cache.set(cache_key, 1, timeout=2 * settings.CELERY_VISIBILITY_TIMEOUT)
        return 1


def countdown_within_visibility(seconds: float) -> int:
    """Clamp a retry countdown so the retried message is never older than the visibility
    timeout when a worker takes it (a longer ETA makes the broker deliver it twice)."""
    ceiling = int(settings.CELERY_VISIBILITY_TIMEOUT * 0.5)
    return max(0, min(int(seconds), ceiling))


def enqueue_on_commit(task: Any, *args: Any, **kwargs: Any) -> None:
    """Send ``task`` once the current transaction commits, so a worker never sees ids of rows
    that do not exist yet (or never will, after a rollback)."""
    send: Callable[[], Any] = lambda: task.delay(*args, **kwargs)  # noqa: E731
    transaction.on_commit(send)


@shared_task(base=BaseTask, name="core.ping")
def ping() -> dict[str, str]:
    """Round trip used by health checks and tests: proves a worker consumes the queue."""
    return {"pong": "ok", "worker": socket.gethostname()}
