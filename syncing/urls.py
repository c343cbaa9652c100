from django.urls import path

from syncing import webhooks

app_name = "syncing"

urlpatterns = [
    path("events/<int:connection_id>", webhooks.sis_events, name="sis-events"),
]
