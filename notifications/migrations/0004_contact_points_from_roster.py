"""Contact points for the roster contacts of guardians written before they were built
automatically (notifications.receivers): each guardian's mobile number and e-mail address
become verified SIS contact points, opted out where the same value already is."""

from __future__ import annotations

from typing import Any

from django.db import migrations
from django.utils import timezone

BATCH = 2000


def roster_contact_points(apps: Any, schema_editor: Any) -> None:
    guardians = apps.get_model("attendance", "Guardian")
    points = apps.get_model("notifications", "ContactPoint")
    now = timezone.now()
    opted_out = {
        (kind, value): (at, source)
        for kind, value, at, source in points.objects.filter(opted_out=True)
        .order_by("opted_out_at")
        .values_list("kind", "value", "opted_out_at", "opt_out_source")
    }
    last = 0
    while True:
        rows = list(
            guardians.objects.filter(pk__gt=last)
            .order_by("pk")
            .values_list("pk", "mobile_phone", "mobile_phone_raw", "email")[:BATCH]
        )
        if not rows:
            return
        last = rows[-1][0]
        new = []
        for guardian_id, phone, phone_raw, email in rows:
            wanted = []
            if phone:
                wanted.append(("sms", phone, phone_raw, "mobile"))
            address = (email or "").strip().lower()
            if "@" in address:
                wanted.append(("email", address, email, "email"))
            for kind, value, raw, label in wanted:
                at, source = opted_out.get((kind, value), (None, ""))
                new.append(
                    points(
                        guardian_id=guardian_id,
                        kind=kind,
                        value=value,
                        raw_value=raw,
                        label=label,
                        source="sis",
                        verified=True,
                        verified_at=now,
                        opted_out=bool(source),
                        opted_out_at=at,
                        opt_out_source=source,
                    )
                )
        # A guardian's existing point for the same value (its own, or one added in the
        # portal) is kept as it is.
        points.objects.bulk_create(new, ignore_conflicts=True)


class Migration(migrations.Migration):
    dependencies = [
        ("attendance", "0007_exit_reason_ended"),
        ("notifications", "0003_drop_indexes_covered_by_composites"),
    ]

    operations = [migrations.RunPython(roster_contact_points, migrations.RunPython.noop)]
