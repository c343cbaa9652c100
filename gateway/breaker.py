"""Circuit breaker per route: pybreaker's state machine on a Redis storage of ours.

pybreaker 1.4.1 keeps the states (closed → open → half-open → closed/open), the failure
threshold and the reset timeout. Where it falls short (shared/reference/reliability.md §1) the
smallest code of ours sits around it:

* **Its lock is held around the guarded call**, which would serialise every HTTP call of a
  route in a process. So the HTTP call runs outside pybreaker; its outcome is *replayed*
  through ``CircuitBreaker.call`` afterwards (a function that returns or raises at once), and
  the lock is held for microseconds.
* **Its ``exclude`` counts an excluded error as a success** (resetting the count), so a flood
  of 404s could hide an outage. 4xx answers and 429s are simply not replayed: they neither
  trip nor reset the breaker.
* **Its half-open lets one probe through per process.** Admission is ours: when the reset
  timeout has passed, a caller must win a reservation (``SET NX PX``) before it may probe, so
  exactly one probe runs across all processes; the reservation expires if the prober dies.
* **CircuitRedisStorage connects in its constructor and never opens while Redis is down.**
  :class:`RedisBreakerStorage` touches Redis only when used, mirrors every write into local
  memory, and reads the local mirror whenever Redis is unreachable, so the breaker still opens.
* **Consecutive failures only, no window.** The failure counter expires ``breaker_window``
  seconds after the first failure of a run, so N failures spread over hours do not trip it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pybreaker
import redis

from gateway import metrics
from gateway.errors import CircuitOpen
from gateway.redis_state import RedisUnavailable, key_prefix, register_script, run, run_script
from gateway.routes import Route

logger = logging.getLogger("sas.gateway")

CLOSED, OPEN, HALF_OPEN = pybreaker.STATE_CLOSED, pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN
FORCED_OPEN = "forced-open"
_RECENT_FAILURES = 20

INCR_IN_WINDOW = "breaker_incr"
register_script(
    INCR_IN_WINDOW,
    """
local v = redis.call('INCR', KEYS[1])
if v == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return v
""",
)
RELEASE_PROBE = "breaker_release_probe"
register_script(
    RELEASE_PROBE,
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""",
)


def _text(raw: bytes | str | None) -> str:
    return raw.decode() if isinstance(raw, bytes) else (raw or "")


def breaker_keys(route_name: str) -> dict[str, str]:
    base = f"{key_prefix()}:{{{route_name}}}:breaker"
    return {
        name: f"{base}:{name}"
        for name in ("state", "fail", "success", "opened_at", "probe", "forced", "failures")
    }


class RedisBreakerStorage(pybreaker.CircuitBreakerStorage):
    """pybreaker storage on Redis with a local mirror; see the module docstring for why.

    Every write goes to the local mirror first, then (best effort) to Redis. Reads come from
    Redis while it answers (and refresh the mirror) and from the mirror when it does not.
    """

    def __init__(self, route_name: str, *, window: float) -> None:
        super().__init__(route_name)
        self._keys = breaker_keys(route_name)
        self._window = window
        self._lock = threading.Lock()
        self._state = CLOSED
        self._fail = 0
        self._fail_expires = 0.0
        self._success = 0
        self._opened_at: float | None = None
        self._local_probe_until = 0.0  # the probe reservation while Redis is unreachable

    # -- pybreaker hooks ---------------------------------------------------------------------
    @property
    def state(self) -> str:
        """The breaker state every process shares (local mirror while Redis is down)."""
        try:
            raw = run(lambda client: client.get(self._keys["state"]))
        except RedisUnavailable:
            return self._state
        state = _text(raw) or CLOSED
        self._state = state
        return state

    @state.setter
    def state(self, state: str) -> None:
        self._state = state
        self._write(lambda client: client.set(self._keys["state"], state))

    def increment_counter(self) -> None:
        """Count a failure; the count lives ``window`` seconds from the first failure."""
        with self._lock:
            now = time.monotonic()
            if now >= self._fail_expires:
                self._fail, self._fail_expires = 0, now + self._window
            self._fail += 1
        with contextlib.suppress(RedisUnavailable):  # the local count already has it
            run_script(INCR_IN_WINDOW, [self._keys["fail"]], [int(self._window * 1000)])

    def reset_counter(self) -> None:
        """Forget failures (a success, or the breaker closing)."""
        with self._lock:
            self._fail = 0
        self._write(lambda client: client.delete(self._keys["fail"]))

    def increment_success_counter(self) -> None:
        """Count a successful probe in half-open state."""
        with self._lock:
            self._success += 1
        self._write(lambda client: client.incr(self._keys["success"]))

    def reset_success_counter(self) -> None:
        """Forget half-open successes."""
        with self._lock:
            self._success = 0
        self._write(lambda client: client.delete(self._keys["success"]))

    @property
    def counter(self) -> int:
        """Failures in the current window."""
        try:
            raw = run(lambda client: client.get(self._keys["fail"]))
        except RedisUnavailable:
            with self._lock:
                return self._fail if time.monotonic() < self._fail_expires else 0
        return int(raw or 0)

    @property
    def success_counter(self) -> int:
        """Successes since half-open."""
        try:
            raw = run(lambda client: client.get(self._keys["success"]))
        except RedisUnavailable:
            return self._success
        return int(raw or 0)

    @property
    def opened_at(self) -> datetime | None:
        """When the breaker last opened (sub-second, unlike CircuitRedisStorage)."""
        try:
            raw = run(lambda client: client.get(self._keys["opened_at"]))
        except RedisUnavailable:
            stamp = self._opened_at
        else:
            stamp = float(raw) if raw else None
            if stamp is not None:
                self._opened_at = stamp
        return datetime.fromtimestamp(stamp, tz=UTC) if stamp is not None else None

    @opened_at.setter
    def opened_at(self, now: datetime) -> None:
        stamp = now.timestamp()
        self._opened_at = stamp
        self._write(lambda client: client.set(self._keys["opened_at"], repr(stamp)))

    # -- ours ---------------------------------------------------------------------------------
    def _write(self, operation: object) -> None:
        with contextlib.suppress(RedisUnavailable):  # the local mirror already holds it
            run(operation)  # type: ignore[arg-type]

    def snapshot(self) -> BreakerSnapshot:
        """State, opened time, failure count and forced flag in one round trip."""
        k = self._keys
        try:
            raw = run(
                lambda client: client.mget(k["state"], k["opened_at"], k["fail"], k["forced"])
            )
        except RedisUnavailable:
            return self.local_snapshot()
        return self.snapshot_from(raw)

    def snapshot_from(self, raw: Sequence[bytes | str | None]) -> BreakerSnapshot:
        """A snapshot from the four keys as read elsewhere (the limiter's admission script)."""
        state_raw, opened_raw, fail_raw, forced_raw = raw
        state = _text(state_raw) or CLOSED
        opened = float(opened_raw) if opened_raw else None
        self._state = state
        if opened is not None:
            self._opened_at = opened
        return BreakerSnapshot(state, opened, int(fail_raw or 0), bool(forced_raw), shared=True)

    def local_snapshot(self) -> BreakerSnapshot:
        with self._lock:
            fail = self._fail if time.monotonic() < self._fail_expires else 0
            return BreakerSnapshot(self._state, self._opened_at, fail, False, shared=False)

    @property
    def snapshot_keys(self) -> list[str]:
        k = self._keys
        return [k["state"], k["opened_at"], k["fail"], k["forced"]]

    def probe_reserve(self, ttl: float) -> str | None:
        """Win the one half-open probe across all processes, or get None.

        The reservation expires after ``ttl`` so a prober killed mid-call does not keep the
        breaker half-open forever. Without Redis, this process probes on its own.
        """
        token = uuid.uuid4().hex
        try:
            won = run(
                lambda client: client.set(self._keys["probe"], token, nx=True, px=int(ttl * 1000))
            )
        except RedisUnavailable:
            with self._lock:
                if self._local_probe_until > time.monotonic():
                    return None
                self._local_probe_until = time.monotonic() + ttl
            return token
        return token if won else None

    def probe_release(self, token: str) -> None:
        self._local_probe_until = 0.0
        with contextlib.suppress(RedisUnavailable):  # the reservation expires by itself
            run_script(RELEASE_PROBE, [self._keys["probe"]], [token])

    def failure_note(self, reason: str) -> None:
        """Keep the last few failures (time and reason only) for the admin page."""
        entry = json.dumps({"at": time.time(), "reason": reason})

        def push(client: redis.Redis) -> None:
            pipe = client.pipeline(transaction=False)
            pipe.lpush(self._keys["failures"], entry)
            pipe.ltrim(self._keys["failures"], 0, _RECENT_FAILURES - 1)
            pipe.execute()

        self._write(push)

    def local_reset(self) -> None:
        with self._lock:
            self._state, self._fail, self._success, self._opened_at = CLOSED, 0, 0, None
            self._local_probe_until = 0.0


@dataclass(frozen=True)
class BreakerSnapshot:
    state: str
    opened_at: float | None
    failures: int
    forced: bool
    shared: bool

    @property
    def display_state(self) -> str:
        return FORCED_OPEN if self.forced else self.state


@dataclass(frozen=True)
class Admission:
    state: str  # the state seen when the call was admitted
    failures: int
    probe_token: str | None = None  # set when this call is the one half-open probe


class _ReplayedFailure(Exception):
    """Stands in for the real failure when it is replayed through pybreaker."""


class _StateLog(pybreaker.CircuitBreakerListener):
    """Logs and exports state changes. Runs inside pybreaker's lock, so it stays tiny."""

    def __init__(self, route: Route) -> None:
        self.route = route

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        metrics.breaker_state(self.route, new_state.name)
        logger.warning(
            "gateway breaker state changed",
            extra={
                "provider": self.route.provider,
                "route": self.route.name,
                "from_state": old_state.name if old_state else None,
                "to_state": new_state.name,
            },
        )


class RouteBreaker:
    """The breaker of one route in this process (its state is shared through Redis)."""

    def __init__(self, route: Route) -> None:
        policy = route.policy
        self.route = route
        self.reset_timeout = policy.breaker_reset
        # One probe may take a full attempt (connect + read) before its reservation lapses.
        self.probe_ttl = policy.connect_timeout + policy.read_timeout + 1.0
        self.storage = RedisBreakerStorage(route.name, window=policy.breaker_window)
        # Constructing reads the storage state; ours degrades to the local mirror, so this
        # never needs Redis. throw_new_error_on_trip=False: a tripping replay raises our
        # stand-in failure, which we swallow.
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=policy.breaker_threshold,
            reset_timeout=policy.breaker_reset,
            state_storage=self.storage,
            name=route.name,
            listeners=[_StateLog(route)],
            throw_new_error_on_trip=False,
        )

    def admit(self, snap: BreakerSnapshot | None = None) -> Admission:
        """Let a call through, or raise :class:`CircuitOpen` without any request.

        ``snap`` is the state as just read by the limiter's admission script (saving a round
        trip); without it the breaker reads its own.
        """
        if snap is None:
            snap = self.storage.snapshot()
        # Every process exports the state it sees, not only the one that changed it.
        metrics.breaker_state(self.route, snap.display_state)
        if snap.forced:
            metrics.breaker_rejected(self.route)
            raise CircuitOpen(f"{self.route.name} breaker forced open", retry_after=60.0)
        if snap.state == CLOSED:
            return Admission(CLOSED, snap.failures)
        if snap.state == OPEN:
            remaining = (snap.opened_at or 0.0) + self.reset_timeout - time.time()
            if remaining > 0:
                metrics.breaker_rejected(self.route)
                raise CircuitOpen(f"{self.route.name} breaker open", retry_after=remaining)
        token = self.storage.probe_reserve(self.probe_ttl)
        if token is None:
            metrics.breaker_rejected(self.route)
            raise CircuitOpen(
                f"{self.route.name} breaker half-open, probe in flight",
                retry_after=min(self.probe_ttl, self.reset_timeout),
            )
        # The state read above may predate the last probe's outcome: a probe that failed
        # re-opened the breaker and then gave its reservation back, which this call just won.
        # Read again now that the reservation is held.
        snap = self.storage.snapshot()
        if snap.state == CLOSED:  # the last probe succeeded: an ordinary call
            self.storage.probe_release(token)
            return Admission(CLOSED, snap.failures)
        remaining = (snap.opened_at or 0.0) + self.reset_timeout - time.time()
        if snap.state == OPEN and remaining > 0:
            self.storage.probe_release(token)
            metrics.breaker_rejected(self.route)
            raise CircuitOpen(f"{self.route.name} breaker open", retry_after=remaining)
        return Admission(snap.state, snap.failures, probe_token=token)

    def record(self, admission: Admission, *, failure: str | None, counted: bool = True) -> str:
        """Feed one call's outcome to pybreaker; returns the state after it.

        ``counted=False`` (4xx, 429): the outcome says nothing about the provider's health, so
        pybreaker never sees it; a probe that got one simply gives its reservation back.
        """
        try:
            if not counted:
                return admission.state
            if failure is not None:
                self.storage.failure_note(failure)
            elif admission.probe_token is None and admission.failures == 0:
                # A success on a closed breaker with no failures counted changes nothing.
                return admission.state
            if admission.probe_token is None and self.breaker.current_state != CLOSED:
                # Another process opened the breaker while this call was in flight; its late
                # outcome must not act as the probe.
                return self.breaker.current_state
            self._replay(failure)
            return self.storage._state
        finally:
            if admission.probe_token is not None:
                self.storage.probe_release(admission.probe_token)

    def _replay(self, failure: str | None) -> None:
        def outcome() -> None:
            if failure is not None:
                raise _ReplayedFailure(failure)

        # The replayed failure comes back out (or CircuitBreakerError when the breaker had
        # opened meanwhile); either way pybreaker has counted what it should.
        with contextlib.suppress(_ReplayedFailure, pybreaker.CircuitBreakerError):
            self.breaker.call(outcome)


_breakers: dict[tuple[str, int, float, float], RouteBreaker] = {}
_breakers_lock = threading.Lock()


def breaker_for(route: Route) -> RouteBreaker:
    """This process's breaker for ``route`` (a new one if the route's breaker policy changed)."""
    policy = route.policy
    key = (route.name, policy.breaker_threshold, policy.breaker_window, policy.breaker_reset)
    found = _breakers.get(key)
    if found is not None and found.route.policy == policy:
        return found
    with _breakers_lock:
        found = _breakers.get(key)
        if found is None or found.route.policy != policy:
            found = RouteBreaker(route)
            _breakers[key] = found
        return found


def breaker_snapshot_read(route: Route) -> tuple[BreakerSnapshot, list[dict[str, object]]]:
    """State and recent failures of a route's breaker, for the admin page."""
    breaker = breaker_for(route)
    snap = breaker.storage.snapshot()
    try:
        raw = run(lambda client: client.lrange(breaker_keys(route.name)["failures"], 0, -1))
        failures = [json.loads(item) for item in raw]
    except RedisUnavailable:
        failures = []
    return snap, failures


def breaker_reset(route: Route) -> None:
    """Close the route's breaker everywhere and forget its failures (and a forced open)."""
    k = breaker_keys(route.name)
    run(lambda client: client.delete(*k.values()))
    for breaker in list(_breakers.values()):
        if breaker.route.name == route.name:
            breaker.storage.local_reset()
    metrics.breaker_state(route, CLOSED)
    logger.warning("gateway breaker reset", extra={"route": route.name})


def breaker_force_open(route: Route) -> None:
    """Open the route's breaker everywhere until it is reset (maintenance at the provider)."""
    k = breaker_keys(route.name)

    def force(client: redis.Redis) -> None:
        pipe = client.pipeline(transaction=True)
        pipe.set(k["forced"], "1")
        pipe.set(k["state"], OPEN)
        pipe.set(k["opened_at"], repr(time.time()))
        pipe.execute()

    run(force)
    metrics.breaker_state(route, FORCED_OPEN)
    logger.warning("gateway breaker forced open", extra={"route": route.name})
