"""The engine's SQL module for the configured database, chosen once at import.

:mod:`syncing.engine.pgsql` on PostgreSQL (production, the benchmarks); on anything else
(SQLite in ``make run``) :mod:`syncing.engine.portable`, its ORM twin with the same functions.
Callers import ``sql`` from here instead of either module.
"""

from __future__ import annotations

from types import ModuleType

from django.conf import settings

from syncing.engine import pgsql, portable


def on_postgresql() -> bool:
    return "postgresql" in str(settings.DATABASES["default"]["ENGINE"])


sql: ModuleType = pgsql if on_postgresql() else portable
