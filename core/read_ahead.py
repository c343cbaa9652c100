"""Iterate in a thread of its own, a few items ahead of the caller.

For producers that mostly wait (an SIS page over HTTP) feeding consumers that mostly compute
(mapping, staging): the producer's next wait overlaps the consumer's work on the current item.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from queue import Full, Queue
from typing import Any

from django.db import connections

# How often a producer blocked on a full queue checks whether the consumer has gone.
_PUT_POLL_SECONDS = 0.2


def read_ahead[T](items: Iterable[T], *, depth: int, name: str) -> Iterator[T]:
    """Yield ``items`` in order while a daemon thread (named ``name``) produces up to
    ``depth`` of them ahead. An exception of the producer is raised here, after the items it
    produced before it. Closing the returned generator (or leaving its loop) stops the thread
    at its next item. The thread closes the database connections it opened: Django's
    connections are per thread, and nobody else would."""
    queue: Queue[tuple[str, Any]] = Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(kind: str, payload: Any) -> bool:
        while not stop.is_set():
            try:
                queue.put((kind, payload), timeout=_PUT_POLL_SECONDS)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put("item", item):
                    return
            put("done", None)
        except BaseException as exc:  # handed to the consumer, raised there
            put("error", exc)
        finally:
            # A generator left early is closed in the thread that ran it: its own clean-up
            # runs here and now, not whenever it is collected.
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            connections.close_all()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            kind, payload = queue.get()
            if kind == "done":
                return
            if kind == "error":
                raise payload
            yield payload
    finally:
        stop.set()
        thread.join(timeout=30)
