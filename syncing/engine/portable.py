"""The engine's statements for databases other than PostgreSQL (SQLite in ``make run``).

Same functions, signatures and semantics as :mod:`syncing.engine.pgsql`, written with the ORM:
correctness over speed. Values a PostgreSQL statement keeps inside the database (staged values,
seen link ids) travel through Python here, so a sync costs more round trips and memory per
batch; fine for a demo district of hundreds of students, not for the benchmarks' 100,000
(PostgreSQL stays the production database). :mod:`syncing.engine.dialect` picks the module.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from django.db.models import F
from django.utils import timezone

from attendance import bulk_portable
from attendance.models import Enrollment
from syncing.engine.pgsql import CHANGE_COLUMNS, CLAIM_COLUMNS
from syncing.entities import EntitySpec, section_schools
from syncing.models import ChangeAction, SourceLink, SyncChange, SyncPage, SyncRun

# Ids per ``IN (…)`` list: under SQLite's smallest bound-parameter limit (999).
_CHUNK = 900


def _chunks(values: Sequence[Any]) -> Iterator[list[Any]]:
    items = list(values)
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def batch_settings() -> None:
    """Nothing to set: SQLite has no per-transaction durability switch worth the risk, nor a JIT."""


# --- staging ------------------------------------------------------------------------------------


def links_of_sources(
    connection_id: int, entity: str, source_ids: Sequence[str]
) -> list[tuple[Any, ...]]:
    """``(id, source_id, content_hash, active, school_id)`` of the links of ``source_ids``."""
    rows: list[tuple[Any, ...]] = []
    for chunk in _chunks(source_ids):
        rows += SourceLink.objects.filter(
            connection_id=connection_id, entity=entity, source_id__in=chunk
        ).values_list("id", "source_id", "content_hash", "active", "school_id")
    return rows


def page_record(
    *,
    run_id: int,
    entity: str,
    number: int,
    seen_link_ids: list[int],
    records: int,
    counts: dict[str, dict[str, int]],
) -> None:
    """Record a staged page and the run's progress."""
    SyncPage.objects.create(
        run_id=run_id, entity=entity, number=number, seen_link_ids=seen_link_ids, records=records
    )
    SyncRun.objects.filter(pk=run_id).update(pages_done=F("pages_done") + 1, counts=counts)


def changes_stage(rows: Sequence[Sequence[Any]]) -> dict[str, int]:
    """Insert staged changes (tuples in :data:`syncing.engine.pgsql.CHANGE_COLUMNS` order, the
    values and diff as JSON text); a source id the run staged already is skipped. Returns how
    many were inserted per action."""
    dicts = [dict(zip(CHANGE_COLUMNS, row, strict=True)) for row in rows]
    for row in dicts:
        row["values"] = orjson.loads(row["values"])
        row["diff"] = orjson.loads(row["diff"])
    ids = bulk_portable.bulk_insert(SyncChange, dicts, ignore_conflicts=True)
    counts: dict[str, int] = {}
    for chunk in _chunks(ids):
        for action in SyncChange.objects.filter(pk__in=chunk).values_list("action", flat=True):
            counts[action] = counts.get(action, 0) + 1
    return counts


def unresolved_references(
    run_id: int, connection_id: int, entity: str, attname: str, ref_entity: str
) -> list[tuple[int, str, str, str]]:
    """``(change id, source id, action, target)`` of the run's staged creates and updates of
    ``entity`` whose reference ``attname`` names a ``ref_entity`` source id that is neither
    linked nor staged for creation in this run."""
    changes = [
        (change_id, source_id, action, str(_ref_key(values[attname])))
        for change_id, source_id, action, values in SyncChange.objects.filter(
            run_id=run_id, entity=entity, action__in=[ChangeAction.CREATE, ChangeAction.UPDATE]
        ).values_list("id", "source_id", "action", "values")
        if (values or {}).get(attname) is not None
    ]
    targets = sorted({change[3] for change in changes})
    known: set[str] = set()
    for chunk in _chunks(targets):
        known.update(
            SourceLink.objects.filter(
                connection_id=connection_id, entity=ref_entity, source_id__in=chunk
            ).values_list("source_id", flat=True)
        )
        known.update(
            SyncChange.objects.filter(
                run_id=run_id, entity=ref_entity, action=ChangeAction.CREATE, source_id__in=chunk
            ).values_list("source_id", flat=True)
        )
    return [change for change in changes if change[3] not in known]


def unseen_deactivations_stage(run_id: int, rank: int, connection_id: int, entity: str) -> int:
    """Stage a deactivation for every active link of ``entity`` no page of the run saw."""
    seen: set[int] = set()
    for ids in SyncPage.objects.filter(run_id=run_id, entity=entity).values_list(
        "seen_link_ids", flat=True
    ):
        seen.update(int(i) for i in ids or ())
    staged = set(
        SyncChange.objects.filter(run_id=run_id, entity=entity).values_list("source_id", flat=True)
    )
    rows = [
        {
            "run_id": run_id,
            "entity": entity,
            "source_id": source_id,
            "action": ChangeAction.DEACTIVATE,
            "state": "staged",
            "rank": rank,
            "link_id": link_id,
            "school_id": school_id,
            "values": {},
            "diff": {},
            "content_hash": "",
        }
        for link_id, source_id, school_id in SourceLink.objects.filter(
            connection_id=connection_id, entity=entity, active=True
        )
        .order_by("id")
        .values_list("id", "source_id", "school_id")
        # Like ON CONFLICT DO NOTHING: a source id already staged in this run stays as it is.
        if link_id not in seen and source_id not in staged
    ]
    return len(bulk_portable.bulk_insert(SyncChange, rows))


# --- applying creates ---------------------------------------------------------------------------


def links_analyze() -> None:
    """Nothing to do: SQLite plans these lookups by their unique index without statistics."""


def _staged_values(change_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    values: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(change_ids):
        values.update(SyncChange.objects.filter(pk__in=chunk).values_list("id", "values"))
    return values


def _ref_key(value: Any) -> str | None:
    """A reference as PostgreSQL's ``->>`` reads it from the staged values: text, or NULL."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _resolved_refs(
    spec: EntitySpec, connection_id: int, staged: dict[int, dict[str, Any]]
) -> dict[str, dict[str, int]]:
    """For each reference of ``spec``: source id → our object id, of the staged values' targets."""
    resolved: dict[str, dict[str, int]] = {}
    for ref in spec.refs:
        wanted = {_ref_key(v.get(ref.attname)) for v in staged.values()} - {None}
        found: dict[str, int] = {}
        for chunk in _chunks(sorted(wanted, key=str)):
            for source_id, object_id in SourceLink.objects.filter(
                connection_id=connection_id, entity=ref.entity, source_id__in=chunk
            ).values_list("source_id", "object_id"):
                found.setdefault(source_id, object_id)
        resolved[ref.attname] = found
    return resolved


def changes_analyze() -> None:
    """Nothing to do: SQLite plans these lookups by its indexes."""


def creates_unresolved(
    spec: EntitySpec, connection_id: int, change_ids: Sequence[int]
) -> list[tuple[int, str]]:
    """``(change id, reference)`` of staged creates whose required reference does not resolve."""
    required = [ref for ref in spec.refs if ref.required]
    if not required or not change_ids:
        return []
    staged = _staged_values(change_ids)
    resolved = _resolved_refs(spec, connection_id, staged)
    result = []
    for change_id in sorted(staged):
        for ref in required:
            key = _ref_key(staged[change_id].get(ref.attname))
            if key is None or key not in resolved[ref.attname]:
                result.append((change_id, ref.attname))
                break
    return result


def creates_insert(
    spec: EntitySpec,
    *,
    connection_id: int,
    district_id: int,
    change_ids: Sequence[int],
    reason: str,
) -> list[tuple[int, int | None]]:
    """Insert the domain rows of staged creates from their staged values (references resolved
    through the crosswalk), with history; returns ``(new id, school of its link)`` in
    ``change_ids`` order (sorted)."""
    model = spec.model
    fields = {f.attname for f in model._meta.concrete_fields}
    ordered = sorted(change_ids)
    staged = _staged_values(ordered)
    resolved = _resolved_refs(spec, connection_id, staged)
    derived = spec.derived_fields
    rows = []
    for change_id in ordered:
        values = staged[change_id]
        row: dict[str, Any] = {name: values.get(name) for name in (*spec.fields, *derived)}
        for ref in spec.refs:
            key = _ref_key(values.get(ref.attname))
            row[ref.attname] = resolved[ref.attname].get(key) if key is not None else None
        if "district_id" in fields:
            row["district_id"] = district_id
        rows.append(row)
    object_ids = bulk_portable.bulk_insert(model, rows, change_reason=reason)
    schools: dict[int, int] = {}
    if spec.name == "section_enrollment":
        schools = section_schools({row["section_id"] for row in rows if row["section_id"]})
    return [
        (object_id, spec.school_of(row, object_id, schools))
        for object_id, row in zip(object_ids, rows, strict=True)
    ]


def links_insert_for_creates(
    *,
    run_id: int,
    connection_id: int,
    district_id: int,
    created: Sequence[tuple[int, int, int | None]],
) -> None:
    """SourceLinks for applied creates: ``created`` holds (change id, new object id, school).
    The baseline is the staged values."""
    if not created:
        return
    changes: dict[int, tuple[str, str, str, Any]] = {}
    for chunk in _chunks([row[0] for row in created]):
        for row in SyncChange.objects.filter(pk__in=chunk).values_list(
            "id", "entity", "source_id", "content_hash", "values"
        ):
            changes[row[0]] = row[1:]
    now = timezone.now()
    rows = []
    for change_id, object_id, school_id in created:
        entity, source_id, content_hash, values = changes[change_id]
        rows.append(
            {
                "district_id": district_id,
                "connection_id": connection_id,
                "entity": entity,
                "source_id": source_id,
                "object_id": object_id,
                "school_id": school_id,
                "content_hash": content_hash,
                "baseline": values,
                "first_run_id": run_id,
                "last_run_id": run_id,
                "active": True,
                "created_at": now,
                "updated_at": now,
            }
        )
    bulk_portable.bulk_insert(SourceLink, rows)


def superseded_primary_spans(
    connection_id: int, change_ids: Sequence[int]
) -> list[tuple[int, int, Any, Any]]:
    """``(span id, link id, span entry date, new entry date)`` of the open primary enrollments,
    linked to this connection, of the students that the staged enrollment creates
    ``change_ids`` give a new primary span (the earliest new entry date per student)."""
    entries: dict[str, dt.date] = {}
    for values in _staged_values(change_ids).values():
        if values.get("student_id") and values.get("entry_date") and values.get("is_primary", True):
            entry = dt.date.fromisoformat(values["entry_date"])
            previous = entries.get(values["student_id"])
            entries[values["student_id"]] = entry if previous is None else min(previous, entry)
    students: dict[str, int] = {}
    for chunk in _chunks(sorted(entries)):
        students.update(
            SourceLink.objects.filter(
                connection_id=connection_id, entity="student", source_id__in=chunk
            ).values_list("source_id", "object_id")
        )
    new_entry = {students[source]: entry for source, entry in entries.items() if source in students}
    spans: list[tuple[int, int, dt.date]] = []
    for chunk in _chunks(sorted(new_entry)):
        spans += Enrollment.objects.filter(
            student_id__in=chunk, is_primary=True, exit_date__isnull=True
        ).values_list("id", "student_id", "entry_date")
    links: dict[int, int] = {}
    for chunk in _chunks([span[0] for span in spans]):
        links.update(
            SourceLink.objects.filter(
                connection_id=connection_id, entity="enrollment", active=True, object_id__in=chunk
            ).values_list("object_id", "id")
        )
    return [
        (span_id, links[span_id], entry, new_entry[student_id])
        for span_id, student_id, entry in spans
        if span_id in links
    ]


def changes_claim(
    run_id: int,
    rank: int,
    *,
    limit: int,
    with_values: bool,
    share: tuple[str, int, int] | None = None,
    after: int = 0,
) -> list[dict[str, Any]]:
    """Take the first ``limit`` changes of ``rank`` still staged with ids above ``after`` (of
    one ``share``: see :func:`syncing.engine.pgsql.changes_claim`): mark them applied and
    return them in id order (one session at a time here: nothing to skip)."""
    columns = [*CLAIM_COLUMNS, *(["values"] if with_values else [])]
    staged = SyncChange.objects.filter(
        run_id=run_id, rank=rank, id__gt=after, state="staged"
    ).order_by("id")
    if share is None:
        ids = list(staged.values_list("id", flat=True)[:limit])
    else:
        field, index, shares = share
        ids = [
            change_id
            for change_id, values in staged.values_list("id", "values").iterator()
            if zlib.crc32(str(values.get(field)).encode()) % shares == index
        ][:limit]
    claimed: list[dict[str, Any]] = []
    for chunk in _chunks(ids):
        claimed.extend(SyncChange.objects.filter(pk__in=chunk).order_by("id").values(*columns))
        SyncChange.objects.filter(pk__in=chunk).update(state="applied")
    return claimed


def enrollment_students(enrollment_ids: Sequence[int]) -> set[int]:
    students: set[int] = set()
    for chunk in _chunks(enrollment_ids):
        students.update(
            Enrollment.objects.filter(pk__in=chunk).values_list("student_id", flat=True)
        )
    return students


# --- links and spans ----------------------------------------------------------------------------

_LINK_FIELDS = ["object_id", "content_hash", "baseline", "active", "school_id", "last_run_id"]


def _links_save(links: list[SourceLink], fields: list[str]) -> None:
    SourceLink.objects.bulk_update(links, [*fields, "updated_at"], batch_size=200)


def links_update(rows: list[dict[str, Any]]) -> None:
    """Set object, hash, baseline, state, school and last run of links (by ``id``)."""
    if not rows:
        return
    now = timezone.now()
    links: list[SourceLink] = [
        SourceLink(id=row["id"], updated_at=now, **{name: row[name] for name in _LINK_FIELDS})
        for row in rows
    ]
    _links_save(links, _LINK_FIELDS)


def links_deactivate(run_id: int, link_ids: Sequence[int], baseline_patch: dict[str, Any]) -> None:
    """Mark links inactive and merge ``baseline_patch`` into their baselines."""
    now = timezone.now()
    links: list[SourceLink] = []
    for chunk in _chunks(link_ids):
        for link_id, baseline in SourceLink.objects.filter(pk__in=chunk).values_list(
            "id", "baseline"
        ):
            # jsonb ``||``: the patch's keys replace the baseline's (a non-object becomes one).
            merged = {**(baseline if isinstance(baseline, dict) else {}), **baseline_patch}
            links.append(
                SourceLink(
                    id=link_id, active=False, last_run_id=run_id, baseline=merged, updated_at=now
                )
            )
    _links_save(links, ["active", "last_run_id", "baseline"])


def open_primary_schools(student_ids: Sequence[int]) -> dict[int, int]:
    """School of each student's open primary enrollment (the latest by entry date)."""
    schools: dict[int, int] = {}
    for chunk in _chunks(student_ids):
        for student_id, school_id in (
            Enrollment.objects.filter(student_id__in=chunk, exit_date__isnull=True, is_primary=True)
            .order_by("student_id", "-entry_date", "-id")
            .values_list("student_id", "school_id")
        ):
            schools.setdefault(student_id, school_id)
    return schools
