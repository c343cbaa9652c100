"""Browser tests: Playwright (sync API) driving Debian's Chromium against pytest-django's
live_server. A browser is never downloaded: the tests use /usr/bin/chromium (``make test``
installs Debian's package when it is missing)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from config.celery import app as celery_app
from notifications.providers import providers_reset
from notifications.providers.test import TestProvider

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = Path(django_settings.BASE_DIR) / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "portal"
AXE_DIR = ARTIFACTS / "axe"
AXE_JS = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"width": 360, "height": 740}


@pytest.fixture(scope="module")
def _allow_orm_beside_playwright():
    """Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    between browser steps are ordinary synchronous calls, so Django's async-safety guard is
    lifted while a browser module runs — never process-wide: later tests, and the production
    check they start as a subprocess, must keep it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
        yield


@pytest.fixture(scope="session")
def axe_script() -> Path:
    """axe-core from the npm registry, cached under test-artifacts/axe/. No silent skip: when it
    cannot be installed the accessibility check fails and says why."""
    if AXE_JS.exists():
        return AXE_JS
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("The accessibility check needs npm to install axe-core (apt-get install npm).")
    AXE_DIR.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [npm, "install", "--prefix", str(AXE_DIR), "--no-audit", "--no-fund", "axe-core@4"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if result.returncode != 0 or not AXE_JS.exists():
        pytest.fail(
            "Could not install axe-core from the npm registry for the accessibility check "
            f"(npm exit {result.returncode}): {result.stderr.strip()[-500:]}"
        )
    return AXE_JS


@pytest.fixture(scope="module")
def chromium(_allow_orm_beside_playwright):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make browser` (Debian's chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def e2e_settings(settings, live_server):
    settings.NOTIFY_SMS_PROVIDER = "test"
    settings.NOTIFY_EMAIL_PROVIDER = "test"
    settings.NOTIFY_ATTENDANCE_HOLD_SECONDS = 0
    settings.PUBLIC_BASE_URL = live_server.url
    providers_reset()
    TestProvider.reset()
    previous = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield settings
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = previous
    providers_reset()
    TestProvider.reset()
