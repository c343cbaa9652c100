"""An example outside connector: reads "id,first,last" lines from a local file (docs/connectors.md
walks through it)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sis.connectors.base import Capability, Connector, RawPage
from sis.connectors.records import Entity, Record, StudentRecord


@dataclass(frozen=True)
class Options:
    path: str = ""


class ExampleConnector(Connector):
    key = "example-csv-lines"
    label = "Example lines file"
    capabilities = frozenset({Capability.READ_ROSTER})
    entities = (Entity.STUDENT,)
    Options = Options
    uses_tokens = False
    raw_pages_ahead = 0  # a local file: no SIS to wait for, no page thread

    def validate_config(self) -> None:
        pass  # no URL needed: it reads a file

    def fetch_raw(self, entity: Entity, *, since: str | None) -> Iterator[RawPage]:
        lines = Path(self.options.path).read_text().splitlines()
        yield RawPage([line.split(",") for line in lines if line.strip()])

    def count_raw(self, entity: Entity) -> int | None:
        return sum(len(page.items) for page in self.fetch_raw(entity, since=None))

    def check_credentials(self) -> None:
        Path(self.options.path).stat()

    def map_record(self, entity: Entity, item: Any) -> Iterable[Record]:
        source_id, first, last = item
        yield StudentRecord(
            source_id=source_id, raw={"line": item}, first_name=first, last_name=last
        )
