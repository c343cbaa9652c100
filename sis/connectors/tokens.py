"""OAuth access tokens shared by every worker.

A token is cached encrypted (``core.encryption``) in the shared cache (Redis) until shortly
before it expires. Only one worker refreshes at a time: refreshers take a Redis lock and look
again once they hold it, so a burst of workers with an expired token makes one token request.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol

from core import encryption

# Refresh this long before the SIS says the token expires, so a call never races the expiry.
EXPIRY_MARGIN_SECONDS = 60.0
LOCK_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_at: float  # epoch seconds
    token_type: str = "Bearer"  # noqa: S105

    def fresh(self, *, now: float | None = None, margin: float = EXPIRY_MARGIN_SECONDS) -> bool:
        now = time.time() if now is None else now
        return self.expires_at - now > margin

    def __repr__(self) -> str:
        return f"<Token expires_at={self.expires_at:.0f}>"


class TokenStore(Protocol):
    """Where a connection's token lives between calls and workers."""

    def load(self) -> Token | None: ...

    def save(self, token: Token) -> None: ...

    def discard(self, token: Token) -> None:
        """Forget ``token`` if it is still the stored one (a 401 proved it dead)."""

    def lock(self) -> AbstractContextManager[None]:
        """Held while refreshing, across every worker that shares the store."""
        ...


_local_locks: dict[str, threading.Lock] = {}
_local_locks_guard = threading.Lock()


def _local_lock(name: str) -> threading.Lock:
    with _local_locks_guard:
        return _local_locks.setdefault(name, threading.Lock())


class MemoryTokenStore:
    """A process-local store (tests of one process, the benchmark, tools without Django)."""

    def __init__(self) -> None:
        self._token: Token | None = None
        self._lock = threading.Lock()

    def load(self) -> Token | None:
        return self._token

    def save(self, token: Token) -> None:
        self._token = token

    def discard(self, token: Token) -> None:
        if self._token == token:
            self._token = None

    @contextmanager
    def lock(self) -> Iterator[None]:
        with self._lock:
            yield


class CacheTokenStore:
    """The shared store: the Django cache (Redis in every real deployment), encrypted."""

    def __init__(self, key: str) -> None:
        self.key = f"sis-token:{key}"

    def load(self) -> Token | None:
        from django.core.cache import cache

        stored = cache.get(self.key)
        if not stored:
            return None
        try:
            data = json.loads(encryption.decrypt(stored))
        except (encryption.DecryptionError, ValueError):
            # A token written under a dropped key is just a cache miss: fetch a new one.
            return None
        return Token(data["access_token"], float(data["expires_at"]), data.get("type", "Bearer"))

    def save(self, token: Token) -> None:
        from django.core.cache import cache

        payload = json.dumps(
            {
                "access_token": token.access_token,
                "expires_at": token.expires_at,
                "type": token.token_type,
            }
        )
        ttl = max(1, int(token.expires_at - time.time()))
        cache.set(self.key, encryption.encrypt(payload), timeout=ttl)

    def discard(self, token: Token) -> None:
        from django.core.cache import cache

        if self.load() == token:
            cache.delete(self.key)

    @contextmanager
    def lock(self) -> Iterator[None]:
        from django.core.cache import cache

        redis_lock = getattr(cache, "lock", None)
        if redis_lock is None:  # no Redis (first-run mode): one process, a local lock suffices
            with _local_lock(self.key):
                yield
            return
        with redis_lock(
            f"{self.key}:refresh",
            timeout=LOCK_TIMEOUT_SECONDS,
            blocking_timeout=LOCK_TIMEOUT_SECONDS,
        ):
            yield
