from __future__ import annotations

import pytest

from config.celery import app as celery_app
from notifications.providers import providers_reset
from notifications.providers.test import TestProvider
from tests.portal.helpers import Family, categories_ensure, family_make


@pytest.fixture(autouse=True)
def portal_settings(settings):
    settings.NOTIFY_SMS_PROVIDER = "test"
    settings.NOTIFY_EMAIL_PROVIDER = "test"
    settings.NOTIFY_ATTENDANCE_HOLD_SECONDS = 0
    settings.PUBLIC_BASE_URL = "http://testserver"
    providers_reset()
    TestProvider.reset()
    previous = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    # The sign-in task runs in the request (after commit), so tests see its message at once.
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield settings
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = previous
    providers_reset()
    TestProvider.reset()


@pytest.fixture
def family(db) -> Family:
    categories_ensure()
    return family_make()


@pytest.fixture
def signed_in(client, family):
    """A client signed in as the family's guardian (through a message link, as from a text)."""
    from django.urls import reverse

    from portal.services import portal_link_for

    path = portal_link_for(family.guardian).removeprefix("http://testserver")
    assert client.post(path)["Location"] == reverse("portal:home")
    return client
