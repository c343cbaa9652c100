"""Outbound rate limits shared by every process, in Redis.

Three parts per route, checked in one atomic Lua script so no two workers can both take the
last slot:

1. **blocked until**: set from ``Retry-After`` or a provider's throttle error
   (:func:`route_block`); nobody calls the route before it passes.
2. **concurrency leases**: a sorted set of lease tokens scored by their expiry. A killed
   worker never returns its lease, so expired ones are dropped on the next admission.
3. **GCRA** (the token bucket's exact equivalent with one stored number, the theoretical
   arrival time): ``burst`` calls may go at once, then one per ``1/rate`` seconds. In any
   window of W seconds at most ``burst + W * rate`` calls are admitted.

The script reads the clock with Redis ``TIME`` so every process agrees on "now". A lease is
only taken when the rate also admits the call, so a denied call wastes nothing.

When Redis is unreachable the same rules run on per-process state (each process then paces
itself alone, a documented degradation) so calls neither stop nor stampede.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import random
import secrets
import threading
import time
from dataclasses import dataclass, field

import redis

from gateway import metrics
from gateway.errors import RateLimited
from gateway.redis_state import RedisUnavailable, key_prefix, register_script, run, run_script
from gateway.routes import Route

ADMIT = "admit"
register_script(
    ADMIT,
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
if #ARGV > 6 then
  -- Leases this process gave back since its last admission on the route (see _Releases).
  redis.call('ZREM', KEYS[3], unpack(ARGV, 7))
end
local breaker = {}
if #KEYS > 3 then
  breaker = redis.call('MGET', KEYS[4], KEYS[5], KEYS[6], KEYS[7])
  local opened = tonumber(breaker[2] or '0') * 1000
  if breaker[4] or (breaker[1] == 'open' and opened + tonumber(ARGV[6]) > now) then
    return {4, 0, breaker[1] or '', breaker[2] or '', breaker[3] or '', breaker[4] or ''}
  end
end
local blocked = tonumber(redis.call('GET', KEYS[1]) or '0')
if blocked > now then return {1, math.ceil(blocked - now)} end
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local max_in_flight = tonumber(ARGV[3])
local lease_ttl = tonumber(ARGV[5])
if max_in_flight > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= max_in_flight then
    local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    return {2, math.ceil(tonumber(first[2]) - now)}
  end
end
if rate > 0 then
  local interval = 1000.0 / rate
  local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
  if tat < now then tat = now end
  local allow_at = tat - (burst - 1) * interval
  if now < allow_at then return {3, math.ceil(allow_at - now)} end
  local new_tat = tat + interval
  redis.call('SET', KEYS[2], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
end
if max_in_flight > 0 then
  redis.call('ZADD', KEYS[3], now + lease_ttl, ARGV[4])
  redis.call('PEXPIRE', KEYS[3], math.ceil(lease_ttl) + 1000)
end
return {0, 0, breaker[1] or '', breaker[2] or '', breaker[3] or '', breaker[4] or ''}
""",
)

BLOCK = "block"
register_script(
    BLOCK,
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local ms = tonumber(ARGV[1])
local until_ms = now + ms
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ms > current then
  redis.call('SET', KEYS[1], tostring(until_ms), 'PX', math.ceil(ms))
  return math.ceil(ms)
end
return math.ceil(current - now)
""",
)

_ADMITTED, _BLOCKED, _CONCURRENCY, _RATE, _BREAKER_OPEN = 0, 1, 2, 3, 4
_REASONS = {_BLOCKED: "blocked", _CONCURRENCY: "concurrency", _RATE: "rate"}
# While all slots are taken, poll this often: a lease is usually returned long before it
# expires, and the script tells us nothing about when that will be.
_LEASE_POLL = 0.02
# The longest a returned lease stays in Redis (plus one round trip) when no admission on its
# route comes first to remove it.
_RELEASE_DELAY = 0.005
# A caller that cannot get a slot within max_wait is told to come back after about this long.
_CONCURRENCY_RETRY_AFTER = 2.0


def keys(route_name: str) -> dict[str, str]:
    # The hash tag keeps one route's keys in one slot, should this ever run on Redis Cluster.
    base = f"{key_prefix()}:{{{route_name}}}"
    return {"blocked": f"{base}:blocked", "tat": f"{base}:tat", "leases": f"{base}:leases"}


@dataclass
class Lease:
    route_name: str
    token: str | None  # None: no concurrency cap on this route, nothing to give back
    shared: bool  # taken in Redis (True) or in this process's fallback state
    waited: float = 0.0
    waits: int = 0
    # The route's breaker keys as the admission script read them (state, opened_at, failures,
    # forced), so the breaker needs no round trip of its own; None without Redis.
    breaker_raw: list[bytes | str] | None = None
    admitted: bool = True  # False: the breaker is open, nothing was taken


@dataclass
class _LocalRoute:
    blocked_until: float = 0.0
    tat: float = 0.0
    leases: dict[str, float] = field(default_factory=dict)


class _LocalLimiter:
    """The same three rules on one process's memory, used while Redis is unreachable."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, _LocalRoute] = {}

    def admit(
        self,
        route_name: str,
        *,
        rate: float,
        burst: int,
        max_in_flight: int,
        token: str,
        lease_ttl: float,
    ) -> tuple[int, float]:
        now = time.time()
        with self._lock:
            state = self._routes.setdefault(route_name, _LocalRoute())
            if state.blocked_until > now:
                return _BLOCKED, state.blocked_until - now
            if max_in_flight > 0:
                state.leases = {t: exp for t, exp in state.leases.items() if exp > now}
                if len(state.leases) >= max_in_flight:
                    return _CONCURRENCY, min(state.leases.values()) - now
            if rate > 0:
                interval = 1.0 / rate
                tat = max(state.tat, now)
                allow_at = tat - (burst - 1) * interval
                if now < allow_at:
                    return _RATE, allow_at - now
                state.tat = tat + interval
            if max_in_flight > 0:
                state.leases[token] = now + lease_ttl
            return _ADMITTED, 0.0

    def release(self, route_name: str, token: str) -> None:
        with self._lock:
            state = self._routes.get(route_name)
            if state is not None:
                state.leases.pop(token, None)

    def block(self, route_name: str, seconds: float) -> None:
        with self._lock:
            state = self._routes.setdefault(route_name, _LocalRoute())
            state.blocked_until = max(state.blocked_until, time.time() + seconds)

    def blocked_for(self, route_name: str) -> float:
        with self._lock:
            state = self._routes.get(route_name)
            return max(0.0, state.blocked_until - time.time()) if state else 0.0


_local = _LocalLimiter()


def _admit_once(
    route: Route, max_in_flight: int, token: str, breaker_keys: list[str]
) -> tuple[int, float, bool, list[bytes | str] | None]:
    policy = route.policy
    rate = policy.rate_per_second or 0.0
    try:
        k = keys(route.name)
        result = run_script(
            ADMIT,
            [k["blocked"], k["tat"], k["leases"], *breaker_keys],
            [
                rate,
                policy.burst,
                max_in_flight,
                token,
                policy.lease_ttl * 1000,
                policy.breaker_reset * 1000,
                *_releases.take(route.name),
            ],
        )
        raw = list(result[2:]) if breaker_keys else None
        return int(result[0]), int(result[1]) / 1000, True, raw
    except RedisUnavailable:
        code, wait = _local.admit(
            route.name,
            rate=rate,
            burst=policy.burst,
            max_in_flight=max_in_flight,
            token=token,
            lease_ttl=policy.lease_ttl,
        )
        return code, wait, False, None


def lease_acquire(route: Route, *, breaker_keys: list[str] | None = None) -> Lease:
    """Wait for the route's limits to admit one call, and hold a concurrency slot for it.

    Short waits sleep here; a wait that would take the total past ``policy.max_wait`` raises
    :class:`RateLimited` with ``retry_after`` so a task can retry later instead of holding a
    worker. Always pair with :func:`lease_release` (``try``/``finally``).

    With ``breaker_keys`` (state, opened_at, failures, forced) the same script first checks
    that the route's breaker is not open, so a call the breaker will refuse neither waits for
    nor spends a rate token, and returns what it read (one round trip for both).
    """
    policy = route.policy
    cap = policy.max_in_flight_at() or 0
    token = secrets.token_hex(8) if cap else ""
    waited = 0.0
    waits = 0
    while True:
        code, wait, shared, breaker_raw = _admit_once(route, cap, token, breaker_keys or [])
        if code == _ADMITTED:
            return Lease(route.name, token or None, shared, waited, waits, breaker_raw)
        if code == _BREAKER_OPEN:
            return Lease(route.name, None, shared, waited, waits, breaker_raw, admitted=False)
        reason = _REASONS[code]
        if code == _CONCURRENCY:
            sleep = min(max(wait, 0.001), _LEASE_POLL * (1 + random.random()))  # noqa: S311
        else:
            sleep = max(wait, 0.001)
        if waited + sleep > policy.max_wait:
            retry_after = wait if code != _CONCURRENCY else max(_CONCURRENCY_RETRY_AFTER, sleep)
            metrics.limiter_rejected(route, reason)
            raise RateLimited(f"{route.name} limited ({reason})", retry_after=retry_after)
        metrics.limiter_waited(route, reason, sleep)
        time.sleep(sleep)
        waited += sleep
        waits += 1


def lease_release(lease: Lease) -> None:
    """Give the concurrency slot back (a no-op for routes without a cap).

    A shared lease is not removed here, which would cost the caller a Redis round trip after
    every call: it is queued, and removed by this process's next admission on the route (in
    the same script) or, if none comes first, by a background thread a moment later. Either
    way the slot is free within milliseconds of the call; a lease whose process died before
    that expires after its TTL, as before.
    """
    if lease.token is None:
        return
    if lease.shared:
        _releases.add(lease.route_name, lease.token)
        return
    _local.release(lease.route_name, lease.token)


class _Releases:
    """Lease tokens given back by this process and not yet removed from Redis."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        # After a fork the parent's thread does not exist here, and its queued tokens are the
        # parent's to remove; start empty.
        self._lock = threading.Lock()
        self._tokens: dict[str, list[str]] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, route_name: str, token: str) -> None:
        with self._lock:
            self._tokens.setdefault(route_name, []).append(token)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="gateway-lease-release", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def take(self, route_name: str) -> list[str]:
        """The route's queued tokens, for the caller to remove in its own round trip."""
        if not self._tokens:
            return []
        with self._lock:
            return self._tokens.pop(route_name, [])

    def flush(self) -> None:
        """Remove every queued token now (one pipelined round trip)."""
        with self._lock:
            batch, self._tokens = self._tokens, {}
        if not batch:
            return

        def remove(client: redis.Redis) -> None:
            pipe = client.pipeline(transaction=False)
            for route_name, tokens in batch.items():
                pipe.zrem(keys(route_name)["leases"], *tokens)
            pipe.execute()

        with contextlib.suppress(RedisUnavailable):  # the leases expire after their TTL
            run(remove)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            # A caller that goes on calling the route hands its tokens to its next admission
            # within this pause; this thread removes what is left, once per pause at most.
            time.sleep(_RELEASE_DELAY)
            self._wake.clear()
            self.flush()


_releases = _Releases()
atexit.register(_releases.flush)


def route_block(route: Route | str, seconds: float) -> float:
    """Nobody calls ``route`` for ``seconds`` (from now), in any process.

    For callers that recognise a provider's throttle answer the gateway cannot (a rate-limit
    error code inside a 200 or 400 body). Extends, never shortens, an existing block. Returns
    how long the route is now blocked for.
    """
    name = route if isinstance(route, str) else route.name
    seconds = max(0.0, float(seconds))
    _local.block(name, seconds)
    try:
        blocked_key = keys(name)["blocked"]
        remaining_ms = run_script(BLOCK, [blocked_key], [math.ceil(seconds * 1000)])
        return int(remaining_ms) / 1000
    except RedisUnavailable:
        return _local.blocked_for(name)


@dataclass(frozen=True)
class LimiterState:
    blocked_for: float  # seconds left
    in_flight: int
    next_free_in: float  # seconds until the rate admits the next call (0: now)
    shared: bool  # read from Redis (False: this process's fallback state)


def limiter_state_read(route: Route) -> LimiterState:
    """Current limiter state of a route, for the admin page and the probe command."""
    k = keys(route.name)
    rate = route.policy.rate_per_second or 0.0
    burst = route.policy.burst

    def read(client: redis.Redis) -> LimiterState:
        seconds, micros = client.time()
        now = seconds * 1000 + micros / 1000
        pipe = client.pipeline(transaction=False)
        pipe.get(k["blocked"])
        pipe.get(k["tat"])
        pipe.zcount(k["leases"], now, "+inf")
        blocked_raw, tat_raw, in_flight = pipe.execute()
        blocked = float(blocked_raw or 0)
        tat = float(tat_raw or 0)
        next_free = 0.0
        if rate > 0:
            next_free = max(0.0, tat - (burst - 1) * 1000 / rate - now) / 1000
        return LimiterState(
            blocked_for=max(0.0, blocked - now) / 1000,
            in_flight=int(in_flight),
            next_free_in=next_free,
            shared=True,
        )

    try:
        return run(read)
    except RedisUnavailable:
        local = _local._routes.get(route.name)
        now = time.time()
        return LimiterState(
            blocked_for=_local.blocked_for(route.name),
            in_flight=len([e for e in local.leases.values() if e > now]) if local else 0,
            next_free_in=0.0,
            shared=False,
        )
