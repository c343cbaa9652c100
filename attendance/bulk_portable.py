""":mod:`attendance.bulk` for databases other than PostgreSQL (SQLite in ``make run``).

Same functions, signatures and semantics, written with the ORM: inserts with ``bulk_create``,
updates with ``bulk_update`` of only the rows whose values really differ (compared in Python
after each value is converted by its field, as PostgreSQL compares after casting), and the same
history rows — one snapshot per written row, read back from the table after the write.
Correctness over speed: values travel through Python and model instances. Each public function
of :mod:`attendance.bulk` hands over to the one here when the connection is not PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from attendance.bulk import _concrete_fields, is_audited
from attendance.signals import district_of_writes, rows_written

# Ids per ``IN (…)`` list and rows per statement: under SQLite's bound-parameter limits.
_CHUNK = 900
_temp_names = itertools.count()


def _chunks(values: Sequence[Any], size: int = _CHUNK) -> Iterator[list[Any]]:
    items = list(values)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _unknown_check(model: type[models.Model], names: Iterable[str]) -> None:
    fields = _concrete_fields(model)
    unknown = [name for name in names if name not in fields]
    if unknown:
        raise ValueError(f"Unknown field(s) for {model.__name__}: {', '.join(unknown)}")


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
    # As in attendance.bulk: every writer records history here, so this announces them all.
    rows_written.send(sender=model, ids=list(ids), district_id=district_of_writes())
    history_model = model.history.model  # type: ignore[attr-defined]
    tracked = {f.attname for f in history_model._meta.concrete_fields}
    names = [name for name in _concrete_fields(model) if name in tracked]
    extra = {
        "history_date": when or timezone.now(),
        "history_change_reason": change_reason[:100] or None,
        "history_type": history_type,
        "history_user_id": user_id,
    }
    written = 0
    for chunk in _chunks(ids):
        snapshots = [
            history_model(**dict(zip(names, row, strict=True)), **extra)
            for row in model._base_manager.filter(pk__in=chunk).values_list(*names)
        ]
        history_model._base_manager.bulk_create(snapshots, batch_size=100)
        written += len(snapshots)
    return written


def _instances(model: type[models.Model], rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Unsaved instances of ``rows``: omitted fields take their model default, as in
    :func:`attendance.bulk.bulk_insert`; values are converted by their fields on save."""
    return [model(**row) for row in rows]


def bulk_insert(
    model: type[models.Model],
    rows: Sequence[Mapping[str, Any]],
    *,
    change_reason: str = "",
    user_id: int | None = None,
    ignore_conflicts: bool = False,
) -> list[int]:
    """Insert ``rows`` and, for an audited model, write a ``+`` history row for each. Returns
    the new primary keys in row order (with ``ignore_conflicts``, only of the rows inserted:
    a row that breaks a unique constraint is skipped, anything else still fails)."""
    if not rows:
        return []
    _unknown_check(model, {name for row in rows for name in row})
    now = timezone.now()
    objects = _instances(model, rows)
    with transaction.atomic():
        try:
            with transaction.atomic():
                model._base_manager.bulk_create(objects, batch_size=100)
        except IntegrityError:
            if not ignore_conflicts:
                raise
            # Row by row, each in its own savepoint, to keep all but the conflicting ones.
            objects = [obj for obj in _instances(model, rows) if _insert_unless_duplicate(obj)]
        ids = [int(obj.pk) for obj in objects]
        if is_audited(model):
            history_write(
                model, ids, history_type="+", change_reason=change_reason, user_id=user_id, when=now
            )
    return ids


def _insert_unless_duplicate(obj: models.Model) -> bool:
    try:
        with transaction.atomic():
            # bulk_create, not save(): no signals, so no second history row.
            type(obj)._base_manager.bulk_create([obj])
    except IntegrityError as exc:
        # ON CONFLICT DO NOTHING skips unique violations only; others stay errors.
        if "UNIQUE" not in str(exc).upper():
            raise
        return False
    return True


def insert_select(
    model: type[models.Model],
    columns: Mapping[str, str],
    source: str,
    params: Sequence[Any],
    *,
    change_reason: str = "",
    user_id: int | None = None,
) -> list[int]:
    """``INSERT … SELECT``: the expressions (SQL of this database) are selected first and the
    rows inserted through :func:`bulk_insert` (values converted by their fields instead of
    cast in SQL); omitted fields take their model default. Returns the new primary keys in
    the source's order."""
    _unknown_check(model, columns)
    names = list(columns)
    sql = f"SELECT {', '.join(f'({columns[name]})' for name in names)} {source}"
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return bulk_insert(model, rows, change_reason=change_reason, user_id=user_id)


def _python(field: models.Field[Any, Any], value: Any) -> Any:
    """``value`` as the field holds it (what PostgreSQL's cast from text does)."""
    if value is None:
        return None
    if isinstance(field, models.JSONField):
        return value
    if isinstance(value, models.Model):
        return value.pk
    target = field.target_field if field.is_relation else field  # type: ignore[attr-defined]
    return target.to_python(value)


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
    _unknown_check(model, names)
    if not names:
        return []
    touched = [
        name
        for name, field in model_fields.items()
        if getattr(field, "auto_now", False) and name not in names
    ]
    now = timezone.now()
    current: dict[int, tuple[Any, ...]] = {}
    for chunk in _chunks([int(row["id"]) for row in rows]):
        for pk, *values in model._base_manager.filter(pk__in=chunk).values_list("pk", *names):
            current[pk] = tuple(values)
    changed: list[Any] = []
    for row in rows:
        pk = int(row["id"])
        if pk not in current:
            continue  # like UPDATE … FROM: a missing row is not written
        new = tuple(_python(model_fields[name], row[name]) for name in names)
        if new == current[pk]:
            continue
        current[pk] = new  # a repeated id: the later row is compared with the earlier one
        instance = model(pk=pk, **dict(zip(names, new, strict=True)))
        for name in touched:
            setattr(instance, name, now)
        changed.append(instance)
    if not changed:
        return []
    with transaction.atomic():
        model._base_manager.bulk_update(changed, [*names, *touched], batch_size=100)
        ids = list(dict.fromkeys(int(instance.pk) for instance in changed))
        if is_audited(model):
            history_write(
                model, ids, history_type="~", change_reason=change_reason, user_id=user_id, when=now
            )
    return ids


def copy_to_temp(cursor: Any, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Insert ``rows`` into a new temporary text table with an extra ordinal column ``n``;
    returns its name. Unlike PostgreSQL's it outlives the transaction: drop it with
    :func:`temp_drop`."""
    name = f"_bulk_{next(_temp_names)}"
    quote = connection.ops.quote_name
    definition = ", ".join(f"{quote(c)} text" for c in columns)
    cursor.execute(f"CREATE TEMPORARY TABLE {name} (n bigint, {definition})")
    placeholders = ", ".join(["%s"] * (len(columns) + 1))
    cursor.executemany(
        f"INSERT INTO {name} VALUES ({placeholders})",  # noqa: S608 - our own table name
        [(n, *row) for n, row in enumerate(rows)],
    )
    return name


def temp_drop(cursor: Any, name: str) -> None:
    cursor.execute(f"DROP TABLE IF EXISTS {name}")
