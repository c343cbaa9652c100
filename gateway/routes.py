"""Routes and their policies: who an outbound call is for, and how it is paced and guarded.

A route is (provider kind, credential or SIS connection). Every limit, breaker and metric is
kept per route, so one district's failing SIS never slows another district down. The route key
names a connection or credential (an id), never a secret: it appears in logs, metrics and the
admin.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings


@dataclass(frozen=True)
class ConcurrencyWindow:
    """A time-of-day window with its own cap on requests in flight.

    ``start``/``end`` are local times in the policy's time zone; a window whose end is before
    its start wraps midnight. ``weekdays`` uses Monday=0.
    """

    start: dt.time
    end: dt.time
    max_in_flight: int
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)

    def contains(self, moment: dt.datetime) -> bool:
        now = moment.time()
        if self.start <= self.end:
            inside = self.start <= now < self.end
            day = moment.weekday()
        else:  # wraps midnight: the part after midnight belongs to the previous day's window
            inside = now >= self.start or now < self.end
            day = moment.weekday() if now >= self.start else (moment.weekday() - 1) % 7
        return inside and day in self.weekdays

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.strftime("%H:%M"),
            "end": self.end.strftime("%H:%M"),
            "max_in_flight": self.max_in_flight,
            "weekdays": list(self.weekdays),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConcurrencyWindow:
        return cls(
            start=dt.time.fromisoformat(str(data["start"])),
            end=dt.time.fromisoformat(str(data["end"])),
            max_in_flight=int(data["max_in_flight"]),
            weekdays=tuple(int(day) for day in data.get("weekdays", (0, 1, 2, 3, 4))),
        )


@dataclass(frozen=True)
class RoutePolicy:
    """How calls on one route are paced, retried and guarded. Defaults suit a SIS API."""

    rate_per_second: float | None = None  # None: no rate limit
    burst: int = 1
    max_in_flight: int | None = None  # None: no concurrency cap (outside any window)
    # Time-of-day caps that replace max_in_flight while they apply (first match wins).
    concurrency_windows: tuple[ConcurrencyWindow, ...] = ()
    time_zone: str | None = None  # for the windows; None: settings.TIME_ZONE
    attempts: int = 3
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    jitter: bool = True  # full jitter: spreads the retries of many workers apart
    breaker_threshold: int = 5  # failures within breaker_window that open the breaker
    breaker_window: float = 60.0
    breaker_reset: float = 30.0  # seconds open before one probe is let through
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    # A wait longer than this is raised as RateLimited so a task can retry with a countdown.
    max_wait: float = 5.0

    def __post_init__(self) -> None:
        problems = []
        if self.rate_per_second is not None and self.rate_per_second <= 0:
            problems.append("rate_per_second must be positive")
        if self.burst < 1:
            problems.append("burst must be at least 1")
        if self.max_in_flight is not None and self.max_in_flight < 1:
            problems.append("max_in_flight must be at least 1")
        if self.attempts < 1:
            problems.append("attempts must be at least 1")
        if self.breaker_threshold < 1:
            problems.append("breaker_threshold must be at least 1")
        if min(self.connect_timeout, self.read_timeout) <= 0:
            problems.append("timeouts must be positive (they are always set)")
        if problems:
            raise ValueError("Invalid route policy: " + "; ".join(problems))

    def max_in_flight_at(self, moment: dt.datetime | None = None) -> int | None:
        """The concurrency cap in force at ``moment`` (now by default)."""
        if not self.concurrency_windows:
            return self.max_in_flight
        zone = ZoneInfo(self.time_zone or settings.TIME_ZONE)
        local = (moment or dt.datetime.now(tz=zone)).astimezone(zone)
        for window in self.concurrency_windows:
            if window.contains(local):
                return window.max_in_flight
        return self.max_in_flight

    @property
    def lease_ttl(self) -> float:
        """How long a concurrency lease lives if its holder dies without releasing it.

        The read timeout bounds each wait for bytes, not the whole body, so the lease allows
        a generous multiple; a killed worker's slot comes back after this many seconds.
        """
        return 2 * (self.connect_timeout + self.read_timeout) + 1

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["concurrency_windows"] = [w.to_dict() for w in self.concurrency_windows]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RoutePolicy:
        """Build a policy from connection or provider settings (JSON); unknown keys are an
        error, so a typo in a connection's limits is caught instead of ignored."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown route policy setting(s): {', '.join(unknown)}")
        values = dict(data)
        if "concurrency_windows" in values:
            values["concurrency_windows"] = tuple(
                w if isinstance(w, ConcurrencyWindow) else ConcurrencyWindow.from_dict(w)
                for w in values["concurrency_windows"]
            )
        return cls(**values)

    def with_overrides(self, overrides: Mapping[str, Any]) -> RoutePolicy:
        merged = self.to_dict() | dict(overrides)
        return RoutePolicy.from_dict(merged)


@dataclass(frozen=True)
class Route:
    provider: str  # "powerschool", "oneroster", "infinite_campus", "twilio", "sns", "email", ...
    key: str  # the credential or SIS connection this route belongs to (an id, never a secret)
    policy: RoutePolicy = field(default_factory=RoutePolicy)
    # The district the route serves, if any: district administrators see only their routes in
    # the admin; routes without one (a shared SMS account) are for superusers.
    district_id: int | None = None

    @property
    def name(self) -> str:
        return f"{self.provider}:{self.key}"


# Defaults per provider kind, from the vendors' published guidance (shared/reference). A
# connection's own settings override these, and settings.GATEWAY_PROVIDER_POLICIES overrides
# both per deployment.
PROVIDER_POLICIES: dict[str, dict[str, Any]] = {
    # Infinite Campus OneRoster guidelines: serial requests during peak hours, at most 5
    # concurrent off-peak.
    "infinite_campus": {
        "max_in_flight": 5,
        "concurrency_windows": (
            ConcurrencyWindow(start=dt.time(6, 0), end=dt.time(17, 0), max_in_flight=1),
        ),
    },
    # ClassLink answers 429 and expects exponential backoff with jitter (the defaults).
    "classlink": {},
    # Twilio: 429 / error 20429 is never processed and always safe to retry.
    "twilio": {"read_timeout": 15.0},
    "sns": {"read_timeout": 15.0},
    "email": {"read_timeout": 20.0},
}


def policy_for(provider: str, overrides: Mapping[str, Any] | None = None) -> RoutePolicy:
    """The policy for a route of ``provider``: code defaults, then the deployment's
    ``GATEWAY_PROVIDER_POLICIES``, then ``overrides`` (the connection's own limits)."""
    values: dict[str, Any] = dict(PROVIDER_POLICIES.get(provider, {}))
    deployment: Mapping[str, Mapping[str, Any]] = getattr(settings, "GATEWAY_PROVIDER_POLICIES", {})
    values.update(deployment.get(provider, {}))
    values.update(overrides or {})
    return RoutePolicy.from_dict(values)


__all__ = ["PROVIDER_POLICIES", "ConcurrencyWindow", "Route", "RoutePolicy", "policy_for"]
