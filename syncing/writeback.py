"""The write-back sender: sends the outbox (``WriteBackItem``) to the SIS and verifies it.

Each item moves ``pending → sending → sent → verified`` (or ``sending → accepted`` for a grade
the SIS takes but cannot read back: PowerTeacher Pro); a permanent refusal ends it in
``failed`` with the SIS's reason, transient failures retry with exponential backoff up to
``WRITEBACK_MAX_ATTEMPTS`` (then ``failed``), and a read-back that finds another value than
the one we sent ends it in ``mismatch`` for an administrator to review.

Why it cannot double a write:

- Items are claimed with ``SELECT … FOR UPDATE SKIP LOCKED`` and moved to ``sending`` in the
  same transaction, so two senders never take the same item.
- A ``sending`` item whose sender died (older than the lease) is *read back first*: when the
  SIS already holds the value it is marked verified without writing again.
- Every write carries an idempotency key (item id + value hash): PowerSchool gets it as the
  record's ``client_uid``; OneRoster writes are PUTs under our own sourcedIds (a replace).
- Transitions are guarded by the value hash: a newer value queued while an older one was on
  the wire stays pending and is sent next; the older write never marks it done.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core.errors import ApplicationError, PermanentError, TransientError
from core.tasks import enqueue_on_commit
from sis.connectors.records import Entity, GradeWrite
from syncing.models import OutboxStatus, SourceLink, SyncRun, WriteBackItem

logger = logging.getLogger(__name__)

GRADE_ENTITY = "participation_grade"
GRADE_TARGET = "score"
#: our student fields → the canonical record's field names the connectors write
STUDENT_FIELDS = {
    "legal_first_name": "first_name",
    "legal_middle_name": "middle_name",
    "legal_last_name": "last_name",
    "preferred_first_name": "preferred_first_name",
    "birth_date": "birth_date",
    "gender": "gender",
    "local_id": "local_id",
    "state_id": "state_id",
    "grade_level": "grade_level",
}


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


@dataclass
class SendResult:
    item_id: int
    status: str
    error: str = ""


# --- queueing -----------------------------------------------------------------------------------


def participation_grade_queue(*, grade: Any) -> int:
    """Queue one participation grade for every SIS connection of its district that writes
    grades and knows the student and the section. Returns how many items were queued or
    changed (queuing the same value again changes nothing)."""
    return participation_grades_queue(grades=[grade])


def participation_grades_queue(*, grades: Any) -> int:
    """:func:`participation_grade_queue` for many grades: the connections and the source
    links of all of them are read once (per connection), then one outbox row is queued per
    grade and connection."""
    from sis.models import SISConnection
    from syncing.engine.apply import writeback_queue

    grades = list(grades)
    if not grades:
        return 0
    queued = 0
    connections = SISConnection.objects.filter(
        district_id__in={grade.student.district_id for grade in grades}, enabled=True
    )
    for connection in connections:
        capabilities = set(connection.capabilities or [])
        if capabilities and "write_grades" not in capabilities:
            continue
        mine = [g for g in grades if g.student.district_id == connection.district_id]
        wanted = set()
        for grade in mine:
            wanted |= {
                ("student", grade.student_id),
                ("section", grade.section_id),
                ("term", grade.grading_period_id),
                ("school", grade.section.school_id),
            }
        rows = SourceLink.objects.filter(
            connection=connection,
            active=True,
            entity__in={entity for entity, _ in wanted},
            object_id__in={object_id for _, object_id in wanted},
        ).values_list("entity", "object_id", "source_id")
        links = {(e, o): source_id for e, o, source_id in rows if (e, o) in wanted}
        for grade in mine:
            student = links.get(("student", grade.student_id))
            section = links.get(("section", grade.section_id))
            if not student or not section:
                continue  # not a record this SIS knows: nothing to write there
            value = {
                "score": str(Decimal(grade.value)),
                "student": student,
                "section": section,
                "term": links.get(("term", grade.grading_period_id), ""),
                "school": links.get(("school", grade.section.school_id), ""),
                "date": grade.computed_at.date().isoformat(),
            }
            if writeback_queue(
                run=SyncRun(connection_id=connection.pk, district_id=connection.district_id),
                entity=GRADE_ENTITY,
                object_id=grade.pk,
                source_id=student,
                target=GRADE_TARGET,
                value=value,
            ):
                queued += 1
    if queued:
        from syncing.tasks import writeback_send_due

        enqueue_on_commit(writeback_send_due)
    return queued


def writeback_retry(*, items: Any) -> int:
    """Send failed or mismatched items again (the admin's "retry" action): back to pending
    with a fresh attempt budget."""
    return int(
        items.filter(status__in=[OutboxStatus.FAILED, OutboxStatus.MISMATCH]).update(
            status=OutboxStatus.PENDING,
            attempts=0,
            next_attempt_at=None,
            last_error="",
            updated_at=timezone.now(),
        )
    )


# --- sending ------------------------------------------------------------------------------------


def writeback_send_due(*, limit: int = 200) -> dict[str, int]:
    """Claim the items that are due and send (or verify) each. Returns counts per outcome."""
    claimed = _claim(limit=limit)
    outcome: dict[str, int] = {}
    connectors: dict[int, Any] = {}
    for item, previous in claimed:
        result = _process(item, previous, connectors)
        outcome[result.status] = outcome.get(result.status, 0) + 1
    return outcome


def _claim(*, limit: int) -> list[tuple[WriteBackItem, str]]:
    now = timezone.now()
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    lease = dt.timedelta(seconds=_setting("WRITEBACK_LEASE_SECONDS", 600))
    wanted = (
        (Q(status=OutboxStatus.PENDING) & due)
        | (Q(status=OutboxStatus.SENT) & due)
        | Q(status=OutboxStatus.SENDING, claimed_at__lt=now - lease)
    )
    with transaction.atomic():
        items = list(
            WriteBackItem.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(wanted)
            .select_related("connection")
            .order_by("id")[:limit]
        )
        if not items:
            return []
        # One statement for the whole batch; the rows are locked, so the values set here are
        # exactly what the database holds.
        WriteBackItem.objects.filter(pk__in=[item.pk for item in items]).update(
            status=OutboxStatus.SENDING,
            claimed_at=now,
            attempts=F("attempts") + 1,
            updated_at=now,
        )
        claimed = []
        for item in items:
            claimed.append((item, item.status))
            item.status, item.claimed_at, item.attempts = (
                OutboxStatus.SENDING,
                now,
                item.attempts + 1,
            )
    return claimed


def _process(item: WriteBackItem, previous: str, connectors: dict[int, Any]) -> SendResult:
    written = previous == OutboxStatus.SENT
    if not _renew(item):
        # Our claim went stale while earlier items of the batch were sent (a slow SIS) and
        # another sender took the item over: leave it to that sender.
        return SendResult(item.pk, "superseded")
    try:
        connector = connectors.get(item.connection_id)
        if connector is None:
            from sis.services import sis_connection_connector

            connector = connectors[item.connection_id] = sis_connection_connector(item.connection)
        verifiable = _verifiable(connector, item)
        if previous in (OutboxStatus.SENDING, OutboxStatus.SENT) and verifiable:
            # Sent before (or maybe sent, by a worker that died): look before writing again.
            held = _read(connector, item)
            if _same(held, item.value):
                return _finish(item, OutboxStatus.VERIFIED, sis_value=held)
            if previous == OutboxStatus.SENT:
                return _mismatch(item, held)
        _write(connector, item)
        written = True
        if not verifiable:
            # The SIS took it and offers no read-back: final, and said to be unverified.
            return _finish(item, OutboxStatus.ACCEPTED)
        if not _transition(item, status=OutboxStatus.SENDING, sent_at=timezone.now()):
            return SendResult(item.pk, "superseded")
        held = _read(connector, item)
    except (PermanentError, ApplicationError) as exc:
        return _finish(item, OutboxStatus.FAILED, error=_message(exc))
    except TransientError as exc:
        return _retry_later(item, exc, written=written)
    except Exception as exc:  # an unexpected failure: bounded retries, then failed
        logger.exception("write-back failed unexpectedly", extra={"item_id": item.pk})
        return _retry_later(item, exc, written=written)
    if _same(held, item.value):
        return _finish(item, OutboxStatus.VERIFIED, sis_value=held)
    return _mismatch(item, held)


def _verifiable(connector: Any, item: WriteBackItem) -> bool:
    """Whether the item can be read back. A grade that cannot is re-sent after a dead worker
    rather than read (connectors without grade read-back write grades as a replace)."""
    return item.entity != GRADE_ENTITY or bool(getattr(connector, "grades_verifiable", True))


def _write(connector: Any, item: WriteBackItem) -> None:
    key = f"wb-{item.pk}-{item.value_hash}"
    if item.entity == GRADE_ENTITY:
        connector.write_grade(_grade(item), idempotency_key=key)
        return
    field = STUDENT_FIELDS.get(item.target, item.target)
    connector.write_fields(
        Entity(item.entity), item.source_id, {field: item.value}, idempotency_key=key
    )


def _read(connector: Any, item: WriteBackItem) -> Any:
    """The value the SIS holds now for the item's target."""
    if item.entity == GRADE_ENTITY:
        return connector.read_grade(_grade(item))
    record = connector.fetch_one(Entity(item.entity), item.source_id)
    if record is None:
        return None
    return getattr(record, STUDENT_FIELDS.get(item.target, item.target), None)


def _grade(item: WriteBackItem) -> GradeWrite:
    value = item.value if isinstance(item.value, dict) else {}
    section, term, student = value.get("section", ""), value.get("term", ""), value.get("student")
    return GradeWrite(
        line_item_id=f"sas-{section}-{term}" if term else f"sas-{section}",
        result_id=f"sas-{section}-{term}-{student}" if term else f"sas-{section}-{student}",
        section_id=section,
        student_id=str(student or item.source_id),
        term_id=term,
        school_id=value.get("school", ""),
        score=float(value.get("score", 0)),
        date=dt.date.fromisoformat(value.get("date") or timezone.now().date().isoformat()),
    )


def _normal(value: Any) -> Any:
    if isinstance(value, dict) and "score" in value:
        value = value["score"]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()[:10]
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return round(float(value), 2)
    if value is None:
        return ""
    text = str(value).strip()
    try:
        return round(float(text), 2) if text and text.replace(".", "", 1).isdigit() else text
    except ValueError:
        return text


def _same(held: Any, sent: Any) -> bool:
    return bool(_normal(held) == _normal(sent))


def _renew(item: WriteBackItem) -> bool:
    """Re-stamp our claim just before sending; False when another sender holds it now."""
    now = timezone.now()
    if not _transition(item, claimed_at=now):
        return False
    item.claimed_at = now
    return True


def _transition(item: WriteBackItem, **fields: Any) -> bool:
    """Update the item only while it still carries the value we sent and our claim (the
    claim time is the owner's token: a sender that took a stale item over re-stamped it)."""
    return (
        WriteBackItem.objects.filter(
            pk=item.pk,
            value_hash=item.value_hash,
            status=OutboxStatus.SENDING,
            claimed_at=item.claimed_at,
        ).update(updated_at=timezone.now(), **fields)
        == 1
    )


def _finish(
    item: WriteBackItem, status: str, *, error: str = "", sis_value: Any = None
) -> SendResult:
    fields: dict[str, Any] = {"status": status, "last_error": error, "next_attempt_at": None}
    if status == OutboxStatus.VERIFIED:
        fields["verified_at"] = timezone.now()
        fields["sis_value"] = _json_safe(sis_value)
    elif status == OutboxStatus.ACCEPTED:
        fields["sent_at"] = timezone.now()
    done = _transition(item, **fields)
    if status == OutboxStatus.FAILED:
        logger.warning(
            "write-back failed",
            extra={"item_id": item.pk, "connection_id": item.connection_id, "error": error},
        )
    return SendResult(item.pk, status if done else "superseded", error)


def _mismatch(item: WriteBackItem, held: Any) -> SendResult:
    done = _transition(
        item,
        status=OutboxStatus.MISMATCH,
        sis_value=_json_safe(held),
        next_attempt_at=None,
        last_error="The SIS holds another value than the one written; review it.",
    )
    return SendResult(item.pk, OutboxStatus.MISMATCH if done else "superseded")


def _retry_later(item: WriteBackItem, exc: BaseException, *, written: bool) -> SendResult:
    error = _message(exc)
    if item.attempts >= int(_setting("WRITEBACK_MAX_ATTEMPTS", 8)):
        return _finish(
            item, OutboxStatus.FAILED, error=f"Gave up after {item.attempts} attempts: {error}"
        )
    base = _setting("WRITEBACK_BACKOFF_SECONDS", 60)
    delay = min(3600.0, base * 2 ** max(0, item.attempts - 1))
    delay = delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 (jitter, not security)
    retry_after = getattr(exc, "retry_after", None)
    if retry_after:
        delay = max(delay, float(retry_after))
    # A failed verification read keeps "sent": the next pass only reads, never re-writes.
    _transition(
        item,
        status=OutboxStatus.SENT if written else OutboxStatus.PENDING,
        next_attempt_at=timezone.now() + dt.timedelta(seconds=delay),
        last_error=error,
    )
    return SendResult(item.pk, "retry", error)


def _message(exc: BaseException) -> str:
    return (getattr(exc, "message", None) or str(exc) or type(exc).__name__)[:1000]


def _json_safe(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value
