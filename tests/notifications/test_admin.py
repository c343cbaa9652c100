"""The notifications admin: explanations, timelines, template preview, statistics chart, bulk
notice compose → audience → send → progress → cancel, and district scoping."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from attendance.models import AttendanceStatus, MembershipRole
from attendance.services import attendance_record
from notifications.models import (
    BulkNotice,
    BulkNoticeState,
    Category,
    Delivery,
    DeliveryStatus,
    Notification,
    Preference,
    Template,
)
from notifications.services import planning, sending
from notifications.services.events import attendance_change_handle
from tests.admin_pages import attention_panel, changelist_count
from tests.factories import (
    DistrictFactory,
    GuardianFactory,
    MembershipFactory,
    SchoolFactory,
    UserFactory,
)

from .conftest import NOW, TODAY

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(family):
    link = family["links"][1]
    link.contact_allowed = False
    link.save()
    record, _ = attendance_record(
        student=family["student"], date=TODAY, status=AttendanceStatus.ABSENT
    )
    attendance_change_handle(record_id=record.pk, now=NOW)
    for pk in planning.notifications_due(now=NOW):
        for delivery_id in planning.notification_dispatch(notification_id=pk, now=NOW):
            sending.delivery_send(delivery_id=delivery_id)
    return family


@pytest.fixture
def district_admin(client, family):
    user = UserFactory()
    MembershipFactory(user=user, district=family["district"], role=MembershipRole.DISTRICT_ADMIN)
    client.force_login(user)
    return user


def test_the_explanation_and_timeline_are_shown(client, district_admin, sent):
    suppressed = Notification.objects.get(guardian=sent["father"])
    page = client.get(reverse("admin:notifications_notification_change", args=[suppressed.pk]))
    assert page.status_code == 200
    assert "Contact not allowed" in page.content.decode()
    delivery = Delivery.objects.filter(channel="sms").first()
    page = client.get(reverse("admin:notifications_delivery_change", args=[delivery.pk]))
    text = page.content.decode()
    assert page.status_code == 200
    assert "delivery events" in text.lower() and "Raw payload" in text
    found = client.get(
        reverse("admin:notifications_notification_changelist"),
        {"q": sent["student"].local_id},
    )
    assert found.status_code == 200 and sent["student"].local_id in found.content.decode()


def test_other_districts_see_nothing(client, sent):
    user = UserFactory()
    MembershipFactory(user=user, district=DistrictFactory(), role=MembershipRole.DISTRICT_ADMIN)
    client.force_login(user)
    page = client.get(reverse("admin:notifications_notification_changelist"))
    assert page.status_code == 200
    assert "0 notifications" in page.content.decode()


def test_template_preview_shows_segments(client, district_admin, family, categories):
    template = Template.objects.create(
        district=family["district"], category=categories["attendance"], channel="sms",
        language="en", body="{{ student_first_name }} was {{ status_text }} today ✓",
    )  # fmt: skip
    page = client.get(reverse("admin:notifications_template_change", args=[template.pk]))
    text = page.content.decode()
    assert "Alex was absent today ✓" in text
    assert "UCS-2" in text


def test_template_preview_counts_the_portal_link_as_sent(
    client, district_admin, family, categories
):
    from notifications.links import MARK
    from portal.services import portal_link_length

    template = Template.objects.create(
        district=family["district"], category=categories["attendance"], channel="sms",
        language="en", body="{{ student_first_name }} was {{ status_text }}. {{ portal_link }}",
    )  # fmt: skip
    page = client.get(reverse("admin:notifications_template_change", args=[template.pk]))
    text = page.content.decode()
    assert "Alex was absent. https://attendance.example.org/portal/l/" in text
    assert MARK not in text
    units = len("Alex was absent. ") + portal_link_length()
    assert f"{units} GSM-7 units" in text


def test_delivery_statistics_chart_is_server_rendered(client, district_admin, sent):
    deliveries = list(Delivery.objects.order_by("id"))
    assert len(deliveries) >= 2
    Delivery.objects.filter(pk=deliveries[0].pk).update(status=DeliveryStatus.DELIVERED)
    Delivery.objects.filter(pk=deliveries[1].pk).update(status=DeliveryStatus.BOUNCED)
    Delivery.objects.filter(pk__in=[d.pk for d in deliveries[2:]]).update(
        status=DeliveryStatus.SENT
    )
    page = client.get(reverse("admin:notifications_delivery_statistics"))
    text = page.content.decode()
    assert page.status_code == 200
    svg = text.split('<svg role="img" aria-label="Deliveries per day', 1)[1].split("</svg>")[0]
    assert "<script" not in svg
    assert svg.count("<title>") == 30  # every day of the last 30, those without deliveries too
    today = timezone.localdate()
    others = f", {len(deliveries) - 2} other (not yet delivered, cancelled, unknown)"
    title = f"{today:%b} {today.day}: 1 delivered, 1 failed, bounced or undelivered"
    assert f"<title>{title}{others if len(deliveries) > 2 else ''}</title>" in svg


def test_a_bulk_notice_is_narrowed_to_grades_by_ticking_them(
    client, district_admin, family, categories
):
    form = client.get(reverse("admin:notifications_bulknotice_add")).content.decode()
    assert 'type="checkbox" name="grade_levels" value="KG"' in form  # ticked, not typed as JSON
    compose = {
        "district": family["district"].pk, "title": "Field trip",
        "category": categories["general"].pk, "body_en": "Field trip on Friday.",
    }  # fmt: skip
    other_grades = client.post(
        reverse("admin:notifications_bulknotice_add"), {**compose, "grade_levels": ["06", "07"]}
    )
    assert other_grades.status_code == 302
    notice = BulkNotice.objects.get()
    assert notice.grade_levels == ["06", "07"]
    page = client.get(reverse("admin:notifications_bulknotice_change", args=[notice.pk]))
    assert "0 students, 0 guardians" in page.content.decode()  # the family's child is in 05
    ticked = re.findall(
        r'<input type="checkbox" name="grade_levels" value="(\w+)"[^>]* checked', page.text
    )
    assert ticked == ["06", "07"]
    bad = client.post(
        reverse("admin:notifications_bulknotice_add"), {**compose, "grade_levels": "[]"}
    )
    assert bad.status_code == 200 and "Select a valid choice" in bad.content.decode()


def test_bulk_notice_compose_count_send_and_cancel(
    client, district_admin, family, categories, django_capture_on_commit_callbacks
):
    add = client.post(
        reverse("admin:notifications_bulknotice_add"),
        {
            "district": family["district"].pk,
            "title": "Picture day",
            "category": categories["general"].pk,
            "subject_en": "Picture day",
            "body_en": "Picture day is Friday.",
        },
    )
    assert add.status_code == 302, add.content.decode()[:2000]
    notice = BulkNotice.objects.get()
    assert notice.texts["en"]["body"] == "Picture day is Friday."
    detail = reverse("admin:notifications_bulknotice_change", args=[notice.pk])
    page = client.get(detail).content.decode()
    assert "1 students, 2 guardians" in page
    refresh = '<meta http-equiv="refresh" content="5">'
    assert refresh not in page  # a draft being written is never reloaded under the author
    changelist = reverse("admin:notifications_bulknotice_changelist")
    with django_capture_on_commit_callbacks(execute=False):
        client.post(changelist, {"action": "send_notices", "_selected_action": [notice.pk]})
    notice.refresh_from_db()
    assert notice.state == BulkNoticeState.PLANNING
    assert refresh in client.get(detail).content.decode()  # its progress follows the send
    client.post(changelist, {"action": "cancel_notices", "_selected_action": [notice.pk]})
    notice.refresh_from_db()
    assert notice.state == BulkNoticeState.CANCELLED
    assert refresh not in client.get(detail).content.decode()


def test_the_home_page_counts_undelivered_messages_for_a_day_and_unknown_ones_until_settled(
    client, categories
):
    school = SchoolFactory()
    district = school.district
    guardian = GuardianFactory(district=district)
    category = categories[Category.GENERAL]

    def delivery(status, *, hours_ago=0):
        notification = Notification.objects.create(
            event_key=f"e-{Notification.objects.count()}", district=district, school=school,
            guardian=guardian, category=category,
        )  # fmt: skip
        made = Delivery.objects.create(
            notification=notification, channel="sms", to="+15555550100", body="Hello",
            provider="twilio", status=status, idempotency_key=notification.event_key,
        )  # fmt: skip
        Delivery.objects.filter(pk=made.pk).update(
            updated_at=timezone.now() - dt.timedelta(hours=hours_ago)
        )

    delivery(DeliveryStatus.FAILED, hours_ago=1)
    delivery(DeliveryStatus.BOUNCED, hours_ago=5)
    delivery(DeliveryStatus.UNDELIVERED, hours_ago=30)  # yesterday's news
    delivery(DeliveryStatus.DELIVERED)
    delivery(DeliveryStatus.UNKNOWN, hours_ago=50)
    user = UserFactory()
    MembershipFactory(user=user, district=district, role=MembershipRole.DISTRICT_ADMIN)
    client.force_login(user)

    lines = attention_panel(client)
    assert set(lines) == {
        "2 messages not delivered in the last 24 hours",
        "1 message whose fate is unknown (never resent blindly)",
    }
    for text, rows in lines.items():
        assert changelist_count(client, rows) == int(text.split()[0])


def test_channels_are_ticked_and_a_preference_layer_can_leave_them_unset(
    client, district_admin, family, categories
):
    add = reverse("admin:notifications_preference_add")
    base = {"guardian": family["mother"].pk, "category": categories["general"].pk}
    assert client.post(add, base).status_code == 302  # not ticked: not set at this layer
    assert Preference.objects.get().channels is None
    Preference.objects.all().delete()
    assert client.post(add, {**base, "channels_set_here": "on"}).status_code == 302
    assert Preference.objects.get().channels == []  # set here to none: only critical messages
    preference = Preference.objects.get()
    change = reverse("admin:notifications_preference_change", args=[preference.pk])
    form = client.get(change).text
    assert re.search(r'name="channels_set_here"[^>]* checked', form)
    client.post(change, {**base, "channels_set_here": "on", "channels": ["sms"]})
    assert Preference.objects.get().channels == ["sms"]
    client.post(change, {**base, "channels": ["sms"]})  # unticked: the boxes do not count
    assert Preference.objects.get().channels is None


def test_a_superuser_ticks_a_categorys_default_channels(client, categories):
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    general = categories["general"]
    url = reverse("admin:notifications_category_change", args=[general.pk])
    assert 'type="checkbox" name="default_channels" value="email"' in client.get(url).text
    answer = client.post(
        url, {"code": general.code, "name": general.name, "default_channels": ["email"]}
    )
    assert answer.status_code == 302
    general.refresh_from_db()
    assert general.default_channels == ["email"]
