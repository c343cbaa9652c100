"""OneRoster 1.1 CSV bundles: a zip (uploaded in the admin, or read from a path) or a folder.

``manifest.csv`` says for each file whether it is ``bulk`` (the complete set), ``delta``
(changes only, deletions as ``status=tobedeleted``) or ``absent``. Headers are matched without
regard to case, surrounding spaces or a byte-order mark. A bad row (wrong number of columns, a
missing id, an unreadable date) is quarantined with its row number; the rest of the file is
read. Rows are turned into the REST shapes and mapped by the OneRoster REST mapping, so both
paths agree.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sis.connectors.base import Capability, Connector, RawPage
from sis.connectors.errors import ConfigurationError, MalformedRecord
from sis.connectors.oneroster import mapping
from sis.connectors.records import Entity, Record

FILES: dict[Entity, str] = {
    Entity.SCHOOL: "orgs.csv",
    Entity.TERM: "academicSessions.csv",
    Entity.COURSE: "courses.csv",
    Entity.SECTION: "classes.csv",
    Entity.STAFF: "users.csv",
    Entity.STUDENT: "users.csv",
    Entity.ENROLLMENT: "users.csv",
    Entity.GUARDIAN: "users.csv",
    Entity.STUDENT_GUARDIAN: "users.csv",
    Entity.SECTION_ENROLLMENT: "enrollments.csv",
}
COLUMNS = {
    "orgs.csv": "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId",
    "academicSessions.csv": "sourcedId,status,dateLastModified,title,type,startDate,endDate,"
    "parentSourcedId,schoolYear",
    "courses.csv": "sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,"
    "grades,orgSourcedId,subjects,subjectCodes",
    "classes.csv": "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,"
    "classType,location,schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods",
    "users.csv": "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,"
    "userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,"
    "password",
    "enrollments.csv": "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,"
    "userSourcedId,role,primary,beginDate,endDate",
}
CANONICAL = {name.lower(): name for columns in COLUMNS.values() for name in columns.split(",")}
PAGE_ROWS = 1000


@dataclass(frozen=True)
class CSVOptions:
    #: a .zip bundle or a folder of CSV files; set from the latest admin upload when empty
    path: str = ""


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _refs(value: str | None) -> list[dict[str, str]]:
    return [{"sourcedId": v} for v in _split(value)]


def row_to_rest(name: str, row: dict[str, str]) -> dict[str, Any]:
    """A CSV row in the shape of the REST object, so one mapping serves both."""
    item: dict[str, Any] = {
        "sourcedId": row.get("sourcedId") or "",
        "status": row.get("status") or "active",
        "dateLastModified": row.get("dateLastModified") or None,
    }
    get = row.get
    if name == "orgs.csv":
        item.update(
            name=get("name"),
            type=get("type") or "school",
            identifier=get("identifier") or "",
            parent=get("parentSourcedId") or None,
        )
    elif name == "academicSessions.csv":
        item.update(
            title=get("title"),
            type=get("type"),
            startDate=get("startDate"),
            endDate=get("endDate"),
            parent=get("parentSourcedId") or None,
            schoolYear=get("schoolYear"),
        )
    elif name == "courses.csv":
        item.update(
            title=get("title"), courseCode=get("courseCode"), org=get("orgSourcedId") or None
        )
    elif name == "classes.csv":
        item.update(
            title=get("title"),
            classCode=get("classCode"),
            course=get("courseSourcedId") or None,
            school=get("schoolSourcedId") or None,
            terms=_refs(get("termSourcedIds")),
            periods=_split(get("periods")),
        )
    elif name == "users.csv":
        item.update(
            enabledUser=get("enabledUser") or "true",
            role=get("role"),
            orgs=_refs(get("orgSourcedIds")),
            username=get("username"),
            givenName=get("givenName"),
            familyName=get("familyName"),
            middleName=get("middleName"),
            identifier=get("identifier"),
            email=get("email"),
            sms=get("sms"),
            phone=get("phone"),
            agents=_refs(get("agentSourcedIds")),
            grades=_split(get("grades")),
        )
    elif name == "enrollments.csv":
        item.update(
            **{"class": get("classSourcedId") or None},
            school=get("schoolSourcedId") or None,
            user=get("userSourcedId") or None,
            role=get("role"),
            primary=get("primary"),
            beginDate=get("beginDate") or None,
            endDate=get("endDate") or None,
        )
    return item


class OneRosterCSVConnector(Connector):
    key = "oneroster-csv"
    label = "OneRoster CSV"
    capabilities = frozenset({Capability.READ_ROSTER, Capability.READ_GUARDIANS})
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
    Options = CSVOptions
    options: CSVOptions
    uses_tokens = False
    raw_pages_ahead = 0  # rows parsed from a local file: no SIS to wait for, no page thread

    def validate_config(self) -> None:
        pass  # the bundle may be uploaded after the connection is created

    # ---------------------------------------------------------------- files --------------------
    @contextmanager
    def _open(self, name: str) -> Iterator[IO[str] | None]:
        if not self.options.path:
            raise ConfigurationError(
                "A OneRoster CSV connection needs a bundle: upload a zip "
                "in the admin or set the 'path' option."
            )
        path = Path(self.options.path)
        if not path.exists():
            raise ConfigurationError(f"CSV bundle {path.name} does not exist.")
        if path.is_dir():
            matches = [p for p in path.iterdir() if p.name.lower() == name.lower()]
            if not matches:
                yield None
                return
            with matches[0].open(encoding="utf-8-sig", newline="") as handle:
                yield handle
            return
        try:
            bundle = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            raise ConfigurationError(f"{path.name} is not a zip file.") from None
        with bundle:
            members = {Path(m).name.lower(): m for m in bundle.namelist()}
            member = members.get(name.lower())
            if member is None:
                yield None
                return
            with bundle.open(member) as raw:
                yield io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")

    def manifest(self) -> dict[str, str]:
        with self._open("manifest.csv") as handle:
            if handle is None:
                return {}
            rows = list(csv.reader(handle))
        result = {}
        for row in rows[1:]:
            if len(row) >= 2:
                result[row[0].strip().lstrip("\ufeff")] = row[1].strip().lower()
        return result

    def file_mode(self, name: str) -> str:
        """``bulk``, ``delta`` or ``absent`` for one file (bulk when the manifest is silent)."""
        manifest = self.manifest()
        return manifest.get(
            f"file.{name.removesuffix('.csv')}", "bulk" if not manifest else "absent"
        )

    def is_delta(self, entity: Entity, *, since: str | None) -> bool:
        return self.file_mode(FILES[entity]) == "delta"

    def rows(self, name: str) -> Iterator[dict[str, Any]]:
        """Rows as dicts with canonical column names; a bad row becomes an error marker."""
        with self._open(name) as handle:
            if handle is None:
                return
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                return
            columns = [CANONICAL.get(h.strip().lstrip("\ufeff").lower(), h.strip()) for h in header]
            for number, values in enumerate(reader, start=2):
                if not any(v.strip() for v in values):
                    continue
                if len(values) != len(columns):
                    yield {
                        "__error__": f"row {number}: {len(values)} columns, header has "
                        f"{len(columns)}",
                        "__row__": values,
                    }
                    continue
                row = {c: v.strip() for c, v in zip(columns, values, strict=True)}
                row["__row_number__"] = str(number)
                yield row

    # ---------------------------------------------------------------- hooks -------------------
    def fetch_raw(self, entity: Entity, *, since: str | None) -> Iterator[RawPage]:
        name = FILES[entity]
        if self.file_mode(name) == "absent":
            return
        page: list[Any] = []
        for row in self.rows(name):
            page.append(row)
            if len(page) >= PAGE_ROWS:
                yield RawPage(page)
                page = []
        if page:
            yield RawPage(page)

    def count_raw(self, entity: Entity) -> int | None:
        return sum(
            1
            for page in self.fetch_raw(entity, since=None)
            for row in page.items
            if "__error__" in row or self._wanted(entity, row)
        )

    def _wanted(self, entity: Entity, row: dict[str, Any]) -> bool:
        if FILES[entity] != "users.csv":
            return entity != Entity.SCHOOL or (row.get("type") or "school").lower() == "school"
        role = (row.get("role") or "").lower()
        if entity in (Entity.STUDENT, Entity.ENROLLMENT):
            return role == "student"
        if entity == Entity.STAFF:
            return role in mapping.STAFF_ROLES
        return role in mapping.GUARDIAN_ROLES

    def map_record(self, entity: Entity, item: Any) -> Iterable[Record]:
        if "__error__" in item:
            raise MalformedRecord(item["__error__"])
        try:
            return list(mapping.map_item(entity, row_to_rest(FILES[entity], item), version="1.1"))
        except (MalformedRecord, ValueError, KeyError) as exc:
            raise MalformedRecord(f"row {item.get('__row_number__')}: {exc}") from exc

    def source_id_of(self, item: Any) -> str | None:
        if isinstance(item, dict) and item.get("sourcedId"):
            return str(item["sourcedId"])
        return None

    def check_credentials(self) -> None:
        self.manifest()
