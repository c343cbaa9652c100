"""Set-based attendance writes: up to :data:`MAX_BULK_RECORDS` records in a handful of queries.

Same rules as :func:`attendance.services.attendance_record` (one record per student, date and
section; status given or taken from the district's SIS code; the student must be enrolled on
the date; the school is the section's or the enrollment's), but instead of a query per record:
students, sections, codes, enrollments and existing records are each read once, new records are
inserted with one ``INSERT``, changed ones updated with one ``UPDATE … FROM (VALUES …)``, and
history rows are written in bulk **for created and changed records only**. ``attendance_changed``
is sent after commit for every written record, as the single-record service does.

All or nothing: if any item is invalid, nothing is written and the error lists every bad item
by index, so an integrator can fix its batch and send it again (idempotently).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from attendance.models import (
    AttendanceCode,
    AttendanceRecord,
    AttendanceSource,
    AttendanceStatus,
    Enrollment,
    Section,
    Student,
)
from attendance.signals import AttendanceChange, attendance_changed
from core.errors import ApplicationError

MAX_BULK_RECORDS = 1000
Outcome = Literal["created", "updated", "unchanged"]
_COMPARED = ("school_id", "status", "code_id", "source", "period", "comment")


@dataclass(frozen=True)
class AttendanceItem:
    """One record of a bulk request. The student is named by ``student_id`` or by
    ``student_local_id`` (the SIS student number); the status directly or by SIS ``code``."""

    date: dt.date
    student_id: int | None = None
    student_local_id: str | None = None
    status: str | None = None
    code: str | None = None
    section_id: int | None = None
    period: str = ""
    comment: str = ""


@dataclass(frozen=True)
class ItemResult:
    index: int
    record_id: int
    student_id: int
    outcome: Outcome


@dataclass
class BulkResult:
    results: list[ItemResult] = field(default_factory=list)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for result in self.results if result.outcome == outcome)


@dataclass
class _Resolved:
    index: int
    student_id: int
    date: dt.date
    section_id: int | None
    values: dict[str, Any]


def _resolve(district_id: int, items: Sequence[AttendanceItem]) -> list[_Resolved]:
    """Validate every item against the district's data with one query per kind of reference.
    Raises one ApplicationError naming every bad item."""
    errors: dict[int, dict[str, str]] = defaultdict(dict)
    ids = {item.student_id for item in items if item.student_id is not None}
    local_ids = {item.student_local_id for item in items if item.student_local_id}
    by_id: dict[int, str] = {}
    by_local: dict[str, int] = {}
    if ids or local_ids:
        for pk, local_id in (
            Student.objects.filter(district_id=district_id)
            .filter(Q(pk__in=ids) | Q(local_id__in=local_ids))
            .values_list("pk", "local_id")
        ):
            by_id[pk] = local_id
            by_local[local_id] = pk
    section_ids = {item.section_id for item in items if item.section_id is not None}
    section_school = dict(
        Section.objects.filter(pk__in=section_ids, school__district_id=district_id).values_list(
            "pk", "school_id"
        )
    )
    code_names = {item.code for item in items if item.code}
    codes = {
        code: (pk, status)
        for pk, code, status in AttendanceCode.objects.filter(
            district_id=district_id, code__in=code_names, active=True
        ).values_list("pk", "code", "status")
    }

    student_of: dict[int, int] = {}
    student_id: int | None
    for index, item in enumerate(items):
        if item.student_id is not None:
            if item.student_id not in by_id:
                errors[index]["student"] = "Unknown student."
            elif item.student_local_id and by_id[item.student_id] != item.student_local_id:
                errors[index]["student_local_id"] = "Does not match the student id."
            else:
                student_of[index] = item.student_id
        elif item.student_local_id:
            if item.student_local_id not in by_local:
                errors[index]["student_local_id"] = "Unknown student local id."
            else:
                student_of[index] = by_local[item.student_local_id]
        else:
            errors[index]["student"] = "Give student or student_local_id."
        if item.section_id is not None and item.section_id not in section_school:
            errors[index]["section"] = "Unknown section."
        if item.code and item.code not in codes:
            errors[index]["code"] = "Unknown attendance code."
        status = item.status or (codes[item.code][1] if item.code in codes else None)
        if status not in AttendanceStatus.values and "code" not in errors[index]:
            errors[index]["status"] = "Give a valid status or code."

    # The school comes from the enrollment covering the date (primary first, then latest).
    spans: dict[int, list[tuple[bool, dt.date, dt.date | None, int]]] = defaultdict(list)
    dates = [item.date for item in items]
    if student_of and dates:
        for student_id, school_id, entry, exit_, primary in (
            Enrollment.objects.filter(
                student_id__in=set(student_of.values()), entry_date__lte=max(dates)
            )
            .exclude(exit_date__lt=min(dates))
            .values_list("student_id", "school_id", "entry_date", "exit_date", "is_primary")
        ):
            spans[student_id].append((primary, entry, exit_, school_id))
    for options in spans.values():
        options.sort(key=lambda span: (span[0], span[1]), reverse=True)

    resolved: list[_Resolved] = []
    seen: dict[tuple[int, dt.date, int | None], int] = {}
    for index, item in enumerate(items):
        student_id = student_of.get(index)
        if student_id is None or errors.get(index):
            continue
        key = (student_id, item.date, item.section_id)
        if key in seen:
            errors[index]["student"] = f"Same student, date and section as item {seen[key]}."
            continue
        seen[key] = index
        enrollment_school = next(
            (
                school
                for _primary, entry, exit_, school in spans.get(student_id, [])
                if entry <= item.date and (exit_ is None or exit_ >= item.date)
            ),
            None,
        )
        if enrollment_school is None:
            errors[index]["date"] = "The student was not enrolled on that date."
            continue
        code = codes.get(item.code) if item.code else None
        resolved.append(
            _Resolved(
                index=index,
                student_id=student_id,
                date=item.date,
                section_id=item.section_id,
                values={
                    "school_id": (
                        section_school[item.section_id]
                        if item.section_id is not None
                        else enrollment_school
                    ),
                    "status": item.status or (code[1] if code else None),
                    "code_id": code[0] if code else None,
                    "period": item.period,
                    "comment": item.comment,
                },
            )
        )
    bad = {index: fields for index, fields in errors.items() if fields}
    if bad:
        raise ApplicationError(
            f"{len(bad)} of {len(items)} records are not valid; nothing was written.",
            code="invalid_records",
            details={"records": {str(index): bad[index] for index in sorted(bad)}},
        )
    return resolved


_UPDATE_SQL = """
UPDATE {table} AS t SET
    school_id = v.school_id, status = v.status, code_id = v.code_id, source = v.source,
    period = v.period, comment = v.comment, recorded_by_id = v.recorded_by_id,
    updated_at = v.updated_at
FROM (VALUES {rows}) AS v(id, school_id, status, code_id, source, period, comment,
                          recorded_by_id, updated_at)
WHERE t.id = v.id
"""
_UPDATED_FIELDS = [
    "school_id", "status", "code_id", "source", "period", "comment", "recorded_by_id", "updated_at",
]  # fmt: skip
_ROW = "(%s::bigint, %s::bigint, %s, %s::bigint, %s, %s, %s, %s::integer, %s::timestamptz)"


def _update_rows(records: list[AttendanceRecord]) -> None:
    """One UPDATE for every changed record (``bulk_update`` builds a CASE per column and is an
    order of magnitude slower for a thousand rows). Off PostgreSQL (SQLite in ``make run``),
    ``bulk_update`` it is."""
    if connection.vendor != "postgresql":
        AttendanceRecord.objects.bulk_update(records, _UPDATED_FIELDS, batch_size=100)
        return
    params: list[Any] = []
    for r in records:
        params += [
            r.pk, r.school_id, r.status, r.code_id, r.source, r.period, r.comment,
            r.recorded_by_id, r.updated_at,
        ]  # fmt: skip
    sql = _UPDATE_SQL.format(
        table=connection.ops.quote_name(AttendanceRecord._meta.db_table),
        rows=", ".join([_ROW] * len(records)),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def attendance_record_bulk(
    *,
    district_id: int,
    items: Sequence[AttendanceItem],
    source: str = AttendanceSource.API,
    recorded_by: User | None = None,
) -> BulkResult:
    """Record up to 1,000 attendance records of one district at once, idempotently: sending
    the same batch twice writes nothing the second time (no history rows either)."""
    if not items:
        raise ApplicationError("Send at least one record.", code="empty_batch")
    if len(items) > MAX_BULK_RECORDS:
        raise ApplicationError(
            f"Send at most {MAX_BULK_RECORDS} records per request.", code="batch_too_large"
        )
    resolved = _resolve(district_id, items)
    for attempt in range(2):
        try:
            return _write(resolved, source=source, recorded_by=recorded_by)
        except IntegrityError:
            # A concurrent writer created one of our records between our read and our insert;
            # the second pass sees it and updates it instead.
            if attempt == 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _write(resolved: list[_Resolved], *, source: str, recorded_by: User | None) -> BulkResult:
    now = timezone.now()
    result = BulkResult()
    with transaction.atomic():
        existing: dict[tuple[int, dt.date, int | None], AttendanceRecord] = {
            (r.student_id, r.date, r.section_id): r
            for r in AttendanceRecord.objects.select_for_update().filter(
                student_id__in={item.student_id for item in resolved},
                date__in={item.date for item in resolved},
            )
        }
        created: list[tuple[_Resolved, AttendanceRecord]] = []
        updated: list[tuple[AttendanceRecord, str]] = []
        unchanged: list[tuple[_Resolved, AttendanceRecord]] = []
        for item in resolved:
            values = {**item.values, "source": source}
            record = existing.get((item.student_id, item.date, item.section_id))
            if record is None:
                created.append(
                    (
                        item,
                        AttendanceRecord(
                            student_id=item.student_id,
                            date=item.date,
                            section_id=item.section_id,
                            recorded_by=recorded_by,
                            **values,
                        ),
                    )
                )
                continue
            if all(getattr(record, name) == values[name] for name in _COMPARED):
                unchanged.append((item, record))
                continue
            previous_status = record.status
            for name, value in values.items():
                setattr(record, name, value)
            if recorded_by is not None:
                record.recorded_by = recorded_by
            record.updated_at = now
            updated.append((record, previous_status))
            result.results.append(ItemResult(item.index, record.pk, item.student_id, "updated"))
        if created:
            AttendanceRecord.objects.bulk_create([record for _item, record in created])
            AttendanceRecord.history.bulk_history_create(
                [record for _item, record in created], default_user=recorded_by, default_date=now
            )
        if updated:
            _update_rows([record for record, _previous in updated])
            AttendanceRecord.history.bulk_history_create(
                [record for record, _previous in updated],
                update=True,
                default_user=recorded_by,
                default_date=now,
            )
        result.results += [
            ItemResult(item.index, record.pk, item.student_id, "created")
            for item, record in created
        ]
        result.results += [
            ItemResult(item.index, record.pk, item.student_id, "unchanged")
            for item, record in unchanged
        ]
        result.results.sort(key=lambda r: r.index)
        announcements: list[tuple[int, str | None, str]] = [
            (record.pk, None, record.status) for _item, record in created
        ] + [(record.pk, previous, record.status) for record, previous in updated]
        if announcements:
            transaction.on_commit(lambda: _announce(announcements))
    return result


def _announce(changes: Sequence[tuple[int, str | None, str]]) -> None:
    attendance_changed.send(
        sender=AttendanceRecord, changes=[AttendanceChange(*change) for change in changes]
    )
