"""PowerSchool SIS (``/ws/v1`` REST, PowerQueries, schema tables) through a plugin's OAuth 2.0
client credentials. Facts from /work/shared/reference/sis-apis.md §1.

- Token: ``POST /oauth/access_token`` with Basic auth and ``grant_type=client_credentials``.
- Paging: ``…/count`` first, then ``page`` (from 1) / ``pagesize`` up to the plugin maximum that
  ``/ws/v1/metadata`` reports (``*_max_page_size``).
- Guardians: the PowerQuery ``com.pearson.core.guardian.student_guardian_detail`` (no ``/ws/v1``
  guardian resource exists) or ``/ws/contacts/student/{dcid}`` per student.
- Section enrollments: the ``CC`` schema table.
- Quirks: one result comes as an object instead of a list; numbers may come as ints or strings;
  PowerQuery values are strings. The per-plugin throttle ("wait N seconds") is a transient wait.
- IDs: ``/ws/v1`` names students by DCID, the ``CC`` table and data-version answers by the
  students table's ID; the PowerQuery ``com.pearson.core.student.student_dcid_id_map`` maps one
  to the other.
- Deltas: PowerQueries called with ``$dataversion`` / ``$dataversion_applicationname`` answer
  the changed row IDs per table and the new data version (the watermark).
- Events: ``/ws/v1/event_subscription`` (PUT/GET/DELETE) registers our webhook.
- Grades: PowerTeacher Pro assignments and scores (``/ws/xte``), in ``gradebook.py``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import requests

from gateway import client as gateway
from sis.connectors.base import Capability, RawPage
from sis.connectors.errors import (
    AuthenticationFailed,
    ConfigurationError,
    ConnectorError,
    MalformedRecord,
    NotFound,
    UnsupportedOperation,
)
from sis.connectors.powerschool import mapping
from sis.connectors.powerschool.gradebook import PowerSchoolGradebook
from sis.connectors.powerschool.queries import DELTA_SOURCES, GUARDIAN_QUERY, data_version
from sis.connectors.records import Entity, Record
from sis.connectors.tokens import Token

#: canonical student fields → where ``POST /ws/v1/student`` takes them
STUDENT_WRITABLE = {
    "first_name": ("name", "first_name"),
    "middle_name": ("name", "middle_name"),
    "last_name": ("name", "last_name"),
    "birth_date": ("demographics", "birth_date"),
    "gender": ("demographics", "gender"),
}
THROTTLE_MESSAGE = re.compile(r"(?i)wait\s+(\d+(?:\.\d+)?)\s+second")
PER_SCHOOL = {
    Entity.TERM: ("term", "terms", "term"),
    Entity.COURSE: ("course", "courses", "course"),
    Entity.SECTION: ("section", "sections", "section"),
    Entity.STAFF: ("staff", "staffs", "staff"),
}


@dataclass(frozen=True)
class PowerSchoolOptions:
    #: where guardians come from: the PowerQuery (one paged listing) or the contacts API
    #: (one call per student; for servers without the PowerQuery permission)
    guardian_source: Literal["powerquery", "contacts"] = "powerquery"
    #: page size; default (0) is the plugin maximum reported by /ws/v1/metadata
    page_size: int = 0
    student_expansions: str = "demographics,addresses,phones,contact_info,school_enrollment"
    #: the district's "minimum time interval between API requests per plugin", if any
    min_interval_ms: int = 0
    #: ``$dataversion_applicationname``: the name PowerSchool keeps our data versions under
    data_version_application: str = "student-attendance-sync"
    #: PowerTeacher Pro calls are made as this users DCID (e.g. a district gradebook account);
    #: empty: as each section's teacher
    gradebook_users_dcid: str = ""
    #: the teacher category participation assignments are created in
    gradebook_category: str = "Participation"

    def validate(self) -> None:
        if self.page_size < 0 or self.min_interval_ms < 0:
            raise ConfigurationError("page_size and min_interval_ms may not be negative.")


class PowerSchoolConnector(PowerSchoolGradebook):
    key = "powerschool"
    label = "PowerSchool"
    capabilities = frozenset(
        {
            Capability.READ_ROSTER,
            Capability.READ_GUARDIANS,
            Capability.DELTA,
            Capability.PUSH_EVENTS,
            Capability.WRITE_DEMOGRAPHICS,
            Capability.WRITE_GRADES,
        }
    )
    entities = (
        Entity.SCHOOL,
        Entity.TERM,
        Entity.COURSE,
        Entity.STAFF,
        Entity.SECTION,
        Entity.STUDENT,
        Entity.ENROLLMENT,
        Entity.GUARDIAN,
        Entity.STUDENT_GUARDIAN,
        Entity.SECTION_ENROLLMENT,
    )
    Options = PowerSchoolOptions
    options: PowerSchoolOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._school_ids: list[str] | None = None

    # ---------------------------------------------------------------- hooks -------------------
    def validate_config(self) -> None:
        super().validate_config()
        if not self.config.client_id or not self.config.client_secret:
            raise ConfigurationError("PowerSchool needs the plugin's client ID and secret.")

    def route_policy(self) -> gateway.RoutePolicy:
        rate = self.config.rate_per_second
        if self.options.min_interval_ms:
            # The district's per-plugin interval, kept on our side rather than tripped.
            interval_rate = 1000.0 / self.options.min_interval_ms
            rate = min(rate, interval_rate) if rate else interval_rate
        return gateway.RoutePolicy(rate_per_second=rate, max_in_flight=self.config.max_concurrency)

    def request_token(self) -> Token:
        token_url = self.config.token_url or self.url("/oauth/access_token")
        response = gateway.request(
            self.route,
            "POST",
            token_url,
            path_template="/oauth/access_token",
            auth=(self.config.client_id, self.config.client_secret),
            data={"grant_type": "client_credentials"},
            headers={"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"},
            retry_writes=True,  # asking for a token twice is harmless
        )
        return mapping.token_from_response(response, label=self.label)

    def error_message(self, response: requests.Response) -> str:
        return mapping.error_message(response)

    def throttle_wait(self, response: requests.Response) -> float | None:
        return throttle_seconds(response)

    def count_raw(self, entity: Entity) -> int | None:
        if entity == Entity.SCHOOL:
            return self._count("/ws/v1/district/school/count")
        if entity in (Entity.STUDENT, Entity.ENROLLMENT):
            return self._count("/ws/v1/district/student/count")
        if entity in PER_SCHOOL:
            resource = PER_SCHOOL[entity][0]
            return sum(
                self._count(
                    f"/ws/v1/school/{sid}/{resource}/count",
                    path_template=f"/ws/v1/school/{{id}}/{resource}/count",
                )
                for sid in self.school_ids()
            )
        if entity in (Entity.GUARDIAN, Entity.STUDENT_GUARDIAN):
            data = self.request("POST", f"/ws/schema/query/{GUARDIAN_QUERY}/count", json={})
            return int(data.json()["count"])
        if entity == Entity.SECTION_ENROLLMENT:
            return int(self.get_json("/ws/schema/table/cc/count")["count"])
        return None

    def is_delta(self, entity: Entity, *, since: str | None) -> bool:
        # Only data versions are deltas; other entities (and a watermark from before data
        # versions were used, such as a timestamp) list everything and the diff finds changes.
        return data_version(since) is not None and entity in DELTA_SOURCES

    def fetch_raw(self, entity: Entity, *, since: str | None) -> Iterator[RawPage]:
        # Read the data versions before listing, so what changes during the fetch is seen
        # again by the next delta rather than skipped.
        self.data_versions(since)
        if self.is_delta(entity, since=since):
            yield from self._changed_pages(entity, data_version(since) or "0")
            return
        if entity == Entity.SCHOOL:
            yield from self._listing("/ws/v1/district/school", "schools", "school", "school")
        elif entity in (Entity.STUDENT, Entity.ENROLLMENT):
            yield from self._listing(
                "/ws/v1/district/student",
                "students",
                "student",
                "student",
                params={"expansions": self.options.student_expansions},
            )
        elif entity in PER_SCHOOL:
            resource, plural, singular = PER_SCHOOL[entity]
            for sid in self.school_ids():
                yield from self._listing(
                    f"/ws/v1/school/{sid}/{resource}",
                    plural,
                    singular,
                    resource,
                    template=f"/ws/v1/school/{{id}}/{resource}",
                )
        elif entity in (Entity.GUARDIAN, Entity.STUDENT_GUARDIAN):
            if self.options.guardian_source == "contacts":
                yield from self._contacts_pages()
            else:
                yield from self._powerquery_pages()
        elif entity == Entity.SECTION_ENROLLMENT:
            # CC rows are mapped with the students' DCIDs: read them here, in the page thread,
            # before the first page, so the mapping never asks the SIS beside this listing (on
            # a route allowing one call at a time, its request would wait for ours and give
            # up). A delta does the same when CC rows changed (_changed_pages).
            self.student_dcids()
            yield from self._table_pages("cc", "section_enrollment")

    def map_record(self, entity: Entity, item: Any) -> Iterable[Record]:
        records = mapping.MAPPERS[entity](item)
        if entity != Entity.SECTION_ENROLLMENT:
            return records
        # CC names the student by the students table's ID; our student source id is the DCID.
        mapped = []
        for record in records:
            student_id = getattr(record, "student_id", "")
            dcid = self.student_dcid(student_id)
            if dcid is None:
                raise MalformedRecord(f"CC row refers to unknown student ID {student_id}")
            record.student_id = dcid  # type: ignore[attr-defined]
            mapped.append(record)
        return mapped

    def source_id_of(self, item: Any) -> str | None:
        if isinstance(item, dict) and isinstance(item.get("tables"), dict):
            for table in item["tables"].values():
                if isinstance(table, dict):
                    for name in ("contactdcid", "dcid", "id"):
                        if table.get(name):
                            return str(table[name])
        return super().source_id_of(item)

    def fetch_one_raw(self, entity: Entity, source_id: str) -> Any | None:
        resource = {
            Entity.STUDENT: "student",
            Entity.ENROLLMENT: "student",
            Entity.SCHOOL: "school",
            Entity.STAFF: "staff",
            Entity.SECTION: "section",
            Entity.COURSE: "course",
        }.get(entity)
        if entity in (Entity.GUARDIAN, Entity.STUDENT_GUARDIAN, Entity.SECTION_ENROLLMENT):
            return self._fetch_one_row(entity, source_id)
        if resource is None:
            return super().fetch_one_raw(entity, source_id)
        if entity == Entity.ENROLLMENT:
            source_id = source_id.split(":")[0]
        params = {"expansions": self.options.student_expansions} if resource == "student" else {}
        try:
            data = self.get_json(
                f"/ws/v1/{resource}/{source_id}",
                params=params,
                path_template=f"/ws/v1/{resource}/{{id}}",
            )
        except NotFound:
            return None
        return data.get(resource)

    def _fetch_one_row(self, entity: Entity, source_id: str) -> Any | None:
        """A contact or a CC row, which have no ``/ws/v1`` resource of their own: the same
        filtered PowerQuery or table read a delta uses for changed rows."""
        if entity == Entity.SECTION_ENROLLMENT:
            pages = self._table_pages("cc", "section_enrollment", q=f"dcid=={source_id}")
            rows = [item for page in pages for item in page.items]
            return next(
                (i for i in rows if mapping.text(mapping.table_row(i).get("dcid")) == source_id),
                None,
            )
        student, _, contact = source_id.rpartition(":")
        if entity == Entity.STUDENT_GUARDIAN and not student:
            raise UnsupportedOperation("A student-contact link is re-fetched by student:contact.")
        if self.options.guardian_source == "contacts":
            if entity == Entity.GUARDIAN:  # the contacts API lists contacts per student only
                return super().fetch_one_raw(entity, source_id)
            try:
                rows = self._contact_rows(student)
            except NotFound:  # the student is gone, and the link with it
                return None
        else:
            pages = self._query_pages(GUARDIAN_QUERY, q=f"contactdcid=={contact}")
            rows = [item for page in pages for item in page.items]
        for item in rows:
            row = mapping.table_row(item)
            same_student = mapping.text(row.get("studentsdcid")) == student
            if mapping.text(row.get("contactdcid")) == contact and (
                entity == Entity.GUARDIAN or same_student
            ):
                return item
        return None

    # ---------------------------------------------------------------- writes ------------------
    def student_write(
        self, *, source_id: str, changes: dict[str, Any], client_uid: str | None = None
    ) -> dict[str, Any]:
        """Update a student's demographics (``POST /ws/v1/student``, action UPDATE).
        ``client_uid`` comes back in the per-record result; a retried write reuses it. A
        record the SIS refuses raises a permanent :class:`ConnectorError` with its message."""
        self.require(Capability.WRITE_DEMOGRAPHICS)
        body = {
            "students": {
                "student": [
                    {
                        "client_uid": client_uid or str(uuid.uuid4()),
                        "action": "UPDATE",
                        "id": source_id,
                        **changes,
                    }
                ]
            }
        }
        # An UPDATE to the same values is harmless, so the gateway may retry it.
        data = dict(self.request("POST", "/ws/v1/student", json=body, retry_writes=True).json())
        results = mapping.as_list((data.get("results") or {}).get("result"))
        for result in results:
            if isinstance(result, dict) and str(result.get("status", "")).upper() != "SUCCESS":
                detail = result.get("error_message") or result.get("error") or "refused"
                raise ConnectorError(f"{self.label} refused the student update: {detail}")
        return data

    def write_fields(
        self, entity: Entity, source_id: str, values: dict[str, Any], *, idempotency_key: str
    ) -> None:
        if entity != Entity.STUDENT:
            return super().write_fields(entity, source_id, values, idempotency_key=idempotency_key)
        changes: dict[str, dict[str, Any]] = {}
        for name, value in values.items():
            if name not in STUDENT_WRITABLE:
                raise ConnectorError(f"{self.label} does not let us write a student's {name}.")
            block, key = STUDENT_WRITABLE[name]
            changes.setdefault(block, {})[key] = "" if value is None else str(value)
        try:
            self.student_write(source_id=source_id, changes=changes, client_uid=idempotency_key)
        except ConnectorError as exc:
            if exc.status != 412:
                raise
            # 412 means "resubmit": PowerSchool asks for exactly one more try.
            self.student_write(source_id=source_id, changes=changes, client_uid=idempotency_key)

    # ---------------------------------------------------------------- helpers -----------------
    def school_ids(self) -> list[str]:
        if self._school_ids is None:
            ids: list[str] = []
            for page in self._listing("/ws/v1/district/school", "schools", "school", "school"):
                ids.extend(str(item["id"]) for item in page.items if isinstance(item, dict))
            self._school_ids = ids
        return self._school_ids

    def _count(self, path: str, *, path_template: str | None = None) -> int:
        data = self.get_json(path, path_template=path_template)
        return int(data["resource"]["count"])

    def _listing(
        self,
        path: str,
        plural: str,
        singular: str,
        resource: str,
        *,
        params: dict[str, str] | None = None,
        template: str | None = None,
    ) -> Iterator[RawPage]:
        total = self._count(
            f"{path}/count", path_template=f"{template}/count" if template else None
        )
        if total == 0:
            return
        size = self.page_size(resource)

        def get_page(index: int, offset: int) -> RawPage:
            data = self.get_json(
                path,
                params={**(params or {}), "page": index + 1, "pagesize": size},
                path_template=template,
            )
            wrapper = data.get(plural) if isinstance(data, dict) else None
            items = mapping.as_list(wrapper.get(singular) if isinstance(wrapper, dict) else None)
            return RawPage(items, total=total)

        yield from self.paginate(get_page, page_size=size, total=total)

    def _powerquery_pages(self) -> Iterator[RawPage]:
        yield from self._query_pages(GUARDIAN_QUERY)

    def _contacts_pages(self) -> Iterator[RawPage]:
        for page in self._listing("/ws/v1/district/student", "students", "student", "student"):
            items: list[Any] = []
            for student in page.items:
                items.extend(self._contact_rows(str(student["id"])))
            yield RawPage(items)

    def _contact_rows(self, student_dcid: str) -> list[dict[str, Any]]:
        """A student's contacts (``/ws/contacts/student/{dcid}``) as guardian-query rows."""
        contacts = self.get_json(
            f"/ws/contacts/student/{student_dcid}", path_template="/ws/contacts/student/{id}"
        )
        return [
            {
                "name": "contacts",
                "tables": {"studentcontactassoc": {"studentsdcid": student_dcid, **contact}},
            }
            for contact in mapping.as_list(contacts)
        ]


def throttle_seconds(response: requests.Response) -> float | None:
    """The wait PowerSchool's per-plugin throttle asks for ("… wait N seconds …"), else None.
    PowerSchool publishes no status for it, so the message is what identifies it."""
    if response.status_code not in (403, 429, 503):
        return None
    match = THROTTLE_MESSAGE.search(mapping.error_message(response))
    return float(match.group(1)) if match else None


# Let the gateway treat the throttle like a 429: it blocks the route for every worker and
# retries or raises RateLimited. (The base class still handles it when the gateway does not.)
_register = getattr(gateway, "throttle_detector_register", None)
if _register is not None:
    _register("powerschool", throttle_seconds)

__all__ = ["AuthenticationFailed", "PowerSchoolConnector", "PowerSchoolOptions"]
