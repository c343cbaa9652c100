"""``manage.py shell`` without the warning about the history models.

Django's shell imports every model by ``module.Name``; django-simple-history's generated
models (``HistoricalStudent`` …) name a module that does not hold them, so every shell opened
with a list of sixteen models that "could not be automatically imported". They stay reachable
as ``Student.history.model``.
"""

from __future__ import annotations

from importlib import import_module

from django.core.management.commands import shell


def _importable(path: str) -> bool:
    module, _, name = path.rpartition(".")
    if not module:
        return True
    try:
        return hasattr(import_module(module), name)
    except ImportError:
        return True  # not a model path Django built: let the shell report it as it would


class Command(shell.Command):
    def get_auto_imports(self) -> list[str] | None:
        paths = super().get_auto_imports()
        return None if paths is None else [path for path in paths if _importable(path)]
