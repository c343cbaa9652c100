"""Domain events other apps may react to (notifications listens to these).

Sent by the services after the transaction commits, with ids only, so a receiver never sees a
row that was rolled back and can hand the ids to a Celery task as they are.
"""

from __future__ import annotations

from typing import NamedTuple

import django.dispatch


class AttendanceChange(NamedTuple):
    record_id: int
    previous_status: str | None  # None when the record is new
    status: str


# kwargs: changes (list[AttendanceChange]) — every record one commit wrote, in one send, so a
# bulk post of 1,000 records costs receivers one call, not 1,000.
attendance_changed = django.dispatch.Signal()
