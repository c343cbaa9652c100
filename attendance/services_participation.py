"""Participation grades computed from attendance (rule ``attendance-share-v1``).

The rule (docs/participation.md has the worked cases): for one section and one grading period,
a student's grade is the share of the section's meetings *recorded for that student* in the
period, in percent, rounded to two decimals:

- present, school activity and excused tardy earn full credit (1);
- unexcused tardy and early departure earn ``PARTICIPATION_TARDY_CREDIT`` (default 0.5);
- an unexcused absence earns 0;
- an excused absence is left out of the denominator (it neither helps nor hurts);
- a meeting with no record for the student is not counted (a gap in the roll is not an
  absence); daily records (no section) are not part of any section's grade.

Only students with a student section enrollment overlapping the period are graded, and only
when at least one meeting counts. A student whose countable meetings drop to none keeps the
grade already computed.

Set-based: one ``INSERT … SELECT … ON CONFLICT DO UPDATE … WHERE IS DISTINCT FROM`` computes and
upserts every grade of a batch of sections at once, so an unchanged grade is not touched; one
history row is then written per created or changed grade (``attendance.bulk.history_write``)
and :data:`attendance.signals.participation_grades_changed` is sent with their ids *inside* the
transaction, so the write-back outbox (the receiver in ``syncing``) commits with the grades or
not at all. Recomputing unchanged attendance writes nothing and queues nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from attendance.bulk import history_write
from attendance.models import (
    AttendanceRecord,
    AttendanceStatus,
    District,
    ParticipationGrade,
    Section,
    SectionEnrollment,
    Term,
)
from attendance.signals import participation_grades_changed
from core.errors import ApplicationError

RULE = "attendance-share-v1"
#: sections per statement: bounds one statement's work and lets a progress bar move
SECTION_BATCH = 500


def tardy_credit() -> Decimal:
    """The partial credit of an unexcused tardy or early departure (a Django setting)."""
    value = Decimal(str(getattr(settings, "PARTICIPATION_TARDY_CREDIT", "0.5")))
    if not Decimal(0) <= value <= Decimal(1):
        raise ApplicationError(
            "PARTICIPATION_TARDY_CREDIT must be between 0 and 1.", code="invalid_setting"
        )
    return value


def rule_credits(*, tardy: Decimal | None = None) -> dict[str, Decimal]:
    """Credit per attendance status under ``attendance-share-v1``; a status missing here
    (excused absence) is left out of the denominator."""
    partial = tardy_credit() if tardy is None else tardy
    return {
        AttendanceStatus.PRESENT: Decimal(1),
        AttendanceStatus.SCHOOL_ACTIVITY: Decimal(1),
        AttendanceStatus.EXCUSED_TARDY: Decimal(1),
        AttendanceStatus.TARDY: partial,
        AttendanceStatus.EARLY_DEPARTURE: partial,
        AttendanceStatus.ABSENT: Decimal(0),
    }


@dataclass
class ParticipationResult:
    """What one computation did (or, for a dry run, would do)."""

    grading_period_id: int
    sections: int = 0
    computed: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    queued: int = 0
    dry_run: bool = False
    changed_ids: list[int] = field(default_factory=list, repr=False)

    def add(self, other: ParticipationResult) -> None:
        for name in ("sections", "computed", "created", "updated", "unchanged", "queued"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.changed_ids.extend(other.changed_ids)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("changed_ids")
        return data


def grading_period_sections(*, grading_period: Term) -> QuerySet[Section]:
    """The active sections a grading period grades: of its district (and its school, for a
    school's calendar) whose term overlaps it."""
    sections = Section.objects.filter(
        school__district_id=grading_period.district_id,
        active=True,
        term__start_date__lte=grading_period.end_date,
        term__end_date__gte=grading_period.start_date,
    )
    if grading_period.school_id is not None:
        sections = sections.filter(school_id=grading_period.school_id)
    return sections.order_by("pk")


def _computed_sql() -> str:
    """``computed(student_id, section_id, value)`` for the sections in ``%(sections)s``."""
    record = AttendanceRecord._meta.db_table
    enrollment = SectionEnrollment._meta.db_table
    return f"""
        credit(status, value) AS (
            SELECT * FROM unnest(%(statuses)s::text[], %(credits)s::numeric[])
        ),
        computed AS (
            SELECT r.student_id, r.section_id,
                   round(100 * sum(c.value) / count(*), 2) AS value
            FROM {record} r
            JOIN credit c ON c.status = r.status
            WHERE r.section_id = ANY(%(sections)s::bigint[])
              AND r.date BETWEEN %(start)s AND %(end)s
              AND EXISTS (
                  SELECT 1 FROM {enrollment} e
                  WHERE e.section_id = r.section_id AND e.student_id = r.student_id
                    AND e.role = 'student' AND e.entry_date <= %(end)s
                    AND (e.exit_date IS NULL OR e.exit_date >= %(start)s)
              )
            GROUP BY r.student_id, r.section_id
        )"""  # noqa: S608 (table names from model metadata; values are parameters)


def _params(grading_period: Term, section_ids: Sequence[int], now: dt.datetime) -> dict[str, Any]:
    credits = rule_credits()
    return {
        "statuses": list(credits),
        "credits": [str(v) for v in credits.values()],
        "sections": list(section_ids),
        "start": grading_period.start_date,
        "end": grading_period.end_date,
        "period": grading_period.pk,
        "rule": RULE,
        "now": now,
    }


def _preview(grading_period: Term, section_ids: Sequence[int]) -> ParticipationResult:
    grade = ParticipationGrade._meta.db_table
    sql = f"""
        WITH {_computed_sql()}
        SELECT count(*),
               count(*) FILTER (WHERE g.id IS NULL),
               count(*) FILTER (WHERE g.id IS NOT NULL
                                AND (g.value, g.rule) IS DISTINCT FROM (c.value, %(rule)s))
        FROM computed c
        LEFT JOIN {grade} g ON g.student_id = c.student_id AND g.section_id = c.section_id
                           AND g.grading_period_id = %(period)s
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, _params(grading_period, section_ids, timezone.now()))
        computed, created, updated = cursor.fetchone()
    return ParticipationResult(
        grading_period_id=grading_period.pk,
        sections=len(section_ids),
        computed=computed,
        created=created,
        updated=updated,
        unchanged=computed - created - updated,
        dry_run=True,
    )


def _upsert(grading_period: Term, section_ids: Sequence[int]) -> ParticipationResult:
    grade = ParticipationGrade._meta.db_table
    # ``xmax = 0`` tells an inserted row from an updated one; rows whose value and rule are
    # unchanged are skipped by the WHERE and not returned (no write, no history).
    sql = f"""
        WITH {_computed_sql()},
        written AS (
            INSERT INTO {grade} AS g
                (student_id, section_id, grading_period_id, value, rule, computed_at,
                 created_at, updated_at)
            SELECT student_id, section_id, %(period)s, value, %(rule)s, %(now)s, %(now)s,
                   %(now)s
            FROM computed
            ON CONFLICT (student_id, section_id, grading_period_id) DO UPDATE
                SET value = EXCLUDED.value, rule = EXCLUDED.rule,
                    computed_at = EXCLUDED.computed_at, updated_at = EXCLUDED.updated_at
                WHERE (g.value, g.rule) IS DISTINCT FROM (EXCLUDED.value, EXCLUDED.rule)
            RETURNING g.id, (g.xmax = 0) AS inserted
        )
        SELECT (SELECT count(*) FROM computed), w.id, w.inserted
        FROM (SELECT 1) AS one LEFT JOIN written w ON true
    """  # noqa: S608
    now = timezone.now()
    result = ParticipationResult(grading_period_id=grading_period.pk, sections=len(section_ids))
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql, _params(grading_period, section_ids, now))
            rows = cursor.fetchall()
        created = [row[1] for row in rows if row[1] is not None and row[2]]
        updated = [row[1] for row in rows if row[1] is not None and not row[2]]
        _written(result, rows[0][0] if rows else 0, created, updated, now)
    return result


def _written(
    result: ParticipationResult,
    computed: int,
    created: list[int],
    updated: list[int],
    now: dt.datetime,
) -> None:
    """History rows and the write-back signal for the grades a batch created and changed
    (inside the batch's transaction), and the counts into ``result``."""
    history_write(ParticipationGrade, created, history_type="+", change_reason=RULE, when=now)
    history_write(ParticipationGrade, updated, history_type="~", change_reason=RULE, when=now)
    result.computed = computed
    result.created, result.updated = len(created), len(updated)
    result.unchanged = result.computed - result.created - result.updated
    result.changed_ids = sorted(created + updated)
    if result.changed_ids:
        responses = participation_grades_changed.send(
            sender=ParticipationGrade, grade_ids=result.changed_ids
        )
        queued: list[Any] = [response for _, response in responses]
        result.queued = sum(n for n in queued if isinstance(n, int))


# Off PostgreSQL (SQLite in ``make run``): the same rule with the ORM. The database counts each
# student's records per status; the grade is computed in Python with Decimal and rounded half
# away from zero, as PostgreSQL's ``round(numeric, 2)`` does.

_CENT = Decimal("0.01")


def _computed_portable(grading_period: Term, section_ids: Sequence[int]) -> dict[Any, Decimal]:
    """``{(student_id, section_id): value}`` for the sections, like :func:`_computed_sql`."""
    credits = rule_credits()
    start, end = grading_period.start_date, grading_period.end_date
    enrolled = SectionEnrollment.objects.filter(
        Q(exit_date__isnull=True) | Q(exit_date__gte=start),
        section_id=OuterRef("section_id"),
        student_id=OuterRef("student_id"),
        role="student",
        entry_date__lte=end,
    )
    counts = (
        AttendanceRecord.objects.filter(
            Exists(enrolled),
            section_id__in=section_ids,
            date__range=(start, end),
            status__in=list(credits),
        )
        .values_list("student_id", "section_id", "status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    tally: dict[Any, tuple[Decimal, int]] = {}
    for student_id, section_id, status, n in counts:
        earned, meetings = tally.get((student_id, section_id), (Decimal(0), 0))
        tally[(student_id, section_id)] = (earned + credits[status] * n, meetings + n)
    return {
        key: (100 * earned / meetings).quantize(_CENT, rounding=ROUND_HALF_UP)
        for key, (earned, meetings) in tally.items()
    }


def _existing_portable(grading_period: Term, section_ids: Sequence[int]) -> dict[Any, Any]:
    return {
        (g.student_id, g.section_id): g
        for g in ParticipationGrade.objects.filter(
            grading_period=grading_period, section_id__in=section_ids
        )
    }


def _preview_portable(grading_period: Term, section_ids: Sequence[int]) -> ParticipationResult:
    computed = _computed_portable(grading_period, section_ids)
    existing = _existing_portable(grading_period, section_ids)
    created = sum(1 for key in computed if key not in existing)
    updated = sum(
        1
        for key, value in computed.items()
        if key in existing and (existing[key].value, existing[key].rule) != (value, RULE)
    )
    return ParticipationResult(
        grading_period_id=grading_period.pk,
        sections=len(section_ids),
        computed=len(computed),
        created=created,
        updated=updated,
        unchanged=len(computed) - created - updated,
        dry_run=True,
    )


def _upsert_portable(grading_period: Term, section_ids: Sequence[int]) -> ParticipationResult:
    now = timezone.now()
    result = ParticipationResult(grading_period_id=grading_period.pk, sections=len(section_ids))
    # One transaction reads and writes: SQLite runs one writer at a time, so no other
    # computation inserts the same grade between the read and the insert.
    with transaction.atomic():
        computed = _computed_portable(grading_period, section_ids)
        existing = _existing_portable(grading_period, section_ids)
        new = [
            ParticipationGrade(
                student_id=student_id,
                section_id=section_id,
                grading_period=grading_period,
                value=value,
                rule=RULE,
                computed_at=now,
            )
            for (student_id, section_id), value in computed.items()
            if (student_id, section_id) not in existing
        ]
        changed = []
        for key, value in computed.items():
            grade = existing.get(key)
            if grade is not None and (grade.value, grade.rule) != (value, RULE):
                grade.value, grade.rule, grade.computed_at, grade.updated_at = value, RULE, now, now
                changed.append(grade)
        created = [g.pk for g in ParticipationGrade.objects.bulk_create(new, batch_size=500)]
        ParticipationGrade.objects.bulk_update(
            changed, ["value", "rule", "computed_at", "updated_at"], batch_size=500
        )
        _written(result, len(computed), created, [g.pk for g in changed], now)
    return result


def participation_grades_compute(
    *,
    grading_period: Term,
    sections: Sequence[Section] | QuerySet[Section] | None = None,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ParticipationResult:
    """Compute (and unless ``dry_run``, write) the grades of ``grading_period`` for
    ``sections`` (default: every section it grades, :func:`grading_period_sections`).
    ``progress`` is called with the number of sections done after each batch."""
    if sections is None:
        section_ids = list(
            grading_period_sections(grading_period=grading_period).values_list("pk", flat=True)
        )
    else:
        section_ids = [s.pk for s in sections]
        foreign = Section.objects.filter(pk__in=section_ids).exclude(
            school__district_id=grading_period.district_id
        )
        if foreign.exists():
            raise ApplicationError(
                "A section and its grading period must belong to the same district.",
                code="invalid_grading_period",
            )
    return _compute(grading_period, section_ids, dry_run=dry_run, progress=progress)


def _compute(
    grading_period: Term,
    section_ids: Sequence[int],
    *,
    dry_run: bool,
    progress: Callable[[int], None] | None,
) -> ParticipationResult:
    total = ParticipationResult(grading_period_id=grading_period.pk, dry_run=dry_run)
    for start in range(0, len(section_ids), SECTION_BATCH):
        batch = section_ids[start : start + SECTION_BATCH]
        if connection.vendor != "postgresql":
            preview, upsert = _preview_portable, _upsert_portable
        else:
            preview, upsert = _preview, _upsert
        total.add(preview(grading_period, batch) if dry_run else upsert(grading_period, batch))
        if progress is not None:
            progress(len(batch))
    return total


def grading_periods_due(
    *, district: District | None = None, on: dt.date | None = None
) -> QuerySet[Term]:
    """The grading periods the nightly run computes: leaf terms (no child terms) of active
    districts that have started and ended at most ``PARTICIPATION_GRACE_DAYS`` (default 14)
    ago, so late attendance corrections still reach the grade. ``on`` defaults to today in
    the site's time zone."""
    today = on or timezone.localdate()
    grace = dt.timedelta(days=int(getattr(settings, "PARTICIPATION_GRACE_DAYS", 14)))
    terms = Term.objects.filter(
        ~Exists(Term.objects.filter(parent_id=OuterRef("pk"))),
        Q(district__active=True),
        start_date__lte=today,
        end_date__gte=today - grace,
    )
    if district is not None:
        terms = terms.filter(district=district)
    return terms.order_by("district_id", "start_date", "pk")


def participation_grades_compute_all(
    *,
    district: District | None = None,
    terms: Sequence[Term] | QuerySet[Term] | None = None,
    dry_run: bool = False,
    on: dt.date | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[ParticipationResult]:
    """Compute every grading period in ``terms`` (default: :func:`grading_periods_due` for
    ``district``, or for all districts). ``progress(done, total)`` counts sections."""
    if terms is None:
        if on is None and district is not None:
            on = district.today()  # without a district: the site's today
        terms = grading_periods_due(district=district, on=on)
    periods = list(terms)
    plans = [
        (
            period,
            list(grading_period_sections(grading_period=period).values_list("pk", flat=True)),
        )
        for period in periods
    ]
    total_sections = sum(len(ids) for _, ids in plans)
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total_sections)

    return [_compute(period, ids, dry_run=dry_run, progress=step) for period, ids in plans]


def participation_results_total(results: Sequence[ParticipationResult]) -> dict[str, int]:
    """The counts of several computations added up (with the number of grading periods)."""
    names = ("sections", "computed", "created", "updated", "unchanged", "queued")
    totals = {name: sum(getattr(r, name) for r in results) for name in names}
    return {"grading_periods": len(results), **totals}
