from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from sis.connectors.base import ConnectorConfig
from sis.connectors.errors import ConfigurationError
from sis.connectors.records import Entity, Status
from sis.connectors.registry import connector_class

BUNDLE = Path(__file__).parent / "fixtures" / "oneroster_csv"


@pytest.fixture
def bundle_zip(tmp_path):
    path = tmp_path / "bundle.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for file in BUNDLE.iterdir():
            archive.write(file, f"export/{file.name}")  # nested folder inside the zip
    return path


def connector_for(path):
    return connector_class("oneroster-csv")(ConnectorConfig(key="csv", options={"path": str(path)}))


def fetch(connector, entity):
    records, quarantined, deltas = [], [], set()
    for page in connector.fetch(entity):
        records.extend(page.records)
        quarantined.extend(page.quarantined)
        deltas.add(page.delta)
    return records, quarantined, deltas


@pytest.mark.parametrize("source", ["zip", "folder"])
def test_it_reads_a_bundle_with_row_level_errors(source, bundle_zip):
    connector = connector_for(bundle_zip if source == "zip" else BUNDLE)
    schools, _, deltas = fetch(connector, Entity.SCHOOL)
    assert [s.name for s in schools] == ["Cedar Elementary", "Maple High School"]
    assert deltas == {False}  # orgs.csv is bulk in the manifest
    # Header case and a byte-order mark do not matter; a bad date is one quarantined row.
    terms, bad_terms, _ = fetch(connector, Entity.TERM)
    assert [t.source_id for t in terms] == ["y1", "t1"]
    assert len(bad_terms) == 1 and "row 4" in bad_terms[0].reason
    students, bad_students, deltas = fetch(connector, Entity.STUDENT)
    assert {s.source_id for s in students} == {"u1", "u2", "u3", "u5"}
    assert deltas == {True}  # users.csv is a delta file
    assert next(s for s in students if s.source_id == "u3").status == Status.TO_BE_DELETED
    assert len(bad_students) == 1 and "columns" in bad_students[0].reason
    links, _, _ = fetch(connector, Entity.STUDENT_GUARDIAN)
    assert {(link.student_id, link.guardian_id) for link in links} == {
        ("u1", "p1"),
        ("u1", "p2"),
        ("u2", "p3"),
    }
    staff, _, _ = fetch(connector, Entity.STAFF)
    assert staff[0].school_ids == ["s1", "s2"]
    sections, _, _ = fetch(connector, Entity.SECTION)
    assert sections[0].term_ids == ["t1", "t2"] and sections[1].period == "2,3"
    enrollments, bad_enrollments, _ = fetch(connector, Entity.SECTION_ENROLLMENT)
    assert len(enrollments) == 3 and len(bad_enrollments) == 1


def test_absent_files_yield_nothing_and_a_missing_bundle_is_clear(tmp_path):
    folder = tmp_path / "bundle"
    shutil.copytree(BUNDLE, folder)
    (folder / "manifest.csv").write_text("propertyName,value\nfile.orgs,absent\nfile.users,bulk\n")
    connector = connector_for(folder)
    assert list(connector.fetch(Entity.SCHOOL)) == []
    assert connector.count(Entity.STUDENT) == 5
    with pytest.raises(ConfigurationError, match="does not exist"):
        list(connector_for(tmp_path / "missing.zip").fetch(Entity.SCHOOL))
    (tmp_path / "not.zip").write_text("hello")
    with pytest.raises(ConfigurationError, match="not a zip"):
        list(connector_for(tmp_path / "not.zip").fetch(Entity.SCHOOL))
