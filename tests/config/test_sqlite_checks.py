"""`make run` on SQLite starts without system-check warnings, and the uniqueness rules that
SQLite cannot index (NULLS NOT DISTINCT, silenced as models.W047 in the settings) still hold
there through model validation, which the admin's forms run."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.sqlite_project import last_json, manage, project_env

# A second row of each key whose NULL column means "all of them": model validation refuses it.
_DUPLICATES = """
import json
from django.core.exceptions import ValidationError
from notifications.models import Category, Preference, Template
from syncing.models import FieldPolicy, SafetyPolicy
from tests.factories import DistrictFactory, GuardianFactory

district = DistrictFactory()
guardian = GuardianFactory(district=district)
category = Category.objects.order_by("code").first()
rows = {
    "field policy": lambda: FieldPolicy(
        district=district, entity="student", field="last_name", policy="review"
    ),
    "safety policy": lambda: SafetyPolicy(district=district, entity="student"),
    "preference": lambda: Preference(guardian=guardian, enabled=True),
    "template": lambda: Template(
        district=None, category=category, channel="sms", language="xx", body="Hello"
    ),
}
found = {}
for name, make in rows.items():
    first = make()
    first.full_clean()
    first.save()
    try:
        make().full_clean()
        found[name] = "accepted"
    except ValidationError as error:
        found[name] = sorted(error.message_dict)
print(json.dumps(found))
"""


def test_the_sqlite_dev_stack_passes_its_system_checks_without_warnings(tmp_path):
    output = manage(
        project_env(tmp_path), "check", "--database", "default", "--fail-level", "WARNING"
    )
    assert "System check identified no issues" in output
    assert "W047" not in output


def test_on_sqlite_model_validation_still_refuses_a_second_row_of_a_null_key(
    tmp_path: Path, migrated_sqlite: Path
) -> None:
    env = project_env(tmp_path)
    shutil.copyfile(migrated_sqlite, tmp_path / "var" / "db.sqlite3")
    assert last_json(manage(env, "shell", "-c", _DUPLICATES)) == {
        "field policy": ["__all__"],
        "safety policy": ["__all__"],
        "preference": ["__all__"],
        "template": ["__all__"],
    }
