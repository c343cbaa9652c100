from __future__ import annotations

import pytest

from sis.models import SISConnection
from tests.factories import DistrictFactory
from tests.syncing.fakes import FakeSource, district_records


@pytest.fixture
def district(db):
    return DistrictFactory(timezone="America/Chicago")


@pytest.fixture
def connection(district):
    return SISConnection.objects.create(
        district=district, name="Fake SIS", provider="powerschool", base_url="http://127.0.0.1:9"
    )


@pytest.fixture
def source():
    fake = FakeSource(page_size=25)
    district_records(fake)
    return fake
