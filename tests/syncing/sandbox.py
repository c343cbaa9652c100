"""Sync against the sandbox SIS over real HTTP: fixtures' building blocks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sis.sandbox.testing import RunningSandbox, running_sandbox
from sis.services import sis_connection_connector, sis_connection_create


def connection_for(sandbox: RunningSandbox, district: Any, name: str = "Sandbox") -> Any:
    options: dict[str, Any] = {"auth": "oauth1"} if sandbox.state.oauth1 else {}
    if sandbox.state.provider.startswith("oneroster"):
        options["page_size"] = 1000
    return sis_connection_create(
        district=district,
        name=name,
        provider=sandbox.state.provider,
        client_id=sandbox.client_id,
        client_secret=sandbox.client_secret,
        base_url=sandbox.api_base_url,
        token_url=sandbox.token_url,
        options=options,
    )


@contextmanager
def sandbox_for(
    provider: str = "powerschool", students: int = 120, **options: Any
) -> Iterator[RunningSandbox]:
    with running_sandbox(provider=provider, students=students, **options) as sandbox:
        yield sandbox


class Filtered:
    """The real connector, with some records hidden (a SIS that suddenly drops part of a
    roster, or returns nothing)."""

    def __init__(self, connection: Any, hide: Any) -> None:
        self.inner = sis_connection_connector(connection)
        self.hide = hide
        self.entities = self.inner.entities
        self.enabled_capabilities = self.inner.enabled_capabilities

    def fetch(self, entity: Any, *, since: str | None = None) -> Iterator[Any]:
        for page in self.inner.fetch(entity, since=since):
            page.records = [r for r in page.records if not self.hide(r)]
            yield page

    def fetch_item(self, entity: Any, source_id: str) -> Any:
        records = self.inner.fetch_item(entity, source_id)
        kept = [r for r in records or [] if not self.hide(r)]
        return kept or None
