"""Production settings pass Django's deployment checks; migrations match the models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "SECRET_KEY": "x7!kq2vR9#mL4pZ8wT1nB6yC3hF0jD5sG-aE_uO=iW+rY@tN&vX%cM^bK*zQ(lP)",
    "ALLOWED_HOSTS": "attendance.example.org",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/attendance",
    "REDIS_URL": "redis://127.0.0.1:6379/15",
    "PUBLIC_BASE_URL": "https://attendance.example.org",
    "FIELD_ENCRYPTION_KEYS": "4Bq0b6fJ7c0W1cG0m5c2o8n3f8w4Yx1mVQn2Yb7lK9E=",
    "API_KEY_PEPPER": "test-pepper-not-a-real-secret-0123456789",
    "SMS_PROVIDER": "twilio",
    "EMAIL_PROVIDER": "email",
    "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Test-only switches in this process's environment must not reach the production check.
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in PRODUCTION_ENV and k != "DJANGO_ALLOW_ASYNC_UNSAFE"
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_passes_on_production_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_refuses_to_start_without_a_secret_key():
    env = {**PRODUCTION_ENV, "SECRET_KEY": ""}
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr


def test_production_refuses_to_start_without_encryption_keys():
    result = _manage("check", env={**PRODUCTION_ENV, "FIELD_ENCRYPTION_KEYS": ""})
    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEYS is required" in result.stderr


def test_production_refuses_providers_that_do_not_send():
    """A forgotten SMS_PROVIDER would have kept the development default, the console, which
    marks every message sent while nobody receives it."""
    missing = {k: v for k, v in PRODUCTION_ENV.items() if k != "SMS_PROVIDER"}
    result = _manage("check", env=missing)
    assert result.returncode != 0
    assert "SMS_PROVIDER is required" in result.stderr
    for name, value in (
        ("SMS_PROVIDER", "console"),
        ("EMAIL_PROVIDER", "test"),
        ("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"),
    ):
        result = _manage("check", env={**PRODUCTION_ENV, name: value})
        assert result.returncode != 0, name
        assert f"{name} must name a provider that sends" in result.stderr


def test_production_refuses_to_start_without_an_https_public_url():
    """Links to families and staff, and Twilio's signed callbacks, are built on it."""
    missing = {k: v for k, v in PRODUCTION_ENV.items() if k != "PUBLIC_BASE_URL"}
    result = _manage("check", env=missing)
    assert result.returncode != 0
    assert "PUBLIC_BASE_URL is required" in result.stderr
    result = _manage("check", env={**PRODUCTION_ENV, "PUBLIC_BASE_URL": "http://example.org"})
    assert result.returncode != 0
    assert "PUBLIC_BASE_URL has an invalid value" in result.stderr


def test_a_bad_value_stops_start_up_with_a_clear_message():
    env = {**PRODUCTION_ENV, "SECURE_HSTS_SECONDS": "a year"}
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "SECURE_HSTS_SECONDS has an invalid value" in result.stderr


def test_migrations_match_the_models():
    env = {"DJANGO_SETTINGS_MODULE": "config.settings.test"}
    result = _manage("makemigrations", "--check", "--dry-run", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
