"""Set-based writes of audited domain models that keep django-simple-history whole.

The sync engine writes rosters of hundreds of thousands of rows. Row-by-row ``save()`` is far too
slow, and plain ``bulk_create``/``bulk_update``/raw SQL write no history at all, silently. These
helpers send one statement per batch and then copy the rows that *really* changed into the
model's history table with one ``INSERT … SELECT``, so:

- an insert writes one ``+`` history row per new row;
- an update touches only rows whose values differ (``IS DISTINCT FROM``) and writes one ``~``
  history row for each of those, none for the rest — re-sending identical values writes nothing.

History rows are snapshots of the rows as written (read back from the table after an update;
for ``insert_select``, taken from the insert's ``RETURNING`` in the same statement), so they are
complete (timestamps, untouched columns) without building model instances in Python.

Values travel as text and are cast per column in SQL. A small batch sends them as arrays through
``unnest``; a large one streams them with ``COPY`` into a temporary table first (Django binds
parameters on the client, so a 2,000-row array costs more to render as SQL text than to run).

PostgreSQL's (``unnest``, ``COPY``, temporary tables, ``RETURNING``): on any other database each
public function hands over to its ORM twin in :mod:`attendance.bulk_portable`. Callers run the
helpers inside their own transaction (each is atomic on its own).
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson
from django.db import connection, models, transaction
from django.utils import timezone

from attendance.signals import district_of_writes, rows_written

_HISTORY_EXTRA = ("history_date", "history_change_reason", "history_type", "history_user_id")

# From this many rows on, values are streamed with COPY instead of bound as arrays.
COPY_MIN_ROWS = 200
_temp_names = itertools.count()


def _portable_elsewhere[**P, R](function: Callable[P, R]) -> Callable[P, R]:
    """Off PostgreSQL (SQLite in ``make run``), call the same-named function of
    :mod:`attendance.bulk_portable` instead."""

    @functools.wraps(function)
    def dispatch(*args: P.args, **kwargs: P.kwargs) -> R:
        if connection.vendor != "postgresql":
            from attendance import bulk_portable

            return getattr(bulk_portable, function.__name__)(*args, **kwargs)
        return function(*args, **kwargs)

    return dispatch


def bigint_array(values: Iterable[int | None]) -> str:
    """``values`` as one PostgreSQL ``bigint[]`` literal, to bind as a single text parameter
    cast in the SQL (``%s::bigint[]``). psycopg adapts a Python list element by element in
    Python: about a millisecond per 1,700 ids, several times per batch on the apply threads;
    joined here it costs a tenth of that."""
    return "{" + ",".join("NULL" if value is None else str(int(value)) for value in values) + "}"


def _q(name: str | None) -> str:
    if not name:  # pragma: no cover - concrete fields and tables always have names
        raise ValueError("missing database identifier")
    return connection.ops.quote_name(name)


def _concrete_fields(model: type[models.Model]) -> dict[str, models.Field[Any, Any]]:
    """Concrete columns by attname (``school_id`` for the ``school`` foreign key)."""
    return {f.attname: f for f in model._meta.concrete_fields}


def _cast(field: models.Field[Any, Any]) -> str:
    db_type = field.rel_db_type(connection) if field.is_relation else field.db_type(connection)
    if db_type is None:  # pragma: no cover - every concrete field we write has a type
        raise ValueError(f"{field} has no database type")
    # Serial primary keys report "bigserial"; casts need the plain type.
    return {"bigserial": "bigint", "serial": "integer"}.get(db_type, db_type)


def _as_text(value: Any) -> str | None:
    """Values travel as text and are cast per column in SQL: one code path for every type, no
    per-type adapters."""
    if value is None or type(value) is str:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list | dict):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    if isinstance(value, models.Model):
        return str(value.pk)
    return str(value)


@_portable_elsewhere
def copy_to_temp(cursor: Any, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Stream ``rows`` (tuples of text or None, one per row in ``columns`` order) with ``COPY``
    into a new temporary text table with an extra ordinal column ``n`` (the row's position);
    returns the table's name. The table lives until :func:`temp_drop` or the transaction's end.
    """
    name = f"_bulk_{next(_temp_names)}"
    definition = ", ".join(f"{_q(c)} text" for c in columns)
    cursor.execute(f"CREATE TEMPORARY TABLE {name} (n bigint, {definition}) ON COMMIT DROP")
    raw = getattr(cursor, "cursor", cursor)  # the psycopg cursor under Django's wrapper
    with raw.copy(f"COPY {name} FROM STDIN") as copy:
        for n, row in enumerate(rows):
            copy.write_row((n, *row))
    return name


@_portable_elsewhere
def temp_drop(cursor: Any, name: str) -> None:
    cursor.execute(f"DROP TABLE IF EXISTS {name}")


def _history_columns(model: type[models.Model]) -> list[str]:
    history_model = model.history.model  # type: ignore[attr-defined]
    tracked = {f.attname for f in history_model._meta.concrete_fields}
    return [f.column for name, f in _concrete_fields(model).items() if name in tracked and f.column]


@_portable_elsewhere
def history_write(
    model: type[models.Model],
    ids: Sequence[int],
    *,
    history_type: str,
    change_reason: str = "",
    user_id: int | None = None,
    when: dt.datetime | None = None,
) -> int:
    """Copy the current state of rows ``ids`` into ``model``'s history table as one snapshot
    each. Returns the number of history rows written."""
    if not ids:
        return 0
    _announce(model, ids)
    pk = _q(model._meta.pk.column)
    # Identifiers come from model metadata (quoted); every value is a parameter.
    sql = f"{_history_insert(model, _q(model._meta.db_table))} WHERE {pk} = ANY(%s::bigint[])"
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [*_history_params(history_type, change_reason, user_id, when), bigint_array(ids)],
        )
        return int(cursor.rowcount)


def _announce(model: type[models.Model], ids: Sequence[int]) -> None:
    """Tell the receivers of ``rows_written`` (the API's roster cache) that rows ``ids`` were
    written. Every writer here records history, and calls this where it does: one place to
    announce them."""
    rows_written.send(sender=model, ids=list(ids), district_id=district_of_writes())


def _history_insert(model: type[models.Model], source: str) -> str:
    """SQL inserting a history snapshot of each row of ``source`` (the model's table, or a
    CTE with its columns), optionally followed by a ``WHERE``; :func:`_history_params` are its
    first parameters."""
    history_table = model.history.model._meta.db_table  # type: ignore[attr-defined]
    quoted = ", ".join(_q(c) for c in _history_columns(model))
    extra = ", ".join(_q(c) for c in _HISTORY_EXTRA)
    # Identifiers come from model metadata (quoted).
    return (
        f"INSERT INTO {_q(history_table)} ({quoted}, {extra}) "  # noqa: S608
        f"SELECT {quoted}, %s, %s, %s, %s FROM {source}"
    )


def _history_params(
    history_type: str, change_reason: str, user_id: int | None, when: dt.datetime | None
) -> list[Any]:
    return [when or timezone.now(), change_reason[:100] or None, history_type, user_id]


def is_audited(model: type[models.Model]) -> bool:
    """Whether ``model`` keeps django-simple-history (then every write here records it)."""
    return hasattr(model, "history") and hasattr(model.history, "model")


@_portable_elsewhere
def bulk_insert(
    model: type[models.Model],
    rows: Sequence[Mapping[str, Any]],
    *,
    change_reason: str = "",
    user_id: int | None = None,
    ignore_conflicts: bool = False,
) -> list[int]:
    """Insert ``rows`` (dicts keyed by field attname; omitted fields take their model default)
    and, for an audited model, write a ``+`` history row for each. Returns the new primary keys
    in row order (with ``ignore_conflicts``, only of the rows inserted)."""
    if not rows:
        return []
    fields = _concrete_fields(model)
    now = timezone.now()
    names = sorted({name for row in rows for name in row})
    unknown = [name for name in names if name not in fields]
    if unknown:
        raise ValueError(f"Unknown field(s) for {model.__name__}: {', '.join(unknown)}")
    defaults: dict[str, Any] = {}
    for name, field in fields.items():
        if field.primary_key or name in names:
            continue
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            defaults[name] = now
        else:
            # The model default, "" for text columns, else None (NOT NULL columns then fail
            # loudly in the database instead of taking a made-up value).
            defaults[name] = field.get_default()
    all_names = names + sorted(defaults)
    columns = [fields[name].column for name in all_names]
    # A row without a key some other row has takes that field's default, not NULL.
    fallback = {name: fields[name].get_default() for name in names}
    constant = [_as_text(defaults[name]) for name in sorted(defaults)]
    table = _q(model._meta.db_table)
    pk = _q(model._meta.pk.column)
    quoted = ", ".join(_q(c) for c in columns)
    conflict = "ON CONFLICT DO NOTHING " if ignore_conflicts else ""
    with transaction.atomic(), connection.cursor() as cursor:
        if len(rows) >= COPY_MIN_ROWS:
            aliases = [f"c{i}" for i in range(len(names))]
            temp = copy_to_temp(
                cursor,
                aliases,
                (
                    [_as_text(row[name] if name in row else fallback[name]) for name in names]
                    for row in rows
                ),
            )
            selects = [f"v.c{i}::{_cast(fields[name])}" for i, name in enumerate(names)]
            selects += [f"%s::{_cast(fields[name])}" for name in sorted(defaults)]
            sql = (
                f"INSERT INTO {table} ({quoted}) "  # noqa: S608
                f"SELECT {', '.join(selects)} FROM {temp} AS v "
                f"ORDER BY v.n {conflict}RETURNING {pk}"
            )
            cursor.execute(sql, constant)
            ids = [int(r[0]) for r in cursor.fetchall()]
            temp_drop(cursor, temp)
        else:
            arrays = [
                [_as_text(row[name] if name in row else fallback[name]) for row in rows]
                for name in names
            ]
            arrays += [[value] * len(rows) for value in constant]
            # ``WITH ORDINALITY`` keeps the returned ids in the order of ``rows``.
            selects_sql = ", ".join(
                f"v.c{i}::{_cast(fields[name])}" for i, name in enumerate(all_names)
            )
            aliases_sql = ", ".join(f"c{i}" for i in range(len(all_names)))
            unnest = ", ".join("%s::text[]" for _ in all_names)
            sql = (
                f"INSERT INTO {table} ({quoted}) "  # noqa: S608
                f"SELECT {selects_sql} "
                f"FROM unnest({unnest}) WITH ORDINALITY AS v({aliases_sql}, n) "
                f"ORDER BY v.n {conflict}RETURNING {pk}"
            )
            cursor.execute(sql, arrays)
            ids = [int(r[0]) for r in cursor.fetchall()]
        if is_audited(model):
            history_write(
                model,
                ids,
                history_type="+",
                change_reason=change_reason,
                user_id=user_id,
                when=now,
            )
    return ids


@_portable_elsewhere
def insert_select(
    model: type[models.Model],
    columns: Mapping[str, str],
    source: str,
    params: Sequence[Any],
    *,
    change_reason: str = "",
    user_id: int | None = None,
    returning: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """``INSERT … SELECT``: ``columns`` maps field attnames to SQL expressions over ``source``
    (a ``FROM … WHERE … ORDER BY …`` clause with ``params``; expressions take no parameters
    and are cast to the column's type here); omitted fields take their model default. Writes
    a ``+`` history row per new row; returns a row per new row in the source's order: its
    primary key, then the value of each ``returning`` expression (SQL over the new row, e.g. a
    column another statement would otherwise read back). For set-based writes of values
    already in the database (staged rows): nothing travels through Python."""
    fields = _concrete_fields(model)
    unknown = [name for name in columns if name not in fields]
    if unknown:
        raise ValueError(f"Unknown field(s) for {model.__name__}: {', '.join(unknown)}")
    now = timezone.now()
    names = list(columns)
    selects = [f"({columns[name]})::{_cast(fields[name])}" for name in names]
    constants: list[Any] = []
    for name, field in fields.items():
        if field.primary_key or name in columns:
            continue
        names.append(name)
        selects.append(f"%s::{_cast(field)}")
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            constants.append(now)
        else:
            constants.append(_as_text(field.get_default()))
    quoted = ", ".join(_q(fields[name].column) for name in names)
    insert = (
        f"INSERT INTO {_q(model._meta.db_table)} ({quoted}) SELECT {', '.join(selects)} {source}"
    )
    pk = _q(model._meta.pk.column)
    results = ", ".join([pk, *returning])
    audited = is_audited(model)
    if audited:
        # The history rows come from the new rows in the same statement: written afterwards
        # by id, each batch's new rows were looked up again one by one through the primary key
        # (and their ids sent back to the database). Ids follow the source's order.
        sql = (
            f"WITH new AS ({insert} RETURNING *), "  # noqa: S608 - quoted identifiers
            f"history AS ({_history_insert(model, 'new')}) "
            f"SELECT {results} FROM new ORDER BY {pk}"
        )
        history = _history_params("+", change_reason, user_id, now)
    else:
        sql = f"{insert} RETURNING {results}"
        history = []
    # One statement, so atomic with its history without a savepoint.
    with connection.cursor() as cursor:
        # Expressions take no parameters: the defaults come first, then the source's, then
        # the history's (its CTE follows the insert).
        cursor.execute(sql, [*constants, *params, *history])
        rows = [(int(row[0]), *row[1:]) for row in cursor.fetchall()]
    if audited and rows:
        _announce(model, [row[0] for row in rows])
    return rows


@_portable_elsewhere
def bulk_update(
    model: type[models.Model],
    rows: Sequence[Mapping[str, Any]],
    *,
    fields: Iterable[str],
    change_reason: str = "",
    user_id: int | None = None,
) -> list[int]:
    """Set ``fields`` on the rows identified by each row's ``"id"``, but only where a value
    really differs; write a ``~`` history row for exactly those rows. Returns their ids."""
    if not rows:
        return []
    model_fields = _concrete_fields(model)
    names = [name for name in dict.fromkeys(fields) if name != "id"]
    unknown = [name for name in names if name not in model_fields]
    if unknown:
        raise ValueError(f"Unknown field(s) for {model.__name__}: {', '.join(unknown)}")
    if not names:
        return []
    q = _q
    pk_field = model._meta.pk
    if pk_field is None:  # pragma: no cover - every concrete model has one
        raise ValueError(f"{model.__name__} has no primary key")
    casts = [f"v.c{i}::{_cast(model_fields[name])}" for i, name in enumerate(names)]
    assignments = ", ".join(
        f"{q(model_fields[name].column)} = {cast}" for name, cast in zip(names, casts, strict=True)
    )
    touched = [
        name
        for name, field in model_fields.items()
        if getattr(field, "auto_now", False) and name not in names
    ]
    now = timezone.now()
    for name in touched:
        assignments += f", {q(model_fields[name].column)} = %s"
    current = ", ".join(f"t.{q(model_fields[name].column)}" for name in names)
    # Compared as rows: one distinct column is enough; identical rows are not touched at all.
    distinct = f"ROW({current}) IS DISTINCT FROM ROW({', '.join(casts)})"
    table = q(model._meta.db_table)
    pk = q(pk_field.column)
    aliases = ["id", *[f"c{i}" for i in range(len(names))]]
    with transaction.atomic(), connection.cursor() as cursor:
        if len(rows) >= COPY_MIN_ROWS:
            temp = copy_to_temp(
                cursor,
                aliases,
                ([str(int(row["id"])), *[_as_text(row[name]) for name in names]] for row in rows),
            )
            source = f"{temp} AS v"
            key = "v.id::bigint"
            params: list[Any] = [now] * len(touched)
        else:
            temp = ""
            unnest = ", ".join(["%s::bigint[]", *["%s::text[]" for _ in names]])
            source = f"unnest({unnest}) AS v({', '.join(aliases)})"
            key = "v.id"
            params = [now] * len(touched)
            params.append([int(row["id"]) for row in rows])
            params += [[_as_text(row[name]) for row in rows] for name in names]
        sql = (
            f"UPDATE {table} AS t SET {assignments} FROM {source} "  # noqa: S608
            f"WHERE t.{pk} = {key} AND {distinct} RETURNING t.{pk}"
        )
        cursor.execute(sql, params)
        ids = [int(r[0]) for r in cursor.fetchall()]
        if temp:
            temp_drop(cursor, temp)
        if is_audited(model):
            history_write(
                model,
                ids,
                history_type="~",
                change_reason=change_reason,
                user_id=user_id,
                when=now,
            )
    return ids
