from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_str, env_url


def test_a_missing_required_value_names_the_variable(monkeypatch):
    monkeypatch.delenv("SAS_TEST_VALUE", raising=False)
    with pytest.raises(ImproperlyConfigured, match="SAS_TEST_VALUE is required"):
        env_str("SAS_TEST_VALUE")


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("Yes", True), ("off", False)])
def test_booleans_parse_strictly(monkeypatch, raw, expected):
    monkeypatch.setenv("SAS_TEST_VALUE", raw)
    assert env_bool("SAS_TEST_VALUE") is expected


def test_a_bad_boolean_is_an_error_not_false(monkeypatch):
    monkeypatch.setenv("SAS_TEST_VALUE", "maybe")
    with pytest.raises(ImproperlyConfigured, match="SAS_TEST_VALUE has an invalid value"):
        env_bool("SAS_TEST_VALUE", False)


def test_integers_respect_their_bounds(monkeypatch):
    monkeypatch.setenv("SAS_TEST_VALUE", "10")
    assert env_int("SAS_TEST_VALUE", minimum=1) == 10
    with pytest.raises(ImproperlyConfigured, match="between 60 and inf"):
        env_int("SAS_TEST_VALUE", minimum=60)
    monkeypatch.setenv("SAS_TEST_VALUE", "ten")
    with pytest.raises(ImproperlyConfigured):
        env_int("SAS_TEST_VALUE")


def test_lists_refuse_empty_items(monkeypatch):
    monkeypatch.setenv("SAS_TEST_VALUE", "a.example, b.example")
    assert env_list("SAS_TEST_VALUE") == ["a.example", "b.example"]
    monkeypatch.setenv("SAS_TEST_VALUE", "a.example,,b")
    with pytest.raises(ImproperlyConfigured):
        env_list("SAS_TEST_VALUE")


def test_urls_need_a_known_scheme_and_host_without_echoing_the_value(monkeypatch):
    monkeypatch.setenv("SAS_TEST_VALUE", "postgres://user:hunter2@/db")
    with pytest.raises(ImproperlyConfigured) as error:
        env_url("SAS_TEST_VALUE", schemes=("postgres",))
    assert "hunter2" not in str(error.value)
    monkeypatch.setenv("SAS_TEST_VALUE", "mysql://db.example/x")
    with pytest.raises(ImproperlyConfigured):
        env_url("SAS_TEST_VALUE", schemes=("postgres",))
    monkeypatch.setenv("SAS_TEST_VALUE", "postgres://db.example/x")
    assert env_url("SAS_TEST_VALUE", schemes=("postgres",)) == "postgres://db.example/x"
