from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from sis.models import SISConnection


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        call_command("sis_connection", *args, stdout=out, stderr=err)
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def add(sandbox, name, *extra):
    return run(
        "add",
        "--district",
        "Cedar ISD",
        "--name",
        name,
        "--provider",
        "powerschool",
        "--base-url",
        sandbox.base_url,
        "--client-id",
        sandbox.client_id,
        "--client-secret",
        sandbox.client_secret,
        "--rate",
        "50",
        "--concurrency",
        "4",
        "--json",
        *extra,
    )


@pytest.mark.django_db
def test_add_creates_the_district_and_never_prints_the_secret(ps_sandbox):
    code, out, _ = add(ps_sandbox, "PowerSchool")
    data = json.loads(out)
    assert code == 0 and data["district"] == "Cedar ISD" and data["credentials_set"]
    assert ps_sandbox.client_secret not in out
    connection = SISConnection.objects.get(name="PowerSchool")
    assert connection.max_concurrency == 4 and connection.rate_per_second == 50


@pytest.mark.django_db
def test_test_prints_the_counts_the_sis_reports(ps_sandbox):
    add(ps_sandbox, "PS")
    code, out, _ = run("test", "PS", "--json")
    data = json.loads(out)
    assert code == 0 and data["ok"] and data["counts"] == ps_sandbox.counts()
    code, out, _ = run("test", "PS")
    assert code == 0 and "student" in out and "200" in out


@pytest.mark.django_db
def test_bad_credentials_and_unreachable_servers_exit_non_zero(ps_sandbox):
    add(ps_sandbox, "PS")
    code, _, _ = run("update", "--name", "PS", "--client-secret", "wrong", "--json")
    assert code == 0
    code, out, _ = run("test", "PS", "--json")
    data = json.loads(out)
    assert code == 1 and data["error_kind"] == "authentication"
    assert "refused the client credentials" in data["error"] and "wrong" not in out
    run("update", "--name", "PS", "--base-url", "http://127.0.0.1:9", "--json")
    code, _, err = run("test", "PS")
    assert code == 2 and "unreachable" in err


@pytest.mark.django_db
def test_bad_input_is_a_clear_error():
    with pytest.raises(CommandError, match="Infinite Campus token URLs"):
        call_command(
            "sis_connection",
            "add",
            "--district",
            "Elm ISD",
            "--name",
            "IC",
            "--provider",
            "oneroster-1.2",
            "--vendor",
            "infinite-campus",
            "--base-url",
            "https://ic.example.org/campus/api/ims/oneroster/rostering/v1p2",
            "--token-url",
            "https://ic.example.org/campus/oauth2/token",
            "--client-id",
            "id",
            "--client-secret",
            "secret",
        )
    with pytest.raises(CommandError, match="Unknown option"):
        call_command(
            "sis_connection",
            "add",
            "--district",
            "Elm ISD",
            "--name",
            "OR",
            "--provider",
            "oneroster-1.2",
            "--base-url",
            "https://or.example.org",
            "--token-url",
            "https://or.example.org/token",
            "--client-id",
            "id",
            "--client-secret",
            "secret",
            "--options",
            '{"limit": 5}',
        )
    assert not SISConnection.objects.exists()


@pytest.mark.django_db
def test_a_duplicate_name_in_a_district_is_refused(ps_sandbox):
    add(ps_sandbox, "PS")
    with pytest.raises(CommandError, match="already exists"):
        call_command(
            "sis_connection",
            "add",
            "--district",
            "Cedar ISD",
            "--name",
            "PS",
            "--provider",
            "powerschool",
            "--base-url",
            ps_sandbox.base_url,
            "--client-id",
            "a",
            "--client-secret",
            "b",
        )


@pytest.mark.django_db
def test_list_shows_connections_without_secrets(ps_sandbox):
    add(ps_sandbox, "PS")
    code, out, _ = run("list", "--json")
    (row,) = json.loads(out)["connections"]
    assert row["name"] == "PS" and ps_sandbox.client_secret not in out
