"""PowerSchool's PowerQueries and schema tables, the DCID ↔ ID map, data versions and event
subscriptions: the calls below the connector's hooks (``connector.py``). Facts from
/work/shared/reference/sis-apis.md §1.2–§1.4.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sis.connectors.base import Capability, Connector, RawPage, parse_json
from sis.connectors.errors import NotFound
from sis.connectors.powerschool import mapping
from sis.connectors.records import Entity

GUARDIAN_QUERY = "com.pearson.core.guardian.student_guardian_detail"
DCID_ID_QUERY = "com.pearson.core.student.student_dcid_id_map"
SECTION_ENROLLMENT_QUERY = "com.pearson.core.teachers.sectionEnrollments"
#: which data-version PowerQuery reports the changes of which entities, and under which table
DELTA_SOURCES: dict[Entity, tuple[str, str]] = {
    Entity.STUDENT: (DCID_ID_QUERY, "students"),
    Entity.ENROLLMENT: (DCID_ID_QUERY, "students"),
    Entity.GUARDIAN: (GUARDIAN_QUERY, "studentcontactassoc"),
    Entity.STUDENT_GUARDIAN: (GUARDIAN_QUERY, "studentcontactassoc"),
    Entity.SECTION_ENROLLMENT: (SECTION_ENROLLMENT_QUERY, "cc"),
}
BY_ID_CHUNK = 50  # ids per FIQL "or" filter when fetching changed rows


class PowerSchoolQueries(Connector):
    """PowerSchool calls shared by the connector's hooks (kept apart to keep each module
    short). Every method pages within the plugin's maximum from ``/ws/v1/metadata``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._metadata: dict[str, Any] | None = None
        self._dcid_of_id: dict[str, str] | None = None
        # Data-version answers of this connector's run: (query, start) → (version, ids).
        self._changes: dict[tuple[str, str], tuple[str, dict[str, list[str]]]] = {}
        #: the data version to start the next delta from (read by the sync engine after a
        #: run); the lowest version seen, so nothing changed during the run is skipped
        self.delta_watermark: str | None = None

    def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            self._metadata = dict(self.get_json("/ws/v1/metadata").get("metadata") or {})
        return self._metadata

    def page_size(self, resource: str) -> int:
        maximum = int(self.metadata().get(f"{resource}_max_page_size") or 100)
        wanted = self.options.page_size or maximum
        return max(1, min(wanted, maximum))

    def _query_pages(self, query: str, *, q: str | None = None) -> Iterator[RawPage]:
        path = f"/ws/schema/query/{query}"
        extra = {"$q": q} if q else {}
        total = int(self.request("POST", f"{path}/count", params=extra, json={}).json()["count"])
        size = self.page_size("schema_table_query")

        def get_page(index: int, offset: int) -> RawPage:
            response = self.request(
                "POST",
                path,
                params={**extra, "page": index + 1, "pagesize": size},
                json={},
                retry_writes=True,
            )  # a query, safe to repeat
            return RawPage(mapping.as_list(parse_json(response).get("record")), total=total)

        yield from self.paginate(get_page, page_size=size, total=total)

    def _table_pages(self, table: str, resource: str, *, q: str | None = None) -> Iterator[RawPage]:
        path = f"/ws/schema/table/{table}"
        extra = {"q": q} if q else {}
        total = int(self.get_json(f"{path}/count", params=extra)["count"])
        size = self.page_size("schema_table_query")
        projection = "dcid,id,studentid,sectionid,schoolid,dateenrolled,dateleft"

        def get_page(index: int, offset: int) -> RawPage:
            data = self.get_json(
                path,
                params={**extra, "projection": projection, "page": index + 1, "pagesize": size},
            )
            return RawPage(mapping.as_list(data.get("record")), total=total)

        yield from self.paginate(get_page, page_size=size, total=total)

    def student_dcid(self, student_id: str) -> str | None:
        """The DCID of the student whose students-table ID is ``student_id``."""
        return self.student_dcids().get(mapping.text(student_id))

    def student_dcids(self) -> dict[str, str]:
        """Students-table ID → DCID of every student, read once per connector."""
        if self._dcid_of_id is None:
            mapping_: dict[str, str] = {}
            for page in self._query_pages(DCID_ID_QUERY):
                for item in page.items:
                    row = mapping.table_row(item)
                    if row.get("id") not in (None, "") and row.get("dcid") not in (None, ""):
                        mapping_[mapping.text(row["id"])] = mapping.text(row["dcid"])
            self._dcid_of_id = mapping_
        return self._dcid_of_id

    def data_versions(self, since: str | None) -> None:
        """Ask each data-version query what changed after ``since`` (all of it when there is
        no data version yet); sets :attr:`delta_watermark` to the lowest new version."""
        start = data_version(since) or "0"
        for query in {q for q, _ in DELTA_SOURCES.values()}:
            if (query, start) in self._changes:
                continue
            response = self.request(
                "POST",
                f"/ws/schema/query/{query}",
                json={
                    "$dataversion": start,
                    "$dataversion_applicationname": self.options.data_version_application,
                },
                retry_writes=True,  # a query, safe to repeat
            )
            body = response.json() if response.content else {}
            version = mapping.text((body or {}).get("$dataversion"))
            tables = {
                str(name).lower(): [mapping.text(i) for i in mapping.as_list(ids)]
                for name, ids in ((body or {}).get("tables") or {}).items()
            }
            self._changes[(query, start)] = (version, tables)
            if version.isdigit() and (
                self.delta_watermark is None or int(version) < int(self.delta_watermark)
            ):
                self.delta_watermark = version

    def _changed_pages(self, entity: Entity, since: str) -> Iterator[RawPage]:
        query, table = DELTA_SOURCES[entity]
        ids = self._changes[(query, since)][1].get(table, [])
        if entity == Entity.SECTION_ENROLLMENT and ids:
            self.student_dcids()  # for the mapping, read before the first page (see fetch_raw)
        for start in range(0, len(ids), BY_ID_CHUNK):
            chunk = ids[start : start + BY_ID_CHUNK]
            if entity in (Entity.STUDENT, Entity.ENROLLMENT):
                items = []
                for student_id in chunk:
                    dcid = self.student_dcid(student_id)
                    item = self.fetch_one_raw(Entity.STUDENT, dcid) if dcid else None
                    if item is not None:  # gone since: the weekly full sync reconciles it
                        items.append(item)
                yield RawPage(items)
            elif entity == Entity.SECTION_ENROLLMENT:
                filter_ = ",".join(f"id=={i}" for i in chunk)  # FIQL: "," is OR
                for page in self._table_pages("cc", "section_enrollment", q=filter_):
                    yield page
            else:
                filter_ = ",".join(f"contactdcid=={i}" for i in chunk)
                for page in self._query_pages(GUARDIAN_QUERY, q=filter_):
                    yield page

    def events_subscribe(self, *, callback_url: str, secret: str) -> dict[str, Any]:
        """Register our webhook for student, contact and schedule changes
        (``PUT /ws/v1/event_subscription``; needs "Data Event API Services" on)."""
        self.require(Capability.PUSH_EVENTS)
        body = {
            "event_subscriptions": {
                "key": self.config.key,
                "callback_url": callback_url,
                "secret": secret,
                "resource": [
                    {"event_type": kind, "resource": resource}
                    for resource in ("/ws/v1/student", "/ws/v1/section_enrollment", "contacts")
                    for kind in ("INSERT", "UPDATE", "DELETE")
                ],
            }
        }
        return dict(self.request("PUT", "/ws/v1/event_subscription", json=body).json() or {})

    def events_subscription(self) -> dict[str, Any]:
        """What PowerSchool has registered for this plugin (empty when nothing)."""
        try:
            return dict(self.get_json("/ws/v1/event_subscription") or {})
        except NotFound:
            return {}

    def events_unsubscribe(self) -> None:
        self.require(Capability.PUSH_EVENTS)
        try:
            self.request("DELETE", "/ws/v1/event_subscription")
        except NotFound:
            return


def data_version(watermark: str | None) -> str | None:
    """A PowerSchool data version (digits) from a run's watermark; None for anything else (no
    watermark yet, or a timestamp written before data versions were used)."""
    if watermark is not None and watermark.strip().isdigit():
        return watermark.strip()
    return None
