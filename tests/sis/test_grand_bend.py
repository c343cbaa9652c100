from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings

from sis.connectors.records import Entity
from sis.sandbox.testing import running_sandbox
from tests.sis.conftest import fetch_all, make_connector

DATASET = Path(settings.SIS_SANDBOX_GRAND_BEND_PATH)
pytestmark = pytest.mark.skipif(
    not (DATASET / "Student.xml").exists(), reason="Grand Bend data set not present"
)


@pytest.fixture(scope="module")
def grand_bend():
    with running_sandbox(
        provider="oneroster-1.2", dataset="grand-bend", dataset_path=str(DATASET)
    ) as sandbox:
        yield sandbox


def test_grand_bend_over_oneroster_1_2(grand_bend):
    connector = make_connector(grand_bend, key="grand-bend")
    schools, _, _ = fetch_all(connector, Entity.SCHOOL)
    students, bad, _ = fetch_all(connector, Entity.STUDENT)
    links, bad_links, _ = fetch_all(connector, Entity.STUDENT_GUARDIAN)
    assert len(schools) == 3
    assert len(students) == 960 and bad == []
    assert len(links) == 1872 and bad_links == []
    # The placement rule puts students in every school, in plausible grades.
    per_school = Counter(s.school_id for s in students)
    assert set(per_school) == {s.source_id for s in schools}
    assert all(count > 50 for count in per_school.values())
    assert {link.relationship for link in links} >= {"mother", "father"}
    enrollments, _, _ = fetch_all(connector, Entity.SECTION_ENROLLMENT)
    sections = {s.source_id for s in fetch_all(connector, Entity.SECTION)[0]}
    assert enrollments and {e.section_id for e in enrollments} <= sections


def test_grand_bend_over_powerschool():
    with running_sandbox(
        provider="powerschool", dataset="grand-bend", dataset_path=str(DATASET)
    ) as sandbox:
        connector = make_connector(sandbox, key="grand-bend-ps")
        links, bad, _ = fetch_all(connector, Entity.STUDENT_GUARDIAN)
        assert len(links) == 1872 and bad == []
        students, _, _ = fetch_all(connector, Entity.STUDENT)
        assert len(students) == 960
        assert {link.student_id for link in links} <= {s.source_id for s in students}
