"""``python manage.py gateway_probe URL --route NAME --requests N``: exercise a route.

Sends N GET requests to URL through the gateway on route NAME (``provider:key``), with the
route's configured policy (from the route registry) or the one given by the options, and
prints what happened. State is in Redis, so several probes started at once on the same route
share its limits, exactly like workers do.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway.client import CallStats, Route, policy_for, request_observed
from gateway.errors import CircuitOpen, RateLimited, UpstreamUnavailable
from gateway.redis_state import RedisUnavailable
from gateway.registry import route_get

OUTCOMES = ("ok", "4xx", "5xx", "429", "error", "breaker_rejected", "rate_limited")


def _route(name: str, options: dict[str, Any]) -> Route:
    provider, sep, key = name.partition(":")
    if not sep or not provider or not key:
        raise CommandError("--route must look like PROVIDER:KEY (e.g. powerschool:42)")
    try:
        known = route_get(name)
    except RedisUnavailable:
        known = None
    policy = known.route.policy if known else policy_for(provider)
    overrides: dict[str, Any] = {}
    if options["rate"] is not None:
        overrides["rate_per_second"] = options["rate"]
    if options["burst"] is not None:
        overrides["burst"] = options["burst"]
    if options["concurrency"] is not None:
        overrides["max_in_flight"] = options["concurrency"]
        overrides["concurrency_windows"] = ()
    if options["attempts"] is not None:
        overrides["attempts"] = options["attempts"]
    try:
        policy = policy.with_overrides(overrides) if overrides else policy
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    district_id = known.route.district_id if known else None
    return Route(provider, key, policy, district_id=district_id)


def _classify(stats: CallStats, error: Exception | None) -> str:
    if isinstance(error, CircuitOpen):
        return "breaker_rejected"
    if isinstance(error, RateLimited):
        return "429" if stats.outcome == "429" else "rate_limited"
    if isinstance(error, UpstreamUnavailable):
        return "5xx" if stats.outcome == "5xx" else "error"
    return stats.outcome if stats.outcome in OUTCOMES else "ok"


class Command(BaseCommand):
    help = "Send N GET requests to URL through the gateway on one route and report outcomes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("url")
        parser.add_argument("--route", required=True, help="PROVIDER:KEY")
        parser.add_argument("--requests", type=int, default=10, help="how many GETs (N)")
        parser.add_argument("--rate", type=float, default=None, help="requests per second")
        parser.add_argument("--burst", type=int, default=None)
        parser.add_argument(
            "--concurrency", type=int, default=None, help="max in flight (and probe threads)"
        )
        parser.add_argument("--attempts", type=int, default=None, help="attempts per request")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        total = options["requests"]
        if total < 1:
            raise CommandError("--requests must be at least 1")
        route = _route(options["route"], options)
        threads = max(1, options["concurrency"] or 1)
        counts: Counter[str] = Counter(dict.fromkeys(OUTCOMES, 0))
        totals = {"retried": 0, "waits": 0, "waited": 0.0}
        lock = threading.Lock()
        remaining = [total]

        def work() -> None:
            while True:
                with lock:
                    if remaining[0] == 0:
                        return
                    remaining[0] -= 1
                stats = CallStats()
                error: Exception | None = None
                try:
                    request_observed(route, "GET", options["url"], stats=stats)
                except (CircuitOpen, RateLimited, UpstreamUnavailable) as exc:
                    error = exc
                with lock:
                    counts[_classify(stats, error)] += 1
                    totals["retried"] += stats.retries
                    totals["waits"] += stats.waits
                    totals["waited"] += stats.waited

        started = time.perf_counter()
        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        duration = time.perf_counter() - started
        report = {
            "route": route.name,
            "requests": total,
            "outcomes": dict(counts),
            "retried": totals["retried"],
            "limiter_waits": totals["waits"],
            "limiter_wait_seconds": round(float(totals["waited"]), 3),
            "duration_seconds": round(duration, 3),
            "policy": {
                "rate_per_second": route.policy.rate_per_second,
                "burst": route.policy.burst,
                "max_in_flight": route.policy.max_in_flight_at(),
                "attempts": route.policy.attempts,
            },
        }
        if options["json"]:
            self.stdout.write(json.dumps(report))
            return
        self._print(report)

    def _print(self, report: dict[str, Any]) -> None:
        policy = report["policy"]
        self.stdout.write(
            f"route {report['route']}: {report['requests']} requests in "
            f"{report['duration_seconds']:.2f} s (rate {policy['rate_per_second'] or 'unlimited'}"
            f"/s, burst {policy['burst']}, in flight {policy['max_in_flight'] or 'unlimited'})"
        )
        for outcome, count in report["outcomes"].items():
            self.stdout.write(f"  {outcome:<17} {count}")
        self.stdout.write(f"  {'retried':<17} {report['retried']}")
        self.stdout.write(
            f"  limiter waits     {report['limiter_waits']} "
            f"({report['limiter_wait_seconds']:.2f} s)"
        )
