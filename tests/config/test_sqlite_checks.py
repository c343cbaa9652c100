"""`make run` on SQLite starts without system-check warnings, and the uniqueness rules that
SQLite cannot index (NULLS NOT DISTINCT, silenced as models.W047 in the settings) still hold
there through model validation, which the admin's forms run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.sqlite_project import ROOT, project_env

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


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_sqlite_dev_stack_passes_its_system_checks_without_warnings(tmp_path):
    result = _manage(
        project_env(tmp_path), "check", "--database", "default", "--fail-level", "WARNING"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "W047" not in result.stdout + result.stderr


def test_on_sqlite_model_validation_still_refuses_a_second_row_of_a_null_key(
    tmp_path: Path, migrated_sqlite: Path
) -> None:
    env = project_env(tmp_path)
    shutil.copyfile(migrated_sqlite, tmp_path / "var" / "db.sqlite3")
    result = _manage(env, "shell", "-c", _DUPLICATES)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    found: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    assert found == {
        "field policy": ["__all__"],
        "safety policy": ["__all__"],
        "preference": ["__all__"],
        "template": ["__all__"],
    }
