"""core.read_ahead: a producer thread a bounded number of items ahead of its consumer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from core.read_ahead import read_ahead


def _wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_items_arrive_in_order_from_another_thread():
    producers: set[str] = set()

    def numbers() -> Iterator[int]:
        for n in range(50):
            producers.add(threading.current_thread().name)
            yield n

    assert list(read_ahead(numbers(), depth=3, name="test-producer")) == list(range(50))
    assert producers == {"test-producer"}


def test_the_producer_runs_ahead_of_the_consumer_but_no_further_than_its_depth():
    produced: list[int] = []

    def numbers() -> Iterator[int]:
        for n in range(10):
            produced.append(n)
            yield n

    items = read_ahead(numbers(), depth=2, name="test-ahead")
    assert next(items) == 0
    # While the consumer holds item 0, the producer fills the queue (2) and holds one more
    # it cannot put yet: items 1, 2 and 3, never the rest.
    _wait_for(lambda: len(produced) == 4)
    time.sleep(0.3)
    assert produced == [0, 1, 2, 3]
    assert list(items) == list(range(1, 10))


def test_an_error_of_the_producer_is_raised_after_the_items_before_it():
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise LookupError("page 3 is unreadable")

    received = []
    with pytest.raises(LookupError, match="page 3"):
        for item in read_ahead(failing(), depth=4, name="test-error"):
            received.append(item)
    assert received == [1, 2]


def test_leaving_early_stops_the_producer_and_closes_its_generator():
    closed = threading.Event()

    def endless() -> Iterator[int]:
        n = 0
        try:
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    items = read_ahead(endless(), depth=1, name="test-stop")
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert closed.wait(5)
    _wait_for(lambda: not any(t.name == "test-stop" for t in threading.enumerate()))
