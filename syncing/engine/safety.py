"""The safety check between staging and applying.

Thresholds are evaluated per entity and per school (and for the entity as a whole), against
the active population the crosswalk knows. A breach holds the whole run: nothing is applied
until an administrator approves all, approves all but deactivations, or rejects.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q

from attendance.models import School
from syncing.entities import SPECS
from syncing.models import (
    ChangeAction,
    SafetyBlackout,
    SafetyPolicy,
    SourceLink,
    SyncChange,
    SyncRun,
)

DEFAULT_MAX_DEACTIVATION = Decimal("10")
DEFAULT_MAX_UPDATE = Decimal("75")
DEFAULT_MIN_POPULATION = 20
DEFAULT_MIN_CHANGES = 5


@dataclass(frozen=True)
class Limits:
    max_deactivation_percent: Decimal = DEFAULT_MAX_DEACTIVATION
    max_update_percent: Decimal = DEFAULT_MAX_UPDATE
    min_population: int = DEFAULT_MIN_POPULATION
    min_changes: int = DEFAULT_MIN_CHANGES


@dataclass(frozen=True)
class Breach:
    entity: str
    school_id: int | None
    kind: str  # deactivations | updates | empty_source | blackout
    count: int
    population: int
    limit: str
    school_name: str = ""  # what the admin and the e-mail say, rather than an id

    def describe(self) -> str:
        where = f" at {self.school_name or f'school {self.school_id}'}" if self.school_id else ""
        if self.kind == "empty_source":
            return f"The SIS returned no {self.entity} records where {self.population} are active."
        if self.kind == "blackout":
            return f"{self.count} {self.entity} deactivations fall in a blackout period."
        share = 100 * self.count / self.population if self.population else 100
        return (
            f"{self.count} {self.entity} {self.kind}{where} ({share:.1f}% of {self.population}) "
            f"exceed the limit of {self.limit}."
        )


def _limits_for(run: SyncRun, entity: str, school_id: int | None) -> Limits:
    candidates = SafetyPolicy.objects.filter(
        Q(connection_id=run.connection_id) | Q(connection__isnull=True),
        district_id=run.district_id,
        entity=entity,
    ).filter(Q(school_id=school_id) | Q(school__isnull=True))
    best = None
    best_rank = -1
    for policy in candidates:
        rank = (2 if policy.school_id is not None else 0) + (
            1 if policy.connection_id is not None else 0
        )
        if rank > best_rank:
            best, best_rank = policy, rank
    if best is None:
        return Limits()
    return Limits(
        max_deactivation_percent=best.max_deactivation_percent,
        max_update_percent=best.max_update_percent,
        min_population=best.min_population,
        min_changes=best.min_changes,
    )


def in_blackout(run: SyncRun, on: dt.date) -> bool:
    return SafetyBlackout.objects.filter(
        Q(connection_id=run.connection_id) | Q(connection__isnull=True),
        district_id=run.district_id,
        start_date__lte=on,
        end_date__gte=on,
    ).exists()


def _over(count: int, population: int, limit_percent: Decimal, limits: Limits) -> bool:
    if count < limits.min_changes or population < limits.min_population:
        return False
    return Decimal(count) * 100 > limit_percent * population


def safety_evaluate(
    run: SyncRun, *, on: dt.date, fetched: dict[str, int], full: bool
) -> list[Breach]:
    """Every threshold the staged change set of ``run`` breaks (empty: safe to apply).

    ``fetched`` is the number of records the SIS returned per entity in this run (for the
    empty-source rule, which applies to full syncs).
    """
    breaches: list[Breach] = []
    staged = (
        SyncChange.objects.filter(run=run, state="staged")
        .filter(action__in=[ChangeAction.DEACTIVATE, ChangeAction.UPDATE])
        .values_list("entity", "school_id", "action")
        .order_by()
        .annotate(n=Count("id"))
    )
    by_key: dict[tuple[str, int | None, str], int] = {}
    for entity, school_id, action, n in staged:
        by_key[(entity, school_id, action)] = n
        by_key[(entity, None, action + ":all")] = by_key.get((entity, None, action + ":all"), 0) + n
    # Links are counted only where a rule can use the count: entities with staged
    # deactivations or updates (the shares' denominators) and, on a full sync, entities the
    # SIS returned nothing of (the empty-source rule). Counting every link cost an identical
    # re-sync of 10,000 students a quarter of a second, and one of 100,000 several.
    counted = {entity for entity, _, _ in by_key}
    if full:
        counted |= {spec for spec in SPECS if not fetched.get(spec)}
    population: dict[tuple[str, int | None], int] = {}
    for entity, school_id, n in (
        SourceLink.objects.filter(
            connection_id=run.connection_id, active=True, entity__in=sorted(counted)
        )
        .values_list("entity", "school_id")
        .order_by()
        .annotate(n=Count("id"))
        if counted
        else ()
    ):
        population[(entity, school_id)] = n
        population[(entity, -1)] = population.get((entity, -1), 0) + n

    if full:
        for (entity, school_id), n in population.items():
            if school_id == -1 and n and not fetched.get(entity):
                breaches.append(Breach(entity, None, "empty_source", 0, n, "any records"))

    deactivations_total = 0
    for (entity, school_id, action), n in by_key.items():
        if action.endswith(":all"):
            scope_school = None
            pop = population.get((entity, -1), 0)
            action = action[:-4]
        else:
            scope_school = school_id
            if school_id is None:
                continue  # counted in the entity-wide total
            pop = population.get((entity, school_id), 0)
        if action == ChangeAction.DEACTIVATE and scope_school is None:
            deactivations_total += n
        limits = _limits_for(run, entity, scope_school)
        limit = (
            limits.max_deactivation_percent
            if action == ChangeAction.DEACTIVATE
            else limits.max_update_percent
        )
        if _over(n, pop, limit, limits):
            kind = "deactivations" if action == ChangeAction.DEACTIVATE else "updates"
            breaches.append(Breach(entity, scope_school, kind, n, pop, f"{limit}%"))
    if deactivations_total and in_blackout(run, on):
        breaches.append(Breach("record", None, "blackout", deactivations_total, 0, "none"))
    names = dict(
        School.objects.filter(pk__in={b.school_id for b in breaches if b.school_id}).values_list(
            "pk", "name"
        )
    )
    return [replace(b, school_name=names.get(b.school_id or 0, "")) for b in breaches]


def held_details(run: SyncRun, breaches: list[Breach], sample_size: int = 10) -> dict[str, Any]:
    """Staged totals and a few samples per entity and action, for the reviewing admin."""
    from syncing.engine.stage.checkpoint import staged_totals

    samples: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for entity, actions in staged_totals(run).items():
        for action in actions:
            rows = SyncChange.objects.filter(run=run, entity=entity, action=action).values(
                "source_id", "diff", "school_id"
            )[:sample_size]
            samples.setdefault(entity, {})[action] = [dict(row) for row in rows]
    return {
        "totals": staged_totals(run),
        "breaches": [b.__dict__ | {"text": b.describe()} for b in breaches],
        "samples": samples,
    }
