from django.db import migrations

CATEGORIES = [
    # code, name, critical, default channels
    ("attendance", "Attendance", False, ["sms", "email"]),
    ("chronic_absence", "Chronic absence", False, ["sms", "email"]),
    ("general", "General announcements", False, ["email"]),
    ("emergency", "Emergency", True, ["sms", "email"]),
    ("operational", "Operational (administrators)", False, ["email"]),
]


def seed(apps, schema_editor):
    Category = apps.get_model("notifications", "Category")
    for code, name, critical, channels in CATEGORIES:
        Category.objects.get_or_create(
            code=code,
            defaults={"name": name, "critical": critical, "default_channels": channels},
        )


class Migration(migrations.Migration):
    dependencies = [("notifications", "0001_guardian_notifications")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
