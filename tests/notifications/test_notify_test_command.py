"""``manage.py notify_test`` sends one message and prints the final status."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from notifications.models import Delivery
from notifications.providers.test import TestProvider

pytestmark = pytest.mark.django_db


def test_it_sends_through_twilio_and_polls_the_final_status(twilio):
    out = StringIO()
    call_command("notify_test", "--to", "+13125550142", "--wait", "5", stdout=out)
    assert twilio.numbers_sent() == ["+13125550142"]
    assert out.getvalue().strip().endswith("via twilio: delivered")


def test_a_known_contact_point_is_recorded_like_any_delivery(family):
    out = StringIO()
    call_command("notify_test", "--to", family["mother"].email, "--wait", "0", stdout=out)
    delivery = Delivery.objects.get(to=family["mother"].email)
    assert delivery.status == "sent"
    assert str(delivery.uuid) in out.getvalue() and "sent" in out.getvalue()
    assert TestProvider.outbox[0].to == family["mother"].email


def test_a_bad_address_is_a_clear_error():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="not a valid"):
        call_command("notify_test", "--to", "not-a-number")


def test_the_due_sweep_is_installed_as_a_system_schedule():
    from django_celery_beat.models import PeriodicTask

    from core.periodic import schedules_install
    from notifications.schedules import SCHEDULES

    schedules_install(schedules=SCHEDULES)
    task = PeriodicTask.objects.get(name="system:notifications-dispatch-due")
    assert task.task == "notifications.tasks.dispatch_due" and task.interval.every == 60
