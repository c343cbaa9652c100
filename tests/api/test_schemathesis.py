"""Property-based run of the whole API from its own OpenAPI schema (reliability test 29):
no 5xx, and every answer's status, content type and body conform to the schema. Fixed seed and
bounded examples so it stays fast and deterministic in CI."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import make_tenant

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module", autouse=True)
def _keep_the_test_connection():
    """Like Django's test client: the WSGI handler must not close the connection that holds
    the test's transaction at the end of each request."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture(scope="module")
def api_key(django_db_setup, django_db_blocker):
    # One tenant for the whole module: building it per example would dominate the run time.
    with django_db_blocker.unblock():
        tenant = make_tenant("S")
    yield tenant.key
    with django_db_blocker.unblock():
        from django.core.management import call_command

        call_command("flush", interactive=False, verbosity=0)


@pytest.mark.django_db(transaction=False)
@schema.parametrize()
@settings(
    max_examples=10,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case, api_key, settings):
    settings.API_RATE_LIMIT = "100000/m"
    # call_and_validate raises on any failed check (5xx, status, content type or body not
    # conforming to the schema); the assertion below states the main one in the test itself.
    response = case.call_and_validate(headers={"X-API-Key": api_key}, checks=CHECKS)
    assert response.status_code < 500
