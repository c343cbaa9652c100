"""Domain events other apps may react to (notifications listens to these).

Sent by the services after the transaction commits, with ids only, so a receiver never sees a
row that was rolled back and can hand the ids to a Celery task as they are.
"""

from __future__ import annotations

import django.dispatch

# kwargs: record_id (int), previous_status (str | None: None when the record is new),
# status (str). Sent only when something was written.
attendance_changed = django.dispatch.Signal()
