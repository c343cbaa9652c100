"""An in-process SIS for unit tests of the engine (the HTTP sandbox covers the real thing)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from sis.connectors.records import (
    EnrollmentRecord,
    Entity,
    GuardianRecord,
    Page,
    Record,
    SchoolRecord,
    StudentGuardianRecord,
    StudentRecord,
)


class FakeSource:
    """Holds canonical records per entity; ``fetch`` pages them."""

    entities = (
        Entity.SCHOOL,
        Entity.STUDENT,
        Entity.GUARDIAN,
        Entity.STUDENT_GUARDIAN,
        Entity.ENROLLMENT,
    )

    def __init__(self, page_size: int = 50) -> None:
        self.records: dict[str, dict[str, Record]] = {str(e): {} for e in self.entities}
        self.page_size = page_size
        self.enabled_capabilities = frozenset({"read_roster", "read_guardians"})
        self.fetches = 0

    def put(self, record: Record) -> Record:
        self.records[str(record.entity)][record.source_id] = record
        return record

    def drop(self, entity: str, source_id: str) -> None:
        self.records[entity].pop(source_id, None)

    def get(self, entity: str, source_id: str) -> Any:
        return self.records[entity][source_id]

    def fetch(self, entity: Any, *, since: str | None = None) -> Iterator[Page]:
        self.fetches += 1
        items = list(self.records[str(entity)].values())
        if not items:
            yield Page(Entity(str(entity)), [], number=0, total=0)
            return
        for number, start in enumerate(range(0, len(items), self.page_size)):
            yield Page(
                Entity(str(entity)),
                items[start : start + self.page_size],
                number=number,
                total=len(items),
            )

    def fetch_item(self, entity: Any, source_id: str) -> list[Record] | None:
        """The record itself, or a student's item: the records of ``entity`` naming it."""
        records = self.records[str(entity)]
        if source_id in records:
            return [records[source_id]]
        if source_id in self.records["student"]:
            return [r for r in records.values() if getattr(r, "student_id", None) == source_id]
        return None


def district_records(source: FakeSource, *, schools: int = 2, students: int = 60) -> None:
    for s in range(schools):
        source.put(SchoolRecord(source_id=f"sch-{s}", name=f"School {s}", local_id=f"{100 + s}"))
    for i in range(students):
        school = f"sch-{i % schools}"
        source.put(
            StudentRecord(
                source_id=f"stu-{i}",
                first_name=f"First{i}",
                last_name=f"Last{i}",
                local_id=f"S{i:05d}",
                birth_date=dt.date(2012, 1, 1) + dt.timedelta(days=i),
                grade_level="05",
                school_id=school,
            )
        )
        source.put(
            GuardianRecord(
                source_id=f"gua-{i}",
                first_name=f"Parent{i}",
                last_name=f"Last{i}",
                email=f"parent{i}@example.org",
                mobile_phone=f"(312) 555-01{i % 100:02d}",
            )
        )
        source.put(
            StudentGuardianRecord(
                source_id=f"sg-{i}",
                student_id=f"stu-{i}",
                guardian_id=f"gua-{i}",
                relationship="mother",
            )
        )
        source.put(
            EnrollmentRecord(
                source_id=f"enr-{i}",
                student_id=f"stu-{i}",
                school_id=school,
                entry_date=dt.date(2026, 8, 17),
                grade_level="05",
            )
        )
