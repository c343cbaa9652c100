"""A tiny benchmark registry for ``make bench``.

Each app may have a ``benchmarks.py`` module whose functions are decorated with
:func:`benchmark`. A benchmark returns result rows; each row shows our figure beside the naive
baseline measured in the same run and the target it is held to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.apps import apps
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
