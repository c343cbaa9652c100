"""Known routes and their policies, in Redis, for the admin page and the probe command.

Routes register themselves when used: the first call on a route in a process writes it to a
hash, and later calls refresh it at most once a minute, so this costs one Redis write per route
per process per minute. No database table: the gateway's models belong to the inbound side.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

from gateway.redis_state import RedisUnavailable, key_prefix, run
from gateway.routes import Route, RoutePolicy

_REFRESH_SECONDS = 60.0
_seen: dict[str, tuple[RoutePolicy, int | None, float]] = {}
_seen_lock = threading.Lock()


def _registry_key() -> str:
    return f"{key_prefix()}:routes"


@dataclass(frozen=True)
class RouteInfo:
    route: Route
    last_seen: float


def route_register(route: Route) -> None:
    """Record that ``route`` is in use, with its policy (cheap: at most one write a minute)."""
    now = time.monotonic()
    seen = _seen.get(route.name)
    if (
        seen is not None
        and seen[0] == route.policy
        and seen[1] == route.district_id
        and now - seen[2] < _REFRESH_SECONDS
    ):
        return
    with _seen_lock:
        _seen[route.name] = (route.policy, route.district_id, now)
    entry = json.dumps(
        {
            "provider": route.provider,
            "key": route.key,
            "district_id": route.district_id,
            "policy": route.policy.to_dict(),
            "last_seen": time.time(),
        },
        default=str,
    )
    try:
        run(lambda client: client.hset(_registry_key(), route.name, entry))
    except RedisUnavailable:
        with _seen_lock:
            _seen.pop(route.name, None)  # try again once Redis is back


def _decode(raw: bytes | str) -> RouteInfo:
    data = json.loads(raw)
    route = Route(
        provider=data["provider"],
        key=data["key"],
        policy=RoutePolicy.from_dict(data["policy"]),
        district_id=data.get("district_id"),
    )
    return RouteInfo(route=route, last_seen=float(data.get("last_seen", 0)))


def routes_list() -> list[RouteInfo]:
    """Every registered route, by name."""
    raw = run(lambda client: client.hgetall(_registry_key()))
    infos = [_decode(value) for value in raw.values()]
    return sorted(infos, key=lambda info: info.route.name)


def route_get(name: str) -> RouteInfo | None:
    raw = run(lambda client: client.hget(_registry_key(), name))
    return _decode(raw) if raw else None


def registry_forget_local() -> None:
    """Forget which routes this process registered (tests, or after Redis was flushed)."""
    with _seen_lock:
        _seen.clear()
