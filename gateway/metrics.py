"""Prometheus metrics of the outbound gateway.

Each process keeps its own registry: a scrape of ``/metrics`` on one gunicorn worker shows that
worker's calls only, and Celery workers (which make most outbound calls) serve no HTTP at all.
For whole-deployment numbers set ``PROMETHEUS_MULTIPROC_DIR`` to an empty, shared, writable
directory in every process (web and workers) before they start: prometheus-client then writes
each process's values to files there and ``/metrics`` aggregates them (multiprocess mode; see
docs/gateway.md for the cleanup rule).

Labels are the provider kind and the route name (provider:key): a bounded set, one per
connection or credential, never a URL, a person or a secret.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

if TYPE_CHECKING:
    from gateway.routes import Route

CALLS = Counter(
    "sas_gateway_calls",
    "Outbound HTTP calls by route and outcome class (2xx, 3xx, 4xx, 429, 5xx, error).",
    ["provider", "route", "status_class"],
)
LATENCY = Histogram(
    "sas_gateway_call_duration_seconds",
    "Duration of outbound HTTP calls (one attempt each).",
    ["provider", "route"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BREAKER_STATE = Gauge(
    "sas_gateway_breaker_state",
    "Circuit breaker state per route: 0 closed, 1 half-open, 2 open.",
    ["provider", "route"],
    multiprocess_mode="mostrecent",
)
BREAKER_REJECTED = Counter(
    "sas_gateway_breaker_rejected",
    "Calls refused without a request because the route's breaker is open.",
    ["provider", "route"],
)
LIMITER_WAITS = Counter(
    "sas_gateway_limiter_waits",
    "Times a call waited for the route's limiter, by reason (rate, concurrency, blocked).",
    ["provider", "route", "reason"],
)
LIMITER_WAIT_SECONDS = Counter(
    "sas_gateway_limiter_wait_seconds",
    "Seconds spent waiting for the route's limiter.",
    ["provider", "route", "reason"],
)
LIMITER_REJECTED = Counter(
    "sas_gateway_limiter_rejected",
    "Calls given back to the caller as RateLimited (the wait was too long to sleep).",
    ["provider", "route", "reason"],
)
RETRIES = Counter(
    "sas_gateway_retries",
    "Retries of outbound calls, by the failure that caused them.",
    ["provider", "route", "reason"],
)

_STATE_VALUES = {"closed": 0, "half-open": 1, "open": 2, "forced-open": 2}


def status_class(status: int | None) -> str:
    if status is None:
        return "error"
    if status == 429:
        return "429"
    return f"{status // 100}xx"


# The labelled children of the per-call metrics, by labels: ``labels()`` takes a lock and
# validates its arguments each time, and these run on every outbound call.
_call_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
_state_children: dict[tuple[str, str], Any] = {}


def call_observed(route: Route, status: int | None, duration: float) -> None:
    labels = (route.provider, route.name, status_class(status))
    children = _call_children.get(labels)
    if children is None:
        children = (CALLS.labels(*labels), LATENCY.labels(route.provider, route.name))
        _call_children[labels] = children
    children[0].inc()
    children[1].observe(duration)


def breaker_state(route: Route, state: str) -> None:
    labels = (route.provider, route.name)
    child = _state_children.get(labels)
    if child is None:
        child = _state_children[labels] = BREAKER_STATE.labels(*labels)
    child.set(_STATE_VALUES.get(state, 0))


def breaker_rejected(route: Route) -> None:
    BREAKER_REJECTED.labels(route.provider, route.name).inc()


def limiter_waited(route: Route, reason: str, seconds: float) -> None:
    LIMITER_WAITS.labels(route.provider, route.name, reason).inc()
    LIMITER_WAIT_SECONDS.labels(route.provider, route.name, reason).inc(seconds)


def limiter_rejected(route: Route, reason: str) -> None:
    LIMITER_REJECTED.labels(route.provider, route.name, reason).inc()


def retried(route: Route, reason: str) -> None:
    RETRIES.labels(route.provider, route.name, reason).inc()


def exposition() -> tuple[bytes, str]:
    """The text exposition of this process's registry, or of every process's files in
    multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
