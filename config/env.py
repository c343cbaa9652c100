"""Strict readers for environment variables.

Every setting that comes from the environment goes through one of these functions, so a bad
value stops the process at start-up with a message naming the variable and what it expected,
instead of surfacing later as a confusing error (or, worse, being silently ignored).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_MISSING = object()


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _read[T](name: str, default: object, parse: Callable[[str], T], expected: str) -> T:
    raw = _raw(name)
    if raw is None:
        if default is _MISSING:
            raise ImproperlyConfigured(f"Environment variable {name} is required ({expected}).")
        return default  # type: ignore[return-value]
    try:
        return parse(raw)
    except (ValueError, TypeError) as exc:
        # The value itself is not echoed: it may be a secret.
        raise ImproperlyConfigured(
            f"Environment variable {name} has an invalid value: expected {expected}."
        ) from exc


def env_str(name: str, default: str | object = _MISSING) -> str:
    return _read(name, default, str, "a non-empty string")


def env_bool(name: str, default: bool | object = _MISSING) -> bool:
    def parse(raw: str) -> bool:
        lowered = raw.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(raw)

    return _read(name, default, parse, "one of 1/0, true/false, yes/no, on/off")


def env_int(
    name: str,
    default: int | object = _MISSING,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    def parse(raw: str) -> int:
        value = int(raw, 10)
        if minimum is not None and value < minimum:
            raise ValueError(raw)
        if maximum is not None and value > maximum:
            raise ValueError(raw)
        return value

    bounds = ""
    if minimum is not None or maximum is not None:
        bounds = f" between {minimum if minimum is not None else '-inf'} and "
        bounds += f"{maximum if maximum is not None else 'inf'}"
    return _read(name, default, parse, f"an integer{bounds}")


def env_list(name: str, default: list[str] | object = _MISSING) -> list[str]:
    def parse(raw: str) -> list[str]:
        items = [item.strip() for item in raw.split(",")]
        if any(not item for item in items):
            raise ValueError(raw)
        return items

    return _read(name, default, parse, "a comma-separated list with no empty items")


def env_url(
    name: str, default: str | None | object = _MISSING, *, schemes: tuple[str, ...]
) -> str | None:
    def parse(raw: str) -> str:
        parsed = urlparse(raw)
        if parsed.scheme not in schemes:
            raise ValueError(raw)
        if parsed.scheme not in {"sqlite", "filesystem", "memory"} and not parsed.hostname:
            raise ValueError(raw)
        return raw

    return _read(name, default, parse, f"a URL with scheme {' or '.join(schemes)}")
