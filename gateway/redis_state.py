"""The gateway's Redis connection: lazy, short timeouts, and a short memory of outages.

Nothing here touches Redis at import or construction time; the first limiter or breaker call
connects. When Redis fails, the error is remembered for ``GATEWAY_REDIS_RETRY_SECONDS`` and
every caller falls back to its per-process state at once, instead of paying a connect timeout
on every outbound call during an outage.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from redis.commands.core import Script
from redis.exceptions import RedisError

logger = logging.getLogger("sas.gateway")


class RedisUnavailable(Exception):
    """Shared state is out of reach; the caller uses its local fallback."""


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.client: redis.Redis | None = None
        self.url: str | None = None
        self.scripts: dict[str, Script] = {}
        self.down_until = 0.0


_state = _State()
_script_sources: dict[str, str] = {}


def redis_url() -> str | None:
    return getattr(settings, "GATEWAY_REDIS_URL", None) or getattr(settings, "REDIS_URL", None)


def key_prefix() -> str:
    return str(getattr(settings, "GATEWAY_KEY_PREFIX", "gw"))


def register_script(name: str, source: str) -> None:
    """Declare a Lua script; it is loaded into Redis on first use (EVALSHA, then EVAL)."""
    _script_sources[name] = source


def _client() -> redis.Redis:
    url = redis_url()
    if url is None:
        raise RedisUnavailable("no Redis configured")
    if time.monotonic() < _state.down_until:
        raise RedisUnavailable("Redis recently unreachable")
    client = _state.client
    if client is None or _state.url != url:
        with _state.lock:
            if _state.client is None or _state.url != url:
                timeout = float(getattr(settings, "GATEWAY_REDIS_TIMEOUT", 0.5))
                # from_url does not connect; the first command does.
                _state.client = redis.Redis.from_url(
                    url,
                    socket_connect_timeout=timeout,
                    socket_timeout=timeout,
                    retry_on_timeout=False,
                )
                _state.url = url
                _state.scripts = {
                    name: _state.client.register_script(source)
                    for name, source in _script_sources.items()
                }
            client = _state.client
    assert client is not None  # noqa: S101 - narrowed for mypy; set just above
    return client


def run[T](operation: Callable[[redis.Redis], T]) -> T:
    """Run ``operation`` on the shared client; any Redis failure becomes RedisUnavailable and
    starts the fallback period."""
    client = _client()
    try:
        return operation(client)
    except (RedisError, OSError) as exc:
        _mark_down(exc)
        raise RedisUnavailable(type(exc).__name__) from exc


def run_script(name: str, keys: list[str], args: list[Any]) -> Any:
    def operation(client: redis.Redis) -> Any:
        script = _state.scripts.get(name)
        if script is None:
            script = client.register_script(_script_sources[name])
            _state.scripts[name] = script
        return script(keys=keys, args=args, client=client)

    return run(operation)


def _mark_down(exc: BaseException) -> None:
    retry = float(getattr(settings, "GATEWAY_REDIS_RETRY_SECONDS", 1.0))
    was_up = time.monotonic() >= _state.down_until
    _state.down_until = time.monotonic() + retry
    if was_up:
        logger.warning(
            "gateway shared state unreachable, using per-process state",
            extra={"error": type(exc).__name__, "retry_in_s": retry},
        )


def is_available() -> bool:
    return redis_url() is not None and time.monotonic() >= _state.down_until


def reset() -> None:
    """Forget the client and any remembered outage (settings changed, tests, after fork)."""
    with _state.lock:
        old = _state.client
        _state.client = None
        _state.url = None
        _state.scripts = {}
        _state.down_until = 0.0
    if old is not None:
        old.close()


@receiver(setting_changed)
def _on_setting_changed(setting: str, **kwargs: Any) -> None:
    if setting in {"GATEWAY_REDIS_URL", "REDIS_URL", "GATEWAY_REDIS_TIMEOUT"}:
        reset()
