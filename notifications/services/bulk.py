"""Bulk notices: compose, count the audience, plan in the database, send in batches, cancel."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from attendance.models import (
    District,
    Enrollment,
    School,
    Section,
    SectionEnrollment,
    Student,
    StudentGuardian,
)
from core.errors import ApplicationError
from core.tasks import enqueue_on_commit
from notifications import selectors
from notifications.models import (
    BulkNotice,
    BulkNoticeState,
    Category,
    Notification,
    NotificationStatus,
)
from notifications.services.planning import EventSpec, Recipient, notifications_plan

BATCH_SIZE = 100
PLAN_CHUNK = 500


def bulk_notice_create(
    *,
    district: District,
    author: User | None,
    title: str,
    category: Category,
    texts: dict[str, dict[str, str]],
    schools: list[School] | None = None,
    grade_levels: list[str] | None = None,
    sections: list[Section] | None = None,
) -> BulkNotice:
    if district.default_language not in texts or not texts[district.default_language].get("body"):
        raise ApplicationError(
            f"A text in the district language ({district.default_language}) is required.",
            code="bulk_text_missing",
        )
    for school in schools or []:
        if school.district_id != district.pk:
            raise ApplicationError("Unknown school.", code="unknown_school")
    notice = BulkNotice.objects.create(
        district=district,
        author=author,
        title=title,
        category=category,
        texts=texts,
        grade_levels=list(grade_levels or []),
    )
    if schools:
        notice.schools.set(schools)
    if sections:
        notice.sections.set([s for s in sections if s.school.district_id == district.pk])
    return notice


def bulk_notice_audience(*, notice: BulkNotice, on: dt.date | None = None) -> QuerySet[Student]:
    """Active students enrolled today in the notice's schools (all of the district when none),
    narrowed to its grades and sections."""
    on = on or timezone.localdate()
    enrolled = Enrollment.objects.filter(
        school__district_id=notice.district_id, entry_date__lte=on
    ).exclude(exit_date__lt=on)
    school_ids = list(notice.schools.values_list("pk", flat=True))
    if school_ids:
        enrolled = enrolled.filter(school_id__in=school_ids)
    students = Student.objects.filter(active=True, pk__in=enrolled.values("student_id"))
    if notice.grade_levels:
        students = students.filter(grade_level__in=notice.grade_levels)
    section_ids = list(notice.sections.values_list("pk", flat=True))
    if section_ids:
        in_sections = SectionEnrollment.objects.filter(
            section_id__in=section_ids, exit_date__isnull=True
        )
        students = students.filter(pk__in=in_sections.values("student_id"))
    return students.order_by("pk")


def bulk_notice_audience_count(*, notice: BulkNotice) -> dict[str, int]:
    students = bulk_notice_audience(notice=notice)
    guardians = (
        StudentGuardian.objects.filter(
            student__in=students, active=True, contact_allowed=True, guardian__active=True
        )
        .values("guardian_id")
        .distinct()
        .count()
    )
    return {"students": students.count(), "guardians": guardians}


def bulk_notice_start(*, notice: BulkNotice) -> BulkNotice:
    from notifications import tasks

    with transaction.atomic():
        locked = BulkNotice.objects.select_for_update().get(pk=notice.pk)
        if locked.state != BulkNoticeState.DRAFT:
            raise ApplicationError("Only a draft can be sent.", code="bulk_not_draft")
        locked.state = BulkNoticeState.PLANNING
        locked.started_at = timezone.now()
        locked.save(update_fields=["state", "started_at", "updated_at"])
        enqueue_on_commit(tasks.bulk_notice_plan, locked.pk)
    return locked


def _recipient_chunks(notice: BulkNotice) -> Iterator[list[Recipient]]:
    seen: set[int] = set()
    student_ids = list(bulk_notice_audience(notice=notice).values_list("pk", flat=True))
    for start in range(0, len(student_ids), PLAN_CHUNK):
        links = (
            StudentGuardian.objects.filter(student_id__in=student_ids[start : start + PLAN_CHUNK])
            .select_related("guardian")
            .order_by("guardian_id", "-contact_allowed", "-active", "priority")
        )
        chunk: list[Recipient] = []
        for link in links:
            # One notice per guardian, however many of their children are in the audience;
            # the best link (contact allowed, active) decides.
            if link.guardian_id in seen:
                continue
            seen.add(link.guardian_id)
            chunk.append(Recipient(link.guardian, link))
        if chunk:
            yield chunk


def bulk_notice_plan(*, notice_id: int, now: dt.datetime | None = None) -> list[list[int]]:
    """Record one Notification per guardian, then return batches of due notification ids for
    the send tasks. Re-running after a crash plans only what is missing."""
    now = now or timezone.now()
    notice = BulkNotice.objects.select_related("district", "category").get(pk=notice_id)
    if notice.state not in (BulkNoticeState.PLANNING, BulkNoticeState.SENDING):
        return []
    event_key = f"bulk:{notice.pk}"
    for chunk in _recipient_chunks(notice):
        spec = EventSpec(
            event_key=event_key,
            category=notice.category,
            district=notice.district,
            texts=notice.texts,
            bulk_notice=notice,
            context={"title": notice.title},
        )
        notifications_plan(spec=spec, recipients=chunk, now=now, enqueue=False)
    counts = Notification.objects.filter(bulk_notice=notice).values_list("status", flat=True)
    statuses = list(counts)
    BulkNotice.objects.filter(pk=notice.pk, state=BulkNoticeState.PLANNING).update(
        state=BulkNoticeState.SENDING,
        recipients_planned=len(statuses),
        recipients_suppressed=sum(1 for s in statuses if s == NotificationStatus.SUPPRESSED),
        updated_at=timezone.now(),
    )
    due = list(
        Notification.objects.filter(
            bulk_notice=notice, status=NotificationStatus.PENDING, deferred_until__lte=now
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return [due[i : i + BATCH_SIZE] for i in range(0, len(due), BATCH_SIZE)]


def bulk_notice_cancel(*, notice: BulkNotice, user: User | None) -> int:
    """Stop a notice midway: nothing not yet handed to a provider is sent."""
    with transaction.atomic():
        locked = BulkNotice.objects.select_for_update().get(pk=notice.pk)
        if locked.state in (BulkNoticeState.COMPLETED, BulkNoticeState.CANCELLED):
            return 0
        locked.state = BulkNoticeState.CANCELLED
        locked.cancelled_by = user
        locked.finished_at = timezone.now()
        locked.save(update_fields=["state", "cancelled_by", "finished_at", "updated_at"])
        return Notification.objects.filter(
            bulk_notice=locked, status=NotificationStatus.PENDING
        ).update(
            status=NotificationStatus.CANCELLED,
            summary="Cancelled with the bulk notice",
            updated_at=timezone.now(),
        )


def bulk_notice_progress_refresh(*, notice_id: int) -> dict[str, Any]:
    """Store the live counts on the notice; a sending notice with nothing left waiting is
    completed."""
    notice = BulkNotice.objects.get(pk=notice_id)
    progress = selectors.bulk_notice_progress(notice=notice)
    pending = Notification.objects.filter(
        bulk_notice=notice, status=NotificationStatus.PENDING
    ).exists()
    update: dict[str, Any] = {
        "deliveries_planned": progress["planned"],
        "deliveries_sent": progress["sent"],
        "deliveries_failed": progress["failed"],
        "updated_at": timezone.now(),
    }
    if notice.state == BulkNoticeState.SENDING and not progress["waiting"] and not pending:
        update["state"] = BulkNoticeState.COMPLETED
        update["finished_at"] = timezone.now()
    BulkNotice.objects.filter(pk=notice_id).update(**update)
    return progress
