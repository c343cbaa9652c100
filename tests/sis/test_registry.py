from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sis.connectors.base import ConnectorConfig
from sis.connectors.errors import ConfigurationError
from sis.connectors.registry import (
    BUILTIN_CONNECTORS,
    connector_class,
    connector_keys,
    connectors_described,
)

PLUGIN_DIR = Path(__file__).parent / "plugin_example"


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """Install the example package the way pip lays it out: the package and a *.dist-info
    with entry_points.txt, in a directory put on sys.path."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copytree(PLUGIN_DIR / "example_sis_plugin", site / "example_sis_plugin")
    dist_info = site / "example_sis_plugin-0.1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: example-sis-plugin\nVersion: 0.1.0\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "[sis.connectors]\nexample-csv-lines = example_sis_plugin:ExampleConnector\n"
    )
    monkeypatch.syspath_prepend(str(site))
    yield site


def test_builtins_are_registered():
    for key in BUILTIN_CONNECTORS:
        assert connector_class(key).key == key


def test_an_outside_package_is_found_through_its_entry_point(installed_plugin, tmp_path):
    assert "example-csv-lines" in connector_keys()
    cls = connector_class("example-csv-lines")
    assert cls.__module__ == "example_sis_plugin"
    roster = tmp_path / "roster.txt"
    roster.write_text("1,Ava,Abbott\n2,Liam,Barnes\n")
    connector = cls(ConnectorConfig(key="plugin", options={"path": str(roster)}))
    assert connector.test() == {"student": 2}
    pages = list(connector.fetch("student"))
    assert [r.last_name for r in pages[0].records] == ["Abbott", "Barnes"]


@pytest.mark.django_db
def test_a_connection_can_use_the_plugin_without_project_changes(installed_plugin, tmp_path):
    from sis import services
    from tests.factories import DistrictFactory

    roster = tmp_path / "roster.txt"
    roster.write_text("7,Mia,Castillo\n")
    connection = services.sis_connection_create(
        district=DistrictFactory(),
        name="Lines",
        provider="example-csv-lines",
        options={"path": str(roster)},
    )
    result = services.sis_connection_test(connection=connection)
    assert result.ok and result.counts == {"student": 1}


def test_an_unknown_provider_is_a_clear_configuration_error():
    with pytest.raises(ConfigurationError, match="No connector for provider 'nope'"):
        connector_class("nope")


def test_every_connector_is_described_for_the_admin_form(installed_plugin):
    described = {
        key: (options, capabilities) for key, options, capabilities in connectors_described()
    }
    options, capabilities = described["powerschool"]
    assert 'guardian_source ("powerquery" or "contacts", default "powerquery")' in options
    assert "page_size (whole number, default 0)" in options
    assert "write_grades" in capabilities and "write_attendance" not in capabilities
    assert "guardian_filter (true or false, default true)" in described["oneroster-1.2"][0]
    assert described["example-csv-lines"] == ('path (text, default "")', "read_roster")


def test_a_plugin_that_fails_to_load_is_described_as_such(installed_plugin):
    entry_points = installed_plugin / "example_sis_plugin-0.1.0.dist-info" / "entry_points.txt"
    entry_points.write_text("[sis.connectors]\nbroken = example_sis_plugin:Missing\n")
    described = {key: rest for key, *rest in connectors_described()}
    assert "failed to load" in described["broken"][0]
    assert "powerschool" in described  # the others are still listed
