"""Reactions of the sync app to domain events."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from attendance.models import ParticipationGrade
from attendance.signals import participation_grades_changed
from syncing.writeback import participation_grades_queue


@receiver(participation_grades_changed, dispatch_uid="syncing.participation_grades_queue")
def on_participation_grades_changed(sender: Any, *, grade_ids: list[int], **kwargs: Any) -> int:
    """Queue the changed grades for write-back, in the transaction that changed them."""
    grades = ParticipationGrade.objects.filter(pk__in=grade_ids).select_related(
        "student", "section"
    )
    return participation_grades_queue(grades=grades)
