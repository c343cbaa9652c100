"""Where connector classes come from: the built-ins below, and outside packages that declare
an entry point in the ``sis.connectors`` group (``name = "package.module:ConnectorClass"``).

Classes are loaded lazily, so a broken outside plugin cannot stop the application from starting;
it fails when a connection that uses it is built, with its name in the error.
"""

from __future__ import annotations

import json
from importlib import import_module
from importlib.metadata import entry_points

from sis.connectors.base import Connector
from sis.connectors.errors import ConfigurationError
from sis.connectors.options import options_describe

ENTRY_POINT_GROUP = "sis.connectors"

BUILTIN_CONNECTORS: dict[str, str] = {
    "powerschool": "sis.connectors.powerschool.connector:PowerSchoolConnector",
    "oneroster-1.1": "sis.connectors.oneroster.connector:OneRoster11Connector",
    "oneroster-1.2": "sis.connectors.oneroster.connector:OneRoster12Connector",
    "oneroster-csv": "sis.connectors.oneroster_csv.connector:OneRosterCSVConnector",
}


def _load(path: str) -> type[Connector]:
    module_name, _, attr = path.partition(":")
    cls = getattr(import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConfigurationError(f"{path} is not a Connector subclass.")
    return cls


def connector_keys() -> list[str]:
    """Every provider key: built-ins first, then installed plugins."""
    keys = list(BUILTIN_CONNECTORS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in keys:
            keys.append(ep.name)
    return keys


def connector_class(key: str) -> type[Connector]:
    """The connector class for a provider key; ConfigurationError if nothing provides it."""
    if key in BUILTIN_CONNECTORS:
        return _load(BUILTIN_CONNECTORS[key])
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=key):
        try:
            cls = ep.load()
        except Exception as exc:  # an outside package: report, do not crash the caller
            raise ConfigurationError(
                f"Connector plugin {key!r} ({ep.value}) failed to load: {type(exc).__name__}"
            ) from exc
        if not (isinstance(cls, type) and issubclass(cls, Connector)):
            raise ConfigurationError(f"Connector plugin {key!r} is not a Connector subclass.")
        return cls
    raise ConfigurationError(
        f"No connector for provider {key!r}; known: {', '.join(connector_keys())}."
    )


def connectors_described() -> list[tuple[str, str, str]]:
    """(key, its options in words, its capabilities) for every provider key, for the admin's
    connection form: each option as ``name`` (type, default), in JSON's words."""
    described = []
    for key in connector_keys():
        try:
            cls = connector_class(key)
        except ConfigurationError as exc:
            described.append((key, exc.message, ""))
            continue
        options = "; ".join(
            f"{name} ({kind}, default {json.dumps(default)})"
            for name, kind, default in options_describe(cls.Options)
        )
        capabilities = ", ".join(sorted(cls.capabilities))
        described.append((key, options or "no options", capabilities))
    return described
