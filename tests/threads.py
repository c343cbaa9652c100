"""Races in tests: the same code started at one instant from several threads."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connection


def in_threads(count: int, target: Callable[[], object]) -> None:
    """Run ``target`` in ``count`` threads released together by a barrier (each with its own
    database connection, closed afterwards); fails if any of them raised."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            target()
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
