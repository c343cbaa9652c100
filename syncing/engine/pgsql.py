"""The engine's PostgreSQL-specific statements, in one place.

Everything here leans on PostgreSQL: ``= ANY(array)`` lookups (one parameter instead of a
thousand placeholders, which Django renders on the client), ``jsonb`` operators over staged
values, ``unnest`` and ``UPDATE … FROM``. A port to another database replaces this module (and
``attendance.bulk``); the rest of the engine only calls these functions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import orjson
import psycopg
from django.db import IntegrityError, transaction
from django.db import connection as db

from attendance import bulk
from syncing.entities import EntitySpec

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_SETTING = re.compile(r"^[A-Za-z0-9]+$")


def _name(value: str) -> str:
    """A field name embedded in SQL: ours (from an EntitySpec), checked anyway."""
    if not _NAME.match(value):  # pragma: no cover - spec field names are identifiers
        raise ValueError(f"bad field name {value!r}")
    return value


def _rows(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def batch_settings() -> None:
    """Settings for the rest of the current transaction (one page or batch):

    - its COMMIT returns before its WAL reaches the disk. A sync commits once per page and
      per batch; waiting for each flush costs more than the batch on a busy disk. Safe here:
      a database crash can lose only the last fraction of a second of commits, never half of
      one, and each lost page or batch (committed atomically with its checkpoint) is simply
      done again when the run resumes;
    - no JIT compilation. Statements of a batch touch a few thousand rows by index; when
      stale statistics (or a disabled scan type) made a plan look expensive, PostgreSQL spent
      150–200 ms compiling it, many times the statement's own work."""
    with db.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit = off; SET LOCAL jit = off")


@contextmanager
def _planner(**settings: str) -> Iterator[None]:
    """Within the current transaction, plan the statements inside with these planner settings
    (``SET LOCAL``), then back to the defaults.

    The engine fills the crosswalk, the change table and the domain tables faster than
    autovacuum analyzes them; planned with the statistics of nearly empty tables, some
    statements went quadratic. Those say here how they must be planned.

    Not reset in a ``finally``: after an error the transaction may be aborted, and a statement
    there would replace the error (a constraint violation the caller isolates and quarantines)
    with "current transaction is aborted". The settings then last until the transaction or
    savepoint ends, which is harmless."""
    with db.cursor() as cursor:
        for name, value in settings.items():
            if not _SETTING.match(value):  # pragma: no cover - values are this module's own
                raise ValueError(f"bad setting value {value!r}")
            cursor.execute(f"SET LOCAL {_name(name)} = '{value}'")
        yield
        for name in settings:
            cursor.execute(f"SET LOCAL {_name(name)} TO DEFAULT")


def _index_lookups() -> AbstractContextManager[None]:
    """Sequential scans only where no index can serve: for statements that find their rows by
    ids or unique keys, where an index is always the right access path (with stale statistics,
    joins against a growing table became a scan of it for every batch)."""
    return _planner(enable_seqscan="off")


# --- staging ------------------------------------------------------------------------------------


def links_of_sources(
    connection_id: int, entity: str, source_ids: Sequence[str]
) -> list[tuple[Any, ...]]:
    """``(id, source_id, content_hash, active, school_id)`` of the links of ``source_ids``."""
    if not source_ids:
        return []
    return _rows(
        "SELECT id, source_id, content_hash, active, school_id FROM syncing_sourcelink "
        "WHERE connection_id = %s AND entity = %s AND source_id = ANY(%s)",
        [connection_id, entity, list(source_ids)],
    )


def page_record(
    *,
    run_id: int,
    entity: str,
    number: int,
    seen_link_ids: list[int],
    records: int,
    counts: dict[str, dict[str, int]],
) -> None:
    """Record a staged page (its SyncPage row, with the ids of the links it saw) and the run's
    progress in one statement. An identical re-sync stages nothing else for a page, and the
    ORM's two statements (a model save serialising a thousand ids with the standard json
    module, then an update) were a sixth of its staging thread's time."""
    with db.cursor() as cursor:
        cursor.execute(
            "WITH page AS (INSERT INTO syncing_syncpage "
            "(run_id, entity, number, seen_link_ids, records) VALUES (%s, %s, %s, %s::jsonb, %s)) "
            "UPDATE syncing_syncrun SET pages_done = pages_done + 1, counts = %s::jsonb "
            "WHERE id = %s",
            [
                run_id,
                entity,
                number,
                orjson.dumps(seen_link_ids).decode(),
                records,
                orjson.dumps(counts).decode(),
                run_id,
            ],
        )


# Columns of a staged change as changes_stage takes them.
CHANGE_COLUMNS = (
    "run_id",
    "entity",
    "source_id",
    "action",
    "state",
    "rank",
    "link_id",
    "school_id",
    "values",
    "diff",
    "content_hash",
)


def changes_stage(rows: Sequence[Sequence[Any]]) -> dict[str, int]:
    """Insert staged changes (tuples in :data:`CHANGE_COLUMNS` order, the values and diff as
    JSON text); a source id the run staged already is skipped. Returns how many were inserted
    per action.

    ``COPY`` straight into the change table: one pass, no temporary table. A page repeating a
    source id of an earlier page (an SIS whose paging shifted) breaks the run's unique key;
    then the page is inserted again skipping those (rare: the cost of the savepoint is paid
    on every page, the second insert only then)."""
    if not rows:
        return {}
    names = ", ".join(f'"{name}"' for name in CHANGE_COLUMNS)
    try:
        with transaction.atomic(), db.cursor() as cursor:
            raw = getattr(cursor, "cursor", cursor)  # the psycopg cursor under Django's wrapper
            with raw.copy(f"COPY syncing_syncchange ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
    except (IntegrityError, psycopg.errors.UniqueViolation):
        pass
    else:
        counts: dict[str, int] = {}
        for row in rows:
            counts[row[3]] = counts.get(row[3], 0) + 1
        return counts
    inserted = _rows(
        f"INSERT INTO syncing_syncchange ({names}) "  # noqa: S608
        "SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], "
        "%s::smallint[], %s::bigint[], %s::bigint[], %s::jsonb[], %s::jsonb[], %s::text[]) "
        "ON CONFLICT DO NOTHING RETURNING action",
        [list(column) for column in zip(*rows, strict=True)],
    )
    counts = {}
    for (action,) in inserted:
        counts[action] = counts.get(action, 0) + 1
    return counts


def unresolved_references(
    run_id: int, connection_id: int, entity: str, attname: str, ref_entity: str
) -> list[tuple[int, str, str, str]]:
    """``(change id, source id, action, target)`` of the run's staged creates and updates of
    ``entity`` whose reference ``attname`` names a ``ref_entity`` source id that is neither
    linked nor staged for creation in this run. Two hashed anti-joins over the run: a per-page
    lookup of every reference cost a tenth of a 100,000-student first load (heap probes all
    over the change table).

    Hash joins, whatever the statistics say: they lag behind a run that is adding a million
    rows, and planned for the small tables they describe, nested loops went quadratic
    (minutes for one reference at 10,000 students)."""
    with (
        transaction.atomic(),
        _planner(enable_nestloop="off", work_mem="64MB"),
        db.cursor() as cursor,
    ):
        cursor.execute(
            """
            SELECT c.id, c.source_id, c.action, c."values" ->> %s
            FROM syncing_syncchange c
            WHERE c.run_id = %s AND c.entity = %s AND c.action IN ('create', 'update')
              AND c."values" ->> %s IS NOT NULL
              AND NOT EXISTS (
                SELECT 1 FROM syncing_sourcelink l
                WHERE l.connection_id = %s AND l.entity = %s
                  AND l.source_id = c."values" ->> %s)
              AND NOT EXISTS (
                SELECT 1 FROM syncing_syncchange s
                WHERE s.run_id = %s AND s.entity = %s AND s.action = 'create'
                  AND s.source_id = c."values" ->> %s)
            """,
            [
                attname,
                run_id,
                entity,
                attname,
                connection_id,
                ref_entity,
                attname,
                run_id,
                ref_entity,
                attname,
            ],
        )
        rows = cursor.fetchall()
    return [(int(row[0]), str(row[1]), str(row[2]), str(row[3])) for row in rows]


def unseen_deactivations_stage(run_id: int, rank: int, connection_id: int, entity: str) -> int:
    """Stage a deactivation for every active link of ``entity`` no page of the run saw."""
    # Enough memory for NOT IN to hash the seen ids (one pass), not rescan them per link.
    with _planner(work_mem="256MB"), db.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO syncing_syncchange
                (run_id, entity, source_id, action, state, rank, link_id, school_id,
                 "values", diff, content_hash)
            SELECT %s, l.entity, l.source_id, 'deactivate', 'staged', %s, l.id, l.school_id,
                   '{}'::jsonb, '{}'::jsonb, ''
            FROM syncing_sourcelink l
            WHERE l.connection_id = %s AND l.entity = %s AND l.active
              -- NOT IN over a subquery becomes one hashed lookup per link.
              AND l.id NOT IN (
                SELECT (jsonb_array_elements_text(p.seen_link_ids))::bigint
                FROM syncing_syncpage p WHERE p.run_id = %s AND p.entity = %s
              )
            ON CONFLICT DO NOTHING
            """,
            [run_id, rank, connection_id, entity, run_id, entity],
        )
        return int(cursor.rowcount)


# --- applying creates ---------------------------------------------------------------------------


def _ref_joins(spec: EntitySpec, connection_id: int) -> tuple[str, list[Any]]:
    """Joins resolving each reference (a source id in the staged values) to our id. LATERAL
    with LIMIT 1: one unique-index probe per row whatever the table statistics say (the links
    of a first load are younger than the last ANALYZE, and a plain join then goes quadratic)."""
    joins, params = [], []
    for number, ref in enumerate(spec.refs):
        key = f"c.\"values\" ->> '{_name(ref.attname)}'"
        joins.append(
            "LEFT JOIN LATERAL (SELECT l.object_id FROM syncing_sourcelink l "  # noqa: S608
            "WHERE l.connection_id = %s AND l.entity = %s "
            f"AND l.source_id = ({key}) LIMIT 1) r{number} ON true"
        )
        params += [connection_id, ref.entity]
    return " ".join(joins), params


# Rows ANALYZE samples are 300 × this: the plans the engine needs (which run, entity, state and
# rank; how many links a connection has) need no finer statistics, and the default (100)
# read 30,000 pages of a change table that had just grown by a million rows (0.1–0.3 s).
ANALYZE_STATISTICS_TARGET = 10


def _analyze(table_and_columns: str) -> None:
    with (
        transaction.atomic(),
        _planner(default_statistics_target=str(ANALYZE_STATISTICS_TARGET)),
        db.cursor() as cursor,
    ):
        cursor.execute(f"ANALYZE {table_and_columns}")


def links_analyze() -> None:
    """Refresh the crosswalk's planner statistics. A first load grows it from nothing to
    millions of rows within one run, long before autovacuum notices; with stale statistics the
    planner probes the wrong index and every reference lookup scans a whole entity."""
    # Only the columns the joins use: sampling the jsonb baselines costs more than the rest.
    _analyze("syncing_sourcelink (connection_id, entity, source_id, object_id, active)")


def changes_analyze() -> None:
    """Refresh the change table's planner statistics once a run is staged. Staging adds up to
    millions of rows within minutes; planned with the statistics of a much smaller table, a
    batch's ``id = ANY(…)`` lookups became sequential scans testing every row against the
    whole array (seconds per batch instead of milliseconds)."""
    _analyze("syncing_syncchange (id, run_id, entity, source_id, action, state)")


def creates_unresolved(
    spec: EntitySpec, connection_id: int, change_ids: Sequence[int]
) -> list[tuple[int, str]]:
    """``(change id, reference)`` of staged creates whose required reference does not resolve."""
    required = [(n, ref) for n, ref in enumerate(spec.refs) if ref.required]
    if not required or not change_ids:
        return []
    joins, params = _ref_joins(spec, connection_id)
    missing = " ".join(
        f"WHEN r{n}.object_id IS NULL THEN '{_name(ref.attname)}'" for n, ref in required
    )
    unresolved = " OR ".join(f"r{n}.object_id IS NULL" for n, _ in required)
    with _index_lookups():
        rows = _rows(
            f"SELECT c.id, CASE {missing} END FROM syncing_syncchange c {joins} "  # noqa: S608
            f"WHERE c.id = ANY(%s::bigint[]) AND ({unresolved})",
            [*params, bulk.bigint_array(change_ids)],
        )
    return [(int(row[0]), str(row[1])) for row in rows]


def _school_of_new_row(spec: EntitySpec) -> str:
    """SQL over a new row of ``spec`` giving the school its link records (NULL for none)."""
    if spec.school_ref == "id":
        return "id"
    if spec.school_ref:
        return _name(spec.school_ref)
    if spec.name == "section_enrollment":
        return "(SELECT s.school_id FROM attendance_section s WHERE s.id = section_id)"
    return "NULL::bigint"


def creates_insert(
    spec: EntitySpec,
    *,
    connection_id: int,
    district_id: int,
    change_ids: Sequence[int],
    reason: str,
) -> list[tuple[int, int | None]]:
    """Insert the domain rows of staged creates straight from their staged values (references
    resolved by joins), with history; returns ``(new id, school of its link)`` in
    ``change_ids`` order (sorted). The school comes back with the insert: read back by a join
    afterwards, the planner (with statistics older than the rows) scanned an index of the
    whole table for each batch."""
    model = spec.model
    fields = {f.attname for f in model._meta.concrete_fields}
    columns: dict[str, str] = {}
    for name in spec.fields:
        columns[name] = f"c.\"values\" ->> '{_name(name)}'"
    for number, ref in enumerate(spec.refs):
        columns[ref.attname] = f"r{number}.object_id"
    for name in spec.derived_fields:
        columns[name] = f"c.\"values\" ->> '{_name(name)}'"
    if "district_id" in fields:
        columns["district_id"] = str(int(district_id))
    joins, params = _ref_joins(spec, connection_id)
    with _index_lookups():
        rows = bulk.insert_select(
            model,
            columns,
            f"FROM syncing_syncchange c {joins} WHERE c.id = ANY(%s::bigint[]) ORDER BY c.id",
            [*params, bulk.bigint_array(sorted(change_ids))],
            change_reason=reason,
            returning=[_school_of_new_row(spec)],
        )
    return [(int(row[0]), row[1]) for row in rows]


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
    with _index_lookups(), db.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO syncing_sourcelink
                (district_id, connection_id, entity, source_id, object_id, school_id,
                 content_hash, baseline, first_run_id, last_run_id, active, created_at, updated_at)
            SELECT %s, %s, c.entity, c.source_id, m.object_id, m.school_id, c.content_hash,
                   c."values", %s, %s, true, now(), now()
            FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[])
                 AS m(change_id, object_id, school_id)
            JOIN syncing_syncchange c ON c.id = m.change_id
            """,
            [
                district_id,
                connection_id,
                run_id,
                run_id,
                bulk.bigint_array(row[0] for row in created),
                bulk.bigint_array(row[1] for row in created),
                bulk.bigint_array(row[2] for row in created),
            ],
        )


def superseded_primary_spans(
    connection_id: int, change_ids: Sequence[int]
) -> list[tuple[int, int, Any, Any]]:
    """``(span id, link id, span entry date, new entry date)`` of the open primary enrollments,
    linked to this connection, of the students that the staged enrollment creates
    ``change_ids`` give a new primary span (the earliest new entry date per student)."""
    with _index_lookups():
        return _rows(
            """
        WITH new AS (
            SELECT r.object_id AS student_id, min((c."values" ->> 'entry_date')::date) AS entry
            FROM syncing_syncchange c
            JOIN LATERAL (
                SELECT l.object_id FROM syncing_sourcelink l
                WHERE l.connection_id = %s AND l.entity = 'student'
                  AND l.source_id = (c."values" ->> 'student_id') LIMIT 1
            ) r ON true
            WHERE c.id = ANY(%s::bigint[]) AND COALESCE(c."values" ->> 'entry_date', '') <> ''
              AND COALESCE(c."values" ->> 'is_primary', 'true') = 'true'
            GROUP BY r.object_id
        )
        -- LATERAL: one index probe per student and span, whatever the statistics of the
        -- tables this very run is filling say (a hash join scanned them for every batch).
        SELECT e.id, l.id, e.entry_date, new.entry
        FROM new
        JOIN LATERAL (
            SELECT e.id, e.entry_date FROM attendance_enrollment e
            WHERE e.student_id = new.student_id AND e.is_primary AND e.exit_date IS NULL
        ) e ON true
        JOIN LATERAL (
            SELECT l.id FROM syncing_sourcelink l
            WHERE l.object_id = e.id AND l.entity = 'enrollment' AND l.connection_id = %s
              AND l.active
            LIMIT 1
        ) l ON true
            """,
            [connection_id, bulk.bigint_array(change_ids), connection_id],
        )


# Columns of a claimed change (``values`` too when asked: creates keep theirs in the database).
CLAIM_COLUMNS = ("id", "entity", "source_id", "action", "link_id", "content_hash")


def changes_claim(
    run_id: int,
    rank: int,
    *,
    limit: int,
    with_values: bool,
    share: tuple[str, int, int] | None = None,
    after: int = 0,
) -> list[dict[str, Any]]:
    """Take the first ``limit`` changes of ``rank`` still staged with ids above ``after``: mark
    them applied and return them (:data:`CLAIM_COLUMNS`, and ``values`` with ``with_values``)
    in id order.

    The caller applies them in the same transaction: committed, the claim is their new state
    (one row write per change, where reading a batch and then marking it cost two statements);
    rolled back, they are staged again. No index covers ``state``, so the write is heap-only (a
    fifth to a third of the cost of a write that also inserts into the change table's four
    indexes: 15 ms instead of 40-67 ms per 2,000 changes). The index walk starts at ``after``: a
    caller taking batches in order passes the last id it took, so the applied rows before it are
    not read again for every batch. Changes another session claimed and has not committed yet
    are skipped (``SKIP LOCKED``): threads applying one rank each take their own batches, with
    no thread handing ids out. ``id = ANY(ARRAY(…))``: primary-key probes whatever the
    statistics of a change table this run filled minutes ago say.

    ``share`` = (field, index, shares): only changes whose staged ``field`` hashes to share
    ``index`` of ``shares`` (every change with one value of the field in the same share)."""
    columns = [*CLAIM_COLUMNS, *(["values"] if with_values else [])]
    returning = ", ".join(f'c."{name}"' for name in columns)
    in_share, share_params = "", []
    if share is not None:
        field, index, shares = share
        # hashtext is PostgreSQL's own string hash; the bigint keeps the modulo non-negative.
        in_share = "AND (hashtext(COALESCE(\"values\" ->> %s, ''))::bigint + 2147483648) %% %s = %s"
        share_params = [field, shares, index]
    rows = _rows(
        f"""
        UPDATE syncing_syncchange c SET state = 'applied'
        WHERE c.id = ANY(ARRAY(
            SELECT id FROM syncing_syncchange
            WHERE run_id = %s AND rank = %s AND id > %s AND state = 'staged' {in_share}
            ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
        ))
        RETURNING {returning}
        """,  # noqa: S608 - column names from this module
        [run_id, rank, after, *share_params, limit],
    )
    claimed = [dict(zip(columns, row, strict=True)) for row in rows]
    if with_values:
        for change in claimed:  # jsonb arrives as text (Django's loader for raw cursors)
            change["values"] = orjson.loads(change["values"])
    claimed.sort(key=lambda change: change["id"])
    return claimed


def enrollment_students(enrollment_ids: Sequence[int]) -> set[int]:
    if not enrollment_ids:
        return set()
    rows = _rows(
        "SELECT DISTINCT student_id FROM attendance_enrollment WHERE id = ANY(%s::bigint[])",
        [bulk.bigint_array(enrollment_ids)],
    )
    return {row[0] for row in rows}


# --- links and spans ----------------------------------------------------------------------------


def links_update(rows: list[dict[str, Any]]) -> None:
    """Set object, hash, baseline, state, school and last run of links (by ``id``)."""
    if not rows:
        return
    with db.cursor() as cursor:
        cursor.execute(
            """
            UPDATE syncing_sourcelink AS l
            SET object_id = v.object_id, content_hash = v.content_hash,
                baseline = v.baseline::jsonb, active = v.active, school_id = v.school_id,
                last_run_id = v.last_run_id, updated_at = now()
            FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::boolean[],
                        %s::bigint[], %s::bigint[])
                 AS v(id, object_id, content_hash, baseline, active, school_id, last_run_id)
            WHERE l.id = v.id
            """,
            [
                [r["id"] for r in rows],
                [r["object_id"] for r in rows],
                [r["content_hash"] for r in rows],
                [orjson.dumps(r["baseline"]).decode() for r in rows],
                [r["active"] for r in rows],
                [r["school_id"] for r in rows],
                [r["last_run_id"] for r in rows],
            ],
        )


def links_deactivate(run_id: int, link_ids: Sequence[int], baseline_patch: dict[str, Any]) -> None:
    """Mark links inactive and merge ``baseline_patch`` into their baselines."""
    with db.cursor() as cursor:
        cursor.execute(
            "UPDATE syncing_sourcelink SET active = false, last_run_id = %s, updated_at = now(), "
            "baseline = baseline || %s::jsonb WHERE id = ANY(%s::bigint[])",
            [run_id, orjson.dumps(baseline_patch).decode(), bulk.bigint_array(link_ids)],
        )


def open_primary_schools(student_ids: Sequence[int]) -> dict[int, int]:
    """School of each student's open primary enrollment (the latest by entry date)."""
    # LATERAL: one probe of the open-primary partial index per student. As one ``student_id =
    # ANY(…)`` scan, the planner, still believing the enrollment table of a first load empty,
    # scanned the open spans of the school index instead, every batch (quadratic).
    with _index_lookups():
        rows = _rows(
            """
        SELECT s.id, e.school_id
        FROM unnest(%s::bigint[]) AS s(id)
        JOIN LATERAL (
            SELECT e.school_id FROM attendance_enrollment e
            WHERE e.student_id = s.id AND e.exit_date IS NULL AND e.is_primary
            ORDER BY e.entry_date DESC LIMIT 1
        ) e ON true
        """,
            [bulk.bigint_array(student_ids)],
        )
    return {row[0]: row[1] for row in rows}
