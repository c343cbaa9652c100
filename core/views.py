"""Liveness and readiness endpoints for load balancers and orchestrators."""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.celery import app as celery_app

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Alive: the process answers. Touches nothing else, so a database outage does not make
    the orchestrator restart healthy web processes."""
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis() -> None:
    client = redis.Redis.from_url(
        str(settings.REDIS_URL), socket_connect_timeout=1, socket_timeout=1
    )
    try:
        client.ping()
    finally:
        client.close()


def _check_broker() -> None:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready: the database, Redis (when configured) and the broker answer. 503 otherwise."""
    checks: dict[str, Callable[[], None] | None] = {
        "database": _check_database,
        "redis": _check_redis if settings.REDIS_URL else None,
        "broker": _check_broker,
    }
    results: dict[str, str] = {}
    for name, check in checks.items():
        if check is None:
            results[name] = "not configured"
            continue
        try:
            check()
        except Exception as exc:  # any failure means "not ready"; the reason goes to the log
            logger.warning(
                "readiness check failed", extra={"check": name, "error": type(exc).__name__}
            )
            results[name] = "unavailable"
        else:
            results[name] = "ok"
    ready = all(value != "unavailable" for value in results.values())
    return JsonResponse(
        {"status": "ready" if ready else "not ready", "checks": results},
        status=200 if ready else 503,
    )
