"""The parent portal in a real browser at phone size (360×740).

The guardian's own browser runs with JavaScript *disabled*: every core flow must work without
it. A second context (same cookies, JavaScript on, CSP bypassed so axe-core can be injected)
runs the accessibility check on each page. Screenshots go to test-artifacts/portal/.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.utils import timezone

from notifications.models import Notification, NotificationStatus
from notifications.providers.test import TestProvider
from notifications.services.events import attendance_change_handle
from notifications.services.planning import notification_dispatch, notifications_due
from notifications.services.sending import delivery_send
from portal.services import portal_link_for
from tests.e2e.conftest import PHONE, SCREENSHOTS
from tests.factories import AttendanceRecordFactory
from tests.portal.helpers import categories_ensure, family_make, last_code_to

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => n.target.join(" ")).slice(0, 5)}));
}"""


class Auditor:
    """Runs axe-core on a URL in a JavaScript-enabled context sharing the guardian's cookies."""

    def __init__(self, browser, axe_script, guardian_context) -> None:
        self.browser = browser
        self.axe_script = str(axe_script)
        self.guardian_context = guardian_context
        self.problems: dict[str, list[dict]] = {}

    def check(self, url: str, name: str) -> None:
        context = self.browser.new_context(viewport=PHONE, bypass_csp=True)
        try:
            context.add_cookies(self.guardian_context.cookies())
            page = context.new_page()
            page.goto(url)
            page.add_script_tag(path=self.axe_script)
            violations = page.evaluate(AXE_RUN)
        finally:
            context.close()
        bad = [v for v in violations if v["impact"] in ("serious", "critical")]
        if bad:
            self.problems[name] = bad


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_a_guardian_signs_in_changes_preferences_and_the_next_absence_follows_them(
    chromium, axe_script, live_server, e2e_settings
):
    categories_ensure()
    family = family_make()
    base = live_server.url
    context = chromium.new_context(viewport=PHONE, java_script_enabled=False, locale="en-US")
    page = context.new_page()
    csp_headers = []
    page.on(
        "response",
        lambda r: (
            csp_headers.append(r.headers.get("content-security-policy", ""))
            if "/portal/" in r.url and r.request.resource_type == "document"
            else None
        ),
    )
    audit = Auditor(chromium, axe_script, context)

    # Sign in with the keyboard only: tab to the field, type, press Enter.
    page.goto(f"{base}/portal/")
    for _ in range(10):
        if page.evaluate("document.activeElement && document.activeElement.id") == "id_contact":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "id_contact"
    page.keyboard.type("(312) 555-0142")
    shot(page, "01-sign-in")
    audit.check(f"{base}/portal/", "sign-in")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/portal/code/")
    shot(page, "02-code")
    audit.check(page.url, "code")
    page.get_by_label("6-digit code").fill(last_code_to("+13125550142"))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/portal/home/")
    assert page.get_by_text("Maya Rivera").is_visible()
    assert page.get_by_text("Sam Rivera").count() == 0  # no contact rights for Sam
    shot(page, "03-home")
    audit.check(page.url, "home")

    # A child's SMS preference: attendance messages about Maya by e-mail only.
    page.get_by_role("link", name="Maya Rivera").click()
    fieldset = page.get_by_role("group", name="Attendance (absences and late arrivals)")
    fieldset.get_by_label("Text message (SMS)").uncheck()
    emergency = page.get_by_role("group", name="Emergencies and school closures")
    assert emergency.get_by_label("Text message (SMS)").is_disabled()
    page.get_by_role("button", name="Save").click()
    assert page.get_by_text("Saved.").is_visible()
    assert not fieldset.get_by_label("Text message (SMS)").is_checked()
    shot(page, "04-child")
    audit.check(page.url, "child")

    # Quiet hours around "now" in the guardian's time zone; messages in Spanish.
    tz = zoneinfo.ZoneInfo("America/Chicago")
    local_now = timezone.now().astimezone(tz)
    quiet_start = (local_now - dt.timedelta(hours=1)).strftime("%H:%M")
    quiet_end = (local_now + dt.timedelta(hours=2)).strftime("%H:%M")
    page.get_by_role("link", name="When & language").first.click()
    page.get_by_label("Use quiet hours").check()
    page.get_by_label("Quiet from").fill(quiet_start)
    page.get_by_label("Quiet until").fill(quiet_end)
    page.get_by_label("Time zone").select_option("America/Chicago")
    page.get_by_label("Language of messages").select_option("es")
    page.get_by_role("button", name="Save").click()
    assert page.get_by_text("Saved.").is_visible()
    shot(page, "05-settings")
    audit.check(page.url, "settings")

    # Add and verify an e-mail address.
    page.get_by_role("link", name="Phones & e-mail").first.click()
    page.get_by_label("Mobile phone number or e-mail address").fill("alex.work@example.org")
    page.get_by_role("button", name="Add and send a code").click()
    page.get_by_label("6-digit code").fill(last_code_to("alex.work@example.org"))
    shot(page, "06-verify")
    audit.check(page.url, "verify")
    page.get_by_role("button", name="Confirm").click()
    assert page.get_by_text("Confirmed.").is_visible()
    item = page.locator("li.card", has_text="alex.work@example.org")
    assert item.get_by_text("Receives messages").is_visible()
    shot(page, "07-contacts")
    audit.check(page.url, "contacts")

    # Switch the portal to Spanish.
    page.get_by_role("button", name="Español").click()
    assert page.locator("html").get_attribute("lang") == "es"
    assert page.get_by_role("heading", name="Teléfonos y correo").is_visible()
    page.get_by_role("link", name="Hijos").click()
    assert page.get_by_text("Elija qué avisos recibe sobre cada hijo").is_visible()
    shot(page, "08-home-es")
    audit.check(page.url, "home-es")

    # The next absence honours the new preferences: e-mail only (SMS off for Maya's
    # attendance), deferred to the end of the quiet hours, written in Spanish.
    TestProvider.reset()
    now = timezone.now()
    record = AttendanceRecordFactory(
        student=family.first, school=family.first.school, date=now.astimezone(tz).date()
    )
    notifications = attendance_change_handle(record_id=record.pk, now=now)
    mine = next(n for n in notifications if n.guardian_id == family.guardian.pk)
    assert mine.status == NotificationStatus.PENDING
    assert mine.defer_reason == "quiet_hours"
    assert [step["channel"] for step in mine.plan] == ["email"]
    assert mine.language == "es"
    assert notifications_due(now=now) == [] or mine.pk not in notifications_due(now=now)
    later = mine.deferred_until + dt.timedelta(seconds=1)
    assert mine.pk in notifications_due(now=later)
    for delivery_id in notification_dispatch(notification_id=mine.pk, now=later):
        delivery_send(delivery_id=delivery_id)
    assert TestProvider.messages_to("+13125550142") == []
    sent = TestProvider.messages_to("parent@example.org")
    assert len(sent) == 1 and "Maya" in sent[0].body and "fue marcado" in sent[0].body
    assert Notification.objects.get(pk=mine.pk).status == NotificationStatus.SENT

    page.get_by_role("link", name="Mensajes", exact=True).click()
    assert page.get_by_text("Enviado").first.is_visible()
    shot(page, "09-history-es")
    audit.check(page.url, "history-es")

    context.close()

    # A link from a message: one button, then signed in (a fresh phone, no cookies, set to
    # Spanish: the portal follows the browser's language before sign-in).
    other = chromium.new_context(viewport=PHONE, java_script_enabled=False, locale="es-ES")
    page = other.new_page()
    page.on("response", lambda r: csp_headers.append(r.headers.get("content-security-policy", "")))
    audit.guardian_context = other
    link = portal_link_for(family.guardian)
    page.goto(link)
    shot(page, "10-message-link")
    audit.check(link, "message-link")
    page.get_by_role("button", name="Continuar").click()
    page.wait_for_url(f"{base}/portal/home/")
    # The friendly 429 page.
    e2e_settings.PORTAL_SIGNIN_SESSION_RATE = "1/15m"
    fresh = other.new_page()
    other.clear_cookies()
    for contact in ("someone@example.org", "someone.else@example.org"):
        fresh.goto(f"{base}/portal/")
        fresh.get_by_label("Número de celular o correo electrónico").fill(contact)
        response_info = fresh.expect_response(lambda r: r.request.method == "POST")
        with response_info as info:
            fresh.get_by_role("button", name="Enviarme un código").click()
    assert info.value.status == 429 and int(info.value.headers["retry-after"]) > 0
    shot(fresh, "11-throttled")
    other.close()

    # No portal page allowed inline styles.
    assert csp_headers and all("unsafe-inline" not in h for h in csp_headers if h)
    assert audit.problems == {}, audit.problems
