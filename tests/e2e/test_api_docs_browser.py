"""The integrator's API documentation in a real browser: Swagger UI and ReDoc render the schema
from our own static files, under the docs pages' content security policy, and nothing leaves
the browser for another host (a district's network may block CDNs; our pages load nothing from
third parties)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import ARTIFACTS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TITLE = "Student Attendance System API"
# ReDoc's "API docs by Redocly" footer always asks for this image; the policy refuses it.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def _open(chromium, live_server, path):
    """The page at ``path``, with the requests that went to another host (not refused by the
    policy before leaving the browser) and those the policy refused."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    ours = urlsplit(live_server.url).netloc
    left: list[str] = []
    refused: list[str] = []

    def elsewhere(request) -> bool:
        parts = urlsplit(request.url)
        return parts.scheme in ("http", "https") and parts.netloc != ours

    def finished(request):
        if elsewhere(request):
            left.append(request.url)

    def failed(request):
        if not elsewhere(request):
            return
        blocked = "csp" in (request.failure or "").lower()  # Chromium reports "csp"
        (refused if blocked else left).append(request.url)

    page.on("requestfinished", finished)
    page.on("requestfailed", failed)
    page.goto(live_server.url + path)
    return context, page, left, refused


def test_swagger_ui_renders_the_schema_from_our_own_files(chromium, live_server):
    context, page, left, refused = _open(chromium, live_server, "/api/docs/")
    page.locator(".swagger-ui .info .title").get_by_text(TITLE).wait_for()
    page.locator(".opblock-summary-path", has_text="/api/v1/students/").first.wait_for()
    (ARTIFACTS / "api").mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "api" / "swagger-ui.png"))
    context.close()
    assert (left, refused) == ([], [])


def test_redoc_renders_the_schema_from_our_own_files(chromium, live_server):
    context, page, left, refused = _open(chromium, live_server, "/api/redoc/")
    page.get_by_role("heading", name=TITLE).first.wait_for()
    page.get_by_text("/api/v1/students/").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "api" / "redoc.png"))
    context.close()
    assert left == []
    assert set(refused) <= {REDOC_LOGO}
