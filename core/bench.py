"""A tiny benchmark registry for ``make bench``.

Each app may have a ``benchmarks.py`` module whose functions are decorated with
:func:`benchmark`. A benchmark returns result rows; each row shows our figure beside the naive
baseline measured in the same run and the target it is held to.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from django.apps import apps
from django.db import DatabaseError, connection
from django.utils.module_loading import module_has_submodule


@dataclass(frozen=True)
class BenchResult:
    name: str
    value: float
    unit: str
    baseline: float | None = None  # the naive way, measured in the same run
    target: str = ""
    passed: bool | None = None  # None: informational


BenchFunction = Callable[[bool], list[BenchResult]]
_registry: dict[str, BenchFunction] = {}


def benchmark(name: str) -> Callable[[BenchFunction], BenchFunction]:
    """Register ``func(full: bool) -> list[BenchResult]``; ``full`` selects the full-size
    scenario, otherwise a small one that finishes in seconds."""

    def register(func: BenchFunction) -> BenchFunction:
        _registry[name] = func
        return func

    return register


def discover() -> dict[str, BenchFunction]:
    from importlib import import_module

    for config in apps.get_app_configs():
        if module_has_submodule(config.module, "benchmarks"):
            import_module(f"{config.name}.benchmarks")
    return dict(sorted(_registry.items()))


# Machines of the project's kind differ: the same pure-Python loop ran up to three times slower on
# some than on others, and so did everything measured beside it. The loop and a commit that must
# reach the disk are measured before and after the benchmarks, so every table says what it was
# measured on, and whether the host's speed moved during the run.
HOST_ADDITIONS = 20_000_000
HOST_COMMITS = 200


def _python_loop(additions: int) -> float:
    start = time.perf_counter()
    total = 0
    for number in range(additions):
        total += number
    return time.perf_counter() - start


def _flushed_commit_ms(commits: int) -> float | None:
    """The median milliseconds of an autocommit statement whose commit PostgreSQL must flush
    to disk (a transactional WAL message: a transaction that writes no WAL commits without a
    flush). None off PostgreSQL or where the role may not write such messages."""
    if connection.vendor != "postgresql":
        return None
    timings = []
    try:
        with connection.cursor() as cursor:
            for _ in range(commits):
                start = time.perf_counter()
                cursor.execute("SELECT pg_logical_emit_message(true, 'sas-bench', '')")
                timings.append(time.perf_counter() - start)
    except DatabaseError:
        return None
    timings.sort()
    return timings[len(timings) // 2] * 1000


def host_profile(label: str) -> list[BenchResult]:
    """Informational rows about the machine now: the seconds of a pure-Python loop of
    :data:`HOST_ADDITIONS` additions, and the median milliseconds of a flushed commit."""
    rows = [
        BenchResult(
            f"host {label}: Python loop, {HOST_ADDITIONS:,} additions",
            _python_loop(HOST_ADDITIONS),
            "s",
        )
    ]
    commit = _flushed_commit_ms(HOST_COMMITS)
    if commit is not None:
        rows.append(BenchResult(f"host {label}: flushed commit (median)", commit, "ms"))
    return rows
