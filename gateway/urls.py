"""Gateway URLs mounted at the site root: only ``/metrics`` (token-protected, see views)."""

from django.urls import path

from gateway.views import metrics_view

urlpatterns = [
    path("metrics", metrics_view, name="metrics"),
]
