"""Webhook URLs, included under /hooks/ by config/urls.py."""

from __future__ import annotations

from anymail.webhooks.mailgun import MailgunTrackingWebhookView
from anymail.webhooks.postmark import PostmarkTrackingWebhookView
from anymail.webhooks.sendgrid import SendGridTrackingWebhookView
from django.urls import path

from notifications import webhooks

app_name = "notifications"

urlpatterns = [
    path("twilio/status/<uuid:delivery_uuid>/", webhooks.twilio_status, name="twilio_status"),
    path("twilio/inbound/", webhooks.twilio_inbound, name="twilio_inbound"),
    path(
        "anymail/postmark/tracking/",
        webhooks.anymail_tracking_view(PostmarkTrackingWebhookView),
        name="anymail_postmark_tracking",
    ),
    path(
        "anymail/sendgrid/tracking/",
        webhooks.anymail_tracking_view(SendGridTrackingWebhookView),
        name="anymail_sendgrid_tracking",
    ),
    path(
        "anymail/mailgun/tracking/",
        webhooks.anymail_tracking_view(MailgunTrackingWebhookView),
        name="anymail_mailgun_tracking",
    ),
]
