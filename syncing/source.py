"""What the sync engine needs from a SIS connector (``sis.connectors.base.Connector`` provides
it), and how to get one for a connection."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from sis.connectors.records import Page, Record


class Source(Protocol):
    """The connector surface the engine uses."""

    entities: Any
    enabled_capabilities: Any

    def fetch(self, entity: Any, *, since: str | None = None) -> Iterator[Page]:
        """Stream pages of canonical records of ``entity`` (changes after ``since``)."""
        ...

    def fetch_item(self, entity: Any, source_id: str) -> list[Record] | None:
        """Re-fetch the item ``source_id`` names: every ``entity`` record it maps to (a
        student's item, all its enrollment spans); None when the SIS no longer has it."""
        ...


def source_for_connection(connection: Any) -> Source:
    """The connector of ``connection`` (built by the sis app, credentials decrypted there)."""
    from importlib import import_module

    # Imported by name: the sis app builds connectors (and decrypts their credentials).
    sis_services: Any = import_module("sis.services")
    return cast(Source, sis_services.sis_connection_connector(connection))


def source_capabilities(source: Source) -> set[str]:
    return {str(c) for c in getattr(source, "enabled_capabilities", ()) or ()}
