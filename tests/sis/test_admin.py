from __future__ import annotations

import pytest
from django.urls import reverse

from sis import services
from sis.models import SISConnection
from tests.factories import DistrictFactory, UserFactory

SECRET = "admin-never-shows-this"


@pytest.fixture
def superuser_client(client):
    user = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_the_change_page_never_shows_secrets(superuser_client):
    connection = services.sis_connection_create(
        district=DistrictFactory(),
        name="PS",
        provider="powerschool",
        base_url="https://ps.example.org",
        client_id="client-id-xyz",
        client_secret=SECRET,
    )
    page = superuser_client.get(
        reverse("admin:sis_sisconnection_change", args=[connection.pk])
    ).content.decode()
    assert "PS" in page
    assert SECRET not in page and "client-id-xyz" not in page and "enc1:" not in page
    history = superuser_client.get(
        reverse("admin:sis_sisconnection_history", args=[connection.pk])
    ).content.decode()
    assert SECRET not in history


@pytest.mark.django_db
def test_an_invalid_connection_is_refused_by_the_form(superuser_client):
    district = DistrictFactory()
    response = superuser_client.post(
        reverse("admin:sis_sisconnection_add"),
        {
            "district": district.pk,
            "name": "IC",
            "provider": "oneroster-1.2",
            "vendor": "infinite-campus",
            "base_url": "https://ic.example.org/campus/api/ims/oneroster/rostering/v1p2",
            "token_url": "https://ic.example.org/campus/oauth2/token",
            "options": "{}",
            "capabilities": "[]",
            "enabled": "on",
            "client_id": "id",
            "client_secret": "s",
        },
    )
    assert response.status_code == 200
    assert "appName" in response.content.decode()
    assert not SISConnection.objects.exists()


@pytest.mark.django_db
def test_the_test_action_reports_counts(superuser_client, ps_sandbox):
    connection = services.sis_connection_create(
        district=DistrictFactory(),
        name="Sandbox",
        provider="powerschool",
        base_url=ps_sandbox.base_url,
        client_id=ps_sandbox.client_id,
        client_secret=ps_sandbox.client_secret,
    )
    response = superuser_client.post(
        reverse("admin:sis_sisconnection_changelist"),
        {"action": "test_connection", "_selected_action": [connection.pk]},
        follow=True,
    )
    text = response.content.decode()
    assert "Sandbox: OK" in text and "student: 200" in text


@pytest.mark.django_db
def test_a_connections_page_tests_it_with_a_button(superuser_client, ps_sandbox):
    connection = services.sis_connection_create(
        district=DistrictFactory(), name="Sandbox", provider="powerschool",
        base_url=ps_sandbox.base_url, client_id=ps_sandbox.client_id,
        client_secret=ps_sandbox.client_secret,
    )  # fmt: skip
    page_url = reverse("admin:sis_sisconnection_change", args=[connection.pk])
    button = reverse("admin:sis_sisconnection_do", args=[connection.pk, "test_connection"])
    assert f'formaction="{button}"' in superuser_client.get(page_url).content.decode()
    response = superuser_client.post(button, follow=True)
    assert response.redirect_chain[-1][0] == page_url
    assert "Sandbox: OK" in response.content.decode()


@pytest.mark.django_db
def test_the_form_lists_each_providers_options_and_says_whether_a_secret_is_stored(
    superuser_client,
):
    connection = services.sis_connection_create(
        district=DistrictFactory(), name="PS", provider="powerschool",
        base_url="https://ps.example.org", client_id="client-id-xyz", client_secret=SECRET,
    )  # fmt: skip
    url = reverse("admin:sis_sisconnection_change", args=[connection.pk])
    page = superuser_client.get(url).content.decode()
    assert "<strong>oneroster-1.2</strong>: auth (&quot;oauth2&quot; or &quot;oauth1&quot;" in page
    assert "<strong>powerschool</strong>: delta, push_events, read_guardians" in page
    assert page.count("Write-only. One is stored: leave empty to keep it.") == 2
    assert '<label for="id_base_url">Base URL:</label>' in page

    bare = services.sis_connection_create(
        district=connection.district, name="CSV", provider="oneroster-csv",
        base_url="https://files.example.org",
    )  # fmt: skip
    page = superuser_client.get(reverse("admin:sis_sisconnection_change", args=[bare.pk]))
    assert page.content.decode().count("Write-only. None is stored.") == 2
