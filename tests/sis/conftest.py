from __future__ import annotations

import pytest

from sis.connectors.base import ConnectorConfig
from sis.connectors.registry import connector_class
from sis.sandbox.testing import RunningSandbox, running_sandbox


@pytest.fixture(scope="module")
def ps_sandbox():
    with running_sandbox(provider="powerschool", students=200, page_cap=50) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def or12_sandbox():
    with running_sandbox(provider="oneroster-1.2", students=200) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def or11_sandbox():
    with running_sandbox(provider="oneroster-1.1", students=200, oauth1=True) as sandbox:
        yield sandbox


@pytest.fixture(autouse=True)
def _clean_sandboxes(request):
    """Faults and expired tokens from one test never leak into the next."""
    yield
    for name in ("ps_sandbox", "or12_sandbox", "or11_sandbox"):
        if name in request.fixturenames:
            sandbox = request.getfixturevalue(name)
            sandbox.control("faults", {"clear": True})
            sandbox.control(
                "config",
                {
                    "client_secret": "sandbox-secret",
                    "token_ttl": 3600,
                    "throttle_wait": 1,
                    "retry_after": 1,
                },
            )


def make_connector(sandbox: RunningSandbox, *, key: str = "test", **overrides):
    provider = sandbox.state.provider
    config = ConnectorConfig(
        key=key,
        base_url=sandbox.api_base_url,
        token_url=sandbox.token_url,
        client_id=sandbox.client_id,
        client_secret=sandbox.client_secret,
        options={"auth": "oauth1"} if sandbox.state.oauth1 else {},
    )
    for name, value in overrides.items():
        setattr(config, name, value)
    return connector_class(provider)(config)


def fetch_all(connector, entity, **kwargs):
    records, quarantined, pages = [], [], 0
    for page in connector.fetch(entity, **kwargs):
        records.extend(page.records)
        quarantined.extend(page.quarantined)
        pages += 1
    return records, quarantined, pages
